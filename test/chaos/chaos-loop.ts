import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pollUntil, type ReflexProcess, spawnReflex } from '../helpers/reflex-process.js';
import { checkFinal, checkRestart } from './chaos-invariants.js';
import { type ChaosTarget, createChaosTarget } from './chaos-target.js';

/**
 * The chaos loop: a real `reflex start` on one data dir under mixed load — CloudEvents posted by
 * concurrent senders, runs with `http` and `fact` steps in flight against a slow, sometimes failing
 * target, a `count` and an `all` correlation, `throttle` and `debounce` (whose timers fall due across
 * kills) — killed with SIGKILL at a random moment, restarted, N times. After each restart it checks that
 * every acknowledged event is in the log and nothing is doubled; after the last cycle it lets the node
 * finish its work, stops it, and checks every invariant (chaos-invariants.ts) against the store.
 *
 * Everything random (kill delays, the event mix, batch sizes, which keys the target fails first, its
 * delays) comes from one seed; the interleaving of concurrent senders and the engine does not, so a seed
 * reproduces the choices, not the exact run.
 */

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  /** Kill-and-restart cycles. */
  cycles: number;
  /** Seed of every random choice. */
  seed: number;
  /** Concurrent senders of events. @default 6 */
  senders?: number;
  /** Kills come this long after the node listens, uniformly between the two, in ms. @default [300, 3000] */
  killAfterMs?: readonly [number, number];
  /**
   * Share of the kills that come counted from the spawn instead, often before the node listens
   * (during recovery: dispatch, due timers and expired leases taken up). @default 0.2
   */
  earlyKillShare?: number;
  /** Told one line per cycle and per phase. @default nothing */
  progress?: (line: string) => void;
  /** Keep the data dir after the run (it is kept anyway when an invariant fails). @default false */
  keep?: boolean;
}

/** What a chaos run did and found. */
export interface ChaosReport {
  seed: number;
  cycles: number;
  /** Kills that landed before the node listened. */
  earlyKills: number;
  /** Kills that left at least one run `running` (a step in flight or about to be), summed over cycles. */
  killsWithRunsInFlight: number;
  /** Kills that left at least one timer set (a debounce waiting to fire), summed over cycles. */
  killsWithTimersSet: number;
  sent: number;
  acked: number;
  /** Sent, with no answer: the connection died with the process. */
  unanswered: number;
  logged: number;
  runs: number;
  /** Runs that ended failed (only REFLEX_ERR_RUN_ABANDONED is allowed). */
  failedRuns: number;
  attempts: number;
  deliveries: number;
  timers: number;
  /** Every invariant that did not hold; empty when the run passed. */
  violations: string[];
  /** The data dir, when kept. */
  dir?: string;
  elapsedMs: number;
}

/** Windows and deadlines of the rulebook, in ms; the invariants compute the expected runs with them. */
export const chaosTimings = Object.freeze({ throttleMs: 1000, quietMs: 1000 });

/** The chaos rulebook: every construct whose state must survive a kill, with actions that take a while. */
export function chaosRulebook(targetUrl: string): string {
  return `name: chaos
rules:
  - name: deliver
    when: { pattern: { source: [chaos], type: [chaos.order] } }
    then:
      - id: deliver
        http: { url: "${targetUrl}/deliver", json: { n: "\${{ event.data.n }}" } }
        timeout: 5s
        retry: { attempts: 8, backoff: 200ms, maxDelay: 1s }
      - id: remember
        fact: { set: last_order, value: "\${{ event.data.n }}" }
  - name: burst
    when:
      count: { pattern: { source: [chaos], type: [chaos.fail] }, atLeast: 3, within: 1h }
      by: event.data.k
    then: [ { log: "burst \${{ event.data.k }}" } ]
  - name: pair
    when:
      all:
        - { name: opened, pattern: { source: [chaos], type: [chaos.pair.opened] } }
        - { name: closed, pattern: { source: [chaos], type: [chaos.pair.closed] } }
      within: 1h
      by: event.data.k
    then: [ { log: "pair \${{ event.data.k }}" } ]
  - name: gate
    when: { pattern: { source: [chaos], type: [chaos.alert] } }
    throttle: { key: event.data.k, window: ${chaosTimings.throttleMs}ms }
    then: [ { log: "gate \${{ event.data.k }}" } ]
  - name: flap
    when: { pattern: { source: [chaos], type: [chaos.flap] } }
    debounce: { key: event.data.k, quiet: ${chaosTimings.quietMs}ms, pass: all }
    then:
      - id: settle
        http: { url: "${targetUrl}/flap", json: { k: "\${{ event.data.k }}", n: "\${{ size(batch) }}" } }
        timeout: 5s
        retry: { attempts: 8, backoff: 200ms, maxDelay: 1s }
`;
}

/** A small seeded generator (mulberry32): uniform in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A stable hash of a text with the seed, in [0, 1): the same key gets the same answer in every process. */
function hashShare(seed: number, text: string): number {
  let h = seed >>> 0 || 1;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 2654435761) >>> 0;
  return seededRandom(h)();
}

interface ChaosEvent {
  specversion: '1.0';
  id: string;
  source: 'chaos';
  type: string;
  data: { k: string; n: number };
}

/** Makes the mixed load: orders, failures to count, pairs to correlate, alerts to throttle, flaps. */
function createEventMaker(random: () => number) {
  let n = 0;
  let pairs = 0;
  const openPairs: string[] = [];
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const event = (type: string, k: string): ChaosEvent => {
    n += 1;
    return { specversion: '1.0', id: `e${n}`, source: 'chaos', type, data: { k, n } };
  };
  return (): ChaosEvent => {
    const roll = random();
    if (roll < 0.45) return event('chaos.order', pick(['o1', 'o2', 'o3', 'o4']));
    if (roll < 0.6) return event('chaos.fail', pick(['c1', 'c2', 'c3']));
    if (roll < 0.72) {
      // Close an open pair about half the time; the rest open a new one, closed later (maybe after a kill).
      if (openPairs.length > 0 && random() < 0.5) {
        const [k] = openPairs.splice(Math.floor(random() * openPairs.length), 1);
        return event('chaos.pair.closed', k!);
      }
      pairs += 1;
      openPairs.push(`p${pairs}`);
      return event('chaos.pair.opened', `p${pairs}`);
    }
    if (roll < 0.86) return event('chaos.alert', pick(['a1', 'a2', 'a3']));
    return event('chaos.flap', pick(['f1', 'f2', 'f3']));
  };
}

/** What the load knows about each event it sent. */
interface LoadLedger {
  sent: Set<string>;
  acked: Set<string>;
  unanswered: Set<string>;
  refused: Map<string, number>;
}

/**
 * Posts events from `senders` concurrent loops, in single and batch mode, until `stop` resolves. An
 * event is acknowledged when its POST answered 202; a batch's answer covers all of it.
 */
async function runLoad(
  url: string,
  senders: number,
  next: () => ChaosEvent,
  random: () => number,
  ledger: LoadLedger,
  stopped: () => boolean,
): Promise<void> {
  const sender = async () => {
    while (!stopped()) {
      const size = random() < 0.7 ? 1 : 2 + Math.floor(random() * 4);
      const events = Array.from({ length: size }, next);
      for (const e of events) ledger.sent.add(e.id);
      const batch = size > 1;
      try {
        const response = await fetch(`${url}/api/v1/events`, {
          method: 'POST',
          headers: {
            'content-type': batch ? 'application/cloudevents-batch+json' : 'application/cloudevents+json',
          },
          body: JSON.stringify(batch ? events : events[0]),
          signal: AbortSignal.timeout(15_000),
        });
        await response.arrayBuffer();
        for (const e of events) {
          if (response.status === 202) ledger.acked.add(e.id);
          else ledger.refused.set(e.id, response.status);
        }
        // Refused for load (503/429): back off a little instead of hammering a node that is recovering.
        if (response.status !== 202) await sleep(50);
      } catch {
        // The process died with the request in flight: the events may or may not have been committed.
        for (const e of events) ledger.unanswered.add(e.id);
      }
    }
  };
  await Promise.all(Array.from({ length: senders }, sender));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs the chaos loop and reports what it found; it throws only when the loop itself cannot go on. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const progress = options.progress ?? (() => {});
  const senders = options.senders ?? 6;
  const [killMin, killMax] = options.killAfterMs ?? [300, 3000];
  const earlyKillShare = options.earlyKillShare ?? 0.2;
  const random = seededRandom(options.seed);
  const nextEvent = createEventMaker(random);
  const dir = await mkdtemp(join(tmpdir(), 'reflex-chaos-'));
  const data = join(dir, 'data');
  const rules = join(dir, 'rules.yaml');
  const ledger: LoadLedger = { sent: new Set(), acked: new Set(), unanswered: new Set(), refused: new Map() };
  const violations: string[] = [];
  let target: ChaosTarget | undefined;
  let reflex: ReflexProcess | undefined;
  let earlyKills = 0;
  let killsWithRunsInFlight = 0;
  let killsWithTimersSet = 0;
  let kept = false;
  try {
    target = await createChaosTarget({
      failsFirst: (key) => hashShare(options.seed, key) < 0.25,
      delayMs: () => Math.floor(random() * 400),
    });
    await writeFile(rules, chaosRulebook(target.url));
    const args = ['start', rules, '--port', '0', '--data', data, '--log-level', 'warn'];
    // A short lease, so the runs a kill leaves `running` are taken up again soon after the restart.
    const env = { REFLEX_LEASE: '1s' };
    const database = join(data, 'reflex.db');

    for (let cycle = 1; cycle <= options.cycles; cycle++) {
      const early = random() < earlyKillShare;
      const killDelay = Math.floor(killMin + random() * (killMax - killMin));
      const spawnedAt = Date.now();
      reflex = spawnReflex(args, { env });
      const node = reflex;
      let listening = false;
      let stop = false;
      let killTimer: NodeJS.Timeout | undefined;
      // The senders stop with the kill: what they would send after it could only be refused at connect.
      const kill = () => {
        stop = true;
        node.signal('SIGKILL');
      };
      if (early) killTimer = setTimeout(kill, killDelay);
      let load: Promise<void> = Promise.resolve();
      try {
        await node.ready(30_000);
        listening = true;
      } catch (error) {
        if (!early) throw error;
      }
      if (listening) {
        // After each restart: every event acknowledged so far is in the log, and nothing is doubled.
        violations.push(...checkRestart(database, ledger.acked, `cycle ${cycle}`));
        if (!early) killTimer = setTimeout(kill, killDelay);
        load = runLoad(node.url, senders, nextEvent, random, ledger, () => stop);
      } else {
        earlyKills += 1;
      }
      const exit = await node.exited;
      clearTimeout(killTimer);
      stop = true;
      await load;
      if (exit.signal !== 'SIGKILL') {
        violations.push(`cycle ${cycle}: reflex ended by itself (${JSON.stringify(exit)})\n${node.stderr}`);
        break;
      }
      const left = leftByKill(database);
      if (left.running > 0) killsWithRunsInFlight += 1;
      if (left.timers > 0) killsWithTimersSet += 1;
      const at = listening ? `${killDelay} ms after it listened` : `${Date.now() - spawnedAt} ms after spawn`;
      progress(
        `cycle ${cycle}/${options.cycles}: killed ${at}, leaving ${left.running} runs running and ${left.timers} ` +
          `timers set; sent ${ledger.sent.size}, acked ${ledger.acked.size}, unanswered ${ledger.unanswered.size}, ` +
          `deliveries ${target.deliveries.length}`,
      );
      if (violations.length > 0) break;
    }

    // The last lifetime: no new load; the node dispatches what is left, fires its timers, finishes its
    // runs, and is stopped cleanly before the store is read.
    progress('draining: waiting for dispatch, timers and runs to finish');
    reflex = spawnReflex(args, { env });
    await reflex.ready(30_000);
    violations.push(...checkRestart(database, ledger.acked, 'drain'));
    let lastSeen = '';
    await pollUntil(
      () => {
        const quiet = quietState(database);
        const settled = quiet !== undefined && quiet === lastSeen;
        lastSeen = quiet ?? '';
        return settled;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'the node to finish its work' },
    );
    reflex.signal('SIGTERM');
    const exit = await reflex.waitForExit(30_000);
    if (exit.code !== 0) violations.push(`drain: reflex stopped with ${JSON.stringify(exit)}`);

    const final = checkFinal(database, {
      acked: ledger.acked,
      sent: ledger.sent,
      deliveries: target.deliveries,
      overlaps: target.overlaps,
      timings: chaosTimings,
    });
    violations.push(...final.violations);
    kept = options.keep === true || violations.length > 0;
    return {
      seed: options.seed,
      cycles: options.cycles,
      earlyKills,
      killsWithRunsInFlight,
      killsWithTimersSet,
      sent: ledger.sent.size,
      acked: ledger.acked.size,
      unanswered: ledger.unanswered.size,
      logged: final.logged,
      runs: final.runs,
      failedRuns: final.failedRuns,
      attempts: final.attempts,
      deliveries: target.deliveries.length,
      timers: final.timers,
      violations,
      ...(kept ? { dir } : {}),
      elapsedMs: Date.now() - started,
    };
  } finally {
    await reflex?.kill();
    await target?.close();
    if (!kept) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A fingerprint of the node's work when it has nothing left to do — every event dispatched, no timer
 * set, no run pending or running — else undefined. Equal fingerprints a poll apart mean it is settled.
 */
function quietState(database: string): string | undefined {
  const db = new Database(database, { readonly: true, fileMustExist: true });
  try {
    const last = db.prepare('SELECT max(seq) AS seq FROM events').get() as { seq: number | null };
    const offset = db.prepare("SELECT seq FROM offsets WHERE consumer = 'dispatcher'").get() as
      | { seq: number }
      | undefined;
    const timers = db.prepare('SELECT count(*) AS n FROM timers').get() as { n: number };
    const open = db
      .prepare("SELECT count(*) AS n FROM runs WHERE status IN ('pending', 'running')")
      .get() as {
      n: number;
    };
    if ((offset?.seq ?? 0) < (last.seq ?? 0) || timers.n > 0 || open.n > 0) return undefined;
    return `${last.seq}`;
  } finally {
    db.close();
  }
}

/** What a kill left behind in the store: runs still `running` and timers still set (none before the first start). */
function leftByKill(database: string): { running: number; timers: number } {
  if (!existsSync(database)) return { running: 0, timers: 0 };
  const db = new Database(database, { readonly: true, fileMustExist: true });
  try {
    const running = db.prepare("SELECT count(*) AS n FROM runs WHERE status = 'running'").get() as {
      n: number;
    };
    const timers = db.prepare('SELECT count(*) AS n FROM timers').get() as { n: number };
    return { running: running.n, timers: timers.n };
  } finally {
    db.close();
  }
}
