import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  cleanupReflex,
  getJson,
  makeTempDir,
  pollUntil,
  postEvents,
  type ReflexProcess,
  startReflex,
} from '../helpers/reflex-process.js';
import { dropE2eSchemas, type E2eStore, e2eBackends } from '../helpers/store-backends.js';

/**
 * Flow state against `kill -9` of the real process: a partial match, a storm-control window or a timer
 * set before the kill is still there after a restart on the same data dir. A correlation still fires
 * exactly once, a window still suppresses (and ends when it should), and a timer fires exactly once after
 * the restart, also when its deadline passed while the process was down.
 *
 * This is real time (a real process has no test clock). `windowMs` must be longer than a restart (about
 * 4 s with tsx on a loaded machine); the `-late` rules' `lateMs` must be shorter than one, and longer
 * than the time from sending their events to the kill. Each test checks that it kept to this, so a
 * machine too slow for it gives a clear failure rather than a puzzling one.
 */

const windowMs = 15_000;
const lateMs = 3_000;
const window = `${windowMs / 1000}s`;
const late = `${lateMs / 1000}s`;

/** One rule per construct, plus a short-deadline twin of each timer construct for the late timer. */
const rulebook = `name: flow-restart
rules:
  - name: all
    when:
      all:
        - { name: deploy, pattern: { type: [all.deploy] } }
        - { name: errors, pattern: { type: [all.error] } }
      within: ${window}
      by: event.data.k
    then: [ { log: "all \${{ event.data.k }}" } ]
  - name: sequence
    when:
      sequence:
        - { name: opened, pattern: { type: [sequence.opened] } }
        - { name: approved, pattern: { type: [sequence.approved] } }
        - { name: merged, pattern: { type: [sequence.merged] } }
      within: ${window}
      by: event.data.k
    then: [ { log: "sequence \${{ event.data.k }}" } ]
  - name: count
    when:
      count: { pattern: { type: [count.failed] }, atLeast: 3, within: ${window} }
      by: event.data.k
    then: [ { log: "count \${{ event.data.k }}" } ]
  - name: throttle
    when: { pattern: { type: [throttle.alert] } }
    throttle: { key: event.data.k, window: ${window} }
    then: [ { log: "throttle \${{ event.data.k }}" } ]
  - name: dedupe
    when: { pattern: { type: [dedupe.order] } }
    dedupe: { key: event.data.k, window: ${window} }
    then: [ { log: "dedupe \${{ event.data.k }}" } ]
  - name: rate-limit
    when: { pattern: { type: [rate-limit.page] } }
    rateLimit: { key: event.data.k, max: 1, per: ${window}, excess: drop }
    then: [ { log: "rate-limit \${{ event.data.k }}" } ]
  - name: absence
    when:
      absence:
        after: { name: started, pattern: { type: [absence.started] } }
        expect: { name: finished, pattern: { type: [absence.finished] } }
        within: ${window}
      by: event.data.k
    then: [ { log: "absence \${{ event.data.k }}" } ]
  - name: absence-late
    when:
      absence:
        after: { name: started, pattern: { type: [absence-late.started] } }
        expect: { name: finished, pattern: { type: [absence-late.finished] } }
        within: ${late}
      by: event.data.k
    then: [ { log: "absence-late \${{ event.data.k }}" } ]
  - name: debounce
    when: { pattern: { type: [debounce.changed] } }
    debounce: { key: event.data.k, quiet: ${window}, pass: all }
    then: [ { log: "debounce \${{ event.data.k }}" } ]
  - name: debounce-late
    when: { pattern: { type: [debounce-late.changed] } }
    debounce: { key: event.data.k, quiet: ${late}, pass: all }
    then: [ { log: "debounce-late \${{ event.data.k }}" } ]
  - name: batch
    when: { pattern: { type: [batch.item] } }
    batch: { key: event.data.k, size: 3, window: ${window} }
    then: [ { log: "batch \${{ event.data.k }}" } ]
  - name: batch-late
    when: { pattern: { type: [batch-late.item] } }
    batch: { key: event.data.k, size: 3, window: ${late} }
    then: [ { log: "batch-late \${{ event.data.k }}" } ]
`;

const source = 'flow-restart';
let counter = 0;

/** An event of `type` whose key (`event.data.k`) is `k`. */
function ev(type: string, k: string) {
  return { specversion: '1.0', id: `fr-${process.pid}-${++counter}`, source, type, data: { k } };
}

interface RunItem {
  id: string;
  rule: string;
  ordinal: number;
  trigger: { seq: number; id: string; source: string; type: string };
  context: { event: number; events?: Record<string, number>; batch?: number[] };
}

interface LoggedItem {
  seq: number;
  receivedAt: string;
  event: { id: string; type: string; source: string; data?: Record<string, unknown> };
}

interface RuleExplanation {
  rule: string;
  verdict: string;
  reason: string;
}

/** A process lifetime on one data dir. */
interface Node {
  reflex: ReflexProcess;
  url: string;
  /** Date.now() just before it was spawned. */
  spawnedAt: number;
}

async function startNode(dir: string, store: E2eStore): Promise<Node> {
  const rules = join(dir, 'rules.yaml');
  await writeFile(rules, rulebook);
  const spawnedAt = Date.now();
  const reflex = await startReflex(
    ['start', rules, '--port', '0', '--data', join(dir, 'data'), '--log-level', 'warn', ...store.startArgs],
    { readyTimeoutMs: 30_000 },
  );
  return { reflex, url: reflex.url, spawnedAt };
}

/** `kill -9`, and waits until the process is gone. */
async function kill9(node: Node): Promise<void> {
  node.reflex.signal('SIGKILL');
  expect(await node.reflex.waitForExit()).toEqual({ code: null, signal: 'SIGKILL' });
}

/** Posts events as one batch (in this order) and returns their seqs. */
async function send(url: string, ...events: ReturnType<typeof ev>[]): Promise<number[]> {
  const { status, body } = await postEvents(url, events);
  expect(status).toBe(202);
  return (body as { items: Array<{ seq: number }> }).items.map((item) => item.seq);
}

async function explain(url: string, seq: number) {
  return getJson<{ dispatched: boolean; rules: RuleExplanation[] }>(url, `/api/v1/events/${seq}/explain`);
}

/** Waits until explain says the event at `seq` (and so every one before it) is dispatched. */
async function dispatched(url: string, seq: number): Promise<void> {
  await pollUntil(async () => (await explain(url, seq)).dispatched, {
    timeoutMs: 20_000,
    intervalMs: 50,
    what: `dispatch of seq ${seq}`,
  });
}

/** What one rule says about the event at `seq`. */
async function verdictOf(url: string, seq: number, rule: string): Promise<RuleExplanation> {
  const found = (await explain(url, seq)).rules.find((r) => r.rule === rule);
  if (!found) throw new Error(`explain of seq ${seq} has no rule ${rule}`);
  return found;
}

/** The runs of `rule`, oldest trigger first (runs are created with the dispatch, so no wait is needed). */
async function runsOf(url: string, rule: string): Promise<RunItem[]> {
  const page = await getJson<{ items: RunItem[] }>(
    url,
    `/api/v1/runs?rule=${encodeURIComponent(rule)}&limit=1000`,
  );
  return page.items.sort((a, b) => a.trigger.seq - b.trigger.seq || a.ordinal - b.ordinal);
}

async function eventAt(url: string, seq: number): Promise<LoggedItem> {
  return getJson<LoggedItem>(url, `/api/v1/events/${seq}`);
}

/** Log time of the event at `seq` in ms (what the dispatcher's windows count from). */
async function timeOf(url: string, seq: number): Promise<number> {
  return Date.parse((await eventAt(url, seq)).receivedAt);
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The `reflex.timer` event that triggered `run`: its rule, stage, key and due time, and when it was
 * logged.
 */
async function timerOf(url: string, run: RunItem) {
  expect(run.trigger.type).toBe('reflex.timer');
  const logged = await eventAt(url, run.trigger.seq);
  const data = logged.event.data as { rule: string; stage: string; key: string; due: number };
  return { ...data, loggedAt: Date.parse(logged.receivedAt) };
}

/** Fails with a clear message when the machine was too slow for the windows this file relies on. */
function withinWindow(since: number, what: string): void {
  const elapsed = Date.now() - since;
  expect(
    elapsed,
    `${what} took ${elapsed} ms, too close to the ${windowMs} ms windows: the machine is too loaded for this test`,
  ).toBeLessThan(windowMs - 3000);
}

afterEach(cleanupReflex);

afterAll(dropE2eSchemas);

const backends = await e2eBackends();

describe.each(backends)('flow state across kill -9 ($name)', (backend) => {
  it('flow restart - correlations fire exactly once and storm-control windows still suppress after kill -9', async () => {
    const store = backend.make();
    const dir = await makeTempDir('reflex-flow-restart-');
    const first = await startNode(dir, store);

    // The first half of every correlation, and the first firing of every window, then kill -9.
    const [deployA, errorB, openedA, approvedA, openedB, failedA1, failedA2, alertA, orderA, pageA] =
      (await send(
        first.url,
        ev('all.deploy', 'a'),
        ev('all.error', 'b'),
        ev('sequence.opened', 'a'),
        ev('sequence.approved', 'a'),
        ev('sequence.opened', 'b'),
        ev('count.failed', 'a'),
        ev('count.failed', 'a'),
        ev('throttle.alert', 'a'),
        ev('dedupe.order', 'a'),
        ev('rate-limit.page', 'a'),
      )) as [number, number, number, number, number, number, number, number, number, number];
    const t0 = await timeOf(first.url, deployA);
    await dispatched(first.url, pageA);
    for (const rule of ['all', 'sequence', 'count']) expect(await runsOf(first.url, rule)).toEqual([]);
    for (const rule of ['throttle', 'dedupe', 'rate-limit'])
      expect(await runsOf(first.url, rule)).toHaveLength(1);
    await kill9(first);

    const second = await startNode(dir, store);
    withinWindow(t0, 'sending, kill -9 and restart');
    const [errorA1, errorA2, deployB, mergedA, approvedB, mergedB, mergedC, failedA3, failedA4] = (await send(
      second.url,
      ev('all.error', 'a'), // completes a's `all`: fires
      ev('all.error', 'a'), // the match was cleared when it fired: held anew
      ev('all.deploy', 'b'), // completes b's `all`, whose first event was the error: fires
      ev('sequence.merged', 'a'), // a had opened and approved: fires
      ev('sequence.approved', 'b'),
      ev('sequence.merged', 'b'), // b had opened: approved then merged fire
      ev('sequence.merged', 'c'), // nothing held for c: ignored
      ev('count.failed', 'a'), // the third within the window: fires
      ev('count.failed', 'a'), // counted afresh: 1 of 3
    )) as [number, number, number, number, number, number, number, number, number];
    const [alertA2, alertB, orderA2, orderB, pageA2, pageB] = (await send(
      second.url,
      ev('throttle.alert', 'a'),
      ev('throttle.alert', 'b'),
      ev('dedupe.order', 'a'),
      ev('dedupe.order', 'b'),
      ev('rate-limit.page', 'a'),
      ev('rate-limit.page', 'b'),
    )) as [number, number, number, number, number, number];
    await dispatched(second.url, pageB);
    withinWindow(t0, 'the second half');

    // Correlations: each fired exactly once per key, with the events from both lifetimes.
    const all = await runsOf(second.url, 'all');
    expect(all.map((r) => [r.trigger.seq, r.context])).toEqual([
      [errorA1, { event: errorA1, events: { deploy: deployA, errors: errorA1 } }],
      [deployB, { event: deployB, events: { deploy: deployB, errors: errorB } }],
    ]);
    const sequence = await runsOf(second.url, 'sequence');
    expect(sequence.map((r) => [r.trigger.seq, r.context])).toEqual([
      [mergedA, { event: mergedA, events: { opened: openedA, approved: approvedA, merged: mergedA } }],
      [mergedB, { event: mergedB, events: { opened: openedB, approved: approvedB, merged: mergedB } }],
    ]);
    const count = await runsOf(second.url, 'count');
    expect(count.map((r) => [r.trigger.seq, r.context])).toEqual([
      [failedA3, { event: failedA3, batch: [failedA1, failedA2, failedA3] }],
    ]);

    // Windows: the key that fired before the kill is still suppressed after it; another key passes.
    expect((await runsOf(second.url, 'throttle')).map((r) => r.trigger.seq)).toEqual([alertA, alertB]);
    expect((await runsOf(second.url, 'dedupe')).map((r) => r.trigger.seq)).toEqual([orderA, orderB]);
    expect((await runsOf(second.url, 'rate-limit')).map((r) => r.trigger.seq)).toEqual([pageA, pageB]);

    // Explain, from the audit written by both lifetimes: held with its key; suppressed with key and until.
    const held = async (seq: number, rule: string, waiting: string) => {
      const explanation = await verdictOf(second.url, seq, rule);
      expect(explanation.verdict, explanation.reason).toBe('held');
      expect(explanation.reason).toContain('(key "a")');
      expect(explanation.reason).toContain(waiting);
    };
    await held(deployA, 'all', 'for errors');
    await held(errorA2, 'all', 'for deploy');
    await held(approvedA, 'sequence', 'step 2 of 3, next merged');
    await held(failedA2, 'count', '2 of 3');
    await held(failedA4, 'count', '1 of 3');
    expect((await verdictOf(second.url, errorA1, 'all')).verdict).toBe('fired');

    const suppressed = async (seq: number, rule: string, by: string, firstSeq: number) => {
      const explanation = await verdictOf(second.url, seq, rule);
      expect(explanation.verdict, explanation.reason).toBe('suppressed');
      expect(explanation.reason).toContain(`by ${by} (key "a")`);
      // The window runs from the firing before the kill, in log time: restored, not restarted.
      expect(explanation.reason).toContain(`until ${iso((await timeOf(second.url, firstSeq)) + windowMs)}`);
    };
    await suppressed(alertA2, 'throttle', 'throttle', alertA);
    await suppressed(orderA2, 'dedupe', 'dedupe', orderA);
    await suppressed(pageA2, 'rate-limit', 'rateLimit', pageA);

    // An event that matches a later step with nothing held did not advance the sequence. The rule has no
    // `if`, so explain must not blame one. (Known bug, kept failing: decideForEvent audits
    // rule.condition-false whenever no sub's `if` was evaluated true — here none was evaluated at all —
    // so explain says "no matching sub-condition's `if` was false" instead of `ignored`.)
    const ignored = await verdictOf(second.url, mergedC, 'sequence');
    expect(ignored.verdict, ignored.reason).toBe('ignored');
  }, 90_000);

  it('flow restart - timers set before kill -9 fire exactly once after the restart, also when their deadline passed while down', async () => {
    const store = backend.make();
    const dir = await makeTempDir('reflex-flow-restart-');
    const first = await startNode(dir, store);

    // Timers: each first event sets one; `-late` rules' deadlines pass while the process is down.
    const seqs = await send(
      first.url,
      ev('absence.started', 'a'), // nothing follows: fires at its deadline, after the restart
      ev('absence.started', 'b'), // finished after the restart: never fires
      ev('debounce.changed', 'a'), // another change after the restart pushes the deadline
      ev('batch.item', 'a'), // one more after the restart; the window ends the batch of two
      ev('batch.item', 'b'),
      ev('batch.item', 'b'), // one more after the restart makes three: fires at once
      ev('absence-late.started', 'a'),
      ev('absence-late.started', 'b'), // its `finished` comes after the restart, after the deadline
      ev('debounce-late.changed', 'a'),
      ev('debounce-late.changed', 'b'), // another change after the restart, after the deadline
      ev('batch-late.item', 'a'),
      // Windows whose end is checked after the restart.
      ev('throttle.alert', 'a'),
      ev('dedupe.order', 'a'),
      ev('rate-limit.page', 'a'),
      ev('all.deploy', 'a'),
      ev('count.failed', 'a'),
      ev('count.failed', 'a'),
    );
    const [startedA, , changedA, itemA1, itemB1, itemB2, lateStartedA, lateStartedB] = seqs as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const [lateChangedA, lateChangedB, lateItemA, alertA, orderA, pageA] = seqs.slice(8) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const t0 = await timeOf(first.url, startedA);
    const tChangedA = await timeOf(first.url, changedA);
    const tItemA1 = await timeOf(first.url, itemA1);
    // Every -late deadline has passed once the last event of the batch is lateMs old.
    const lateDeadline = (await timeOf(first.url, seqs.at(-1)!)) + lateMs;
    await dispatched(first.url, seqs.at(-1)!);
    await kill9(first);
    expect(
      Date.now() - t0,
      'the -late rules must not come due before the kill: the machine is too loaded',
    ).toBeLessThan(lateMs - 500);

    // Down until every `-late` deadline has passed: the restart finds them overdue.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, lateDeadline + 200 - Date.now())));
    const second = await startNode(dir, store);
    withinWindow(t0, 'sending, kill -9 and restart');
    const [, changedA2, itemA2, itemB3, , lateChangedB2] = (await send(
      second.url,
      ev('absence.finished', 'b'),
      ev('debounce.changed', 'a'),
      ev('batch.item', 'a'),
      ev('batch.item', 'b'),
      ev('absence-late.finished', 'b'),
      ev('debounce-late.changed', 'b'),
    )) as [number, number, number, number, number, number];
    const [alertA2, orderA2, pageA2] = await send(
      second.url,
      ev('throttle.alert', 'a'),
      ev('dedupe.order', 'a'),
      ev('rate-limit.page', 'a'),
    );
    await dispatched(second.url, pageA2!);
    withinWindow(t0, 'the second half');
    const tChangedA2 = await timeOf(second.url, changedA2);

    // Explain of what waits: held or held back, with its key and until when.
    const waiting = async (seq: number, rule: string, verdict: string, text: string) => {
      const explanation = await verdictOf(second.url, seq, rule);
      expect(explanation.verdict, explanation.reason).toBe(verdict);
      expect(explanation.reason).toContain('(key "a")');
      expect(explanation.reason).toContain(text);
    };
    await waiting(startedA, 'absence', 'held', `for finished until ${iso(t0 + windowMs)}`);
    await waiting(
      changedA,
      'debounce',
      'suppressed',
      `held back by debounce (key "a") until ${iso(tChangedA + windowMs)}`,
    );
    await waiting(changedA2, 'debounce', 'suppressed', `until ${iso(tChangedA2 + windowMs)}`);
    await waiting(itemA1, 'batch', 'held', `1 of 3 until ${iso(tItemA1 + windowMs)}`);
    await waiting(itemA2, 'batch', 'held', `2 of 3 until ${iso(tItemA1 + windowMs)}`);
    for (const rule of ['throttle', 'dedupe', 'rate-limit']) {
      const seq = { throttle: alertA2, dedupe: orderA2, 'rate-limit': pageA2 }[rule]!;
      expect((await verdictOf(second.url, seq, rule)).verdict).toBe('suppressed');
    }

    // Every timer fires: the overdue ones at the restart, the others at their deadline.
    const expected = {
      absence: 1,
      'absence-late': 2,
      debounce: 1,
      'debounce-late': 3,
      batch: 2,
      'batch-late': 1,
    };
    const runs = await pollUntil(
      async () => {
        const found = Object.fromEntries(
          await Promise.all(
            Object.keys(expected).map(async (rule) => [rule, await runsOf(second.url, rule)]),
          ),
        ) as Record<keyof typeof expected, RunItem[]>;
        const done = Object.entries(expected).every(
          ([rule, n]) => found[rule as keyof typeof expected].length >= n,
        );
        return done && found;
      },
      {
        timeoutMs: Math.max(5000, tChangedA2 + windowMs + 10_000 - Date.now()),
        intervalMs: 200,
        what: 'every timer to fire',
      },
    );

    // On time, after the restart.
    expect(runs.absence.map((r) => r.context)).toEqual([{ event: startedA, events: { started: startedA } }]);
    const absenceTimer = await timerOf(second.url, runs.absence[0]!);
    expect(absenceTimer).toMatchObject({ rule: 'absence', stage: 'when', key: '"a"', due: t0 + windowMs });
    expect(runs.debounce.map((r) => r.context)).toEqual([{ event: changedA2, batch: [changedA, changedA2] }]);
    expect(await timerOf(second.url, runs.debounce[0]!)).toMatchObject({ due: tChangedA2 + windowMs });
    expect(runs.batch.map((r) => [r.trigger.seq, r.context])).toEqual([
      [itemB3, { event: itemB3, batch: [itemB1, itemB2, itemB3] }],
      [expect.any(Number), { event: itemA2, batch: [itemA1, itemA2] }],
    ]);
    expect(await timerOf(second.url, runs.batch[1]!)).toMatchObject({ key: '"a"', due: tItemA1 + windowMs });
    for (const run of [runs.absence[0]!, runs.debounce[0]!, runs.batch[1]!]) {
      expect((await timerOf(second.url, run)).loggedAt).toBeGreaterThanOrEqual(second.spawnedAt);
    }

    // Late: due while the process was down, logged by the second process, fired once. An event for the
    // same key that raced the late timer sees the deadline settled first, as the spec says.
    expect(runs['absence-late'].map((r) => r.context)).toEqual([
      { event: lateStartedA, events: { started: lateStartedA } },
      { event: lateStartedB, events: { started: lateStartedB } },
    ]);
    expect(runs['debounce-late'].map((r) => r.context)).toEqual([
      { event: lateChangedA, batch: [lateChangedA] },
      { event: lateChangedB, batch: [lateChangedB] },
      { event: lateChangedB2, batch: [lateChangedB2] },
    ]);
    expect(runs['batch-late'].map((r) => r.context)).toEqual([{ event: lateItemA, batch: [lateItemA] }]);
    const overdue = [
      runs['absence-late'][0]!,
      runs['debounce-late'][0]!,
      runs['debounce-late'][1]!,
      runs['batch-late'][0]!,
    ];
    for (const run of overdue) {
      const timer = await timerOf(second.url, run);
      expect(timer.due).toBe((await timeOf(second.url, run.context.event)) + lateMs);
      expect(timer.due).toBeLessThan(second.spawnedAt);
      expect(timer.loggedAt).toBeGreaterThanOrEqual(second.spawnedAt);
    }

    // Windows end where they would have without the kill: after it, the same key passes again, and
    // held correlation events have expired.
    const gone = Math.max(0, lateDeadline - lateMs + windowMs + 100 - Date.now());
    await new Promise((resolve) => setTimeout(resolve, gone));
    const [alertA3, orderA3, pageA3, errorA, failedA3] = (await send(
      second.url,
      ev('throttle.alert', 'a'),
      ev('dedupe.order', 'a'),
      ev('rate-limit.page', 'a'),
      ev('all.error', 'a'),
      ev('count.failed', 'a'),
    )) as [number, number, number, number, number];
    await dispatched(second.url, failedA3);
    expect((await runsOf(second.url, 'throttle')).map((r) => r.trigger.seq)).toEqual([alertA, alertA3]);
    expect((await runsOf(second.url, 'dedupe')).map((r) => r.trigger.seq)).toEqual([orderA, orderA3]);
    expect((await runsOf(second.url, 'rate-limit')).map((r) => r.trigger.seq)).toEqual([pageA, pageA3]);
    expect(await runsOf(second.url, 'all')).toEqual([]);
    expect(await runsOf(second.url, 'count')).toEqual([]);
    expect((await verdictOf(second.url, errorA, 'all')).reason).toContain('waiting: for deploy');
    expect((await verdictOf(second.url, failedA3, 'count')).reason).toContain('1 of 3');

    // A third lifetime: replaying from the offset after another kill -9 doubles nothing, and no timer
    // is left behind.
    const before = Object.fromEntries(
      await Promise.all(
        Object.keys(expected).map(async (rule) => [rule, (await runsOf(second.url, rule)).map((r) => r.id)]),
      ),
    );
    // Nothing fired again while the windows ran out.
    expect(before).toEqual(
      Object.fromEntries(Object.entries(runs).map(([rule, list]) => [rule, list.map((r) => r.id)])),
    );
    await kill9(second);
    const third = await startNode(dir, store);
    const [marker] = await send(third.url, ev('marker', 'a'));
    await dispatched(third.url, marker!);
    const after = Object.fromEntries(
      await Promise.all(
        Object.keys(expected).map(async (rule) => [rule, (await runsOf(third.url, rule)).map((r) => r.id)]),
      ),
    );
    expect(after).toEqual(before);
    const reader = await store.open(join(dir, 'data'), { readonly: true });
    try {
      expect(await reader.nextTimerDueAt()).toBeUndefined();
    } finally {
      await reader.close();
    }
  }, 120_000);
});

describe('executor at its concurrency limit (found while writing the tests above)', () => {
  it('executor - more due runs than --concurrency all execute, and the process keeps answering meanwhile', async () => {
    // Known bug, kept failing: with every slot busy and runs still due, the executor's loop asks the
    // store for the next due time, schedules a wake-up at that (past) time — which the system clock runs
    // synchronously — and loops again, all in microtasks. The event loop starves: the running steps'
    // I/O never completes, timers never fire, HTTP is never answered. The process hangs for good.
    const dir = await makeTempDir('reflex-flow-restart-');
    const rules = join(dir, 'rules.yaml');
    await writeFile(
      rules,
      `rules:
  - name: slow
    when: { pattern: { type: [slow] } }
    then: [ { exec: { command: [sleep, "0.2"] } } ]
`,
    );
    const slots = 1;
    const reflex = await startReflex(
      [
        'start',
        rules,
        '--port',
        '0',
        '--data',
        join(dir, 'data'),
        '--log-level',
        'warn',
        '--concurrency',
        `${slots}`,
      ],
      { readyTimeoutMs: 30_000 },
    );
    const total = slots + 2;
    await send(reflex.url, ...Array.from({ length: total }, () => ev('slow', 'a')));
    const answered = await pollUntil(
      async () => {
        const page = await getJson<{ items: Array<{ status: string }> }>(
          reflex.url,
          '/api/v1/runs?rule=slow&limit=10',
        ).catch(() => 'no answer' as const);
        if (page === 'no answer') return page;
        return page.items.filter((r) => r.status === 'succeeded').length === total && 'all succeeded';
      },
      { timeoutMs: 15_000, intervalMs: 100, what: `${total} runs through ${slots} slot(s) to succeed` },
    );
    expect(answered, 'the API stopped answering').toBe('all succeeded');
  }, 60_000);
});
