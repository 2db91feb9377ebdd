import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestClock } from '../../src/core/ports/clock.js';
import { silentLogger } from '../../src/core/ports/logger.js';
import { createTimerService } from '../../src/engine/timers.js';
import { createSqliteStore } from '../../src/store/index.js';
import { createEngineHarness } from '../helpers/engine-harness.js';
import {
  keyError,
  type RefEvent,
  type RefFiring,
  type RefKey,
  type RefPredicate,
  type RefRule,
  type RefSub,
  type RefWhen,
  referenceFirings,
} from './flow-reference.js';

/**
 * The engine's firings equal those of a plain reference model of the spec (flow-reference.ts), for
 * generated rules of each correlation and storm-control construct and generated event streams: a few
 * keys, gaps that often land on window edges, events at the same millisecond. Each case drives a real
 * engine (SQLite store in a temp dir, test clock): the clock stops at every timer's due time and at every
 * event's time, the event is appended, everything settles; at the end every remaining timer fires.
 * A run is compared by what it sees (event, events, batch) and the log time of what triggered it.
 */

const start = Date.parse('2026-11-27T10:00:00Z');

// Hundreds of engines, each committing on every event: on a RAM disk, where there is one, the stores'
// fsyncs cost nothing.
const tmpdirBefore = process.env.TMPDIR;
beforeAll(() => {
  if (existsSync('/dev/shm')) process.env.TMPDIR = '/dev/shm';
});
afterAll(() => {
  if (tmpdirBefore === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = tmpdirBefore;
});

// --- the events ---

interface GenEvent {
  gap: number;
  type: string;
  /** The key field; absent on some events, so key expressions fail on them. */
  k?: string | number;
  v: number;
}

const windows = [1000, 2000, 3000] as const;
const gap = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(0, 0, 1, 500, 999, 1000, 1001, 1500, 2000, 3000) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 2500 }) },
);
const genEvent = fc.record(
  {
    gap,
    type: fc.constantFrom('a', 'a', 'b', 'b', 'c', 'z'),
    k: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom<string | number>('x', 'y', 1, '1') },
      { weight: 1, arbitrary: fc.constant(undefined) },
    ),
    v: fc.integer({ min: 0, max: 3 }),
  },
  { requiredKeys: ['gap', 'type', 'v'] },
);
const genEvents = fc.array(genEvent, { minLength: 5, maxLength: 40 });

// --- conditions and keys, as CEL for the engine and as functions for the model ---

const byK: RefKey = {
  cel: 'event.data.k',
  value: ({ event }) => ('k' in event.data ? event.data.k : keyError),
};
const v = (e: RefEvent) => e.data.v as number;
const eventPredicates: RefPredicate[] = [
  { cel: 'event.data.v > 0', test: (e) => v(e) > 0 },
  { cel: 'event.data.v < 2', test: (e) => v(e) < 2 },
];
/** A condition on another held event of an `all`, guarded since that one may not be held yet. */
const notBelow = (other: string): RefPredicate => ({
  cel: `!has(events.${other}) || events.${other}.data.v <= event.data.v`,
  test: (e, events) => events[other] === undefined || v(events[other]!) <= v(e),
});
/** A condition of a sequence step on the first step's event, which is always held by then. */
const notBelowFirst = (first: string): RefPredicate => ({
  cel: `events.${first}.data.v <= event.data.v`,
  test: (e, events) => v(events[first]!) <= v(e),
});

const typeSets = [['a'], ['b'], ['c'], ['a', 'b'], ['b', 'c']] as const;
const genTypes = fc.constantFrom(...typeSets);
const genWindow = fc.constantFrom(...windows);
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 2 });
const genEventIf = maybe(fc.constantFrom(...eventPredicates));
const genBy = maybe(fc.constant(byK));

const sub = (name: string, types: readonly string[], cond?: RefPredicate): RefSub =>
  cond ? { name, types, if: cond } : { name, types };

const genSingle: fc.Arbitrary<RefWhen> = fc
  .record({ types: genTypes, cond: genEventIf })
  .map(({ types, cond }) => ({ kind: 'single', sub: sub('e0', types, cond) }));

const genAny: fc.Arbitrary<RefWhen> = fc
  .array(fc.record({ types: genTypes, cond: genEventIf }), { minLength: 1, maxLength: 3 })
  .map((subs) => ({ kind: 'any', subs: subs.map((s, i) => sub(`s${i}`, s.types, s.cond)) }));

const genAll: fc.Arbitrary<RefWhen> = fc
  .record({
    // Three subs more often than two: two held events of three is where holding goes wrong.
    subs: fc.constantFrom(2, 3, 3).chain((n) =>
      fc.array(
        fc.record({
          types: genTypes,
          cond: fc.constantFrom<'none' | 'event' | 'other'>('none', 'none', 'event', 'other'),
        }),
        { minLength: n, maxLength: n },
      ),
    ),
    within: genWindow,
    by: genBy,
  })
  .map(({ subs, within, by }) => ({
    kind: 'all',
    subs: subs.map((s, i) =>
      sub(
        `s${i}`,
        s.types,
        s.cond === 'event'
          ? eventPredicates[0]
          : s.cond === 'other'
            ? notBelow(`s${(i + 1) % subs.length}`)
            : undefined,
      ),
    ),
    within,
    ...(by ? { by } : {}),
  }));

const genSequence: fc.Arbitrary<RefWhen> = fc
  .record({
    subs: fc.array(
      fc.record({
        types: genTypes,
        cond: fc.constantFrom<'none' | 'event' | 'first'>('none', 'event', 'first'),
      }),
      { minLength: 2, maxLength: 3 },
    ),
    within: genWindow,
    by: genBy,
  })
  .map(({ subs, within, by }) => ({
    kind: 'sequence',
    subs: subs.map((s, i) =>
      sub(
        `s${i}`,
        s.types,
        s.cond === 'event'
          ? eventPredicates[1]
          : s.cond === 'first' && i > 0
            ? notBelowFirst('s0')
            : undefined,
      ),
    ),
    within,
    ...(by ? { by } : {}),
  }));

const genAbsence: fc.Arbitrary<RefWhen> = fc
  .record({
    // Heartbeats (after = expect) half of the time.
    after: genTypes,
    expect: fc.option(genTypes, { nil: undefined, freq: 2 }),
    within: genWindow,
    by: genBy,
  })
  .map(({ after, expect, within, by }) => ({
    kind: 'absence',
    after: sub('after', after),
    expect: sub('expect', expect ?? after),
    within,
    ...(by ? { by } : {}),
  }));

const genCount: fc.Arbitrary<RefWhen> = fc
  .record({
    types: genTypes,
    cond: genEventIf,
    atLeast: fc.integer({ min: 1, max: 4 }),
    within: genWindow,
    by: genBy,
  })
  .map(({ types, cond, atLeast, within, by }) => ({
    kind: 'count',
    sub: sub('e0', types, cond),
    atLeast,
    within,
    ...(by ? { by } : {}),
  }));

const withKey = <T extends object>(spec: T, key: RefKey | undefined): T & { key?: RefKey } =>
  key ? { ...spec, key } : spec;

/**
 * A key that never fails, for storm stages after a correlation. Where a storm key fails on a firing of
 * a correlation, the spec ("the event is skipped for that rule") can be read two ways: the firing is
 * dropped at that stage (the correlation has consumed its events), or the event is undone for the whole
 * rule (the engine: the correlation keeps what it held, and its events fire again with later ones).
 */
const byKOrNone: RefKey = {
  cel: 'has(event.data.k) ? event.data.k : "none"',
  value: ({ event }) => ('k' in event.data ? event.data.k : 'none'),
};
const genByAfterCorrelation = maybe(fc.constant(byKOrNone));

const genDedupe = fc
  .record({ window: genWindow, key: genBy })
  .map(({ window, key }) => withKey({ window }, key));
const genThrottle = genDedupe;
const genThrottleAfterCorrelation = fc
  .record({ window: genWindow, key: genByAfterCorrelation })
  .map(({ window, key }) => withKey({ window }, key));
const genDebounce = (key: fc.Arbitrary<RefKey | undefined>) =>
  fc
    .record({
      quiet: fc.constantFrom(500, 1000, 2000),
      maxWait: maybe(fc.constantFrom(1000, 1500, 3000)),
      pass: maybe(fc.constantFrom<'first' | 'last' | 'all'>('first', 'last', 'all')),
      key,
    })
    .map(({ quiet, maxWait, pass, key }) =>
      withKey(
        { quiet, ...(maxWait === undefined ? {} : { maxWait }), ...(pass === undefined ? {} : { pass }) },
        key,
      ),
    );
const genRateLimit = (excess: 'drop' | 'delay') =>
  fc
    .record({
      max: fc.integer({ min: 1, max: 3 }),
      per: genWindow,
      maxQueue: maybe(fc.integer({ min: 1, max: 3 })),
      key: genBy,
    })
    .map(({ max, per, maxQueue, key }) =>
      withKey(
        { max, per, excess, ...(excess === 'delay' && maxQueue !== undefined ? { maxQueue } : {}) },
        key,
      ),
    );
const genBatch = fc
  .record({ size: fc.integer({ min: 1, max: 4 }), window: genWindow, key: genBy })
  .map(({ size, window, key }) => withKey({ size, window }, key));

// --- rule → rulebook YAML (JSON is YAML) ---

function subDoc(s: RefSub, named = true): Record<string, unknown> {
  return {
    ...(named ? { name: s.name } : {}),
    pattern: { type: [...s.types] },
    ...(s.if ? { if: s.if.cel } : {}),
  };
}

function whenDoc(w: RefWhen): Record<string, unknown> {
  const by = 'by' in w && w.by ? { by: w.by.cel } : {};
  switch (w.kind) {
    case 'single':
      return subDoc(w.sub, false);
    case 'any':
      return { any: w.subs.map((s) => subDoc(s)) };
    case 'all':
      return { all: w.subs.map((s) => subDoc(s)), within: w.within, ...by };
    case 'sequence':
      return { sequence: w.subs.map((s) => subDoc(s)), within: w.within, ...by };
    case 'absence':
      return {
        absence: { after: subDoc(w.after, false), expect: subDoc(w.expect, false), within: w.within },
        ...by,
      };
    case 'count':
      return { count: { ...subDoc(w.sub, false), atLeast: w.atLeast, within: w.within }, ...by };
  }
}

function stageDoc<T extends { key?: RefKey }>(spec: T | undefined): Record<string, unknown> | undefined {
  if (!spec) return undefined;
  const { key, ...rest } = spec;
  return { ...rest, ...(key ? { key: key.cel } : {}) };
}

function rulebookYaml(rule: RefRule): string {
  const doc: Record<string, unknown> = { name: 'r', when: whenDoc(rule.when) };
  for (const stage of ['dedupe', 'throttle', 'debounce', 'rateLimit', 'batch'] as const) {
    const d = stageDoc(rule[stage]);
    if (d) doc[stage] = d;
  }
  doc.then = [{ log: 'fired' }];
  return JSON.stringify({ rules: [doc] });
}

// --- the cases ---

/** One generated case; it prints as the rulebook and the events, so a counter-example can be replayed. */
interface Case {
  rule: RefRule;
  events: GenEvent[];
}

function makeCase(rule: RefRule, events: GenEvent[]): Case {
  return {
    rule,
    events,
    [fc.toStringMethod]: () =>
      `rulebook:\n${rulebookYaml(rule)}\nevents (gap ms, type, k, v):\n${JSON.stringify(
        events.map((e) => [e.gap, e.type, e.k ?? null, e.v]),
      )}`,
  } as Case;
}

const genCase = (rule: fc.Arbitrary<RefRule>) =>
  fc.tuple(rule, genEvents).map(([r, events]) => makeCase(r, events));

/** Sorts firings by time, then by what they name: the order of runs of one instant is not specified. */
function canonical(firings: readonly RefFiring[]): RefFiring[] {
  const text = (f: RefFiring) => JSON.stringify([f.event, f.events ?? null, f.batch ?? null]);
  return [...firings].sort((a, b) => a.at - b.at || text(a).localeCompare(text(b)));
}

/** Drives a real engine through the case and returns its runs as firings (times relative to start). */
async function engineFirings(c: Case): Promise<{ firings: RefFiring[]; history: RefEvent[] }> {
  const harness = await createEngineHarness(rulebookYaml(c.rule), { start });
  try {
    const { clock, engine, store } = harness;
    // Lets the engine finish what it started before the clock moves: the timer service is told of a
    // due timer by a clock callback, and one that lands while it winds down is lost (see below).
    const idle = () => new Promise((resolve) => setImmediate(resolve));
    const moveClock = async (to: number) => {
      await idle();
      clock.set(to);
    };
    // Everything logged so far is dispatched and no timer is due. Runs may still be executing: their
    // outcome events go into the log too, but no generated rule matches them.
    const quiet = async () => {
      const giveUp = Date.now() + 5000;
      for (;;) {
        const due = await store.nextTimerDueAt();
        if (due !== undefined && due <= clock.now()) {
          if (Date.now() > giveUp)
            throw new Error(
              `a timer due at +${due - start} ms was never fired (the clock is at +${clock.now() - start} ms)`,
            );
          await new Promise((resolve) => setTimeout(resolve, 1));
          continue;
        }
        await engine.caughtUp();
        const after = await store.nextTimerDueAt();
        if (after === undefined || after > clock.now()) return;
      }
    };
    // Timers become log events at their due time, before anything that comes at or after it.
    const fireTimersUpTo = async (until: number) => {
      for (let i = 0; i < 10_000; i++) {
        await quiet();
        const due = await store.nextTimerDueAt();
        if (due === undefined || due > until) return;
        await moveClock(Math.max(due, clock.now()));
      }
      throw new Error('timers kept falling due');
    };
    const history: RefEvent[] = [];
    let t = 0;
    for (const e of c.events) {
      t += e.gap;
      await fireTimersUpTo(start + t);
      await moveClock(start + t);
      const data = { ...(e.k === undefined ? {} : { k: e.k }), v: e.v };
      const [seq] = await harness.send({ type: e.type, data });
      history.push({ seq: seq!, t, type: e.type, data });
    }
    await fireTimersUpTo(Number.POSITIVE_INFINITY);
    const runs = await store.listRuns({ limit: 10_000, rule: 'r' });
    const firings: RefFiring[] = [];
    for (const run of runs) {
      const trigger = await store.getEvent(run.trigger.seq);
      const f: RefFiring = { at: trigger!.receivedAt - start, event: run.context.event };
      if (run.context.events) f.events = run.context.events;
      if (run.context.batch) f.batch = run.context.batch;
      firings.push(f);
    }
    return { firings, history };
  } finally {
    await harness.close();
  }
}

async function check(c: Case): Promise<void> {
  const { firings, history } = await engineFirings(c);
  const expected = referenceFirings(c.rule, history, Number.POSITIVE_INFINITY);
  expect(canonical(firings)).toEqual(canonical(expected));
}

/**
 * Asserts the property for `numRuns` generated cases. The time limit bounds a run on a loaded machine:
 * past it no new case starts (the run passes if none failed); a failure found in time is still shrunk
 * and reported within it, with fast-check's seed and path to replay it.
 */
const property = (rule: fc.Arbitrary<RefRule>, numRuns: number) =>
  fc.assert(fc.asyncProperty(genCase(rule), check), {
    numRuns,
    plugins: [fc.interruptAfterTimeLimit(30_000)],
  });

const only = (when: fc.Arbitrary<RefWhen>) => when.map((w): RefRule => ({ when: w }));
const onSingle = <K extends 'dedupe' | 'throttle' | 'debounce' | 'rateLimit' | 'batch'>(
  stage: K,
  spec: fc.Arbitrary<NonNullable<RefRule[K]>>,
) => fc.tuple(genSingle, spec).map(([w, s]): RefRule => ({ when: w, [stage]: s }));

const timeout = 60_000;

describe('flow properties - the engine fires as the reference model of the spec', () => {
  it('single - every matching event fires', () => property(only(genSingle), 25), timeout);
  it('any - an event matching some subs fires once, naming each', () => property(only(genAny), 40), timeout);
  // Fails while the engine drops a partial `all` match whole once its oldest held event leaves the
  // window (see 'a held event outlives...' below). Shrunk counter-example:
  //   all: [b] as s0, [b] as s1, [a] as s2, within 3s
  //   events (gap ms, type): [0, a] [3000, b] [999, b] [0, a]
  //   expected one firing at 3.999s: { s0: b@3s, s1: b@3.999s, s2: a@3.999s }; the engine fires none.
  it('all - one event per sub within the window, per key', () => property(only(genAll), 100), timeout);
  it('sequence - subs in order within the window, per key', () => property(only(genSequence), 80), timeout);
  it(
    'absence - fires at the deadline when expect did not come',
    () => property(only(genAbsence), 80),
    timeout,
  );
  it(
    'count - atLeast events within the sliding window, per key',
    () => property(only(genCount), 60),
    timeout,
  );
  it(
    'dedupe - a repeated key within the window is dropped before when',
    () => property(onSingle('dedupe', genDedupe), 50),
    timeout,
  );
  it(
    'throttle - one firing per key per window',
    () => property(onSingle('throttle', genThrottle), 50),
    timeout,
  );
  it(
    'debounce - one firing per key after the quiet time',
    () => property(onSingle('debounce', genDebounce(genBy)), 80),
    timeout,
  );
  it('rateLimit - excess dropped', () => property(onSingle('rateLimit', genRateLimit('drop')), 50), timeout);
  it(
    'rateLimit - excess delayed until a slot frees',
    () => property(onSingle('rateLimit', genRateLimit('delay')), 80),
    timeout,
  );
  it(
    'batch - size firings, or what came within the window, as one',
    () => property(onSingle('batch', genBatch), 60),
    timeout,
  );
  it(
    "count then throttle - throttles the count's firings",
    () =>
      property(
        fc
          .tuple(genCount, genThrottleAfterCorrelation)
          .map(([when, throttle]): RefRule => ({ when, throttle })),
        50,
      ),
    timeout,
  );
  // Fails for the same reason as 'all'. Shrunk counter-example:
  //   all: [a] as s0, [b, c] as s1, [a] as s2, within 2s; debounce: quiet 500ms
  //   events (gap ms, type): [0, a] [1000, a] [1001, a] [0, a] [0, b] [0, a]
  //   expected at 2.501s events { s0: #4, s1: #5, s2: #2 }; the engine: { s0: #3, s1: #5, s2: #4 }.
  it(
    "all then debounce - debounces the correlation's firings",
    () =>
      property(
        fc
          .tuple(genAll, genDebounce(genByAfterCorrelation))
          .map(([when, debounce]): RefRule => ({ when, debounce })),
        60,
      ),
    timeout,
  );
});

describe('flow properties - counter-examples found, kept as fixed cases', () => {
  const [a, b, c] = [sub('s0', ['a']), sub('s1', ['b']), sub('s2', ['c'])];
  const event = (gap: number, type: string): GenEvent => ({ gap, type, v: 0 });

  // Shrunk from 'all then debounce' (all: [a], [b, c], [c] within 3s; debounce quiet 500ms) and then by
  // hand. At 3.001s the a of 0s is out of the window but the b of 2s is not; the engine forgets both.
  it('all - a held event outlives an older one that left the window', () =>
    check(
      makeCase({ when: { kind: 'all', subs: [a, b, c], within: 3000 } }, [
        event(0, 'a'), // held in s0 until 3s
        event(2000, 'b'), // held in s1 until 5s
        event(1001, 'c'), // 3.001s: s0 is empty again, s1 still holds b
        event(0, 'a'), // fires { s0: a, s1: b, s2: c }
      ]),
    ));
});

describe('timer service - a due timer is fired whenever the clock reaches it', () => {
  // Found by the properties: a run stopped with a timer due and never fired. The clock's callback for
  // the timer came while the timer service was finishing a look at the timers; the request was noted
  // and then dropped, and the callback is not called again.
  it('timers - the clock reaching the due time at any moment of a look fires the timer', async () => {
    const lost: number[] = [];
    for (let depth = 0; depth < 12; depth++) {
      const dir = await mkdtemp(join(tmpdir(), 'reflex-timers-'));
      const store = await createSqliteStore({ dir });
      try {
        const clock = createTestClock(1000);
        await store.commitDispatch({
          consumer: 'dispatcher',
          partition: 0,
          offset: 0,
          runs: [],
          audit: [],
          timers: [{ rule: 'r', stage: 'when', key: '""', due: 2000 }],
        });
        const timers = createTimerService({ store, clock, logger: silentLogger, onFired: () => {} });
        timers.start();
        // The clock reaches the due time `depth` microtasks after the service started its first look.
        let reach = () => clock.set(2000);
        for (let i = 0; i < depth; i++) {
          const next = reach;
          reach = () => queueMicrotask(next);
        }
        reach();
        await new Promise((resolve) => setTimeout(resolve, 20));
        clock.set(clock.now());
        await new Promise((resolve) => setTimeout(resolve, 20));
        if ((await store.nextTimerDueAt()) !== undefined) lost.push(depth);
        await timers.drain();
      } finally {
        await store.close();
        await rm(dir, { recursive: true, force: true });
      }
    }
    expect(lost).toEqual([]);
  });
});
