/**
 * Benchmark 3, resident memory with a large log: ingest a million events in batches, then read the
 * Reflex process's resident memory after start, after the ingest, and after the dispatcher caught up.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Pool } from 'undici';
import { defineBenchmark, measuredOn, pause } from './lib/benchmark.js';
import { benchEventBody, cloudEventBatchType, cloudEventType } from './lib/events.js';
import {
  createCpuMeter,
  createTempDir,
  type ProcessMemory,
  readCpuSeconds,
  readMemory,
  type ServerProcess,
  startReflex,
  writeTempFile,
} from './lib/processes.js';
import { disturbanceNote, formatCount, formatMiB, markdownTable } from './lib/report.js';
import { tenNonMatchingRules } from './lib/rulebooks.js';

interface Settings {
  events: number;
  batchSize: number;
  /** Batch requests in flight at once. */
  parallel: number;
  /** Progress line every this many events. */
  progressEvery: number;
  /** Longest wait for the dispatcher to reach the marker event. */
  catchUpTimeoutS: number;
}

const fullSettings: Settings = {
  events: 1_000_000,
  batchSize: 500,
  parallel: 4,
  progressEvery: 100_000,
  catchUpTimeoutS: 600,
};
const quickSettings: Settings = {
  events: 50_000,
  batchSize: 500,
  parallel: 4,
  progressEvery: 10_000,
  catchUpTimeoutS: 120,
};

interface Phase {
  label: string;
  memory: ProcessMemory;
  /** Seconds since Reflex was ready. */
  atS: number;
}

export const benchmark = defineBenchmark({
  name: 'log-memory',
  async run({ quick, progress }) {
    const settings = quick ? quickSettings : fullSettings;
    const rulebook = await writeTempFile('ten-rules.yaml', tenNonMatchingRules);
    const dataDir = await createTempDir('log-memory');
    const reflex = await startReflex({ rulebook, dataDir });
    try {
      return await measure(reflex, dataDir, settings, quick, progress);
    } finally {
      await reflex.stop(60_000);
    }
  },
});

async function measure(
  reflex: ServerProcess,
  dataDir: string,
  settings: Settings,
  quick: boolean,
  progress: (line: string) => void,
) {
  const readyAt = Date.now();
  const phases: Phase[] = [];
  const note = (label: string) => {
    const phase = { label, memory: readMemory(reflex.pid), atS: (Date.now() - readyAt) / 1000 };
    phases.push(phase);
    progress(`${label}: RSS ${formatMiB(phase.memory.rss)} (peak ${formatMiB(phase.memory.peakRss)})`);
  };
  await pause(2000);
  note('after start');

  // --- ingest ---
  const pool = new Pool(reflex.url, { connections: settings.parallel, pipelining: 1 });
  const batches = Math.ceil(settings.events / settings.batchSize);
  let nextBatch = 0;
  let acked = 0;
  let nextReport = settings.progressEvery;
  const ingestMeter = createCpuMeter(reflex.pid);
  const ingestStart = process.hrtime.bigint();
  const sender = async () => {
    for (;;) {
      const batch = nextBatch++;
      if (batch >= batches) return;
      const first = batch * settings.batchSize;
      const count = Math.min(settings.batchSize, settings.events - first);
      const items: string[] = [];
      for (let i = 0; i < count; i++) items.push(benchEventBody(`m-${String(first + i).padStart(7, '0')}`));
      const response = await pool.request({
        path: '/api/v1/events',
        method: 'POST',
        headers: { 'content-type': cloudEventBatchType },
        body: `[${items.join(',')}]`,
      });
      const text = await response.body.text();
      if (response.statusCode !== 202) {
        throw new Error(`batch ${batch} answered ${response.statusCode}: ${text.slice(0, 500)}`);
      }
      acked += count;
      if (acked >= nextReport) {
        nextReport += settings.progressEvery;
        const seconds = Number(process.hrtime.bigint() - ingestStart) / 1e9;
        progress(
          `ingest: ${formatCount(acked)} / ${formatCount(settings.events)} events, ` +
            `${formatCount(acked / seconds)}/s, RSS ${formatMiB(readMemory(reflex.pid).rss)}`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: settings.parallel }, sender));
  const ingestS = Number(process.hrtime.bigint() - ingestStart) / 1e9;
  const ingestCpu = ingestMeter.stop();
  await pool.close();
  note('after ingest');

  // --- catch-up: the dispatcher reads the whole log; a marker event is the last one it must reach ---
  const catchUpStart = process.hrtime.bigint();
  const marker = await fetch(`${reflex.url}/api/v1/events`, {
    method: 'POST',
    headers: { 'content-type': cloudEventType },
    body: benchEventBody('marker', 'bench.marker'),
  });
  const { seq: markerSeq } = (await marker.json()) as { seq: number };
  const deadline = Date.now() + settings.catchUpTimeoutS * 1000;
  let lastReport = Date.now();
  for (;;) {
    const explain = (await (await fetch(`${reflex.url}/api/v1/events/${markerSeq}/explain`)).json()) as {
      dispatched?: boolean;
    };
    if (explain.dispatched === true) break;
    if (Date.now() > deadline) throw new Error(`the dispatcher did not reach seq ${markerSeq} in time`);
    if (Date.now() - lastReport > 5000) {
      lastReport = Date.now();
      progress(
        `waiting for the dispatcher to reach seq ${formatCount(markerSeq)}: RSS ${formatMiB(readMemory(reflex.pid).rss)}`,
      );
    }
    await pause(250);
  }
  const catchUpS = Number(process.hrtime.bigint() - catchUpStart) / 1e9;
  note('after the dispatcher caught up');

  // --- settle: idle until resident memory stops moving (or 30 s) ---
  const settleStart = Date.now();
  let previous = readMemory(reflex.pid).rss;
  let steady = 0;
  let cpuBefore = readCpuSeconds(reflex.pid);
  while (Date.now() - settleStart < 30_000 && steady < 5) {
    await pause(1000);
    const rss = readMemory(reflex.pid).rss;
    const cpu = readCpuSeconds(reflex.pid);
    steady = Math.abs(rss - previous) < previous * 0.01 && cpu - cpuBefore < 0.05 ? steady + 1 : 0;
    previous = rss;
    cpuBefore = cpu;
  }
  note('idle, settled');

  const files = await Promise.all(
    ['reflex.db', 'reflex.db-wal', 'reflex.db-shm'].map(async (name) => ({
      name,
      bytes: await stat(join(dataDir, name)).then(
        (s) => s.size,
        () => 0,
      ),
    })),
  );
  const dbBytes = files.reduce((sum, f) => sum + f.bytes, 0);
  const ingestRate = settings.events / ingestS;

  const markdown = `## 3. Resident memory with ${formatCount(settings.events)} events in the log

${measuredOn('log-memory', quick)}

**What is measured.** Reflex (durability full) with the ten non-matching rules of the ingest benchmark
ingests ${formatCount(settings.events)} events of ${benchEventBody('m-0000000').length} bytes, sent as batches of ${settings.batchSize}
(\`application/cloudevents-batch+json\`), ${settings.parallel} batch requests in flight at a time. Resident memory is
VmRSS from \`/proc/<pid>/status\` of the Reflex process (peak: VmHWM): after start, right after the last batch
was acknowledged, once the dispatcher had decided every event (a marker event sent last, polled with
\`GET /api/v1/events/<seq>/explain\` until \`dispatched: true\`), and after idling until RSS and CPU stopped
moving (5 s steady, 30 s at most).

${disturbanceNote('log-memory', [ingestCpu.other])}${markdownTable(
  ['moment', 'seconds after start', 'RSS', 'peak RSS so far'],
  phases.map((p) => [p.label, p.atS.toFixed(1), formatMiB(p.memory.rss), formatMiB(p.memory.peakRss)]),
)}

- Ingest: ${formatCount(settings.events)} events in ${ingestS.toFixed(1)} s, **${formatCount(ingestRate)} events/s**; Reflex CPU
  during ingest ${Math.round(ingestCpu.server)} % of one core (generator ${Math.round(ingestCpu.generator)} %, other tenants ${Math.round(ingestCpu.other)} %).
- The dispatcher finished ${catchUpS.toFixed(1)} s after the last batch was acknowledged.
- Database on disk after the run: ${files.map((f) => `\`${f.name}\` ${formatMiB(f.bytes)}`).join(', ')}; in all
  ${formatMiB(dbBytes)}, ${formatCount(dbBytes / settings.events)} bytes per event.
`;
  return {
    markdown,
    summary: {
      events: settings.events,
      ingestS: Number(ingestS.toFixed(1)),
      ingestEventsPerS: Math.round(ingestRate),
      catchUpS: Number(catchUpS.toFixed(1)),
      rssAfterStartMiB: Number((phases[0]!.memory.rss / 1048576).toFixed(1)),
      rssAfterIngestMiB: Number((phases[1]!.memory.rss / 1048576).toFixed(1)),
      rssAfterCatchUpMiB: Number((phases[2]!.memory.rss / 1048576).toFixed(1)),
      rssSettledMiB: Number((phases[3]!.memory.rss / 1048576).toFixed(1)),
      peakRssMiB: Number((phases[3]!.memory.peakRss / 1048576).toFixed(1)),
      dbMiB: Number((dbBytes / 1048576).toFixed(1)),
    },
  };
}
