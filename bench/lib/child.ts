/**
 * Runs one benchmark in this process and writes its result as JSON:
 *
 *   node --import tsx bench/lib/child.ts <name> <result.json> [--quick]
 *
 * `bench/run.ts` starts one of these per benchmark, so one benchmark's garbage, sockets and timers
 * cannot disturb the next one's figures.
 */
import { writeFile } from 'node:fs/promises';
import type { Benchmark } from './benchmark.js';
import { cleanup, cleanupOnExit } from './processes.js';

const [name, resultFile, ...flags] = process.argv.slice(2);
if (!name || !resultFile || !/^[a-z0-9-]+$/.test(name)) {
  process.stderr.write('usage: node --import tsx bench/lib/child.ts <name> <result.json> [--quick]\n');
  process.exit(2);
}

cleanupOnExit();
const module = (await import(`../${name}.ts`)) as { benchmark: Benchmark };
try {
  const result = await module.benchmark.run({
    quick: flags.includes('--quick'),
    progress: (line) => process.stdout.write(`[${name}] ${line}\n`),
  });
  await writeFile(resultFile, JSON.stringify(result));
} finally {
  await cleanup();
}
