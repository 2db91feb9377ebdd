/**
 * Benchmark 2, event-to-action latency: how long after Reflex acknowledged an event does the action it
 * triggers reach the system it calls? A rule answers every event with an `http` action at a target
 * server the bench runs; the target notes each call's arrival.
 */
import { defineBenchmark, measuredOn, pause } from './lib/benchmark.js';
import { benchEventBody, cloudEventType } from './lib/events.js';
import { type OpenLoopResult, openLoop } from './lib/load.js';
import { type LatencySummary, medianBy, summarize } from './lib/percentiles.js';
import {
  type CpuShares,
  createCpuMeter,
  createTempDir,
  removeTempDir,
  type ServerProcess,
  startActionTarget,
  startReflex,
  writeTempFile,
} from './lib/processes.js';
import { disturbanceNote, formatCount, formatMs, markdownTable } from './lib/report.js';
import { actionRulebook } from './lib/rulebooks.js';
import { benchPostgresSchema, benchStores } from './lib/stores.js';

const eventsPath = '/api/v1/events';
const connections = 50;
const eventType = 'bench.action';

interface Settings {
  rounds: number;
  /** The rate of the issue's figure; the light-load line uses `lightRatePerS`. */
  ratePerS: number;
  lightRatePerS: number;
  warmupS: number;
  measureS: number;
  /** How long to wait, after the last event was acknowledged, for the last action to arrive. */
  drainTimeoutS: number;
  /** Waiting for actions (or answers) ends early when nothing moved for this long: Reflex has stalled. */
  stallS: number;
}

const fullSettings: Settings = {
  rounds: 3,
  ratePerS: 1000,
  lightRatePerS: 100,
  warmupS: 2,
  measureS: 10,
  drainTimeoutS: 120,
  stallS: 10,
};
const quickSettings: Settings = {
  rounds: 1,
  ratePerS: 1000,
  lightRatePerS: 100,
  warmupS: 1,
  measureS: 2,
  drainTimeoutS: 60,
  stallS: 10,
};

/** A way of running Reflex for this benchmark, and the rate it gets. */
interface Config {
  key: string;
  label: string;
  extraArgs: string[];
  rate: (settings: Settings) => number;
  /** Run Reflex on a fresh PostgreSQL schema instead of SQLite. */
  postgres?: boolean;
}

const configs: Config[] = [
  {
    key: 'default',
    label: 'defaults (`--concurrency 128`)',
    extraArgs: [],
    rate: (s) => s.ratePerS,
  },
  {
    key: 'concurrency-256',
    label: '`--concurrency 256`',
    extraArgs: ['--concurrency', '256'],
    rate: (s) => s.ratePerS,
  },
  {
    key: 'light',
    label: 'defaults, light load',
    extraArgs: [],
    rate: (s) => s.lightRatePerS,
  },
  {
    key: 'postgres',
    label: 'defaults, on PostgreSQL (`--store postgres://…`)',
    extraArgs: [],
    rate: (s) => s.ratePerS,
    postgres: true,
  },
];

/** The configurations this run measures: the PostgreSQL one only when `--store` includes it. */
function measuredConfigs(): Config[] {
  return configs.filter((c) => !c.postgres || benchStores().includes('postgres'));
}

interface Round {
  /** 202 received → the action's request arrives at the target. */
  toAction: LatencySummary;
  /** The ingest side of the same run: scheduled send → 202 received. */
  ingest: OpenLoopResult;
  acked: number;
  arrived: number;
  /** Acknowledged events whose action had not arrived when the wait ended. */
  missing: number;
  /** Calls for an id that had already arrived (actions are at-least-once). */
  repeats: number;
  /** From the last answer to the last action's arrival; undefined when actions are missing. */
  drainS: number | undefined;
  /** Reflex and the target together as "server". */
  cpu: CpuShares;
  /** Set when Reflex stopped answering or acting, with the phase it stalled in. */
  stalled: 'warm-up' | 'measurement' | undefined;
}

export const benchmark = defineBenchmark({
  name: 'event-to-action',
  async run({ quick, progress }) {
    const settings = quick ? quickSettings : fullSettings;
    const results = new Map<string, Round[]>();
    // Alternate the configurations within each round, like the ingest benchmark does.
    for (let round = 1; round <= settings.rounds; round++) {
      for (const config of measuredConfigs()) {
        const done = results.get(config.key) ?? [];
        results.set(config.key, done);
        // One stall is proof enough; repeating it would only spend minutes on timeouts.
        if (done.some((r) => r.stalled)) continue;
        const result = await measureRound(config, round, settings, progress);
        done.push(result);
        progress(
          `${config.key}, round ${round}/${settings.rounds}: ` +
            (result.stalled
              ? `Reflex stalled during the ${result.stalled}`
              : `202 → action p50 ${formatMs(result.toAction.p50)} ms, p99 ${formatMs(result.toAction.p99)} ms, ` +
                `max ${formatMs(result.toAction.max)} ms; ${result.arrived}/${result.acked} actions arrived`),
        );
      }
    }
    const median = (key: string) => {
      const rounds = results.get(key)!;
      const stalled = rounds.find((r) => r.stalled);
      return stalled ?? medianBy(rounds, (r) => r.toAction.p99);
    };
    const main = median('default');
    return {
      markdown: render(quick, settings, results, median),
      summary: {
        stalled: main.stalled ?? false,
        p50Ms: Number(main.toAction.p50.toFixed(2)),
        p99Ms: Number(main.toAction.p99.toFixed(2)),
        maxMs: Number(main.toAction.max.toFixed(2)),
        p99MsConcurrency256: Number(median('concurrency-256').toAction.p99.toFixed(2)),
        ...(results.has('postgres')
          ? { p99MsPostgres: Number(median('postgres').toAction.p99.toFixed(2)) }
          : {}),
      },
    };
  },
});

async function measureRound(
  config: Config,
  round: number,
  settings: Settings,
  progress: (line: string) => void,
): Promise<Round> {
  const target = await startActionTarget();
  const dataDir = await createTempDir('event-to-action');
  const schema = config.postgres ? benchPostgresSchema('event_to_action') : undefined;
  let reflex: ServerProcess | undefined;
  let stalled: Round['stalled'];
  try {
    const rulebook = await writeTempFile('action.yaml', actionRulebook(target.url));
    reflex = await startReflex({
      rulebook,
      dataDir,
      extraArgs: [...config.extraArgs, ...(schema?.args ?? [])],
    });
    const server = reflex;
    const send = (
      prefix: string,
      durationS: number,
      onResponse?: (i: number, status: number, at: bigint) => void,
    ) =>
      openLoop({
        origin: server.url,
        path: eventsPath,
        connections,
        ratePerS: config.rate(settings),
        durationS,
        contentType: cloudEventType,
        body: (i) => benchEventBody(eventId(prefix, i), eventType),
        stallTimeoutMs: settings.stallS * 1000,
        ...(onResponse ? { onResponse } : {}),
      });

    const prefix = `a${round}`;
    const acks = new Map<number, bigint>();
    const meter = createCpuMeter(server.pid, target.pid);
    const warmup = await send(`w${round}`, settings.warmupS);
    const warmArrived = await waitForArrivals(target, warmup.ok, settings);
    let ingest: OpenLoopResult = warmup;
    let arrived = warmArrived;
    let acked = warmup.ok;
    let lastAnswer = process.hrtime.bigint();
    if (warmup.unanswered > 0 || warmArrived < warmup.ok) {
      stalled = 'warm-up';
      progress(`${config.key}: Reflex stalled during the warm-up; not measuring this configuration further`);
    } else {
      await fetch(`${target.url}/reset`, { method: 'POST' });
      ingest = await send(prefix, settings.measureS, (i, status, at) => {
        if (status === 202) acks.set(i, at);
      });
      lastAnswer = process.hrtime.bigint();
      arrived = await waitForArrivals(target, acks.size, settings, progress);
      acked = acks.size;
      if (ingest.unanswered > 0 || arrived < acks.size) stalled = 'measurement';
    }
    const drainS = stalled ? undefined : Number(process.hrtime.bigint() - lastAnswer) / 1e9;
    const cpu = meter.stop();

    const arrivals = (await (await fetch(`${target.url}/arrivals`)).json()) as Record<string, string>;
    const { repeats } = (await (await fetch(`${target.url}/count`)).json()) as { repeats: number };
    const latencies: number[] = [];
    let missing = stalled === 'warm-up' ? acked - arrived : 0;
    for (const [i, ack] of acks) {
      const arrival = arrivals[eventId(prefix, i)];
      if (arrival === undefined) missing++;
      else latencies.push(Number(BigInt(arrival) - ack) / 1e6);
    }
    return {
      toAction: summarize(latencies),
      ingest,
      acked,
      arrived,
      missing,
      repeats,
      drainS,
      cpu,
      stalled,
    };
  } finally {
    // A stalled Reflex does not get to its SIGTERM handler; do not wait long before SIGKILL.
    await reflex?.stop(stalled ? 3_000 : 20_000);
    await target.stop();
    removeTempDir(dataDir);
    await schema?.drop();
  }
}

/** The id of the `i`-th event of a run: the action carries it back to the target. */
function eventId(prefix: string, i: number): string {
  return `${prefix}-${String(i).padStart(7, '0')}`;
}

/**
 * Polls the target until it has seen `expected` distinct ids, `drainTimeoutS` passes, or no new call
 * arrived for `stallS`; resolves with the count.
 */
async function waitForArrivals(
  target: ServerProcess,
  expected: number,
  settings: Settings,
  progress?: (line: string) => void,
): Promise<number> {
  const deadline = Date.now() + settings.drainTimeoutS * 1000;
  let lastReport = Date.now();
  let lastCount = -1;
  let lastChange = Date.now();
  for (;;) {
    const { count } = (await (await fetch(`${target.url}/count`)).json()) as { count: number };
    if (count !== lastCount) {
      lastCount = count;
      lastChange = Date.now();
    }
    if (count >= expected || Date.now() > deadline) return count;
    if (Date.now() - lastChange > settings.stallS * 1000) {
      progress?.(`no action arrived for ${settings.stallS} s: Reflex has stalled; giving up on the rest`);
      return count;
    }
    if (progress && Date.now() - lastReport > 5000) {
      progress(`waiting for actions: ${formatCount(count)} of ${formatCount(expected)} arrived`);
      lastReport = Date.now();
    }
    await pause(100);
  }
}

function render(
  quick: boolean,
  settings: Settings,
  results: Map<string, Round[]>,
  median: (key: string) => Round,
): string {
  const cpu = (value: number) => `${Math.round(value)} %`;
  const rows = measuredConfigs().map((config) => {
    const r = median(config.key);
    if (r.stalled) {
      return [
        config.label,
        formatCount(config.rate(settings)),
        ...Array<string>(6).fill('–'),
        `**stalled** in the ${r.stalled}: ${formatCount(r.ingest.unanswered)} of ${formatCount(r.ingest.sent)} requests unanswered, ` +
          `${formatCount(r.missing)} of ${formatCount(r.acked)} acknowledged events never got their action`,
      ];
    }
    return [
      config.label,
      formatCount(config.rate(settings)),
      formatMs(r.toAction.p50),
      formatMs(r.toAction.p90),
      formatMs(r.toAction.p99),
      formatMs(r.toAction.max),
      formatMs(r.ingest.latency.p50),
      formatMs(r.ingest.latency.p99),
      `${formatCount(r.arrived)} of ${formatCount(r.acked)} actions arrived; last ${formatMs((r.drainS ?? 0) * 1000)} ms after the last 202; ` +
        `CPU: Reflex + target ${cpu(r.cpu.server)}, generator ${cpu(r.cpu.generator)}, other ${cpu(r.cpu.other)}`,
    ];
  });
  const allRounds = measuredConfigs()
    .map(
      (config) =>
        `${config.key}: ${results
          .get(config.key)!
          .map((r) => (r.stalled ? 'stalled' : `${formatMs(r.toAction.p50)} / ${formatMs(r.toAction.p99)}`))
          .join(' · ')}`,
    )
    .join('; ');

  return `## 2. Event-to-action latency

${measuredOn('event-to-action', quick)}

**What is measured.** Reflex (durability full) runs one rule, \`pattern: { type: [${eventType}] }\`, whose action is
\`http: { url: <target>/action, method: POST, json: { id: "\${{ event.id }}" } }\`. The target,
\`bench/servers/action-target.ts\`, is a \`node:http\` server in its own process that notes when each call arrives.
The bench sends ${formatCount(settings.ratePerS)} events/s (the issue's figure) in open loop (${connections} connections, ${settings.measureS} s, after a
${settings.warmupS} s warm-up at the same rate whose actions are awaited and discarded). **Latency = arrival of the action's
request at the target − the moment the bench received the 202 for that event**, matched by the event id the
action carries. Both timestamps are \`process.hrtime.bigint()\`: CLOCK_MONOTONIC, one clock for every process on
the machine. The path inside Reflex: group commit → dispatcher (match, create the run, audit, offset: one
transaction) → executor (claim, attempt, record) → HTTP call; each run's outcome event also goes back into the
log. "send → 202" is the ingest latency of the same events, from their scheduled send time.

Rounds: ${settings.rounds} per configuration, alternating, each with fresh processes and data dir; the table shows the
median round by p99. A round in which Reflex stops answering or acting for ${settings.stallS} s is reported as
stalled, and that configuration is not run again. The second line raises the executor's concurrency (runs
executed at once) from its default of 128; the third sends ${formatCount(settings.lightRatePerS)} events/s with the defaults, to show the
latency of the path itself when Reflex is not saturated.

${disturbanceNote(
  'event-to-action',
  measuredConfigs().map((c) => median(c.key).cpu.other),
)}${markdownTable(
  ['Reflex', 'events/s', '202 → action p50 ms', 'p90', 'p99', 'max', 'send → 202 p50 ms', 'p99', 'notes'],
  rows,
)}

All rounds, 202 → action p50 / p99 ms — ${allRounds}.
`;
}
