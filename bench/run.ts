/**
 * `npm run bench [-- <name>...] [--quick] [--no-write] [--store=sqlite,postgres]`: runs the benchmarks,
 * each in a child process of its own, prints progress and results, and rewrites BENCHMARKS.md. Naming
 * benchmarks runs only those and replaces only their sections. `--quick` is a smoke run with short
 * durations; its figures are printed but never written. `--no-write` leaves BENCHMARKS.md alone.
 * `--store` picks the store backends that ingest and event-to-action measure Reflex on, in the same run
 * (default both; PostgreSQL from REFLEX_BENCH_POSTGRES_URL, else the local server's database `test`).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchmarkResult } from './lib/benchmark.js';
import { repoRoot } from './lib/processes.js';
import { composeBenchmarksFile, describeMachine, formatGiB } from './lib/report.js';
import { benchStoreKinds, benchStoresVariable, parseBenchStores } from './lib/stores.js';

/** Every benchmark, in the order they run and appear in BENCHMARKS.md. */
const benchmarkNames = [
  'ingest',
  'event-to-action',
  'log-memory',
  'matching',
  'citylots',
  'correlation',
] as const;

const args = process.argv.slice(2);
const flags = new Set(args.filter((a) => a.startsWith('--')));
const asked = args.filter((a) => !a.startsWith('--'));
const unknown = asked.filter((a) => !(benchmarkNames as readonly string[]).includes(a));
const storeFlag = [...flags].find((f) => f.startsWith('--store='));
const stores = parseBenchStores(storeFlag?.slice('--store='.length) ?? benchStoreKinds.join(','));
const unknownFlags = [...flags].filter(
  (f) => f !== '--quick' && f !== '--no-write' && !(f === storeFlag && stores !== undefined),
);
if (unknown.length > 0 || unknownFlags.length > 0 || stores === undefined) {
  process.stderr.write(
    `unknown benchmark or option: ${[...unknown, ...unknownFlags].join(', ')}\n` +
      `usage: npm run bench [-- ${benchmarkNames.join('|')} ...] [--quick] [--no-write] ` +
      `[--store=${benchStoreKinds.join(',')}]\n`,
  );
  process.exit(2);
}
const selected = asked.length > 0 ? benchmarkNames.filter((n) => asked.includes(n)) : [...benchmarkNames];
const quick = flags.has('--quick');
const write = !quick && !flags.has('--no-write');
const command = `npm run bench${args.length > 0 ? ` -- ${args.join(' ')}` : ''}`;
const benchmarksFile = join(repoRoot, 'BENCHMARKS.md');
const workDir = mkdtempSync(join(tmpdir(), 'reflex-bench-run-'));

let running: ReturnType<typeof spawn> | undefined;
// The child cleans up after itself on SIGINT/SIGTERM (servers, temp dirs); wait for it, then go.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (running) running.kill(signal);
    else process.exit(130);
  });
}

const machine = describeMachine();
process.stdout.write(
  `${command}\nmachine: ${machine.cpu}, ${machine.cores} cores, ${formatGiB(machine.ramBytes)} RAM, ` +
    `Node ${machine.node}, ${machine.os}; data dirs on ${machine.tempFileSystem}\n` +
    `benchmarks: ${selected.join(', ')}${quick ? ' (quick smoke run, not written)' : ''}; ` +
    `stores: ${stores.join(', ')}\n\n`,
);

const fresh = new Map<string, string>();
const failed: string[] = [];
try {
  for (const name of selected) {
    const startedAt = Date.now();
    process.stdout.write(`=== ${name} ===\n`);
    const resultFile = join(workDir, `${name}.json`);
    const code = await runChild(name, resultFile);
    if (code !== 0 || !existsSync(resultFile)) {
      failed.push(name);
      process.stdout.write(`=== ${name} failed (exit ${code}); its section is left as it was ===\n\n`);
      if (code === 130) break;
      continue;
    }
    const result = JSON.parse(readFileSync(resultFile, 'utf8')) as BenchmarkResult;
    fresh.set(name, result.markdown);
    process.stdout.write(
      `\n${result.markdown.trim()}\n\n=== ${name} done in ${Math.round((Date.now() - startedAt) / 1000)} s: ` +
        `${JSON.stringify(result.summary)} ===\n\n`,
    );
  }
} finally {
  rmSync(workDir, { recursive: true, force: true });
}

if (write && fresh.size > 0) {
  const previous = existsSync(benchmarksFile) ? readFileSync(benchmarksFile, 'utf8') : undefined;
  writeFileSync(benchmarksFile, composeBenchmarksFile(header(), benchmarkNames, fresh, previous));
  process.stdout.write(`BENCHMARKS.md: updated ${[...fresh.keys()].join(', ')}\n`);
}
if (failed.length > 0) {
  process.stderr.write(`failed: ${failed.join(', ')}\n`);
  process.exitCode = 1;
}

function runChild(name: string, resultFile: string): Promise<number | null> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repoRoot, 'bench', 'lib', 'child.ts'),
      name,
      resultFile,
      ...(quick ? ['--quick'] : []),
    ],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, [benchStoresVariable]: stores!.join(',') },
    },
  );
  running = child;
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      running = undefined;
      resolve(signal ? 130 : code);
    });
  });
}

function header(): string {
  const date = new Date().toISOString().replace('T', ' ').slice(0, 16);
  return `# Reflex benchmarks

Figures written by \`npm run bench\` (\`bench/run.ts\`); do not edit them by hand. \`npm run bench -- <name>\` runs
one benchmark (${benchmarkNames.map((n) => `\`${n}\``).join(', ')}) and replaces only its section; each section
says when it was measured. \`--quick\` is a short smoke run that is printed, never written here.

| | |
| :--- | :--- |
| CPU | ${machine.cpu}, ${machine.cores} cores |
| RAM | ${formatGiB(machine.ramBytes)} |
| OS | ${machine.os} |
| Node.js | ${machine.node} |
| data dirs | ${machine.tempFileSystem} (the system temp dir; fsync cost depends on it) |
| last run | ${date} UTC, \`${command}\` |

The load generator, the servers under test and the action target all run on this one machine. With
${machine.cores} cores they compete for CPU, so absolute figures understate what a dedicated server would do;
the comparisons that matter (Reflex against the bare server) are measured in the same run with the same
generator, where the ratio is meaningful.`;
}
