import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ErrorInfo } from '../../src/core/errors.js';
import type { CloudEvent, LoggedEvent } from '../../src/core/event.js';
import {
  type Attempt,
  type AttemptOutcome,
  AuditKind,
  type EventQuery,
  type FlowStateRow,
  type NewRun,
  type RunConcurrency,
  type RunQuery,
  type RunStatus,
  type RunTrigger,
  type Store,
} from '../../src/core/ports/store.js';

/** What a backend gives the conformance suite for one test: a fresh, empty store. */
export interface StoreUnderTest {
  store: Store;
  /** Closes the store and opens it again on the same data; returns the new one. */
  reopen(): Promise<Store>;
  /** Closes whatever is open and removes the data. */
  cleanup(): Promise<void>;
}

const t0 = Date.parse('2026-01-01T00:00:00Z');

function ev(id: string, overrides: Partial<CloudEvent> = {}): CloudEvent {
  return { specversion: '1.0', id, source: 'test/source', type: 'test.happened', data: { id }, ...overrides };
}

const httpError: ErrorInfo = {
  code: 'REFLEX_ERR_ACTION_HTTP_STATUS',
  message: 'POST http://127.0.0.1/x answered 503, expected 2xx.',
  details: { status: 503 },
  cause: { code: 'REFLEX_ERR_INTERNAL_UNEXPECTED', message: 'upstream' },
};

function outcomeEvent(runId: string, type: 'succeeded' | 'failed'): CloudEvent {
  return ev(`${runId}/outcome`, { source: 'reflex/runs', type: `reflex.run.${type}`, data: { runId } });
}

/** An attempt record as the executor writes it. */
function attemptOf(
  runId: string,
  step: number,
  attempt: number,
  at: number,
  result: { output: unknown } | { error: ErrorInfo },
): Attempt {
  return {
    runId,
    step,
    stepId: `step-${step}`,
    action: 'http',
    attempt,
    startedAt: at - 10,
    finishedAt: at,
    ...('error' in result ? { status: 'failed', error: result.error } : { status: 'succeeded', ...result }),
  };
}

const seqs = (events: LoggedEvent[]) => events.map((e) => e.seq);

/** A new run for the trigger at `trigger.seq`, seeing that event, created at t0. */
function newRun(id: string, rule: string, version: number, trigger: RunTrigger, ordinal: number): NewRun {
  return {
    id,
    rule,
    rulebookVersion: version,
    trigger,
    ordinal,
    context: { event: trigger.seq },
    createdAt: t0,
  };
}

/**
 * The contract of the `Store` port, run against one backend. Every test gets a fresh store from `open`
 * and hands it back to `cleanup`. It checks behaviour through the port only, so SQLite and PostgreSQL
 * pass the same tests.
 *
 * @example
 * describeStoreConformance('sqlite', async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'reflex-'));
 *   let store = await createSqliteStore({ dir });
 *   return {
 *     store,
 *     reopen: async () => { await store.close(); return (store = await createSqliteStore({ dir })); },
 *     cleanup: async () => { await store.close(); await rm(dir, { recursive: true }); },
 *   };
 * });
 */
export function describeStoreConformance(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(`${name} - Store conformance`, () => {
    let handle: StoreUnderTest;
    let store: Store;

    beforeEach(async () => {
      handle = await open();
      store = handle.store;
    });
    afterEach(async () => {
      await handle.cleanup();
    });

    const reopen = async () => {
      store = await handle.reopen();
    };

    const saveVersion = (hash = 'hash-1') =>
      store.saveRulebookVersion({
        hash,
        files: [{ path: 'rules.yaml', content: `# ${hash}` }],
        createdAt: t0,
      });

    /** Appends one trigger event per run and dispatches all the runs in one commit. */
    const createRuns = async (
      specs: Array<{ id: string; rule?: string; createdAt?: number; concurrency?: RunConcurrency }>,
    ) => {
      const version = await saveVersion();
      const appended = await store.appendEvents(
        specs.map((s) => ev(`trigger-${s.id}`)),
        t0,
      );
      const runs: NewRun[] = specs.map((spec, i) => ({
        id: spec.id,
        rule: spec.rule ?? 'rule-a',
        rulebookVersion: version,
        trigger: {
          seq: appended[i]!.seq,
          partition: 0,
          id: `trigger-${spec.id}`,
          source: 'test/source',
          type: 'test.happened',
        },
        ordinal: 0,
        context: { event: appended[i]!.seq },
        ...(spec.concurrency === undefined ? {} : { concurrency: spec.concurrency }),
        createdAt: spec.createdAt ?? t0,
      }));
      const offset = appended.at(-1)?.seq ?? 0;
      await store.commitDispatch({ consumer: 'dispatcher', partition: 0, offset, runs, audit: [] });
      return { version, seqs: appended.map((a) => a.seq) };
    };

    const complete = (owner: string, attempt: Attempt, outcome: AttemptOutcome, at: number) =>
      store.completeAttempt({ owner, attempt, outcome, at });

    // --- the log ---

    it('log - an empty log has seq 0 and no events', async () => {
      expect(await store.lastSeq()).toBe(0);
      expect((await store.readEvents({ partition: 0, seq: 0 }, 10)).events).toEqual([]);
      expect(await store.getEvent(1)).toBeUndefined();
      expect(await store.listEvents({ limit: 10 })).toEqual([]);
      expect(await store.findEventsById('nope')).toEqual([]);
    });

    it('log - appends batches in order with consecutive seqs from 1', async () => {
      const [a, b, c, d] = [ev('a'), ev('b', { type: 'other' }), ev('c'), ev('d')];
      expect(await store.appendEvents([a, b, c], t0)).toEqual([
        { seq: 1, partition: 0, id: 'a', source: 'test/source', duplicate: false },
        { seq: 2, partition: 0, id: 'b', source: 'test/source', duplicate: false },
        { seq: 3, partition: 0, id: 'c', source: 'test/source', duplicate: false },
      ]);
      expect(await store.appendEvents([d], t0 + 1000)).toEqual([
        { seq: 4, partition: 0, id: 'd', source: 'test/source', duplicate: false },
      ]);
      expect(await store.lastSeq()).toBe(4);
      expect(await store.getEvent(2)).toEqual({ seq: 2, partition: 0, receivedAt: t0, event: b });
      expect((await store.readEvents({ partition: 0, seq: 0 }, 10)).events).toEqual([
        { seq: 1, partition: 0, receivedAt: t0, event: a },
        { seq: 2, partition: 0, receivedAt: t0, event: b },
        { seq: 3, partition: 0, receivedAt: t0, event: c },
        { seq: 4, partition: 0, receivedAt: t0 + 1000, event: d },
      ]);
    });

    it('log - keeps every attribute of an event as given', async () => {
      const rich: CloudEvent = {
        specversion: '1.0',
        id: 'rich-1',
        source: 'https://example.com/alerts',
        type: 'com.example.alert.fired',
        subject: 'host/web-1',
        time: '2026-01-01T00:00:00.123Z',
        datacontenttype: 'application/json',
        dataschema: 'https://example.com/schema.json',
        severity: 'critical',
        attempt: 3,
        replayed: false,
        data: {
          labels: { team: 'sre', zone: 'eu-1' },
          values: [1.5, -2, null, true],
          text: 'näive ☃ "quoted"',
        },
      };
      const binary: CloudEvent = {
        specversion: '1.0',
        id: 'bin-1',
        source: 'test/source',
        type: 'test.image',
        datacontenttype: 'image/png',
        data_base64: 'AAECAwQ=',
      };
      const [r1, r2] = await store.appendEvents([rich, binary], t0);
      expect((await store.getEvent(r1!.seq))?.event).toEqual(rich);
      expect((await store.getEvent(r2!.seq))?.event).toEqual(binary);
    });

    it('log - an event already in the log comes back as a duplicate with the original seq', async () => {
      await store.appendEvents([ev('a'), ev('b')], t0);
      const results = await store.appendEvents(
        [
          ev('b', { data: 'changed' }),
          ev('c'),
          ev('a', { type: 'changed' }),
          ev('a', { source: 'other/source' }),
        ],
        t0 + 1,
      );
      expect(results).toEqual([
        { seq: 2, partition: 0, id: 'b', source: 'test/source', duplicate: true },
        { seq: 3, partition: 0, id: 'c', source: 'test/source', duplicate: false },
        { seq: 1, partition: 0, id: 'a', source: 'test/source', duplicate: true },
        { seq: 4, partition: 0, id: 'a', source: 'other/source', duplicate: false },
      ]);
      expect(await store.lastSeq()).toBe(4);
      expect(await store.getEvent(2)).toEqual({ seq: 2, partition: 0, receivedAt: t0, event: ev('b') });
      expect((await store.getEvent(1))?.event.type).toBe('test.happened');
    });

    it('log - a repeat inside one batch is appended once', async () => {
      const results = await store.appendEvents(
        [ev('a'), ev('b'), ev('a', { data: 'second' }), ev('a', { data: 'third' })],
        t0,
      );
      expect(results.map((r) => [r.seq, r.duplicate])).toEqual([
        [1, false],
        [2, false],
        [1, true],
        [1, true],
      ]);
      expect(await store.lastSeq()).toBe(2);
      expect((await store.getEvent(1))?.event).toEqual(ev('a'));
      expect(await store.getEvent(3)).toBeUndefined();
    });

    it('log - appending an empty batch changes nothing', async () => {
      expect(await store.appendEvents([], t0)).toEqual([]);
      expect(await store.lastSeq()).toBe(0);
    });

    it('log - events and their dedup survive a reopen', async () => {
      await store.appendEvents([ev('a'), ev('b'), ev('c')], t0);
      const before = (await store.readEvents({ partition: 0, seq: 0 }, 10)).events;
      await reopen();
      expect((await store.readEvents({ partition: 0, seq: 0 }, 10)).events).toEqual(before);
      expect(await store.lastSeq()).toBe(3);
      expect(await store.appendEvents([ev('b'), ev('d')], t0 + 5)).toEqual([
        { seq: 2, partition: 0, id: 'b', source: 'test/source', duplicate: true },
        { seq: 4, partition: 0, id: 'd', source: 'test/source', duplicate: false },
      ]);
    });

    it('partitions - one seq for the whole log, each partition read on its own, dedup across partitions', async () => {
      const appended = await store.appendEvents([ev('a'), ev('b'), ev('c'), ev('d')], t0, [0, 2, 2, 1]);
      expect(appended.map((r) => [r.seq, r.partition])).toEqual([
        [1, 0],
        [2, 2],
        [3, 2],
        [4, 1],
      ]);
      // The same identity in another partition is the original, wherever it went.
      expect(await store.appendEvents([ev('b'), ev('e')], t0, [0, 0])).toMatchObject([
        { seq: 2, partition: 2, duplicate: true },
        { seq: 5, partition: 0, duplicate: false },
      ]);
      const read = async (partition: number, seq: number, limit: number) => {
        const { events, through } = await store.readEvents({ partition, seq }, limit);
        return { seqs: events.map((e) => e.seq), through };
      };
      expect(await read(2, 0, 10)).toEqual({ seqs: [2, 3], through: 5 });
      expect(await read(2, 0, 1)).toEqual({ seqs: [2], through: 2 });
      expect(await read(0, 0, 10)).toEqual({ seqs: [1, 5], through: 5 });
      expect(await read(1, 4, 10)).toEqual({ seqs: [], through: 5 });
      expect(await read(3, 0, 10)).toEqual({ seqs: [], through: 5 });
      expect((await store.getEvent(3))?.partition).toBe(2);

      // Offsets, rulebook activations, flow states and timers are per (consumer) partition.
      const version = await store.saveRulebookVersion({ hash: 'p', files: [], createdAt: t0 });
      const state = { rule: 'r', stage: 'when', key: 'k', hash: 'h', state: { n: 1 }, expiresAt: null };
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 2,
        offset: 3,
        runs: [],
        audit: [],
        activation: { seq: 2, version },
        states: [state],
        timers: [{ rule: 'r', stage: 'when', key: 'k', due: t0 + 10 }],
      });
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 1,
        runs: [],
        audit: [],
        timers: [{ rule: 'r', stage: 'when', key: 'k', due: t0 + 10 }],
      });
      expect(await store.getOffset('dispatcher', 2)).toBe(3);
      expect(await store.getOffset('dispatcher', 0)).toBe(1);
      expect(await store.getOffset('dispatcher', 1)).toBe(0);
      expect(await store.rulebookVersionAt({ partition: 2, seq: 3 })).toBe(version);
      expect(await store.rulebookVersionAt({ partition: 0, seq: 1 })).toBeUndefined();
      expect(await store.loadFlowStates(2)).toEqual([state]);
      expect(await store.loadFlowStates(0)).toEqual([]);
      // Each partition's timer becomes its own event, in its partition.
      const fired = await store.fireDueTimers(t0 + 10, 10);
      expect(fired.map((r) => r.partition).sort()).toEqual([0, 2]);
      expect(new Set(fired.map((r) => r.id)).size).toBe(2);
    });

    it("partitions - fact changes are read across partitions in seq order; an outcome event goes to its trigger's partition", async () => {
      await store.appendEvents([ev('a')], t0, [3]);
      await store.changeFact('mode', 'on', t0, 0, 1);
      await store.appendEvents([ev('b')], t0, [0]);
      await store.changeFact('mode', 'off', t0, 0, 2);
      const changes = await store.readFactChanges(0, 10, 10);
      expect(changes.map((e) => [e.seq, e.partition, (e.event.data as { value: unknown }).value])).toEqual([
        [2, 1, 'on'],
        [4, 2, 'off'],
      ]);
      expect((await store.readFactChanges(2, 3, 10)).map((e) => e.seq)).toEqual([]);
      expect((await store.readFactChanges(0, 10, 1)).map((e) => e.seq)).toEqual([2]);

      const version = await store.saveRulebookVersion({ hash: 'o', files: [], createdAt: t0 });
      const trigger = { seq: 1, partition: 3, id: 'a', source: 'test/source', type: 'test.happened' };
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 3,
        offset: 1,
        runs: [newRun('run-p', 'r', version, trigger, 0)],
        audit: [],
      });
      expect((await store.getRun('run-p'))?.trigger.partition).toBe(3);
      const [claimed] = await store.claimRuns({ owner: 'o', now: t0, leaseMs: 1000, limit: 1 });
      expect(claimed?.id).toBe('run-p');
      const outcome = { ...ev('run-p/outcome'), source: 'reflex', type: 'reflex.run.succeeded' };
      await store.completeAttempt({
        owner: 'o',
        at: t0,
        attempt: {
          runId: 'run-p',
          step: 0,
          stepId: 's',
          action: 'log',
          attempt: 1,
          startedAt: t0,
          finishedAt: t0,
          status: 'succeeded',
        },
        outcome: { type: 'succeeded', output: null, event: outcome },
      });
      const [logged] = await store.findEventsById('run-p/outcome', 'reflex');
      expect(logged?.partition).toBe(3);
    });

    it('log - readEvents returns events after an offset, oldest first, up to the limit', async () => {
      await store.appendEvents(
        Array.from({ length: 10 }, (_, i) => ev(`e${i + 1}`)),
        t0,
      );
      expect(seqs((await store.readEvents({ partition: 0, seq: 3 }, 4)).events)).toEqual([4, 5, 6, 7]);
      expect(seqs((await store.readEvents({ partition: 0, seq: 8 }, 10)).events)).toEqual([9, 10]);
      expect((await store.readEvents({ partition: 0, seq: 10 }, 5)).events).toEqual([]);
      expect((await store.readEvents({ partition: 0, seq: 0 }, 1)).events[0]?.event.id).toBe('e1');
    });

    it('log - findEventsById finds the event under each source that used the id', async () => {
      await store.appendEvents([ev('x', { source: 's1' }), ev('y'), ev('x', { source: 's2' })], t0);
      expect(seqs(await store.findEventsById('x'))).toEqual([1, 3]);
      expect(await store.findEventsById('x', 's2')).toEqual([
        { seq: 3, partition: 0, receivedAt: t0, event: ev('x', { source: 's2' }) },
      ]);
      expect(await store.findEventsById('x', 's3')).toEqual([]);
      expect(await store.findEventsById('z')).toEqual([]);
    });

    it('log - listEvents pages backward from the end and forward from a seq, with filters', async () => {
      // 30 events: types alternate A/B, sources cycle s0/s1/s2.
      const events = Array.from({ length: 30 }, (_, i) =>
        ev(`e${i + 1}`, { type: i % 2 === 0 ? 'A' : 'B', source: `s${i % 3}` }),
      );
      await store.appendEvents(events, t0);
      const expected = (filter: { type?: string; source?: string }) =>
        events
          .map((e, i) => ({ e, seq: i + 1 }))
          .filter(({ e }) => (filter.type ?? e.type) === e.type && (filter.source ?? e.source) === e.source)
          .map(({ seq }) => seq);

      expect(seqs(await store.listEvents({ limit: 5 }))).toEqual([30, 29, 28, 27, 26]);
      expect(seqs(await store.listEvents({ before: 26, limit: 3 }))).toEqual([25, 24, 23]);
      expect(seqs(await store.listEvents({ after: 0, limit: 3 }))).toEqual([1, 2, 3]);
      expect(seqs(await store.listEvents({ after: 28, limit: 5 }))).toEqual([29, 30]);
      // `after` wins over `before`.
      expect(seqs(await store.listEvents({ after: 2, before: 5, limit: 5 }))).toEqual([3, 4, 5, 6, 7]);

      const pageAll = async (filter: { type?: string; source?: string }, direction: 'after' | 'before') => {
        const all: number[] = [];
        let cursor: number | undefined = direction === 'after' ? 0 : undefined;
        for (;;) {
          const query: EventQuery = { ...filter, limit: 4 };
          if (cursor !== undefined) query[direction] = cursor;
          const page = await store.listEvents(query);
          expect(page.length).toBeLessThanOrEqual(4);
          for (const item of page) {
            if (filter.type !== undefined) expect(item.event.type).toBe(filter.type);
            if (filter.source !== undefined) expect(item.event.source).toBe(filter.source);
          }
          if (page.length === 0) return all;
          all.push(...seqs(page));
          cursor = page.at(-1)!.seq;
        }
      };
      for (const filter of [{}, { type: 'A' }, { source: 's1' }, { type: 'B', source: 's2' }]) {
        expect(await pageAll(filter, 'after')).toEqual(expected(filter));
        expect(await pageAll(filter, 'before')).toEqual(expected(filter).reverse());
      }
      expect(await store.listEvents({ type: 'C', limit: 5 })).toEqual([]);
    });

    it('log - pageEvents ends a page before its events pass maxBytes, and says whether more follow', async () => {
      // About 100 and 1 100 bytes of JSON each (backends may write JSON a little differently).
      const big = (id: string) => ev(id, { data: { text: 'x'.repeat(1000) } });
      await store.appendEvents([ev('small-1'), big('big-2'), big('big-3'), big('big-4'), ev('small-5')], t0);
      const page = async (query: EventQuery, maxBytes: number) => {
        const { items, more } = await store.pageEvents(query, maxBytes);
        return { seqs: seqs(items), more };
      };
      expect(await page({ limit: 10 }, 2500)).toEqual({ seqs: [5, 4, 3], more: true });
      expect(await page({ before: 3, limit: 10 }, 2500)).toEqual({ seqs: [2, 1], more: false });
      expect(await page({ after: 0, limit: 10 }, 2500)).toEqual({ seqs: [1, 2, 3], more: true });
      expect(await page({ after: 3, limit: 10 }, 2500)).toEqual({ seqs: [4, 5], more: false });
      // A first event larger than maxBytes is a page of its own.
      expect(await page({ before: 5, limit: 10 }, 500)).toEqual({ seqs: [4], more: true });
      expect(await page({ limit: 10 }, 0)).toEqual({ seqs: [5], more: true });
      // The count limit still holds, and `more` is exact at the end of the log.
      expect(await page({ limit: 2 }, 1e9)).toEqual({ seqs: [5, 4], more: true });
      expect(await page({ limit: 5 }, 1e9)).toEqual({ seqs: [5, 4, 3, 2, 1], more: false });
      expect(await page({ type: 'test.happened', after: 4, limit: 1 }, 1e9)).toEqual({
        seqs: [5],
        more: false,
      });
      expect(await page({ type: 'other', limit: 5 }, 1e9)).toEqual({ seqs: [], more: false });
      expect((await store.pageEvents({ limit: 5 }, 1e9)).items).toEqual(await store.listEvents({ limit: 5 }));
    });

    // --- dispatch ---

    it('dispatch - offsets start at 0 and advance per consumer, across a reopen', async () => {
      expect(await store.getOffset('dispatcher', 0)).toBe(0);
      await store.appendEvents([ev('a'), ev('b'), ev('c')], t0);
      await store.commitDispatch({ consumer: 'dispatcher', partition: 0, offset: 2, runs: [], audit: [] });
      expect(await store.getOffset('dispatcher', 0)).toBe(2);
      expect(await store.getOffset('shadow', 0)).toBe(0);
      await store.commitDispatch({ consumer: 'dispatcher', partition: 0, offset: 3, runs: [], audit: [] });
      await store.commitDispatch({ consumer: 'shadow', partition: 0, offset: 1, runs: [], audit: [] });
      await reopen();
      expect(await store.getOffset('dispatcher', 0)).toBe(3);
      expect(await store.getOffset('shadow', 0)).toBe(1);
    });

    it('dispatch - the facts view is committed with the offset, per consumer and partition', async () => {
      expect(await store.loadFactsView('dispatcher', 0)).toEqual({});
      await store.appendEvents([ev('a'), ev('b')], t0);
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 1,
        runs: [],
        audit: [],
        facts: [
          { name: 'mode', value: 'on' },
          { name: 'hosts', value: ['a', { b: 1 }] },
          { name: '__proto__', value: 1 },
        ],
      });
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 1,
        offset: 2,
        runs: [],
        audit: [],
        facts: [{ name: 'mode', value: 'off' }],
      });
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 2,
        runs: [],
        audit: [],
        facts: [
          { name: 'hosts', value: undefined },
          { name: 'never', value: undefined },
          { name: 'mode', value: 'still' },
        ],
      });
      await reopen();
      const view = await store.loadFactsView('dispatcher', 0);
      expect(view).toEqual(
        Object.fromEntries([
          ['mode', 'still'],
          ['__proto__', 1],
        ]),
      );
      expect(Object.hasOwn(view, '__proto__')).toBe(true);
      expect(await store.loadFactsView('dispatcher', 1)).toEqual({ mode: 'off' });
      expect(await store.loadFactsView('shadow', 0)).toEqual({});
      // A failed commit changes no view.
      await expect(
        store.commitDispatch({
          consumer: 'dispatcher',
          partition: 0,
          offset: 3,
          runs: [
            newRun(
              'run-x',
              'r',
              999_999,
              { seq: 1, partition: 0, id: 'a', source: 'test/source', type: 't' },
              0,
            ),
          ],
          audit: [],
          facts: [{ name: 'mode', value: 'lost' }],
        }),
      ).rejects.toThrow();
      expect((await store.loadFactsView('dispatcher', 0)).mode).toBe('still');
    });

    it('dispatch - a commit creates pending runs and audit entries together', async () => {
      const version = await saveVersion();
      await store.appendEvents([ev('e1'), ev('e2', { type: 'other' })], t0);
      const trigger1 = { seq: 1, partition: 0, id: 'e1', source: 'test/source', type: 'test.happened' };
      const trigger2 = { seq: 2, partition: 0, id: 'e2', source: 'test/source', type: 'other' };
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 2,
        runs: [
          { ...newRun('run-1', 'rule-a', version, trigger1, 0), createdAt: t0 + 1 },
          { ...newRun('run-2', 'rule-b', version, trigger1, 0), createdAt: t0 + 1 },
          { ...newRun('run-3', 'rule-a', version, trigger2, 0), createdAt: t0 + 2 },
        ],
        audit: [
          { at: t0 + 1, kind: AuditKind.runCreated, seq: 1, rule: 'rule-a', runId: 'run-1' },
          { at: t0 + 1, kind: AuditKind.runCreated, seq: 1, rule: 'rule-b', runId: 'run-2' },
          {
            at: t0 + 2,
            kind: AuditKind.conditionFalse,
            seq: 2,
            rule: 'rule-c',
            detail: { condition: 'x > 1' },
          },
          { at: t0 + 2, kind: AuditKind.runCreated, seq: 2, rule: 'rule-a', runId: 'run-3' },
        ],
      });
      expect(await store.getOffset('dispatcher', 0)).toBe(2);
      expect(await store.getRun('run-1')).toEqual({
        id: 'run-1',
        rule: 'rule-a',
        rulebookVersion: version,
        trigger: trigger1,
        ordinal: 0,
        context: { event: 1 },
        concurrency: null,
        status: 'pending',
        step: 0,
        attempt: 0,
        claims: 0,
        outputs: {},
        createdAt: t0 + 1,
        startedAt: null,
        finishedAt: null,
        nextAttemptAt: t0 + 1,
        error: null,
        attempts: [],
      });
      expect((await store.runsForEvent(1)).map((r) => r.id)).toEqual(['run-1', 'run-2']);
      expect(await store.runsForEvent(2)).toMatchObject([
        { id: 'run-3', trigger: trigger2, status: 'pending' },
      ]);
      expect(await store.runsForEvent(3)).toEqual([]);
      expect(await store.auditForEvent(2)).toEqual([
        { at: t0 + 2, kind: 'rule.condition-false', seq: 2, rule: 'rule-c', detail: { condition: 'x > 1' } },
        { at: t0 + 2, kind: 'run.created', seq: 2, rule: 'rule-a', runId: 'run-3' },
      ]);
      expect(await store.getRun('run-404')).toBeUndefined();
    });

    it('dispatch - a run doubled for the same event and rule fails the whole commit', async () => {
      const v1 = await saveVersion('hash-1');
      const v2 = await saveVersion('hash-2');
      await store.appendEvents([ev('e1'), ev('e2'), ev('e3')], t0);
      const trigger = (seq: number) => ({
        seq,
        partition: 0,
        id: `e${seq}`,
        source: 'test/source',
        type: 'test.happened',
      });
      const run = (id: string, seq: number): NewRun => newRun(id, 'rule-a', v1, trigger(seq), 0);
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 1,
        runs: [run('run-1', 1)],
        audit: [{ at: t0, kind: AuditKind.runCreated, seq: 1, rule: 'rule-a', runId: 'run-1' }],
        activation: { seq: 1, version: v1 },
      });
      const auditOf1 = await store.auditForEvent(1);

      // The double is against an earlier commit.
      await expect(
        store.commitDispatch({
          consumer: 'dispatcher',
          partition: 0,
          offset: 2,
          runs: [run('run-2', 2), run('run-3', 1)],
          audit: [
            { at: t0, kind: AuditKind.runCreated, seq: 2, rule: 'rule-a', runId: 'run-2' },
            { at: t0, kind: AuditKind.runCreated, seq: 1, rule: 'rule-a', runId: 'run-3' },
          ],
          activation: { seq: 2, version: v2 },
        }),
      ).rejects.toMatchObject({ code: 'REFLEX_ERR_STORE_DUPLICATE_RUN' });
      // The double is inside the commit.
      await expect(
        store.commitDispatch({
          consumer: 'dispatcher',
          partition: 0,
          offset: 3,
          runs: [run('run-4', 3), run('run-5', 3)],
          audit: [{ at: t0, kind: AuditKind.runCreated, seq: 3, rule: 'rule-a', runId: 'run-4' }],
        }),
      ).rejects.toMatchObject({ code: 'REFLEX_ERR_STORE_DUPLICATE_RUN' });

      expect(await store.getOffset('dispatcher', 0)).toBe(1);
      for (const id of ['run-2', 'run-3', 'run-4', 'run-5']) expect(await store.getRun(id)).toBeUndefined();
      expect((await store.runsForEvent(1)).map((r) => r.id)).toEqual(['run-1']);
      expect(await store.runsForEvent(2)).toEqual([]);
      expect(await store.auditForEvent(1)).toEqual(auditOf1);
      expect(await store.auditForEvent(2)).toEqual([]);
      expect(await store.auditForEvent(3)).toEqual([]);
      expect(await store.listRuns({ limit: 10 })).toHaveLength(1);

      // The store is still usable, and the same decisions without the double go through.
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 2,
        runs: [run('run-2', 2)],
        audit: [],
        activation: { seq: 2, version: v2 },
      });
      expect(await store.getOffset('dispatcher', 0)).toBe(2);
      expect(await store.rulebookVersionAt({ partition: 0, seq: 2 })).toBe(v2);
    });

    it('dispatch - one event may cause several runs of a rule, told apart by ordinal, each with its context', async () => {
      const version = await saveVersion();
      await store.appendEvents([ev('e1'), ev('e2'), ev('e3')], t0);
      const trigger = { seq: 3, partition: 0, id: 'e3', source: 'test/source', type: 'test.happened' };
      const context = { event: 3, events: { deploy: 1, errors: 3 }, batch: [1, 2, 3] };
      const concurrency = { key: 'rule-b/"web"', max: 2 };
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 3,
        audit: [],
        runs: [
          { ...newRun('run-1', 'rule-a', version, trigger, 0), context },
          { ...newRun('run-2', 'rule-a', version, trigger, 1), context: { event: 2 } },
          { ...newRun('run-3', 'rule-b', version, trigger, 0), concurrency },
        ],
      });
      expect(await store.getRun('run-1')).toMatchObject({ trigger, ordinal: 0, context, concurrency: null });
      expect(await store.getRun('run-2')).toMatchObject({ trigger, ordinal: 1, context: { event: 2 } });
      expect(await store.getRun('run-3')).toMatchObject({ ordinal: 0, context: { event: 3 }, concurrency });
      expect((await store.runsForEvent(3)).map((r) => [r.id, r.ordinal])).toEqual([
        ['run-1', 0],
        ['run-2', 1],
        ['run-3', 0],
      ]);

      // The same (event, rule, ordinal) again is a doubled match: nothing of the commit is kept.
      await expect(
        store.commitDispatch({
          consumer: 'dispatcher',
          partition: 0,
          offset: 3,
          audit: [],
          runs: [
            newRun('run-4', 'rule-a', version, trigger, 2),
            newRun('run-5', 'rule-a', version, trigger, 1),
          ],
        }),
      ).rejects.toMatchObject({ code: 'REFLEX_ERR_STORE_DUPLICATE_RUN', params: { rule: 'rule-a', seq: 3 } });
      expect(await store.getRun('run-4')).toBeUndefined();

      await reopen();
      expect((await store.listRuns({ limit: 10 })).map((r) => [r.id, r.context, r.concurrency])).toEqual([
        ['run-3', { event: 3 }, concurrency],
        ['run-2', { event: 2 }, null],
        ['run-1', context, null],
      ]);
    });

    // --- rulebooks ---

    it('rulebooks - saving the same hash again gives the same version', async () => {
      const files = [
        { path: 'a.yaml', content: 'rules:\n  - name: a\n' },
        { path: 'b/c.yaml', content: 'rules: []\n' },
      ];
      const v1 = await store.saveRulebookVersion({ hash: 'h1', files, createdAt: t0 });
      expect(await store.saveRulebookVersion({ hash: 'h1', files, createdAt: t0 + 5 })).toBe(v1);
      const v2 = await store.saveRulebookVersion({ hash: 'h2', files: [], createdAt: t0 + 6 });
      expect(v2).not.toBe(v1);
      await reopen();
      expect(await store.getRulebookVersion(v1)).toEqual({ id: v1, hash: 'h1', files, createdAt: t0 });
      expect(await store.getRulebookVersion(v2)).toEqual({
        id: v2,
        hash: 'h2',
        files: [],
        createdAt: t0 + 6,
      });
      expect(await store.saveRulebookVersion({ hash: 'h1', files, createdAt: t0 + 7 })).toBe(v1);
      expect(await store.getRulebookVersion(v1 + v2 + 1000)).toBeUndefined();
    });

    it('rulebooks - rulebookVersionAt tells which version dispatched an event', async () => {
      const v1 = await saveVersion('hash-1');
      const v2 = await saveVersion('hash-2');
      await store.appendEvents(
        Array.from({ length: 6 }, (_, i) => ev(`e${i + 1}`)),
        t0,
      );
      expect(await store.rulebookVersionAt({ partition: 0, seq: 1 })).toBeUndefined();
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 3,
        runs: [],
        audit: [],
        activation: { seq: 1, version: v1 },
      });
      expect(await store.rulebookVersionAt({ partition: 0, seq: 1 })).toBe(v1);
      expect(await store.rulebookVersionAt({ partition: 0, seq: 3 })).toBe(v1);
      expect(await store.rulebookVersionAt({ partition: 0, seq: 4 })).toBeUndefined(); // not dispatched yet
      await store.commitDispatch({ consumer: 'dispatcher', partition: 0, offset: 4, runs: [], audit: [] });
      expect(await store.rulebookVersionAt({ partition: 0, seq: 4 })).toBe(v1);
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 6,
        runs: [],
        audit: [],
        activation: { seq: 5, version: v2 },
      });
      await reopen();
      expect(await store.rulebookVersionAt({ partition: 0, seq: 4 })).toBe(v1);
      expect(await store.rulebookVersionAt({ partition: 0, seq: 5 })).toBe(v2);
      expect(await store.rulebookVersionAt({ partition: 0, seq: 6 })).toBe(v2);
      expect(await store.rulebookVersionAt({ partition: 0, seq: 7 })).toBeUndefined();
    });

    // --- runs ---

    it('runs - claim leases due runs, oldest first, up to the limit', async () => {
      await createRuns([
        { id: 'run-1', createdAt: t0 + 2 },
        { id: 'run-2', createdAt: t0 },
        { id: 'run-3', createdAt: t0 + 1 },
        { id: 'run-4', createdAt: t0 + 10_000 },
      ]);
      const first = await store.claimRuns({ owner: 'exec-a', now: t0 + 5, leaseMs: 60_000, limit: 2 });
      expect(first.map((r) => r.id)).toEqual(['run-2', 'run-3']);
      expect(first[0]).toMatchObject({ status: 'running', startedAt: t0 + 5, step: 0, attempt: 0 });
      expect(await store.getRun('run-2')).toMatchObject({ status: 'running', startedAt: t0 + 5 });

      const second = await store.claimRuns({ owner: 'exec-a', now: t0 + 5, leaseMs: 60_000, limit: 10 });
      expect(second.map((r) => r.id)).toEqual(['run-1']); // run-4 is not due yet
      expect(await store.getRun('run-4')).toMatchObject({ status: 'pending', startedAt: null });

      const third = await store.claimRuns({ owner: 'exec-b', now: t0 + 10_000, leaseMs: 60_000, limit: 10 });
      expect(third.map((r) => r.id)).toEqual(['run-4']);
      expect(
        await store.claimRuns({ owner: 'exec-b', now: t0 + 10_000, leaseMs: 60_000, limit: 10 }),
      ).toEqual([]);
    });

    it('runs - an expired lease is claimed again, and the old owner can no longer complete', async () => {
      const { seqs: triggers } = await createRuns([{ id: 'run-1' }]);
      expect(await store.claimRuns({ owner: 'exec-a', now: t0, leaseMs: 1000, limit: 5 })).toHaveLength(1);
      expect(await store.claimRuns({ owner: 'exec-b', now: t0 + 999, leaseMs: 1000, limit: 5 })).toEqual([]);
      const reclaimed = await store.claimRuns({ owner: 'exec-b', now: t0 + 1000, leaseMs: 1000, limit: 5 });
      expect(reclaimed).toMatchObject([{ id: 'run-1', status: 'running', startedAt: t0 }]);

      const before = await store.getRun('run-1');
      const lastSeq = await store.lastSeq();
      const late = attemptOf('run-1', 0, 1, t0 + 1100, { output: 'late' });
      expect(await complete('exec-a', late, { type: 'next-step', output: 'late' }, t0 + 1100)).toBe(false);
      expect(
        await complete(
          'exec-a',
          late,
          { type: 'succeeded', output: 'late', event: outcomeEvent('run-1', 'succeeded') },
          t0 + 1100,
        ),
      ).toBe(false);
      const failed = attemptOf('run-1', 0, 1, t0 + 1100, { error: httpError });
      expect(
        await complete(
          'exec-a',
          failed,
          { type: 'failed', error: httpError, event: outcomeEvent('run-1', 'failed') },
          t0 + 1100,
        ),
      ).toBe(false);
      expect(await complete('exec-a', failed, { type: 'retry', at: t0 + 2000 }, t0 + 1100)).toBe(false);
      expect(await store.getRun('run-1')).toEqual(before);
      expect(await store.lastSeq()).toBe(lastSeq);
      expect(await store.listDeadLetters(10)).toEqual([]);
      expect(await store.auditForEvent(triggers[0]!)).toEqual([]);

      expect(await complete('exec-b', late, { type: 'next-step', output: 'ok' }, t0 + 1200)).toBe(true);
    });

    it('runs - a try is recorded once: a completion of an attempt already recorded, or of another step, changes nothing', async () => {
      await createRuns([{ id: 'run-1' }]);
      await store.claimRuns({ owner: 'exec-a', now: t0, leaseMs: 60_000, limit: 1 });
      const first = attemptOf('run-1', 0, 1, t0 + 100, { output: 'one' });
      expect(await complete('exec-a', first, { type: 'next-step', output: 'one' }, t0 + 100)).toBe(true);
      const before = await store.getRun('run-1');
      // The same try again (a second execution of it by the lease holder), and tries of other steps.
      expect(await complete('exec-a', first, { type: 'next-step', output: 'again' }, t0 + 200)).toBe(false);
      const ahead = attemptOf('run-1', 2, 1, t0 + 200, { output: 'ahead' });
      expect(await complete('exec-a', ahead, { type: 'next-step', output: 'ahead' }, t0 + 200)).toBe(false);
      const skipped = attemptOf('run-1', 1, 2, t0 + 200, { error: httpError });
      expect(await complete('exec-a', skipped, { type: 'retry', at: t0 + 300 }, t0 + 200)).toBe(false);
      expect(await store.getRun('run-1')).toEqual(before);

      const second = attemptOf('run-1', 1, 1, t0 + 300, { error: httpError });
      expect(await complete('exec-a', second, { type: 'retry', at: t0 + 400 }, t0 + 300)).toBe(true);
      await store.claimRuns({ owner: 'exec-a', now: t0 + 400, leaseMs: 60_000, limit: 1 });
      expect(await complete('exec-a', second, { type: 'retry', at: t0 + 500 }, t0 + 450)).toBe(false);
      const third = attemptOf('run-1', 1, 2, t0 + 500, { output: 'two' });
      const done = { type: 'succeeded', output: 'two', event: outcomeEvent('run-1', 'succeeded') } as const;
      expect(await complete('exec-a', third, done, t0 + 500)).toBe(true);
      expect((await store.getRun('run-1'))!.attempts.map((a) => [a.step, a.attempt, a.status])).toEqual([
        [0, 1, 'succeeded'],
        [1, 1, 'failed'],
        [1, 2, 'succeeded'],
      ]);
    });

    it('runs - extendLeases keeps a run from being claimed until the new time, for its owner only', async () => {
      await createRuns([{ id: 'run-1' }]);
      await store.claimRuns({ owner: 'exec-a', now: t0, leaseMs: 1000, limit: 5 });
      await store.extendLeases('exec-a', ['run-1', 'run-unknown'], t0 + 5000);
      expect(await store.nextRunDueAt()).toBe(t0 + 5000);
      expect(await store.claimRuns({ owner: 'exec-b', now: t0 + 1000, leaseMs: 1000, limit: 5 })).toEqual([]);
      await store.extendLeases('exec-b', ['run-1'], t0 + 100_000);
      expect(await store.nextRunDueAt()).toBe(t0 + 5000);
      const claimed = await store.claimRuns({ owner: 'exec-c', now: t0 + 5000, leaseMs: 1000, limit: 5 });
      expect(claimed.map((r) => r.id)).toEqual(['run-1']);
    });

    it("runs - releaseLeases hands an owner's runs back at once", async () => {
      await createRuns([
        { id: 'run-1', createdAt: t0 },
        { id: 'run-2', createdAt: t0 + 1 },
        { id: 'run-3', createdAt: t0 + 2 },
      ]);
      await store.claimRuns({ owner: 'exec-a', now: t0 + 5, leaseMs: 60_000, limit: 2 });
      await store.claimRuns({ owner: 'exec-b', now: t0 + 5, leaseMs: 60_000, limit: 1 });
      await store.releaseLeases('exec-a', t0 + 10);
      expect(await store.getRun('run-1')).toMatchObject({ status: 'pending', nextAttemptAt: t0 + 10 });
      expect(await store.nextRunDueAt()).toBe(t0 + 10);
      const claimed = await store.claimRuns({ owner: 'exec-c', now: t0 + 10, leaseMs: 60_000, limit: 10 });
      expect(claimed.map((r) => r.id)).toEqual(['run-1', 'run-2']);
      expect(await store.getRun('run-3')).toMatchObject({ status: 'running' });
    });

    it('runs - nextRunDueAt is the earliest pending attempt or lease expiry', async () => {
      expect(await store.nextRunDueAt()).toBeUndefined();
      await createRuns([
        { id: 'run-1', createdAt: t0 + 50 },
        { id: 'run-2', createdAt: t0 + 20 },
      ]);
      expect(await store.nextRunDueAt()).toBe(t0 + 20);
      await store.claimRuns({ owner: 'exec-a', now: t0 + 100, leaseMs: 1000, limit: 10 });
      expect(await store.nextRunDueAt()).toBe(t0 + 1100);
      const failed = attemptOf('run-1', 0, 1, t0 + 200, { error: httpError });
      await complete('exec-a', failed, { type: 'retry', at: t0 + 500 }, t0 + 200);
      expect(await store.nextRunDueAt()).toBe(t0 + 500);
      const done = attemptOf('run-2', 0, 1, t0 + 300, { output: 1 });
      await complete(
        'exec-a',
        done,
        { type: 'succeeded', output: 1, event: outcomeEvent('run-2', 'succeeded') },
        t0 + 300,
      );
      expect(await store.nextRunDueAt()).toBe(t0 + 500);
      await store.claimRuns({ owner: 'exec-a', now: t0 + 500, leaseMs: 1000, limit: 10 });
      const last = attemptOf('run-1', 0, 2, t0 + 600, { error: httpError });
      await complete(
        'exec-a',
        last,
        { type: 'failed', error: httpError, event: outcomeEvent('run-1', 'failed') },
        t0 + 600,
      );
      expect(await store.nextRunDueAt()).toBeUndefined();
    });

    it('runs - next-step records the attempt, stores the output and keeps the lease', async () => {
      await createRuns([{ id: 'run-1' }]);
      await store.claimRuns({ owner: 'exec-a', now: t0, leaseMs: 60_000, limit: 1 });
      const first = attemptOf('run-1', 0, 1, t0 + 100, { output: { status: 200, body: ['x'] } });
      expect(
        await complete(
          'exec-a',
          first,
          { type: 'next-step', output: { status: 200, body: ['x'] } },
          t0 + 100,
        ),
      ).toBe(true);
      expect(await store.getRun('run-1')).toMatchObject({
        status: 'running',
        step: 1,
        attempt: 0,
        outputs: { 'step-0': { status: 200, body: ['x'] } },
        finishedAt: null,
        error: null,
        attempts: [first],
      });
      expect(await store.claimRuns({ owner: 'exec-b', now: t0 + 1000, leaseMs: 60_000, limit: 1 })).toEqual(
        [],
      );
      // A step whose action gives nothing back still shows among the outputs.
      const second = attemptOf('run-1', 1, 1, t0 + 200, { output: undefined });
      expect(await complete('exec-a', second, { type: 'next-step', output: undefined }, t0 + 200)).toBe(true);
      const run = await store.getRun('run-1');
      expect(run).toMatchObject({ step: 2, status: 'running' });
      expect(Object.keys(run!.outputs)).toEqual(['step-0', 'step-1']);
      expect(run!.attempts.map((a) => [a.step, a.attempt, a.status])).toEqual([
        [0, 1, 'succeeded'],
        [1, 1, 'succeeded'],
      ]);
    });

    it('runs - retry makes the run pending until the retry time and keeps the error', async () => {
      await createRuns([{ id: 'run-1' }]);
      await store.claimRuns({ owner: 'exec-a', now: t0, leaseMs: 60_000, limit: 1 });
      const failed = attemptOf('run-1', 0, 1, t0 + 100, { error: httpError });
      expect(await complete('exec-a', failed, { type: 'retry', at: t0 + 5000 }, t0 + 100)).toBe(true);
      expect(await store.getRun('run-1')).toMatchObject({
        status: 'pending',
        step: 0,
        attempt: 1,
        nextAttemptAt: t0 + 5000,
        error: httpError,
        finishedAt: null,
        attempts: [failed],
      });
      // No lease is left: the former owner cannot complete again.
      expect(await complete('exec-a', failed, { type: 'retry', at: t0 + 5000 }, t0 + 100)).toBe(false);
      expect(await store.claimRuns({ owner: 'exec-b', now: t0 + 4999, leaseMs: 60_000, limit: 1 })).toEqual(
        [],
      );
      const [again] = await store.claimRuns({ owner: 'exec-b', now: t0 + 5000, leaseMs: 60_000, limit: 1 });
      expect(again).toMatchObject({ id: 'run-1', status: 'running', attempt: 1, startedAt: t0 });

      const second = attemptOf('run-1', 0, 2, t0 + 5100, { error: httpError });
      await complete('exec-b', second, { type: 'retry', at: t0 + 6000 }, t0 + 5100);
      expect(await store.getRun('run-1')).toMatchObject({ attempt: 2, nextAttemptAt: t0 + 6000 });
      await store.claimRuns({ owner: 'exec-b', now: t0 + 6000, leaseMs: 60_000, limit: 1 });
      const third = attemptOf('run-1', 0, 3, t0 + 6100, { output: 'ok' });
      await complete('exec-b', third, { type: 'next-step', output: 'ok' }, t0 + 6100);
      const run = await store.getRun('run-1');
      expect(run).toMatchObject({ step: 1, attempt: 0, error: null, status: 'running' });
      expect(run!.attempts).toEqual([failed, second, third]);
    });

    it('runs - succeeded finishes the run, appends its outcome event and audits it', async () => {
      const { seqs: triggers } = await createRuns([{ id: 'run-1' }]);
      await store.claimRuns({ owner: 'exec-a', now: t0, leaseMs: 60_000, limit: 1 });
      await complete(
        'exec-a',
        attemptOf('run-1', 0, 1, t0 + 100, { output: 'a' }),
        { type: 'next-step', output: 'a' },
        t0 + 100,
      );
      const last = attemptOf('run-1', 1, 1, t0 + 200, { output: { done: true } });
      const event = outcomeEvent('run-1', 'succeeded');
      const seqBefore = await store.lastSeq();
      expect(
        await complete('exec-a', last, { type: 'succeeded', output: { done: true }, event }, t0 + 200),
      ).toBe(true);

      expect(await store.getRun('run-1')).toMatchObject({
        status: 'succeeded',
        step: 2,
        outputs: { 'step-0': 'a', 'step-1': { done: true } },
        finishedAt: t0 + 200,
        nextAttemptAt: null,
        error: null,
      });
      expect(await store.lastSeq()).toBe(seqBefore + 1);
      expect(await store.getEvent(seqBefore + 1)).toEqual({
        seq: seqBefore + 1,
        partition: 0,
        receivedAt: t0 + 200,
        event,
      });
      const audit = await store.auditForEvent(triggers[0]!);
      expect(audit).toHaveLength(1);
      expect(audit[0]).toMatchObject({
        kind: 'run.succeeded',
        seq: triggers[0],
        runId: 'run-1',
        rule: 'rule-a',
        at: t0 + 200,
      });
      expect(await store.listDeadLetters(10)).toEqual([]);
      // Finished: nothing to claim, nothing more to complete.
      expect(await store.claimRuns({ owner: 'exec-b', now: t0 + 10_000_000, leaseMs: 1, limit: 5 })).toEqual(
        [],
      );
      expect(await complete('exec-a', last, { type: 'succeeded', output: 1, event }, t0 + 300)).toBe(false);
      expect((await store.getRun('run-1'))!.attempts).toHaveLength(2);
    });

    it('runs - failed finishes the run, appends its outcome event, dead-letters and audits it', async () => {
      const { seqs: triggers } = await createRuns([{ id: 'run-1', rule: 'restart-service' }]);
      await store.claimRuns({ owner: 'exec-a', now: t0, leaseMs: 60_000, limit: 1 });
      await complete(
        'exec-a',
        attemptOf('run-1', 0, 1, t0 + 100, { output: 1 }),
        { type: 'next-step', output: 1 },
        t0 + 100,
      );
      const failed = attemptOf('run-1', 1, 1, t0 + 200, { error: httpError });
      const event = outcomeEvent('run-1', 'failed');
      expect(await complete('exec-a', failed, { type: 'failed', error: httpError, event }, t0 + 200)).toBe(
        true,
      );

      expect(await store.getRun('run-1')).toMatchObject({
        status: 'failed',
        step: 1,
        attempt: 1,
        finishedAt: t0 + 200,
        error: httpError,
        outputs: { 'step-0': 1 },
      });
      expect(await store.findEventsById(event.id, event.source)).toMatchObject([
        { event, receivedAt: t0 + 200 },
      ]);
      expect(await store.listDeadLetters(10)).toEqual([
        { runId: 'run-1', rule: 'restart-service', step: 1, error: httpError, createdAt: t0 + 200 },
      ]);
      expect(await store.auditForEvent(triggers[0]!)).toMatchObject([
        { kind: 'run.failed', seq: triggers[0], runId: 'run-1', rule: 'restart-service', at: t0 + 200 },
      ]);
      expect(await store.claimRuns({ owner: 'exec-b', now: t0 + 10_000_000, leaseMs: 1, limit: 5 })).toEqual(
        [],
      );
    });

    it('runs - an outcome event already in the log is not appended again', async () => {
      await createRuns([{ id: 'run-1' }, { id: 'run-2' }]);
      const event = outcomeEvent('run-1', 'succeeded');
      const [original] = await store.appendEvents([event], t0);
      await store.claimRuns({ owner: 'exec-a', now: t0, leaseMs: 60_000, limit: 5 });
      const seqBefore = await store.lastSeq();
      const done = attemptOf('run-1', 0, 1, t0 + 100, { output: 1 });
      expect(
        await complete(
          'exec-a',
          done,
          { type: 'succeeded', output: 1, event: { ...event, data: 'other' } },
          t0 + 100,
        ),
      ).toBe(true);
      // run-2 reports the very same outcome event (same source and id).
      const failed = attemptOf('run-2', 0, 1, t0 + 100, { error: httpError });
      expect(await complete('exec-a', failed, { type: 'failed', error: httpError, event }, t0 + 100)).toBe(
        true,
      );
      expect(await store.lastSeq()).toBe(seqBefore);
      expect(await store.findEventsById(event.id)).toEqual([
        { seq: original!.seq, partition: 0, receivedAt: t0, event },
      ]);
      expect(await store.getRun('run-1')).toMatchObject({ status: 'succeeded' });
      expect(await store.getRun('run-2')).toMatchObject({ status: 'failed' });
    });

    it('runs - a run that is not leased cannot be completed', async () => {
      await createRuns([{ id: 'run-1' }]);
      const attempt = attemptOf('run-1', 0, 1, t0, { output: 1 });
      expect(await complete('exec-a', attempt, { type: 'next-step', output: 1 }, t0)).toBe(false);
      const other = attemptOf('run-404', 0, 1, t0, { output: 1 });
      expect(await complete('exec-a', other, { type: 'next-step', output: 1 }, t0)).toBe(false);
      expect(await store.getRun('run-1')).toMatchObject({ status: 'pending', step: 0, attempts: [] });
    });

    it('runs - listRuns pages newest first, with rule and status filters', async () => {
      const ids = Array.from({ length: 9 }, (_, i) => `run-0${i + 1}`);
      await createRuns(
        ids.map((id, i) => ({ id, rule: i % 2 === 0 ? 'rule-a' : 'rule-b', createdAt: t0 + i })),
      );
      await store.claimRuns({ owner: 'exec-a', now: t0 + 2, leaseMs: 60_000, limit: 10 }); // run-01..03
      const ids_ = (runs: Array<{ id: string }>) => runs.map((r) => r.id);
      expect(ids_(await store.listRuns({ limit: 4 }))).toEqual(['run-09', 'run-08', 'run-07', 'run-06']);
      expect(ids_(await store.listRuns({ before: 'run-06', limit: 4 }))).toEqual([
        'run-05',
        'run-04',
        'run-03',
        'run-02',
      ]);
      expect(ids_(await store.listRuns({ before: 'run-02', limit: 4 }))).toEqual(['run-01']);

      const pageAll = async (filter: { rule?: string; status?: RunStatus }) => {
        const all: string[] = [];
        let before: string | undefined;
        for (;;) {
          const page = await store.listRuns({
            ...filter,
            ...(before === undefined ? {} : { before }),
            limit: 2,
          });
          for (const run of page) {
            if (filter.rule !== undefined) expect(run.rule).toBe(filter.rule);
            if (filter.status !== undefined) expect(run.status).toBe(filter.status);
          }
          if (page.length === 0) return all;
          all.push(...ids_(page));
          before = page.at(-1)!.id;
        }
      };
      expect(await pageAll({ rule: 'rule-a' })).toEqual(['run-09', 'run-07', 'run-05', 'run-03', 'run-01']);
      expect(await pageAll({ status: 'running' })).toEqual(['run-03', 'run-02', 'run-01']);
      expect(await pageAll({ status: 'pending', rule: 'rule-b' })).toEqual(['run-08', 'run-06', 'run-04']);
      expect(await pageAll({ status: 'failed' })).toEqual([]);
    });

    it('runs - pageRuns ends a page before its runs pass maxBytes, and says whether more follow', async () => {
      await createRuns(['run-1', 'run-2', 'run-3', 'run-4', 'run-5'].map((id) => ({ id })));
      const page = async (query: RunQuery, maxBytes: number) => {
        const { items, more } = await store.pageRuns(query, maxBytes);
        return { ids: items.map((r) => r.id), more };
      };
      expect(await page({ limit: 10 }, 1e9)).toEqual({
        ids: ['run-5', 'run-4', 'run-3', 'run-2', 'run-1'],
        more: false,
      });
      expect(await page({ limit: 2 }, 1e9)).toEqual({ ids: ['run-5', 'run-4'], more: true });
      expect(await page({ limit: 10, before: 'run-2' }, 1e9)).toEqual({ ids: ['run-1'], more: false });
      // Each run is larger than 0 bytes: one per page, however high the limit.
      expect(await page({ limit: 10 }, 0)).toEqual({ ids: ['run-5'], more: true });
      expect(await page({ limit: 10, before: 'run-2' }, 0)).toEqual({ ids: ['run-1'], more: false });
      expect((await store.pageRuns({ limit: 3, rule: 'rule-a' }, 1e9)).items).toEqual(
        await store.listRuns({ limit: 3, rule: 'rule-a' }),
      );
    });

    it('runs - dead letters come newest first, up to the limit', async () => {
      await createRuns([{ id: 'run-1' }, { id: 'run-2' }, { id: 'run-3' }]);
      await store.claimRuns({ owner: 'exec-a', now: t0, leaseMs: 60_000, limit: 5 });
      for (const [i, id] of ['run-1', 'run-2', 'run-3'].entries()) {
        const error = { ...httpError, message: `failure ${i}` };
        const attempt = attemptOf(id, 0, 1, t0 + i, { error });
        await complete(
          'exec-a',
          attempt,
          { type: 'failed', error, event: outcomeEvent(id, 'failed') },
          t0 + i,
        );
      }
      const letters = await store.listDeadLetters(2);
      expect(letters.map((l) => [l.runId, l.createdAt, l.error.message])).toEqual([
        ['run-3', t0 + 2, 'failure 2'],
        ['run-2', t0 + 1, 'failure 1'],
      ]);
      expect(await store.listDeadLetters(10)).toHaveLength(3);
    });

    it('runs - runs, attempts and leases survive a reopen', async () => {
      await createRuns([{ id: 'run-1' }]);
      await store.claimRuns({ owner: 'exec-a', now: t0, leaseMs: 10_000, limit: 1 });
      const first = attemptOf('run-1', 0, 1, t0 + 100, { output: 'a' });
      await complete('exec-a', first, { type: 'next-step', output: 'a' }, t0 + 100);
      const before = await store.getRun('run-1');
      await reopen();
      expect(await store.getRun('run-1')).toEqual(before);
      expect(await store.claimRuns({ owner: 'exec-b', now: t0 + 9999, leaseMs: 1000, limit: 1 })).toEqual([]);
      const second = attemptOf('run-1', 1, 1, t0 + 200, { output: 'b' });
      expect(
        await complete(
          'exec-a',
          second,
          { type: 'succeeded', output: 'b', event: outcomeEvent('run-1', 'succeeded') },
          t0 + 200,
        ),
      ).toBe(true);
    });

    // --- claims: a run whose executing process keeps dying must end ---

    const claimsOf = async (runId: string) => (await store.getRun(runId))?.claims;

    it('claims - every claim counts, and a lease that runs out without an attempt keeps the count, across a reopen', async () => {
      await createRuns([{ id: 'run-1' }]);
      expect(await claimsOf('run-1')).toBe(0);
      const [first] = await store.claimRuns({ owner: 'exec-a', now: t0, leaseMs: 1000, limit: 1 });
      expect(first).toMatchObject({ id: 'run-1', claims: 1 });
      // exec-a dies: its lease runs out, and each executor that takes the run over dies too.
      const [second] = await store.claimRuns({ owner: 'exec-b', now: t0 + 1000, leaseMs: 1000, limit: 1 });
      expect(second).toMatchObject({ id: 'run-1', claims: 2 });
      expect(await store.claimRuns({ owner: 'exec-c', now: t0 + 1999, leaseMs: 1000, limit: 1 })).toEqual([]);
      const [third] = await store.claimRuns({ owner: 'exec-c', now: t0 + 2000, leaseMs: 1000, limit: 1 });
      expect(third).toMatchObject({ claims: 3, attempt: 0, step: 0 });
      await reopen();
      expect(await claimsOf('run-1')).toBe(3);
      const [fourth] = await store.claimRuns({ owner: 'exec-d', now: t0 + 3000, leaseMs: 1000, limit: 1 });
      expect(fourth).toMatchObject({ claims: 4 });
    });

    it('claims - a recorded attempt ends the count: 0 before a retry, 1 on the next step, kept at the end', async () => {
      await createRuns([{ id: 'run-1' }, { id: 'run-2' }]);
      await store.claimRuns({ owner: 'exec-a', now: t0, leaseMs: 1000, limit: 2 });
      await store.claimRuns({ owner: 'exec-b', now: t0 + 1000, leaseMs: 1000, limit: 2 });
      expect(await claimsOf('run-1')).toBe(2);

      // A run that ends keeps its count: this one failed on its second claim.
      const lost = attemptOf('run-2', 0, 1, t0 + 1100, { error: httpError });
      const failedEvent = outcomeEvent('run-2', 'failed');
      await complete('exec-b', lost, { type: 'failed', error: httpError, event: failedEvent }, t0 + 1100);
      expect(await store.getRun('run-2')).toMatchObject({ status: 'failed', claims: 2 });

      // The claim in hand goes on with the next step: it is that step's first.
      const done = attemptOf('run-1', 0, 1, t0 + 1100, { output: 'a' });
      expect(await complete('exec-b', done, { type: 'next-step', output: 'a' }, t0 + 1100)).toBe(true);
      expect(await store.getRun('run-1')).toMatchObject({ step: 1, claims: 1 });
      const [again] = await store.claimRuns({ owner: 'exec-c', now: t0 + 2000, leaseMs: 1000, limit: 1 });
      expect(again).toMatchObject({ id: 'run-1', step: 1, claims: 2 });

      // A retry gives the lease back: the retry's own claim is its first.
      const failed = attemptOf('run-1', 1, 1, t0 + 2100, { error: httpError });
      expect(await complete('exec-c', failed, { type: 'retry', at: t0 + 3000 }, t0 + 2100)).toBe(true);
      expect(await store.getRun('run-1')).toMatchObject({ status: 'pending', claims: 0 });
      const [retry] = await store.claimRuns({ owner: 'exec-c', now: t0 + 3000, leaseMs: 1000, limit: 1 });
      expect(retry).toMatchObject({ id: 'run-1', claims: 1, attempt: 1 });

      const last = attemptOf('run-1', 1, 2, t0 + 3100, { output: 'b' });
      const event = outcomeEvent('run-1', 'succeeded');
      expect(await complete('exec-c', last, { type: 'succeeded', output: 'b', event }, t0 + 3100)).toBe(true);
      expect(await store.getRun('run-1')).toMatchObject({ status: 'succeeded', claims: 1 });
    });

    it('claims - a lease given back on drain does not count against the run', async () => {
      await createRuns([{ id: 'run-1' }, { id: 'run-2' }]);
      await store.claimRuns({ owner: 'exec-a', now: t0, leaseMs: 60_000, limit: 2 });
      await store.releaseLeases('exec-a', t0 + 10);
      expect(await store.getRun('run-1')).toMatchObject({ status: 'pending', claims: 0 });
      expect(await claimsOf('run-2')).toBe(0);

      // Two claims of each that died, then a third of run-1 given back: two still count.
      await store.claimRuns({ owner: 'exec-b', now: t0 + 10, leaseMs: 1000, limit: 2 });
      await store.claimRuns({ owner: 'exec-c', now: t0 + 1010, leaseMs: 1000, limit: 2 });
      const [third] = await store.claimRuns({ owner: 'exec-d', now: t0 + 2010, leaseMs: 1000, limit: 1 });
      expect(third).toMatchObject({ id: 'run-1', claims: 3 });
      await store.releaseLeases('exec-d', t0 + 2020);
      expect(await store.getRun('run-1')).toMatchObject({ status: 'pending', claims: 2 });
      // Only the owner's leases are given back and taken off the count.
      expect(await store.getRun('run-2')).toMatchObject({ status: 'running', claims: 2 });
      await store.releaseLeases('exec-c', t0 + 2030);
      expect(await store.getRun('run-2')).toMatchObject({ status: 'pending', claims: 1 });

      // Given back on the next step, whose count started at 1: back to 0.
      const [run] = await store.claimRuns({ owner: 'exec-e', now: t0 + 2030, leaseMs: 60_000, limit: 1 });
      expect(run).toMatchObject({ id: 'run-1', claims: 3 });
      await complete(
        'exec-e',
        attemptOf('run-1', 0, 1, t0 + 2040, { output: 1 }),
        { type: 'next-step', output: 1 },
        t0 + 2040,
      );
      await store.releaseLeases('exec-e', t0 + 2050);
      expect(await store.getRun('run-1')).toMatchObject({ status: 'pending', step: 1, claims: 0 });
    });

    // --- concurrency ---

    const claimIds = async (now: number, limit = 10, owner = 'exec-a') =>
      (await store.claimRuns({ owner, now, leaseMs: 60_000, limit })).map((r) => r.id);
    /** Records the next attempt of the run's first step as its success. */
    const succeed = async (runId: string, at: number, owner = 'exec-a') =>
      complete(
        owner,
        attemptOf(runId, 0, (await store.getRun(runId))!.attempt + 1, at, { output: 1 }),
        { type: 'succeeded', output: 1, event: outcomeEvent(runId, 'succeeded') },
        at,
      );

    it('concurrency - with max 1 the runs of a key go one at a time, in creation order, other keys unaffected', async () => {
      const web = { key: 'deploy/"web"', max: 1 };
      const db = { key: 'deploy/"db"', max: 1 };
      await createRuns([
        { id: 'run-1', concurrency: web },
        { id: 'run-2', concurrency: web },
        { id: 'run-3', concurrency: db },
        { id: 'run-4' },
        { id: 'run-5', concurrency: web },
      ]);
      expect(await store.getRun('run-2')).toMatchObject({ concurrency: web });
      expect(await claimIds(t0)).toEqual(['run-1', 'run-3', 'run-4']);
      expect(await claimIds(t0 + 1)).toEqual([]);
      expect(await store.getRun('run-2')).toMatchObject({ status: 'pending', startedAt: null });
      // Nothing that has to wait is reported as due: the next thing is the first lease running out.
      expect(await store.nextRunDueAt()).toBe(t0 + 60_000);

      await reopen();
      expect(await store.getRun('run-5')).toMatchObject({ concurrency: web, status: 'pending' });
      expect(await claimIds(t0 + 2)).toEqual([]);
      expect(await succeed('run-3', t0 + 10)).toBe(true);
      expect(await claimIds(t0 + 10)).toEqual([]); // run-3 held another key's slot
      expect(await succeed('run-1', t0 + 20)).toBe(true);
      expect(await store.nextRunDueAt()).toBe(t0); // run-2 has been due since it was created
      expect(await claimIds(t0 + 20)).toEqual(['run-2']);
      expect(await store.nextRunDueAt()).toBe(t0 + 60_000);

      // A failure ends a run too, and frees its slot.
      const error = attemptOf('run-2', 0, 1, t0 + 30, { error: httpError });
      await complete(
        'exec-a',
        error,
        { type: 'failed', error: httpError, event: outcomeEvent('run-2', 'failed') },
        t0 + 30,
      );
      expect(await claimIds(t0 + 30)).toEqual(['run-5']);
      expect(await claimIds(t0 + 30)).toEqual([]);
    });

    it('concurrency - a run keeps its slot while it waits for a retry, after its lease runs out and when released', async () => {
      const one = { key: 'k', max: 1 };
      await createRuns([
        { id: 'run-1', concurrency: one },
        { id: 'run-2', concurrency: one },
      ]);
      expect(await claimIds(t0)).toEqual(['run-1']);
      const failed = attemptOf('run-1', 0, 1, t0 + 100, { error: httpError });
      await complete('exec-a', failed, { type: 'retry', at: t0 + 5000 }, t0 + 100);
      expect(await claimIds(t0 + 200)).toEqual([]);
      expect(await store.nextRunDueAt()).toBe(t0 + 5000);
      expect(await claimIds(t0 + 5000)).toEqual(['run-1']);

      // Its executor is gone: the lease runs out, and the same run is claimed again, not the next one.
      expect(await claimIds(t0 + 65_000, 10, 'exec-b')).toEqual(['run-1']);
      await store.releaseLeases('exec-b', t0 + 65_001);
      expect(await claimIds(t0 + 65_001, 10, 'exec-c')).toEqual(['run-1']);
      expect(await claimIds(t0 + 65_001, 10, 'exec-c')).toEqual([]);

      expect(await succeed('run-1', t0 + 65_100, 'exec-c')).toBe(true);
      expect(await claimIds(t0 + 65_100, 10, 'exec-c')).toEqual(['run-2']);
    });

    it('concurrency - with max 2 two runs of a key go at once, in order, across claims', async () => {
      const two = { key: 'k', max: 2 };
      await createRuns([
        { id: 'run-1', concurrency: two },
        { id: 'run-2', concurrency: two },
        { id: 'run-3', concurrency: two },
        { id: 'run-4', concurrency: two },
      ]);
      expect(await claimIds(t0, 1)).toEqual(['run-1']);
      expect(await claimIds(t0, 1)).toEqual(['run-2']);
      expect(await claimIds(t0, 10)).toEqual([]);
      await succeed('run-2', t0 + 10);
      expect(await claimIds(t0 + 10)).toEqual(['run-3']);
      await succeed('run-1', t0 + 20);
      await succeed('run-3', t0 + 20);
      expect(await claimIds(t0 + 20)).toEqual(['run-4']);
    });

    it('concurrency - one claim takes several runs of a key only up to its free slots', async () => {
      const two = { key: 'k', max: 2 };
      const three = { key: 'j', max: 3 };
      await createRuns([
        { id: 'run-1', concurrency: two },
        { id: 'run-2', concurrency: three },
        { id: 'run-3', concurrency: two },
        { id: 'run-4', concurrency: two },
        { id: 'run-5', concurrency: three },
        { id: 'run-6', concurrency: three },
        { id: 'run-7', concurrency: three },
      ]);
      expect(await claimIds(t0, 100)).toEqual(['run-1', 'run-2', 'run-3', 'run-5', 'run-6']);
      expect(await claimIds(t0, 100)).toEqual([]);
    });

    it('concurrency - waiting runs and free runs are claimed together, oldest first, up to the limit', async () => {
      const one = { key: 'k', max: 1 };
      await createRuns([
        { id: 'run-1', createdAt: t0 + 2 },
        { id: 'run-2', concurrency: one, createdAt: t0 + 1 },
        { id: 'run-3', createdAt: t0 + 3 },
        { id: 'run-4', concurrency: { key: 'j', max: 1 }, createdAt: t0 + 4 },
      ]);
      expect(await claimIds(t0 + 10, 2)).toEqual(['run-2', 'run-1']);
      expect(await claimIds(t0 + 10, 10)).toEqual(['run-3', 'run-4']);
    });

    it('concurrency - a younger run of a key does not start before an older one that is not due yet', async () => {
      const one = { key: 'k', max: 2 };
      await createRuns([
        { id: 'run-1', concurrency: one, createdAt: t0 + 100 },
        { id: 'run-2', concurrency: one, createdAt: t0 },
        { id: 'run-3', createdAt: t0 },
      ]);
      expect(await claimIds(t0 + 50)).toEqual(['run-3']);
      expect(await store.nextRunDueAt()).toBe(t0 + 100);
      expect(await claimIds(t0 + 100)).toEqual(['run-1', 'run-2']);
    });

    // --- flow state and timers ---

    const byIdentity = (rows: FlowStateRow[]) =>
      [...rows].sort((a, b) =>
        `${a.rule}\u0000${a.stage}\u0000${a.key}`.localeCompare(`${b.rule}\u0000${b.stage}\u0000${b.key}`),
      );

    it('flow state - a dispatch commit writes, replaces and deletes states, kept across a reopen', async () => {
      expect(await store.loadFlowStates(0)).toEqual([]);
      await store.appendEvents([ev('a'), ev('b'), ev('c')], t0);
      const web: FlowStateRow = {
        rule: 'deploy-then-errors',
        stage: 'when',
        key: '"web"',
        hash: 'h1',
        state: { slots: [{ seq: 1, t: t0 }, null], note: 'näive ☃' },
        expiresAt: t0 + 600_000,
      };
      const db: FlowStateRow = {
        ...web,
        key: '"db"',
        state: { slots: [null, { seq: 2, t: t0 }] },
        expiresAt: null,
      };
      const throttle: FlowStateRow = {
        rule: 'brute-force',
        stage: 'throttle',
        key: '',
        hash: 'h2',
        state: 0,
        expiresAt: t0 + 60_000,
      };
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 2,
        runs: [],
        audit: [],
        states: [web, db, throttle],
      });
      expect(byIdentity(await store.loadFlowStates(0))).toEqual([throttle, db, web]);

      const web2: FlowStateRow = { ...web, hash: 'h3', state: { slots: [] }, expiresAt: null };
      const batch: FlowStateRow = {
        rule: 'brute-force',
        stage: 'batch',
        key: '1',
        hash: 'h2',
        state: false,
        expiresAt: null,
      };
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 3,
        runs: [],
        audit: [],
        states: [
          web2,
          { ...db, state: null },
          { rule: 'never', stage: 'when', key: '', hash: '', state: null, expiresAt: null },
          batch,
        ],
      });
      const expected = [batch, throttle, web2];
      expect(byIdentity(await store.loadFlowStates(0))).toEqual(expected);
      expect(await store.getOffset('dispatcher', 0)).toBe(3);
      await reopen();
      expect(byIdentity(await store.loadFlowStates(0))).toEqual(expected);
    });

    it('flow state - states, timers and runs of a failed commit are all rolled back', async () => {
      const version = await saveVersion();
      await store.appendEvents([ev('e1'), ev('e2')], t0);
      const trigger = (seq: number) => ({
        seq,
        partition: 0,
        id: `e${seq}`,
        source: 'test/source',
        type: 'test.happened',
      });
      const state: FlowStateRow = {
        rule: 'r',
        stage: 'when',
        key: '',
        hash: 'h',
        state: { n: 1 },
        expiresAt: null,
      };
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 1,
        runs: [newRun('run-1', 'r', version, trigger(1), 0)],
        audit: [],
        states: [state],
        timers: [{ rule: 'r', stage: 'when', key: '', due: t0 + 1000 }],
      });
      await expect(
        store.commitDispatch({
          consumer: 'dispatcher',
          partition: 0,
          offset: 2,
          runs: [newRun('run-2', 'r', version, trigger(2), 0), newRun('run-3', 'r', version, trigger(1), 0)],
          audit: [],
          states: [
            { ...state, state: null },
            { ...state, key: '"x"', state: { n: 2 } },
          ],
          timers: [
            { rule: 'r', stage: 'when', key: '', due: null },
            { rule: 'r', stage: 'when', key: '"x"', due: t0 + 10 },
          ],
        }),
      ).rejects.toMatchObject({ code: 'REFLEX_ERR_STORE_DUPLICATE_RUN' });
      expect(await store.loadFlowStates(0)).toEqual([state]);
      expect(await store.nextTimerDueAt()).toBe(t0 + 1000);
      expect(await store.fireDueTimers(t0 + 500, 10)).toEqual([]);
      expect(await store.getRun('run-2')).toBeUndefined();
      expect(await store.getOffset('dispatcher', 0)).toBe(1);
    });

    it('timers - a dispatch commit sets, moves and cancels timers; nextTimerDueAt is the earliest', async () => {
      expect(await store.nextTimerDueAt()).toBeUndefined();
      expect(await store.fireDueTimers(t0 + 1_000_000, 10)).toEqual([]);
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 0,
        runs: [],
        audit: [],
        timers: [
          { rule: 'r1', stage: 'debounce', key: '"a"', due: t0 + 5000 },
          { rule: 'r1', stage: 'debounce', key: '"b"', due: t0 + 3000 },
          { rule: 'r2', stage: 'when', key: '', due: t0 + 4000 },
        ],
      });
      expect(await store.nextTimerDueAt()).toBe(t0 + 3000);
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 0,
        runs: [],
        audit: [],
        timers: [
          { rule: 'r1', stage: 'debounce', key: '"b"', due: t0 + 6000 },
          { rule: 'r2', stage: 'when', key: '', due: null },
          { rule: 'r3', stage: 'batch', key: '', due: null },
        ],
      });
      expect(await store.nextTimerDueAt()).toBe(t0 + 5000);
      await reopen();
      expect(await store.nextTimerDueAt()).toBe(t0 + 5000);
      expect(await store.fireDueTimers(t0 + 4999, 10)).toEqual([]);
      expect(await store.lastSeq()).toBe(0);
      expect((await store.fireDueTimers(t0 + 7000, 10)).map((r) => r.id)).toEqual([
        `r1/debounce/"a"@${t0 + 5000}`,
        `r1/debounce/"b"@${t0 + 6000}`,
      ]);
      expect(await store.nextTimerDueAt()).toBeUndefined();
    });

    it('timers - due timers become reflex.timer events in the log, earliest first, up to the limit', async () => {
      await store.appendEvents([ev('a')], t0);
      const timers = [
        { rule: 'r1', stage: 'batch', key: '"a"', due: t0 + 2000 },
        { rule: 'r1', stage: 'debounce', key: '"a"', due: t0 + 1000 },
        { rule: 'r0', stage: 'when', key: '{"x":1}', due: t0 + 2500 },
        { rule: 'r0', stage: 'when', key: '', due: t0 + 9000 },
      ];
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 1,
        runs: [],
        audit: [],
        timers,
      });
      const now = t0 + 2500;
      const timerEvent = (timer: (typeof timers)[number]): CloudEvent => ({
        specversion: '1.0',
        id: `${timer.rule}/${timer.stage}/${timer.key}@${timer.due}`,
        source: 'reflex',
        type: 'reflex.timer',
        time: new Date(now).toISOString(),
        data: timer,
      });

      expect(await store.fireDueTimers(now, 2)).toEqual([
        { seq: 2, partition: 0, id: `r1/debounce/"a"@${t0 + 1000}`, source: 'reflex', duplicate: false },
        { seq: 3, partition: 0, id: `r1/batch/"a"@${t0 + 2000}`, source: 'reflex', duplicate: false },
      ]);
      expect((await store.readEvents({ partition: 0, seq: 1 }, 10)).events).toEqual([
        { seq: 2, partition: 0, receivedAt: now, event: timerEvent(timers[1]!) },
        { seq: 3, partition: 0, receivedAt: now, event: timerEvent(timers[0]!) },
      ]);
      expect(await store.nextTimerDueAt()).toBe(t0 + 2500);
      // due <= now: a timer due right now fires.
      expect(await store.fireDueTimers(now, 10)).toEqual([
        { seq: 4, partition: 0, id: `r0/when/{"x":1}@${t0 + 2500}`, source: 'reflex', duplicate: false },
      ]);
      expect((await store.getEvent(4))?.event).toEqual(timerEvent(timers[2]!));
      expect(await store.fireDueTimers(now, 10)).toEqual([]);
      expect(await store.nextTimerDueAt()).toBe(t0 + 9000);
      expect(await store.lastSeq()).toBe(4);
    });

    it('timers - a timer fired again with the same due time is logged once', async () => {
      const timer = { rule: 'r', stage: 'when', key: '"h1"', due: t0 + 1000 };
      const set = () =>
        store.commitDispatch({
          consumer: 'dispatcher',
          partition: 0,
          offset: 0,
          runs: [],
          audit: [],
          timers: [timer],
        });
      await set();
      const [first] = await store.fireDueTimers(t0 + 1500, 10);
      expect(first).toEqual({
        seq: 1,
        partition: 0,
        id: `r/when/"h1"@${t0 + 1000}`,
        source: 'reflex',
        duplicate: false,
      });
      // A batch decided again (after a crash) sets the same timer again.
      await set();
      expect(await store.fireDueTimers(t0 + 2000, 10)).toEqual([{ ...first, duplicate: true }]);
      expect(await store.lastSeq()).toBe(1);
      expect((await store.getEvent(1))?.receivedAt).toBe(t0 + 1500);
      expect(await store.nextTimerDueAt()).toBeUndefined();
      // The same stage and key at another time is another timer.
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 0,
        runs: [],
        audit: [],
        timers: [{ ...timer, due: t0 + 3000 }],
      });
      expect(await store.fireDueTimers(t0 + 3000, 10)).toMatchObject([{ seq: 2, duplicate: false }]);
    });

    // --- facts ---

    const factEvent = (
      name: string,
      n: number,
      at: number,
      value: unknown,
      previous: unknown,
      { added = false, removed = false } = {},
    ): CloudEvent => ({
      specversion: '1.0',
      id: `fact/${name}/${n}`,
      source: 'reflex',
      type: 'reflex.fact.changed',
      time: new Date(at).toISOString(),
      data: { name, value, previous, added, removed },
    });

    it('facts - changeFact sets, overwrites and removes facts, logging each change as reflex.fact.changed', async () => {
      expect(await store.getFacts()).toEqual({});
      expect(await store.changeFact('maintenance', true, t0)).toEqual({
        changed: true,
        event: { seq: 1, partition: 0, id: 'fact/maintenance/1', source: 'reflex', duplicate: false },
      });
      expect(await store.getEvent(1)).toEqual({
        seq: 1,
        partition: 0,
        receivedAt: t0,
        event: factEvent('maintenance', 1, t0, true, null, { added: true }),
      });
      await store.changeFact('limits', { cpu: 0.8, hosts: ['a', 'b'] }, t0);
      await store.changeFact('owner', 'sre', t0);
      // Absent and null are different: null is a value, and the event tells them apart.
      expect(await store.changeFact('nothing', null, t0)).toMatchObject({ changed: true, event: { seq: 4 } });
      expect((await store.getEvent(4))?.event).toEqual(
        factEvent('nothing', 1, t0, null, null, { added: true }),
      );
      expect(await store.changeFact('maintenance', false, t0 + 1)).toMatchObject({
        changed: true,
        event: { seq: 5, id: 'fact/maintenance/2' },
      });
      expect((await store.getEvent(5))?.event).toEqual(factEvent('maintenance', 2, t0 + 1, false, true));
      expect(await store.getFacts()).toEqual({
        maintenance: false,
        limits: { cpu: 0.8, hosts: ['a', 'b'] },
        owner: 'sre',
        nothing: null,
      });

      expect(await store.changeFact('owner', undefined, t0 + 2)).toMatchObject({
        changed: true,
        event: { seq: 6, id: 'fact/owner/2' },
      });
      expect((await store.getEvent(6))?.event).toEqual(
        factEvent('owner', 2, t0 + 2, null, 'sre', { removed: true }),
      );
      // Removing what is not there changes nothing.
      expect(await store.changeFact('owner', undefined, t0 + 3)).toEqual({ changed: false });
      expect(await store.changeFact('never-set', undefined, t0 + 3)).toEqual({ changed: false });
      expect(await store.lastSeq()).toBe(6);
      const facts = { maintenance: false, limits: { cpu: 0.8, hosts: ['a', 'b'] }, nothing: null };
      expect(await store.getFacts()).toEqual(facts);

      // The change counter goes on after a removal and a reopen: the new event is not taken for an old one.
      await reopen();
      expect(await store.getFacts()).toEqual(facts);
      expect(await store.changeFact('owner', 'ops', t0 + 4)).toMatchObject({
        changed: true,
        event: { seq: 7, id: 'fact/owner/3', duplicate: false },
      });
      expect((await store.getEvent(7))?.event).toEqual(
        factEvent('owner', 3, t0 + 4, 'ops', null, { added: true }),
      );
      expect(await store.getFacts()).toEqual({ ...facts, owner: 'ops' });
    });

    it('facts - setting the value a fact already has changes nothing and logs nothing', async () => {
      await store.changeFact('limits', { cpu: 0.8, hosts: ['a', 'b'] }, t0);
      expect(await store.changeFact('limits', { cpu: 0.8, hosts: ['a', 'b'] }, t0 + 1)).toEqual({
        changed: false,
      });
      await store.changeFact('nothing', null, t0);
      expect(await store.changeFact('nothing', null, t0 + 1)).toEqual({ changed: false });
      await store.changeFact('n', 1, t0);
      expect(await store.lastSeq()).toBe(3);
      // 1 and "1" are different values.
      expect(await store.changeFact('n', '1', t0 + 1)).toMatchObject({
        changed: true,
        event: { id: 'fact/n/2' },
      });
      expect(await store.changeFact('n', 1, t0 + 2)).toMatchObject({
        changed: true,
        event: { id: 'fact/n/3' },
      });
      expect(await store.lastSeq()).toBe(5);
      expect(await store.getFacts()).toEqual({
        limits: { cpu: 0.8, hosts: ['a', 'b'] },
        nothing: null,
        n: 1,
      });
      // The order of keys carries no meaning in JSON, at any depth; the order of array items does.
      expect(await store.changeFact('limits', { hosts: ['a', 'b'], cpu: 0.8 }, t0 + 3)).toEqual({
        changed: false,
      });
      await store.changeFact('nested', { a: { x: 1, y: [{ p: 1, q: 2 }] }, b: 2 }, t0 + 3);
      expect(await store.changeFact('nested', { b: 2, a: { y: [{ q: 2, p: 1 }], x: 1 } }, t0 + 4)).toEqual({
        changed: false,
      });
      expect(await store.changeFact('limits', { cpu: 0.8, hosts: ['b', 'a'] }, t0 + 5)).toMatchObject({
        changed: true,
      });
      expect(await store.lastSeq()).toBe(7);
    });

    // --- audit ---

    it('audit - entries about an event come back in the order written', async () => {
      await store.appendAudit([
        { at: t0, kind: AuditKind.runCreated, seq: 5, rule: 'rule-a', runId: 'run-1', detail: { n: 1 } },
        { at: t0, kind: AuditKind.rulebookLoaded, detail: { version: 1 } },
        { at: t0 + 1, kind: AuditKind.stopped, seq: 6, rule: 'rule-c' },
      ]);
      await store.appendAudit([]);
      await store.appendAudit([{ at: t0 + 2, kind: AuditKind.conditionError, seq: 5, rule: 'rule-b' }]);
      expect(await store.auditForEvent(5)).toEqual([
        { at: t0, kind: 'run.created', seq: 5, rule: 'rule-a', runId: 'run-1', detail: { n: 1 } },
        { at: t0 + 2, kind: 'rule.condition-error', seq: 5, rule: 'rule-b' },
      ]);
      const [stopped] = await store.auditForEvent(6);
      expect(Object.keys(stopped!).sort()).toEqual(['at', 'kind', 'rule', 'seq']);
      expect(await store.auditForEvent(7)).toEqual([]);
      await reopen();
      expect(await store.auditForEvent(5)).toHaveLength(2);
    });

    // --- keys ---

    it('keys - the id key is random, made once, and the same after a reopen', async () => {
      const key = await store.idKey();
      expect(key).toMatch(/^[0-9a-f]{64}$/);
      expect(await store.idKey()).toBe(key);
      await reopen();
      expect(await store.idKey()).toBe(key);
      const other = await open();
      try {
        expect(await other.store.idKey()).not.toBe(key);
      } finally {
        await other.cleanup();
      }
    });
  });
}
