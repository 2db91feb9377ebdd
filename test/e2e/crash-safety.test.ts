import { unlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  cleanupReflex,
  getJson,
  makeTempDir,
  pollUntil,
  postEvents,
  type ReflexProcess,
  spawnReflex,
  startReflex,
} from '../helpers/reflex-process.js';
import { dropE2eSchemas, e2eBackends } from '../helpers/store-backends.js';

/**
 * The engine's two headline promises, proven against the real process and `kill -9`:
 * an acked event is never lost, and a match is never lost or doubled.
 */

const source = 'crash-test';

/** One rule that matches the events with an even `n`: half of them. `log` keeps each run cheap. */
const rulebook = `name: crash
rules:
  - name: even-ticks
    when:
      pattern: { type: [load.tick], data: { parity: [even] } }
    then:
      - log: "tick \${{ event.data.n }}"
`;

function tick(id: string, n: number) {
  return {
    specversion: '1.0' as const,
    id,
    source,
    type: 'load.tick',
    data: { n, parity: n % 2 === 0 ? 'even' : 'odd' },
  };
}

interface LoggedTick {
  seq: number;
  event: { id: string; source: string; type: string; data: { n: number; parity: string } };
}

interface RunItem {
  id: string;
  rule: string;
  status: string;
  trigger: { seq: number; id: string; source: string };
}

/** Every event in the log, oldest first, read through the API page by page. */
async function allEvents(url: string): Promise<LoggedTick[]> {
  const events: LoggedTick[] = [];
  let after = 0;
  for (;;) {
    const page = await getJson<{ items: LoggedTick[] }>(url, `/api/v1/events?after=${after}&limit=1000`);
    events.push(...page.items);
    const last = page.items[page.items.length - 1];
    if (!last) return events;
    after = last.seq;
  }
}

/** Every run, read through the API page by page. */
async function allRuns(url: string): Promise<RunItem[]> {
  const runs: RunItem[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
    const page = await getJson<{ items: RunItem[]; next: string | null }>(
      url,
      `/api/v1/runs?limit=1000${query}`,
    );
    runs.push(...page.items);
    cursor = page.next;
  } while (cursor !== null);
  return runs;
}

/** Waits until the dispatcher has decided the event at `seq` (and so every one before it). */
async function dispatchedUpTo(url: string, seq: number): Promise<void> {
  await pollUntil(
    async () => (await getJson<{ dispatched: boolean }>(url, `/api/v1/events/${seq}/explain`)).dispatched,
    { timeoutMs: 20_000, intervalMs: 50, what: `dispatch up to seq ${seq}` },
  );
}

/** Waits until the number of runs stays the same across two reads a little apart, and returns them. */
async function settledRuns(url: string): Promise<RunItem[]> {
  let previous = -1;
  return pollUntil(
    async () => {
      const runs = await allRuns(url);
      const settled = runs.length === previous;
      previous = runs.length;
      return settled && runs;
    },
    { timeoutMs: 20_000, intervalMs: 200, what: 'the number of runs to settle' },
  );
}

/**
 * Checks the log and the runs against each other: each (source, id) once, every id in `mustHave`
 * present, and exactly one run of the rule for each event that matches it (and none for others).
 */
function checkLogAndRuns(events: LoggedTick[], runs: RunItem[], mustHave: Iterable<string>) {
  const ticks = events.filter((e) => e.event.source === source);
  const count = new Map<string, number>();
  for (const e of events) {
    const key = `${e.event.source}\u0000${e.event.id}`;
    count.set(key, (count.get(key) ?? 0) + 1);
  }
  const doubled = [...count].filter(([, n]) => n > 1).map(([key]) => key.replace('\u0000', '/'));
  expect(doubled, 'ids logged more than once').toEqual([]);

  const logged = new Set(ticks.map((e) => e.event.id));
  const lost = [...mustHave].filter((id) => !logged.has(id));
  expect(lost, 'acked ids missing from the log').toEqual([]);

  const matching = ticks.filter((e) => e.event.data.parity === 'even').map((e) => e.seq);
  const ruleRuns = runs.filter((r) => r.rule === 'even-ticks');
  const runsPerSeq = new Map<number, number>();
  for (const run of ruleRuns) runsPerSeq.set(run.trigger.seq, (runsPerSeq.get(run.trigger.seq) ?? 0) + 1);
  const withoutRun = matching.filter((seq) => !runsPerSeq.has(seq));
  const doubledRuns = [...runsPerSeq].filter(([, n]) => n > 1).map(([seq]) => seq);
  const matchingSet = new Set(matching);
  const strayRuns = ruleRuns.filter((r) => !matchingSet.has(r.trigger.seq)).map((r) => r.trigger.seq);
  expect(withoutRun, 'matching events without a run').toEqual([]);
  expect(doubledRuns, 'events with more than one run').toEqual([]);
  expect(strayRuns, 'runs for events that do not match').toEqual([]);
  expect(ruleRuns).toHaveLength(matching.length);
  expect(runs.filter((r) => r.status === 'failed')).toEqual([]);
  return { ticks: ticks.length, matching: matching.length };
}

afterEach(cleanupReflex);
afterAll(dropE2eSchemas);

const backends = await e2eBackends();

describe.each(backends)('crash safety ($name)', (backend) => {
  it('crash safety - kill -9 under concurrent load loses no acked event and doubles no event or run', async () => {
    const store = backend.make();
    const dir = await makeTempDir('reflex-crash-');
    const rules = join(dir, 'rules.yaml');
    const data = join(dir, 'data');
    await writeFile(rules, rulebook);
    const args = ['start', rules, '--port', '0', '--data', data, '--log-level', 'warn', ...store.startArgs];
    const first = await startReflex(args);

    const senders = 32;
    const acked = new Set<string>();
    const refused = new Map<string, number>();
    const failed = new Set<string>();
    let stop = false;
    let n = 0;
    const send = async (sender: number) => {
      for (let i = 0; !stop; i++) {
        const id = `s${sender}-${i}`;
        try {
          const response = await fetch(`${first.url}/api/v1/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/cloudevents+json' },
            body: JSON.stringify(tick(id, n++)),
          });
          await response.arrayBuffer();
          if (response.status === 202 || response.status === 200) acked.add(id);
          else refused.set(id, response.status);
        } catch {
          // The connection died with the process: the event may or may not have been committed.
          failed.add(id);
        }
      }
    };
    const load = Array.from({ length: senders }, (_, sender) => send(sender));

    await pollUntil(() => acked.size >= 2000, { timeoutMs: 20_000, what: '2000 acked events' });
    first.signal('SIGKILL');
    const killed = await first.waitForExit();
    stop = true;
    await Promise.all(load);
    expect(killed).toEqual({ code: null, signal: 'SIGKILL' });
    // Requests were in flight when the process died: the kill came mid-load.
    expect(failed.size).toBeGreaterThan(0);
    expect([...refused.values()].filter((status) => status !== 503)).toEqual([]);

    const second = await startReflex(args);
    const before = await allEvents(second.url);
    const lastTick = before.filter((e) => e.event.source === source).at(-1);
    expect(lastTick).toBeDefined();
    await dispatchedUpTo(second.url, lastTick!.seq);
    const runs = await settledRuns(second.url);
    const events = await allEvents(second.url);

    const { ticks, matching } = checkLogAndRuns(events, runs, acked);
    // Only ids that were sent can be in the log; some unacked ones may be (committed, answer lost).
    const sent = new Set([...acked, ...failed, ...refused.keys()]);
    expect(events.filter((e) => e.event.source === source && !sent.has(e.event.id))).toEqual([]);
    expect(ticks).toBeGreaterThanOrEqual(acked.size);
    expect(ticks).toBeLessThanOrEqual(acked.size + failed.size);
    expect(matching).toBeGreaterThan(0);
  }, 60_000);

  it('crash safety - kill -9 while dispatching a backlog gives exactly one run per matching event', async () => {
    const store = backend.make();
    const dir = await makeTempDir('reflex-crash-');
    const rules = join(dir, 'rules.yaml');
    const data = join(dir, 'data');
    await writeFile(rules, rulebook);

    // The backlog: 20 000 events committed in batches of 500 through the Store, the same group commit that
    // ingest uses, while no Reflex runs. Over HTTP the dispatcher keeps up with intake, so no backlog forms.
    const total = 20_000;
    const seeding = await store.open(data);
    try {
      for (let start = 0; start < total; start += 500) {
        const batch = Array.from({ length: 500 }, (_, i) => tick(`b-${start + i}`, start + i));
        await seeding.appendEvents(batch, Date.now());
      }
      expect(await seeding.lastSeq()).toBe(total);
    } finally {
      await seeding.close();
    }

    const args = ['start', rules, '--port', '0', '--data', data, '--log-level', 'warn', ...store.startArgs];
    const first: ReflexProcess = spawnReflex(args);
    // Dispatch starts before the HTTP server listens, so watch the store itself, read-only.
    const reader = await store.open(data, { readonly: true });
    let atKill: { offset: number; runs: number };
    try {
      atKill = await pollUntil(
        async () => {
          const offset = await reader.getOffset('dispatcher', 0);
          const runs = await reader.listRuns({ limit: 1 });
          return runs.length > 0 && offset >= total / 5 && offset < total && { offset, runs: runs.length };
        },
        { timeoutMs: 20_000, intervalMs: 5, what: 'dispatch under way' },
      );
      first.signal('SIGKILL');
      expect(await first.waitForExit()).toEqual({ code: null, signal: 'SIGKILL' });
    } finally {
      await reader.close();
    }
    expect(atKill.offset).toBeLessThan(total);

    const second = await startReflex(args);
    await dispatchedUpTo(second.url, total);
    const runs = await settledRuns(second.url);
    const events = await allEvents(second.url);
    const seeded = Array.from({ length: total }, (_, i) => `b-${i}`);
    const { ticks, matching } = checkLogAndRuns(events, runs, seeded);
    expect(ticks).toBe(total);
    expect(matching).toBe(total / 2);
  }, 60_000);

  it('crash safety - a run whose process is killed with SIGKILL in every attempt ends in a dead letter after --max-claims claims', async () => {
    const store = backend.make();
    const dir = await makeTempDir('reflex-abandon-');
    const rules = join(dir, 'rules.yaml');
    const data = join(dir, 'data');
    // The target answers nothing: each request is the sign that the step is running, and the test kills
    // Reflex right then, as an out-of-memory kill or a native crash in the step would.
    const requests: string[] = [];
    let arrived: () => void = () => {};
    const target = createServer((req) => {
      requests.push(String(req.headers['idempotency-key']));
      arrived();
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const port = (target.address() as AddressInfo).port;
    try {
      await writeFile(
        rules,
        `name: dies
rules:
  - name: fatal-step
    when:
      pattern: { type: [deploy.requested] }
    then:
      - id: deploy
        http: { url: "http://127.0.0.1:${port}/deploy" }
        timeout: 1m
        retry: { attempts: 5 }
`,
      );
      // A short lease, so that each restart takes the run over quickly.
      const args = ['start', rules, '--port', '0', '--data', data, '--log-level', 'warn', ...store.startArgs];
      const options = { env: { REFLEX_LEASE: '1s', REFLEX_MAX_CLAIMS: '3' } };
      let reflex = await startReflex(args, options);
      const sent = await postEvents(reflex.url, {
        specversion: '1.0',
        id: 'deploy-1',
        source,
        type: 'deploy.requested',
      });
      expect(sent.status).toBe(202);
      for (let claim = 1; claim <= 3; claim++) {
        await new Promise<void>((resolve) => {
          arrived = resolve;
          if (requests.length >= claim) resolve();
        });
        expect(await reflex.kill()).toEqual({ code: null, signal: 'SIGKILL' });
        reflex = await startReflex(args, options);
      }
      // The fourth claim does not run the step again: it fails the run.
      const [run] = await pollUntil(
        async () => {
          const page = await getJson<{ items: RunItem[] }>(reflex.url, '/api/v1/runs?status=failed');
          return page.items.length > 0 && page.items;
        },
        { timeoutMs: 20_000, what: 'the run to fail' },
      );
      const detail = await getJson<{
        claims: number;
        error: { code: string; details: unknown };
        attempts: Array<{ attempt: number; status: string; error: { code: string } }>;
      }>(reflex.url, `/api/v1/runs/${run!.id}`);
      expect(detail).toMatchObject({
        claims: 4,
        error: { code: 'REFLEX_ERR_RUN_ABANDONED', details: { claims: 3, maxClaims: 3 } },
        attempts: [{ attempt: 1, status: 'failed', error: { code: 'REFLEX_ERR_RUN_ABANDONED' } }],
      });
      expect(requests).toEqual([`${run!.id}:deploy`, `${run!.id}:deploy`, `${run!.id}:deploy`]);
      const failed = await getJson<{ items: LoggedTick[] }>(
        reflex.url,
        '/api/v1/events?type=reflex.run.failed&after=0',
      );
      expect(failed.items.map((e) => e.event.id)).toEqual([`${run!.id}.failed`]);
      expect(reflex.logs().some((line) => line.msg === 'run failed' && line.runId === run!.id)).toBe(true);

      // Stopped cleanly, the dead letter is in the database.
      reflex.signal('SIGTERM');
      expect(await reflex.waitForExit()).toEqual({ code: 0, signal: null });
      const reader = await store.open(data, { readonly: true });
      try {
        expect(await reader.listDeadLetters(10)).toMatchObject([
          { runId: run!.id, rule: 'fatal-step', step: 0, error: { code: 'REFLEX_ERR_RUN_ABANDONED' } },
        ]);
      } finally {
        await reader.close();
      }
    } finally {
      target.closeAllConnections();
      await new Promise((resolve) => target.close(resolve));
    }
  }, 60_000);
});

describe('crash safety (sqlite)', () => {
  it('crash safety - a failed sync of the event log refuses the event with 503 and stops the node with exit code 1', async () => {
    const dir = await makeTempDir('reflex-sync-failure-');
    const rules = join(dir, 'rules.yaml');
    const data = join(dir, 'data');
    await writeFile(rules, rulebook);
    const reflex = await startReflex(['start', rules, '--port', '0', '--data', data, '--log-level', 'warn']);
    // The event log's WAL file vanishing is one way for its fsync to fail (the file is opened at the
    // first sync, which no event has asked for yet); a disk error takes the same path.
    await unlink(join(data, 'reflex.db-wal'));
    const answer = await postEvents(reflex.url, tick('lost-1', 2));
    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ error: { code: 'REFLEX_ERR_STORE_SYNC_FAILED' } });
    expect(await reflex.waitForExit()).toEqual({ code: 1, signal: null });
    expect(
      reflex.logs().some((line) => line.level === 60 && /could not be synced/.test(String(line.msg))),
    ).toBe(true);
  }, 30_000);
});
