/**
 * What correlation costs the dispatcher: events/s with 1 000 `all` rules and with 1 000 `count` rules
 * against 1 000 single-event rules with the same patterns, events spread over 100 000 keys; and what the
 * open partial matches cost in memory and on disk.
 *
 * Run: `node --import tsx bench/correlation.ts [--quick] [--profile] [--events N] [--rounds N]
 * [--matcher compiled|reference]`. Prints progress on stderr, then a markdown section on stdout.
 * `--profile` adds the hottest functions of each variant (a CPU profile of the dispatch only, taken in
 * the process). `--matcher reference` measures with the engine's default matcher instead of the compiled
 * one; it scans every pattern for every event, so give it fewer events (`--events 20000`). `bench/run.ts`
 * can run this as the `correlation` benchmark (the `benchmark` export).
 *
 * How: the events are committed to a log once (the store's group commit, in batches of 500) and the data
 * dir is copied for every measurement. Each measurement is a child process (`--expose-gc`, so memory
 * figures are taken after a full GC, and one variant's garbage cannot weigh on another's) that builds
 * the engine's dispatcher as `createEngine` does — store, facts, rulebook versions, rule index, system
 * clock; the rule index on the compiled matcher, as `createEngine({ createMatcher })` gets it — and times it from `start()` until it has caught up with the log. The executor is not
 * started: single-event rules create a run per event, and executing those runs at the same time would
 * take the CPU from the dispatcher being measured. Correlation rules never complete here (`all` waits for
 * an event type that never comes; `count` needs 1 000), so every figure is about holding state.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import Database from 'better-sqlite3';
import { createActionRegistry } from '../src/actions/registry.js';
import type { CloudEvent } from '../src/core/event.js';
import type { Matcher } from '../src/core/pattern/matcher.js';
import { createReferenceMatcher } from '../src/core/pattern/reference-matcher.js';
import { silentLogger } from '../src/core/ports/logger.js';
import { createRuleIndexer } from '../src/core/rule-index.js';
import { createDispatcher } from '../src/engine/dispatcher.js';
import { runId } from '../src/engine/ids.js';
import { createRulebookVersions } from '../src/engine/rulebook-versions.js';
import { systemClock } from '../src/engine/system-clock.js';
import { yamlRulebookCompiler } from '../src/rulebook/yaml-rulebook-compiler.js';
import { createSqliteStore, databaseFileName } from '../src/store/index.js';
import { type BenchmarkContext, type BenchmarkResult, defineBenchmark, measuredOn } from './lib/benchmark.js';
import { goalVerdict } from './lib/report.js';

/** The rule sets compared, on the same patterns. */
export const variants = ['single', 'all', 'count'] as const;
export type Variant = (typeof variants)[number];

const ruleCount = 1000;
const keyCount = 100_000;
const types = 100;
const regions = 10; // types × regions = ruleCount: every event matches exactly one rule's pattern

/** mulberry32: a small seeded PRNG, so every run measures the same workload. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Event `i` of the workload: about 300 bytes of JSON, one of 1 000 (type, region) pairs, one of 100 000 keys. */
export function makeEvent(i: number, rnd: () => number): CloudEvent {
  const key = Math.floor(rnd() * keyCount);
  return {
    specversion: '1.0',
    id: `corr-${i}`,
    source: 'bench/correlation',
    type: `bench.t${Math.floor(rnd() * types)}`,
    time: '2026-01-01T12:00:00Z',
    subject: `keys/${key}`,
    datacontenttype: 'application/json',
    data: {
      key: `k${key}`,
      region: `r${Math.floor(rnd() * regions)}`,
      host: `web-${Math.floor(rnd() * 200)}.internal.example.com`,
      value: Math.round(rnd() * 100_000) / 100,
      count: Math.floor(rnd() * 50),
      tags: ['prod', 'canary'],
      customer: { id: `c-${Math.floor(rnd() * 10_000)}`, tier: 'gold' },
    },
  };
}

/** The rulebook of a variant: 1 000 rules, rule i on the pattern of (type i % 100, region i / 100). */
export function makeRulebook(variant: Variant): string {
  const lines = ['rules:'];
  for (let i = 0; i < ruleCount; i++) {
    const pattern = `{ type: [bench.t${i % types}], data: { region: [r${Math.floor(i / types)}] } }`;
    lines.push(`  - name: r${i}`);
    switch (variant) {
      case 'single':
        lines.push(`    when: { pattern: ${pattern} }`);
        break;
      case 'all':
        // The second event type never occurs: every match stays open.
        lines.push(
          '    when:',
          '      all:',
          `        - { name: hit, pattern: ${pattern} }`,
          `        - { name: rare, pattern: { type: [bench.rare${i}] } }`,
          '      within: 1h',
          '      by: event.data.key',
        );
        break;
      case 'count':
        lines.push(
          '    when:',
          `      count: { pattern: ${pattern}, atLeast: 1000, within: 1h }`,
          '      by: event.data.key',
        );
        break;
    }
    lines.push('    then: [ { log: "${{ event.data.key }}" } ]');
  }
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------
// The measurement, in a child process of its own.

/** Which pattern matcher the rule index uses: the engine's default (reference), or the compiled one. */
export type MatcherKind = 'compiled' | 'reference';

/**
 * The matcher's factory. The compiled matcher is imported by a computed name, so this file type-checks
 * and runs whether or not that module is in the tree; without it, the reference matcher is used.
 */
async function matcherFactory(kind: MatcherKind): Promise<{ kind: MatcherKind; create: () => Matcher }> {
  if (kind === 'compiled') {
    const specifier = '../src/core/pattern/compiled-matcher.js';
    try {
      const module = (await import(specifier)) as { createCompiledMatcher?: () => Matcher };
      if (module.createCompiledMatcher) return { kind, create: module.createCompiledMatcher };
    } catch {
      // Not in this tree: fall back below.
    }
  }
  return { kind: 'reference', create: createReferenceMatcher };
}

/** What one child measured. */
export interface Measurement {
  variant: Variant;
  matcher: MatcherKind;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  runs: number;
  /** Rows in flow_states once caught up: the open partial matches. */
  partials: number;
  rssDelta: number;
  heapDelta: number;
  /** Growth of the database file (checkpointed, after close). */
  dbDelta: number;
  /** Bytes of flow_states (table and its primary-key index), from SQLite's dbstat. */
  flowStateBytes: number;
  /** Bytes of the audit table and its indexes. */
  auditDelta: number;
  /** The hottest functions by self time during dispatch (with --profile). */
  hot?: Array<{ fn: string; percent: number }>;
}

const gc: () => void =
  (globalThis as { gc?: () => void }).gc ??
  (() => {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  })();

function fullGc(): void {
  for (let i = 0; i < 4; i++) gc();
}

/** Sizes from SQLite's own page accounting: the whole file, and by table (indexes counted with their table). */
function databaseBytes(dir: string): { total: number; byTable: Map<string, number> } {
  const db = new Database(join(dir, databaseFileName));
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    const pages = db.pragma('page_count', { simple: true }) as number;
    const rows = db
      .prepare(
        `SELECT coalesce(m.tbl_name, s.name) AS tbl, sum(s.pgsize) AS bytes
         FROM dbstat s LEFT JOIN sqlite_schema m ON m.name = s.name GROUP BY tbl`,
      )
      .all() as Array<{ tbl: string; bytes: number }>;
    return { total: pageSize * pages, byTable: new Map(rows.map((r) => [r.tbl, r.bytes])) };
  } finally {
    db.close();
  }
}

async function measure(
  variant: Variant,
  dir: string,
  events: number,
  profile: boolean,
  matcherKind: MatcherKind,
): Promise<Measurement> {
  const matcher = await matcherFactory(matcherKind);
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const diskBefore = databaseBytes(dir);
  const store = await createSqliteStore({ dir });
  const versions = createRulebookVersions(store, {
    actions: createActionRegistry(),
    compilers: [yamlRulebookCompiler],
  });
  const version = await versions.save([{ path: 'bench.yaml', content: makeRulebook(variant) }], Date.now());
  const dispatcher = createDispatcher({
    log: store,
    store,
    clock: systemClock,
    logger: silentLogger,
    runId,
    indexer: createRuleIndexer(matcher.create()),
  });
  dispatcher.setRulebook(version);

  let session: import('node:inspector/promises').Session | undefined;
  if (profile) {
    const inspector = await import('node:inspector/promises');
    session = new inspector.Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 500 });
  }
  fullGc();
  const before = process.memoryUsage();
  await session?.post('Profiler.start');
  const started = performance.now();
  await dispatcher.start();
  const step = Math.max(1, Math.floor(events / 5));
  for (let seq = step; seq < events; seq += step) {
    await dispatcher.caughtUp(seq);
    const seconds = (performance.now() - started) / 1000;
    say(`  ${variant}: ${seq.toLocaleString('en-US')} dispatched in ${seconds.toFixed(1)} s`);
  }
  await dispatcher.caughtUp(events);
  const seconds = (performance.now() - started) / 1000;
  const stopped = session ? await session.post('Profiler.stop') : undefined;
  session?.disconnect();
  fullGc();
  const after = process.memoryUsage();

  const db = new Database(join(dir, databaseFileName), { readonly: true });
  let partials: number;
  let runs: number;
  try {
    partials = (db.prepare('SELECT count(*) AS n FROM flow_states').get() as { n: number }).n;
    runs = (db.prepare('SELECT count(*) AS n FROM runs').get() as { n: number }).n;
  } finally {
    db.close();
  }
  await dispatcher.drain();
  await store.close();
  const diskAfter = databaseBytes(dir);
  const tableGrowth = (name: string) =>
    (diskAfter.byTable.get(name) ?? 0) - (diskBefore.byTable.get(name) ?? 0);

  const result: Measurement = {
    variant,
    matcher: matcher.kind,
    events,
    seconds,
    eventsPerSecond: events / seconds,
    runs,
    partials,
    rssDelta: after.rss - before.rss,
    heapDelta: after.heapUsed - before.heapUsed,
    dbDelta: diskAfter.total - diskBefore.total,
    flowStateBytes: diskAfter.byTable.get('flow_states') ?? 0,
    auditDelta: tableGrowth('audit'),
  };
  if (stopped) result.hot = hottest(stopped.profile as CpuProfile, 12);
  return result;
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

/** The functions with the most self time in a CPU profile, as shares of all samples. */
function hottest(profile: CpuProfile, limit: number): Array<{ fn: string; percent: number }> {
  const frameOf = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const frame = frameOf.get(id);
    const delta = profile.timeDeltas[i] ?? 0;
    total += delta;
    if (!frame) return;
    const file = frame.url.replace(/^.*\/(src|node_modules)\//, '$1/');
    const name =
      `${frame.functionName || '(anonymous)'} ${file ? `${file}:${frame.lineNumber + 1}` : ''}`.trim();
    self.set(name, (self.get(name) ?? 0) + delta);
  });
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([fn, time]) => ({ fn, percent: (100 * time) / total }));
}

// ---------------------------------------------------------------------------------------------------
// The driver: the log once, then one child per (round, variant), then the section.

const thisFile = fileURLToPath(import.meta.url);
const repoRoot = fileURLToPath(new URL('../', import.meta.url));

interface Options {
  /** The command line, for the section. */
  command: string;
  matcher: MatcherKind;
  events: number;
  rounds: number;
  profile: boolean;
  quick: boolean;
}

/** Commits the workload to a fresh log in `dir`, 500 events per append (as ingest's group commit does). */
async function preload(dir: string, events: number, progress: (line: string) => void): Promise<void> {
  const store = await createSqliteStore({ dir });
  try {
    const rnd = random(42);
    const started = performance.now();
    for (let start = 0; start < events; start += 500) {
      const batch: CloudEvent[] = [];
      for (let i = start; i < Math.min(events, start + 500); i++) batch.push(makeEvent(i, rnd));
      await store.appendEvents(batch, Date.now());
      if ((start + 500) % 50_000 === 0)
        progress(`log: ${(start + 500).toLocaleString('en-US')} of ${events.toLocaleString('en-US')} events`);
    }
    progress(
      `log: ${events.toLocaleString('en-US')} events in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  } finally {
    await store.close();
  }
}

let child: ChildProcess | undefined;

/** Runs one measurement in a child process and returns what it measured. */
function runChild(
  variant: Variant,
  dir: string,
  options: Options,
  progress: (line: string) => void,
): Promise<Measurement> {
  return new Promise((resolve, reject) => {
    const args = [
      '--expose-gc',
      '--import',
      'tsx',
      thisFile,
      '--child',
      variant,
      dir,
      String(options.events),
      '--matcher',
      options.matcher,
    ];
    if (options.profile) args.push('--profile');
    child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    let result: Measurement | undefined;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('RESULT ')) result = JSON.parse(line.slice(7)) as Measurement;
      else progress(line.trim());
    });
    child.once('error', reject);
    child.once('close', (code) => {
      child = undefined;
      if (code === 0 && result) resolve(result);
      else reject(new Error(`the ${variant} measurement exited with ${code}`));
    });
  });
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

const n = (value: number, digits = 0) =>
  value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** Runs the benchmark and returns its section. */
export async function runCorrelationBenchmark(
  options: Options,
  progress: (line: string) => void,
): Promise<BenchmarkResult> {
  const work = mkdtempSync(join(tmpdir(), 'reflex-bench-correlation-'));
  const load = loadavg()[0]!;
  const cleanup = () => {
    child?.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  };
  const onSignal = () => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const results = new Map<Variant, Measurement[]>(variants.map((v) => [v, []]));
  try {
    const template = join(work, 'template');
    await preload(template, options.events, progress);
    for (let round = 1; round <= options.rounds; round++) {
      // Alternating the variants round by round spreads the machine's other load over all of them.
      for (const variant of variants) {
        const dir = join(work, `${variant}-${round}`);
        cpSync(template, dir, { recursive: true });
        progress(`round ${round}/${options.rounds}: ${variant}`);
        const measured = await runChild(variant, dir, options, progress);
        rmSync(dir, { recursive: true, force: true });
        progress(
          `  ${variant}: ${n(measured.eventsPerSecond)} events/s, ${n(measured.partials)} open partial matches, ` +
            `RSS +${mib(measured.rssDelta)}, heap +${mib(measured.heapDelta)}, database +${mib(measured.dbDelta)}`,
        );
        results.get(variant)!.push(measured);
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    cleanup();
  }
  return report(options, results, load);
}

function report(options: Options, results: Map<Variant, Measurement[]>, load: number): BenchmarkResult {
  const med = (variant: Variant, pick: (m: Measurement) => number) => median(results.get(variant)!.map(pick));
  const rate = (variant: Variant) => med(variant, (m) => m.eventsPerSecond);
  const single = rate('single');
  const lines: string[] = [];
  const print = (line = '') => lines.push(line);
  const summary: BenchmarkResult['summary'] = {
    events: options.events,
    singleEventsPerSecond: Math.round(single),
  };

  print('## 6. Correlation: dispatcher throughput and the cost of open partial matches');
  print();
  print(measuredOn('correlation', options.quick));
  print();
  print(
    `Machine: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores, load average ${load.toFixed(1)} at start), Node ${process.version}. ` +
      `Command: \`${options.command}\`. Pattern matcher: ${results.get('single')![0]!.matcher}.`,
  );
  print();
  print(
    `${n(options.events)} events (~300 bytes) already in the log, each matching exactly one of ${n(ruleCount)} rules, ` +
      `spread over ${n(keyCount)} keys (\`by: event.data.key\`). The dispatcher (as \`createEngine\` builds it, the ` +
      'executor not started) is timed from start until it has caught up with the log; each measurement in a fresh ' +
      `process on a fresh copy of the log; median of ${options.rounds} round(s), variants alternating. ` +
      '**single**: `when: { pattern }` — a run per event. **all**: the same pattern plus a second sub-condition ' +
      'that never matches, `within: 1h` — every event opens or refreshes a partial match. **count**: the same ' +
      'pattern, `atLeast: 1000, within: 1h` — every event is held. Memory after a full GC; the database ' +
      "checkpointed; per-table bytes from SQLite's `dbstat`.",
  );
  print();
  print(
    '| rules | events/s | (range over rounds) | ÷ single | runs | open partial matches | RSS growth | heap growth | database growth | flow_states on disk | audit growth |',
  );
  print('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const variant of variants) {
    const r = rate(variant);
    const all = results.get(variant)!.map((m) => m.eventsPerSecond);
    print(
      `| 1,000 ${variant} | ${n(r)} | ${n(Math.min(...all))}–${n(Math.max(...all))} | ` +
        `${variant === 'single' ? '—' : `${n((100 * r) / single)}%`} | ` +
        `${n(med(variant, (m) => m.runs))} | ${n(med(variant, (m) => m.partials))} | ` +
        `${mib(med(variant, (m) => m.rssDelta))} | ${mib(med(variant, (m) => m.heapDelta))} | ` +
        `${mib(med(variant, (m) => m.dbDelta))} | ${mib(med(variant, (m) => m.flowStateBytes))} | ` +
        `${mib(med(variant, (m) => m.auditDelta))} |`,
    );
  }
  print();
  print(
    'Per open partial match (memory: growth beyond the single-event run, which holds no state; disk: the flow_states table and its index):',
  );
  print();
  print(
    '| rules | throughput ÷ single (goal ≥ 50%) | RSS per match | heap per match | flow_states bytes per match (goal, memory: < 1 KiB) |',
  );
  print('|---|---:|---:|---:|---:|');
  for (const variant of variants.filter((v) => v !== 'single')) {
    const partials = med(variant, (m) => m.partials);
    const ratio = rate(variant) / single;
    const rss = (med(variant, (m) => m.rssDelta) - med('single', (m) => m.rssDelta)) / partials;
    const heap = (med(variant, (m) => m.heapDelta) - med('single', (m) => m.heapDelta)) / partials;
    const disk = med(variant, (m) => m.flowStateBytes) / partials;
    print(
      `| ${variant} | ${n(100 * ratio)}% (${goalVerdict(ratio >= 0.5)}) | ${n(rss)} B (${goalVerdict(rss < 1024)}) | ` +
        `${n(heap)} B | ${n(disk)} B |`,
    );
    summary[`${variant}EventsPerSecond`] = Math.round(rate(variant));
    summary[`${variant}Ratio`] = Number(ratio.toFixed(3));
    summary[`${variant}RssBytesPerPartial`] = Math.round(rss);
    summary[`${variant}DiskBytesPerPartial`] = Math.round(disk);
  }
  print();
  if (options.profile) {
    for (const variant of variants) {
      const hot = results.get(variant)!.at(-1)?.hot ?? [];
      print(`Hottest functions, ${variant} (self time during dispatch, last round):`);
      print();
      for (const { fn, percent } of hot) print(`- ${percent.toFixed(1)}% \`${fn}\``);
      print();
    }
  }
  return { markdown: lines.join('\n'), summary };
}

/** `npm run bench -- correlation`, through bench/run.ts. */
export const benchmark = defineBenchmark({
  name: 'correlation',
  run: (context: BenchmarkContext) =>
    runCorrelationBenchmark(
      {
        command: `npm run bench -- correlation${context.quick ? ' --quick' : ''}`,
        matcher: 'compiled',
        events: context.quick ? 20_000 : 200_000,
        rounds: context.quick ? 1 : 3,
        profile: false,
        quick: context.quick,
      },
      context.progress,
    ),
});

function flag(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    const [, , , variant, dir, events] = process.argv;
    if (!(variants as readonly string[]).includes(variant ?? '') || !dir || !events) {
      throw new Error('usage: correlation.ts --child <single|all|count> <data dir> <events> [--profile]');
    }
    const result = await measure(
      variant as Variant,
      dir,
      Number(events),
      process.argv.includes('--profile'),
      flag('--matcher') === 'reference' ? 'reference' : 'compiled',
    );
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    return;
  }
  const quick = process.argv.includes('--quick');
  const matcher = flag('--matcher') ?? 'compiled';
  if (matcher !== 'compiled' && matcher !== 'reference')
    throw new Error('--matcher is compiled or reference');
  const options: Options = {
    command: ['node --import tsx bench/correlation.ts', ...process.argv.slice(2)].join(' '),
    matcher,
    events: Number(flag('--events') ?? (quick ? 20_000 : 200_000)),
    rounds: Number(flag('--rounds') ?? (quick ? 1 : 3)),
    profile: process.argv.includes('--profile'),
    quick,
  };
  const result = await runCorrelationBenchmark(options, (line) =>
    process.stderr.write(`[correlation] ${line}\n`),
  );
  process.stdout.write(`${result.markdown}\n`);
}

// Runs when executed, not when imported (by bench/run.ts, or for the workload).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
