/**
 * Benchmark 1, durable HTTP ingest: events/s and latency of `POST /api/v1/events` at 50 connections,
 * against a bare `node:http` server measured in the same run with the same generator.
 */
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { defineBenchmark, measuredOn, pause } from './lib/benchmark.js';
import {
  type CpuProfile,
  otherArea,
  type ProfileArea,
  type ProfileSummary,
  summarizeCpuProfile,
} from './lib/cpu-profile.js';
import { type FdatasyncCost, measureFdatasync } from './lib/disk.js';
import { benchEventBody, cloudEventType, createIdMaker } from './lib/events.js';
import { closedLoop, type LoadResult, type OpenLoopResult, openLoop } from './lib/load.js';
import { medianBy } from './lib/percentiles.js';
import {
  type CpuShares,
  createCpuMeter,
  createTempDir,
  removeTempDir,
  repoRoot,
  type ServerProcess,
  startBareServer,
  startReflex,
  writeTempFile,
} from './lib/processes.js';
import {
  disturbanceNote,
  formatCount,
  formatMs,
  formatPercent,
  goalVerdict,
  markdownTable,
} from './lib/report.js';
import { emptyRulebook, tenNonMatchingRules } from './lib/rulebooks.js';
import { benchPostgresSchema, benchStores } from './lib/stores.js';

const eventsPath = '/api/v1/events';
const connections = 50;

interface Settings {
  rounds: number;
  warmupS: number;
  measureS: number;
  fixedRateShare: number;
}

const fullSettings: Settings = { rounds: 3, warmupS: 3, measureS: 10, fixedRateShare: 0.5 };
const quickSettings: Settings = { rounds: 1, warmupS: 1, measureS: 2, fixedRateShare: 0.5 };

/** Loaded into the profiled Reflex with NODE_OPTIONS; SIGUSR2 starts and stops its profiler. */
const profilerPreload = join(repoRoot, 'bench', 'lib', 'cpu-profile-preload.mjs');

/**
 * The areas of a request's path in Reflex, for the profile breakdown. A sample counts for the nearest
 * frame on its stack that matches an area (so `writev` counts for Node's HTTP, and a SQLite statement for
 * the store); the dispatcher and the executor claim everything they start, their SQLite commits included.
 * In list order, so the first area that matches a frame wins.
 */
export const ingestAreas: ProfileArea[] = [
  {
    name: 'dispatcher and executor (decide each event, their own commit)',
    patterns: [/src\/engine\/(dispatcher|executor|timers)\.ts/],
    anywhere: true,
  },
  { name: 'logging (pino)', patterns: [/node_modules\/pino/] },
  { name: 'hop to the sync thread (fdatasync request, WalSync)', patterns: [/wal-sync\.ts/, / fdatasync$/] },
  {
    name: 'group commit: SQLite insert and commit (event JSON.stringify included)',
    patterns: [/better-sqlite3/, /src\/store\//],
  },
  { name: 'group commit: the queue (engine/ingest.ts)', patterns: [/src\/engine\/ingest\.ts/] },
  { name: 'JSON.parse of the body (UTF-8 check included)', patterns: [/json-body\.ts parseJsonBody$/] },
  {
    name: 'validation: CloudEvents checks, depth, reserved names, Host/Origin',
    patterns: [
      /src\/codec\//,
      /src\/core\/event\.ts/,
      /src\/server\/front-door\.ts/,
      /src\/sources\/http-source\.ts/,
    ],
  },
  {
    name: 'building the answer (reply, serialiser)',
    patterns: [/fastify\/lib\/reply\.js/, /fast-json-stringify/, /src\/sources\/http-routes\.ts/],
  },
  {
    name: 'Fastify: routing, hooks, body reading (and the route handlers)',
    patterns: [
      /node_modules\/(fastify|find-my-way|avvio|@fastify|light-my-request)\//,
      /src\/server\//,
      /src\/sources\//,
      /src\/engine\/source-manager\.ts/,
    ],
  },
  {
    name: "Node's HTTP: parser, sockets, writes",
    patterns: [/^node:(_http|net|stream|internal\/(http|stream_base_commons|streams|net))/],
  },
  { name: 'garbage collection', patterns: [/ \(garbage collector\)$/] },
  { name: 'V8 and native code, unattributed', patterns: [/ \(program\)$/] },
];

/** A server under test: how to start it, fresh, for one run. */
interface Peer {
  key: string;
  label: string;
  start(): Promise<{ server: ServerProcess; dataDir?: string; drop?: () => Promise<void> }>;
}

/** A closed-loop run with the CPU the server and the generator used during the measured part. */
interface ClosedRun extends LoadResult {
  cpu: CpuShares;
}

interface OpenRun extends OpenLoopResult {
  cpu: CpuShares;
}

export const benchmark = defineBenchmark({
  name: 'ingest',
  async run({ quick, progress }) {
    const settings = quick ? quickSettings : fullSettings;
    const emptyPath = await writeTempFile('empty.yaml', emptyRulebook);
    const tenRulesPath = await writeTempFile('ten-rules.yaml', tenNonMatchingRules);
    const reflexPeer = (
      key: string,
      label: string,
      rulebook: string,
      durability: 'full' | 'normal',
    ): Peer => ({
      key,
      label,
      async start() {
        const dataDir = await createTempDir(key);
        return { server: await startReflex({ rulebook, dataDir, durability }), dataDir };
      },
    });
    const bare: Peer = {
      key: 'bare',
      label: 'bare `node:http` (parse JSON, answer 202)',
      start: async () => ({ server: await startBareServer() }),
    };
    const full = reflexPeer('full', 'Reflex, durability full (default), no rules', emptyPath, 'full');
    const normal = reflexPeer('normal', 'Reflex, durability normal, no rules', emptyPath, 'normal');
    const tenRules = reflexPeer(
      'ten-rules',
      'Reflex, durability full, 10 non-matching rules',
      tenRulesPath,
      'full',
    );
    // The same Reflex on PostgreSQL (closed loop only: the fixed rate below stays a share of the SQLite
    // lines' capacity, as before this dimension existed).
    const postgres: Peer = {
      key: 'postgres',
      label: 'Reflex on PostgreSQL (`--store postgres://…`), no rules',
      async start() {
        const dataDir = await createTempDir('postgres');
        const schema = benchPostgresSchema('ingest');
        const server = await startReflex({ rulebook: emptyPath, dataDir, extraArgs: schema.args });
        return { server, dataDir, drop: schema.drop };
      },
    };
    const closedPeers = [
      bare,
      full,
      normal,
      tenRules,
      ...(benchStores().includes('postgres') ? [postgres] : []),
    ];

    // The price of one durable group commit on the file system that holds the data dirs.
    const fdatasyncDir = await createTempDir('fdatasync');
    const fdatasync = measureFdatasync(fdatasyncDir);
    removeTempDir(fdatasyncDir);
    progress(
      `16 KiB write + fdatasync, ${fdatasync.count}×: p50 ${formatMs(fdatasync.latency.p50)} ms, ` +
        `p99 ${formatMs(fdatasync.latency.p99)} ms`,
    );
    const openPeers = [bare, full, normal];

    // Every run gets a fresh process and data dir, and the peers alternate within each round, so drift
    // of the machine (other tenants, page cache, thermal) spreads over all of them alike.
    const closed = new Map<string, ClosedRun[]>(closedPeers.map((p) => [p.key, []]));
    for (let round = 1; round <= settings.rounds; round++) {
      for (const peer of closedPeers) {
        const run = await withServer(peer, async (server) => {
          const nextId = createIdMaker(`c${round}${peer.key[0]}`);
          const load = (durationS: number) =>
            closedLoop({
              url: server.url + eventsPath,
              connections,
              durationS,
              contentType: cloudEventType,
              body: () => benchEventBody(nextId()),
            });
          return warmThenMeasure(server.pid, load, settings);
        });
        closed.get(peer.key)!.push(run);
        progress(
          `closed loop, round ${round}/${settings.rounds}, ${peer.key}: ${formatCount(run.throughput)} events/s, ` +
            `p50 ${formatMs(run.latency.p50)} ms, p99 ${formatMs(run.latency.p99)} ms, failed ${run.failed}`,
        );
      }
    }
    const closedMedian = new Map(
      [...closed].map(([key, runs]) => [key, medianBy(runs, (r) => r.throughput)]),
    );

    // One more closed-loop run of the full line with the sampling profiler on for the measured window
    // only (it slows the server down, so this run's throughput is not among the figures above).
    const profile = await withServer(profiledPeer(full, emptyPath), async (server) => {
      const nextId = createIdMaker('pf');
      const load = (durationS: number) =>
        closedLoop({
          url: server.url + eventsPath,
          connections,
          durationS,
          contentType: cloudEventType,
          body: () => benchEventBody(nextId()),
        });
      await load(settings.warmupS);
      process.kill(server.pid, 'SIGUSR2');
      const meter = createCpuMeter(server.pid);
      const run = await load(settings.measureS);
      const cpu = meter.stop();
      process.kill(server.pid, 'SIGUSR2');
      const summary = summarizeCpuProfile(await readProfile(server.pid), ingestAreas);
      return { run: { ...run, cpu }, summary };
    });
    progress(
      `profiled closed loop, full: ${formatCount(profile.run.throughput)} events/s; ` +
        profile.summary.areas.map((a) => `${a.name} ${formatPercent(a.share)}`).join(', '),
    );
    // Below every server's capacity: at a rate a server cannot keep up with, latency only measures how
    // long its queue has grown.
    const slowest = openPeers.reduce((a, b) =>
      closedMedian.get(b.key)!.throughput < closedMedian.get(a.key)!.throughput ? b : a,
    );
    const slowestMax = closedMedian.get(slowest.key)!.throughput;
    const rate = Math.max(100, Math.round((slowestMax * settings.fixedRateShare) / 100) * 100);

    const open = new Map<string, OpenRun[]>(openPeers.map((p) => [p.key, []]));
    for (let round = 1; round <= settings.rounds; round++) {
      for (const peer of openPeers) {
        const run = await withServer(peer, async (server) => {
          const nextId = createIdMaker(`o${round}${peer.key[0]}`);
          const load = (durationS: number) =>
            openLoop({
              origin: server.url,
              path: eventsPath,
              connections,
              ratePerS: rate,
              durationS,
              contentType: cloudEventType,
              body: () => benchEventBody(nextId()),
            });
          return warmThenMeasure(server.pid, load, settings);
        });
        open.get(peer.key)!.push(run);
        progress(
          `open loop at ${formatCount(rate)}/s, round ${round}/${settings.rounds}, ${peer.key}: ` +
            `p50 ${formatMs(run.latency.p50)} ms, p99 ${formatMs(run.latency.p99)} ms, ` +
            `max ${formatMs(run.latency.max)} ms, failed ${run.failed + run.skipped}`,
        );
      }
    }
    const openMedian = new Map([...open].map(([key, runs]) => [key, medianBy(runs, (r) => r.latency.p99)]));

    const bareMax = closedMedian.get('bare')!.throughput;
    const fullRun = closedMedian.get('full')!;
    const ratio = fullRun.throughput / bareMax;
    const openFull = openMedian.get('full')!;
    const markdown = render({
      quick,
      settings,
      rate,
      slowest,
      closedPeers,
      openPeers,
      closed,
      closedMedian,
      open,
      openMedian,
      fdatasync,
      profile,
    });
    return {
      markdown,
      summary: {
        bareEventsPerS: Math.round(bareMax),
        fullEventsPerS: Math.round(fullRun.throughput),
        normalEventsPerS: Math.round(closedMedian.get('normal')!.throughput),
        tenRulesEventsPerS: Math.round(closedMedian.get('ten-rules')!.throughput),
        ...(closedMedian.has('postgres')
          ? {
              postgresEventsPerS: Math.round(closedMedian.get('postgres')!.throughput),
              postgresClosedP99Ms: Number(closedMedian.get('postgres')!.latency.p99.toFixed(2)),
            }
          : {}),
        fullVsBare: Number(ratio.toFixed(3)),
        fullClosedP99Ms: Number(fullRun.latency.p99.toFixed(2)),
        fixedRate: rate,
        fullOpenP99Ms: Number(openFull.latency.p99.toFixed(2)),
        bareOpenP99Ms: Number(openMedian.get('bare')!.latency.p99.toFixed(2)),
        fdatasyncP50Ms: Number(fdatasync.latency.p50.toFixed(3)),
        fdatasyncP99Ms: Number(fdatasync.latency.p99.toFixed(3)),
      },
    };
  },
});

/** A Reflex peer started with the profiler preloaded, its profile written into its data dir's parent. */
function profiledPeer(peer: Peer, rulebook: string): Peer {
  return {
    key: `${peer.key}-profiled`,
    label: `${peer.label}, profiled`,
    async start() {
      const dataDir = await createTempDir('profiled');
      const server = await startReflex({
        rulebook,
        dataDir,
        durability: 'full',
        env: { NODE_OPTIONS: `--import=${profilerPreload}`, BENCH_CPU_PROFILE_DIR: dataDir },
      });
      profileDirs.set(server.pid, dataDir);
      return { server, dataDir };
    },
  };
}

/** Where each profiled server writes its profile, by pid. */
const profileDirs = new Map<number, string>();

/** Waits for the profile the server `pid` writes after its second SIGUSR2, and reads it. */
async function readProfile(pid: number): Promise<CpuProfile> {
  const path = join(profileDirs.get(pid)!, `server-${pid}.cpuprofile`);
  for (let waited = 0; !existsSync(path); waited += 100) {
    if (waited > 60_000) throw new Error(`the profiled server wrote no profile at ${path}`);
    await pause(100);
  }
  return JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
}

/** Starts a fresh server for one run, runs `measure`, then stops the server and removes its data. */
async function withServer<T>(peer: Peer, measure: (server: ServerProcess) => Promise<T>): Promise<T> {
  const { server, dataDir, drop } = await peer.start();
  try {
    const result = await measure(server);
    if (!server.running) throw new Error(`${server.name} died during the run:\n${server.stderrTail()}`);
    return result;
  } finally {
    await server.stop();
    if (dataDir) removeTempDir(dataDir);
    await drop?.();
  }
}

/** Runs `load` for the warm-up (discarded), then for the measured time with the server's CPU metered. */
async function warmThenMeasure<T extends object>(
  pid: number,
  load: (durationS: number) => Promise<T>,
  settings: Settings,
): Promise<T & { cpu: CpuShares }> {
  await load(settings.warmupS);
  const meter = createCpuMeter(pid);
  const result = await load(settings.measureS);
  return { ...result, cpu: meter.stop() };
}

function fdatasyncLine(cost: FdatasyncCost): string {
  return (
    `appending ${cost.bytes / 1024} KiB to a file and calling \`fdatasync\` on the data dirs' file system took ` +
    `${formatMs(cost.latency.p50)} ms (p50) / ${formatMs(cost.latency.p99)} ms (p99), ${cost.count} times, ` +
    'measured by the bench before the runs (`bench/lib/disk.ts`); every group commit with durability full waits for one.'
  );
}

/** What the samples no area claims are, as far as the profiles taken so far show. */
const otherLabel = 'other: promise and microtask machinery, timers (Node internals)';

function profileSection(input: RenderInput): string {
  const { run, summary } = input.profile;
  const rows = summary.areas
    .filter((area) => area.micros > 0)
    .sort((a, b) => b.share - a.share)
    .map((area) => [area.name === otherArea ? otherLabel : area.name, formatPercent(area.share)]);
  const idle = summary.idleMicros / Math.max(1, summary.totalMicros);
  return `### (c) Where Reflex's CPU goes, durability full, closed loop

One more closed-loop run of the full line (${connections} connections, ${input.settings.warmupS} s warm-up, ${input.settings.measureS} s measured) with V8's sampling
profiler on in the Reflex process for the measured window (\`bench/lib/cpu-profile-preload.mjs\`, loaded with
\`NODE_OPTIONS=--import=…\`; SIGUSR2 starts and stops it). Each sample counts for the nearest frame of its
stack that belongs to an area (\`bench/lib/cpu-profile.ts\`; the areas are in \`bench/ingest.ts\`), so a system
call counts for whoever made it. Shares of the main thread's busy time: they hold under load from other
processes better than the absolute figures do. This run: ${formatCount(run.throughput)} events/s (the profiler slows it down),
server CPU ${Math.round(run.cpu.server)} %, main thread idle ${formatPercent(idle)} of the time (waiting for \`fdatasync\` or for requests).

${markdownTable(['area', 'share of busy time'], rows)}`;
}

interface RenderInput {
  quick: boolean;
  settings: Settings;
  rate: number;
  /** The server whose maximum the fixed rate is a share of. */
  slowest: Peer;
  closedPeers: Peer[];
  openPeers: Peer[];
  closed: Map<string, ClosedRun[]>;
  closedMedian: Map<string, ClosedRun>;
  open: Map<string, OpenRun[]>;
  openMedian: Map<string, OpenRun>;
  fdatasync: FdatasyncCost;
  profile: { run: ClosedRun; summary: ProfileSummary };
}

function render(input: RenderInput): string {
  const { settings, rate, slowest } = input;
  const bareMax = input.closedMedian.get('bare')!.throughput;
  const full = input.closedMedian.get('full')!;
  const ratio = full.throughput / bareMax;
  const openFull = input.openMedian.get('full')!;
  const cpu = (value: number) => `${Math.round(value)} %`;

  const closedRows = input.closedPeers.map((peer) => {
    const run = input.closedMedian.get(peer.key)!;
    return [
      peer.label,
      formatCount(run.throughput),
      formatPercent(run.throughput / bareMax),
      formatMs(run.latency.p50),
      formatMs(run.latency.p99),
      formatMs(run.latency.max),
      cpu(run.cpu.server),
      cpu(run.cpu.generator),
      cpu(run.cpu.other),
      String(run.failed),
    ];
  });
  const openRows = input.openPeers.map((peer) => {
    const run = input.openMedian.get(peer.key)!;
    return [
      peer.label,
      formatCount(run.throughput),
      formatMs(run.latency.p50),
      formatMs(run.latency.p90),
      formatMs(run.latency.p99),
      formatMs(run.latency.max),
      cpu(run.cpu.server),
      cpu(run.cpu.generator),
      cpu(run.cpu.other),
      String(run.failed + run.skipped),
    ];
  });
  const runsLine = <R>(runs: Map<string, R[]>, peers: Peer[], show: (run: R) => string) =>
    peers.map((peer) => `${peer.key}: ${runs.get(peer.key)!.map(show).join(' · ')}`).join('; ');
  const sendLag = input.openMedian.get('bare')!.sendLag;

  return `## 1. Durable HTTP ingest

${measuredOn('ingest', input.quick)}

**What is measured.** \`POST /api/v1/events\` with one structured CloudEvent per request
(\`application/cloudevents+json\`, ${benchEventBody('c1f-0000000').length} bytes, a unique \`id\` each), at ${connections}
connections, against the bare server in the same run: \`bench/servers/bare-server.ts\`, a \`node:http\` server that
reads the body, parses the JSON and answers 202 \`{seq,id,source}\`, nothing else (the physical limit of HTTP
on this machine). Reflex runs as \`./bin/reflex start RULEBOOK --data DIR --port 0 --log-level warn\`, each run a
fresh process with a fresh data dir; "no rules" is \`rules: []\`, the 10-rule line loads ten rules whose
patterns never match the event (type, prefix, suffix, numeric, anything-but, exists, wildcard), so matching
runs for every event and creates nothing. A 202 from Reflex means the event is committed to SQLite; on the
PostgreSQL line (\`--store postgres://…?schema=…\`, a fresh schema per run on the local PostgreSQL server,
default settings, \`synchronous_commit=on\`) that its commit is flushed to PostgreSQL's WAL.

**How.** The load generator runs in the bench's own process on the same ${cpus().length}-core machine, so it competes
with the server for CPU: that is why every line is measured in the same run with the same generator, and
why the ratio to bare is the figure to read. Rounds: ${settings.rounds}, the servers alternating within each round;
the table shows each server's median run. "server CPU" is the server process's CPU time over the measured
window (100 % = one core), "generator CPU" the bench process's, and "other CPU" everything else the machine
ran meanwhile (other tenants): where it is high, the run was disturbed.

${disturbanceNote('ingest', [
  ...[...input.closedMedian.values()].map((r) => r.cpu.other),
  ...[...input.openMedian.values()].map((r) => r.cpu.other),
])}### (a) Maximum throughput, closed loop, ${connections} connections

autocannon 8 (programmatic API, a fresh body per request from \`setupRequest\`): each connection sends its next
request as soon as the previous one is answered. ${settings.warmupS} s warm-up (discarded), then ${settings.measureS} s measured.
Latency is autocannon's per-request time (request written → response read), in ms, unrounded.

${markdownTable(
  [
    'server',
    'events/s',
    'vs bare',
    'p50 ms',
    'p99 ms',
    'max ms',
    'server CPU',
    'generator CPU',
    'other CPU',
    'failed',
  ],
  closedRows,
)}

All runs, events/s — ${runsLine(input.closed, input.closedPeers, (r) => formatCount(r.throughput))}.

Ratio full / bare per round (the two runs were back to back, so they met similar disturbance):
${input.closed
  .get('full')!
  .map((run, i) => formatPercent(run.throughput / input.closed.get('bare')![i]!.throughput))
  .join(' · ')}.

- Goal: Reflex durable ingest ≥ 60 % of bare — ${formatPercent(ratio)}: ${goalVerdict(ratio >= 0.6)}. To read it against the disk:
  ${fdatasyncLine(input.fdatasync)}
- Goal: p99 under 10 ms — Reflex (full) p99 at ${connections} connections, closed loop: ${formatMs(full.latency.p99)} ms: ${goalVerdict(full.latency.p99 < 10)};
  at the fixed rate below: ${formatMs(openFull.latency.p99)} ms: ${goalVerdict(openFull.latency.p99 < 10)}.

### (b) Latency at a fixed rate, open loop, ${formatCount(rate)} events/s

${formatCount(rate)} events/s is ${formatPercent(settings.fixedRateShare)} of the lowest median maximum above (that of "${slowest.label}"), so every
server runs below its capacity. The bench's own
open-loop generator (undici Pool, ${connections} connections) sends request *i* at *start + i / rate* whatever
the answers do, and measures latency from that **scheduled** time to the answer's headers, so time a request
spent waiting behind a slow one counts (no coordinated omission). ${settings.warmupS} s warm-up at the same rate,
then ${settings.measureS} s measured; median run by p99.

${markdownTable(
  [
    'server',
    'answered/s',
    'p50 ms',
    'p90 ms',
    'p99 ms',
    'max ms',
    'server CPU',
    'generator CPU',
    'other CPU',
    'failed',
  ],
  openRows,
)}

All runs, p99 ms — ${runsLine(input.open, input.openPeers, (r) => formatMs(r.latency.p99))}.

The generator's own floor: it sent requests ${formatMs(sendLag.p50)} ms (p50) / ${formatMs(sendLag.p99)} ms (p99) after
their scheduled time (timer granularity), in the bare run shown; that delay is inside every figure above.

${profileSection(input)}
`;
}
