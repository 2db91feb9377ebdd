import { parseArgs } from 'node:util';
import { runChaos } from '../test/chaos/chaos-loop.js';

/**
 * `npm run chaos -- --cycles 50 --seed 7`: the chaos loop (test/chaos/chaos-loop.ts) for long runs. Prints
 * one line per cycle, then the figures and every violated invariant; exits 1 when one was violated.
 */
const { values } = parseArgs({
  options: {
    cycles: { type: 'string', default: '50' },
    seed: { type: 'string' },
    senders: { type: 'string', default: '6' },
    keep: { type: 'boolean', default: false },
  },
});
const cycles = Number(values.cycles);
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
const senders = Number(values.senders);
for (const [name, value] of Object.entries({ cycles, seed, senders })) {
  if (!Number.isSafeInteger(value) || value < 0) {
    console.error(`--${name} must be a whole number, not ${JSON.stringify(value)}`);
    process.exit(2);
  }
}
console.log(`chaos: ${cycles} cycles, seed ${seed}, ${senders} senders`);
const report = await runChaos({
  cycles,
  seed,
  senders,
  keep: values.keep,
  progress: (line) => console.log(line),
});
const { violations, ...figures } = report;
console.log(JSON.stringify(figures, null, 2));
if (violations.length > 0) {
  console.log(`${violations.length} invariant(s) violated (seed ${seed}):`);
  for (const violation of violations) console.log(`- ${violation}`);
  process.exit(1);
}
console.log(`all invariants held over ${cycles} kill -9 cycles (seed ${seed})`);
