import Database from 'better-sqlite3';
import type { Delivery } from './chaos-target.js';

/**
 * The invariants the chaos loop checks, read from the SQLite file of the data dir (read-only, so they can
 * be checked while the node runs). Each returns the violations it found as sentences, never throws for
 * one: a run reports everything that broke at once.
 *
 * What is provable without trusting the engine: the log is checked against what the senders were told
 * (acknowledged ⊆ logged ⊆ sent); the runs of every rule are checked against a model of its rule computed
 * from the log alone (which events, in seq order and log time, must fire); runs, attempts, outcome events
 * and the target's deliveries are checked against each other.
 */

/** At most this many examples are quoted per violation. */
const examples = 5;

function sample(items: Iterable<unknown>): string {
  const all = [...items];
  const shown = all.slice(0, examples).map((item) => JSON.stringify(item));
  return `${shown.join(', ')}${all.length > examples ? `, … (${all.length} in all)` : ''}`;
}

function open(database: string): Database.Database {
  return new Database(database, { readonly: true, fileMustExist: true });
}

/**
 * After a restart: every acknowledged event is in the log exactly once, no (trigger, rule) has two runs,
 * and no attempt of a run's step is recorded twice.
 */
export function checkRestart(database: string, acked: ReadonlySet<string>, label: string): string[] {
  const db = open(database);
  try {
    const violations: string[] = [];
    const counts = new Map<string, number>();
    for (const { id } of db.prepare("SELECT id FROM events WHERE source = 'chaos'").all() as Array<{
      id: string;
    }>) {
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    const lost = [...acked].filter((id) => !counts.has(id));
    if (lost.length > 0)
      violations.push(`${label}: acknowledged events missing from the log: ${sample(lost)}`);
    const doubled = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
    if (doubled.length > 0) violations.push(`${label}: events logged more than once: ${sample(doubled)}`);
    const doubledRuns = db
      .prepare('SELECT trigger_seq, rule, count(*) AS n FROM runs GROUP BY trigger_seq, rule HAVING n > 1')
      .all();
    if (doubledRuns.length > 0)
      violations.push(`${label}: matches with more than one run: ${sample(doubledRuns)}`);
    const doubledAttempts = db
      .prepare(
        'SELECT run_id, step, attempt, count(*) AS n FROM attempts GROUP BY run_id, step, attempt HAVING n > 1',
      )
      .all();
    if (doubledAttempts.length > 0) {
      violations.push(`${label}: attempts recorded more than once: ${sample(doubledAttempts)}`);
    }
    return violations;
  } finally {
    db.close();
  }
}

interface EventRow {
  seq: number;
  source: string;
  id: string;
  type: string;
  receivedAt: number;
  k: string | undefined;
}

interface RunRow {
  id: string;
  rule: string;
  triggerSeq: number;
  status: string;
  context: { event: number; events?: Record<string, number>; batch?: number[] };
  errorCode: string | undefined;
}

interface AttemptRow {
  runId: string;
  step: number;
  stepId: string;
  attempt: number;
  status: string;
  errorCode: string | undefined;
}

/** What {@link checkFinal} compares the store with. */
export interface FinalInputs {
  acked: ReadonlySet<string>;
  sent: ReadonlySet<string>;
  deliveries: readonly Delivery[];
  overlaps: ReadonlyArray<{ key: string; at: number }>;
  timings: { throttleMs: number; quietMs: number };
}

/** The figures of the final store, and every violation found in it. */
export interface FinalResult {
  violations: string[];
  logged: number;
  runs: number;
  failedRuns: number;
  attempts: number;
  timers: number;
}

/** The steps of each rule of the chaos rulebook, and which of them call the target. */
const steps: Record<string, { ids: string[]; http: string[] }> = {
  deliver: { ids: ['deliver', 'remember'], http: ['deliver'] },
  burst: { ids: ['0'], http: [] },
  pair: { ids: ['0'], http: [] },
  gate: { ids: ['0'], http: [] },
  flap: { ids: ['settle'], http: ['settle'] },
};

/** Codes of attempts recorded without the step having been tried (its process died, or Reflex's own fault). */
const notTried = new Set(['REFLEX_ERR_RUN_ABANDONED', 'REFLEX_ERR_RUN_STEP_CRASHED']);

function codeOf(error: string | null): string | undefined {
  if (error === null) return undefined;
  return (JSON.parse(error) as { code?: string }).code;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/** Compares expected trigger seqs of `rule` with its runs: none missing, none stray, none doubled. */
function compareTriggers(rule: string, expected: readonly number[], runs: readonly RunRow[]): string[] {
  const violations: string[] = [];
  const actual = runs.filter((r) => r.rule === rule).map((r) => r.triggerSeq);
  const want = new Set(expected);
  const have = new Set(actual);
  const missing = expected.filter((seq) => !have.has(seq));
  const stray = actual.filter((seq) => !want.has(seq));
  const doubled = actual.filter((seq, i) => actual.indexOf(seq) !== i);
  if (missing.length > 0)
    violations.push(`${rule}: matches without a run (trigger seqs): ${sample(missing)}`);
  if (stray.length > 0)
    violations.push(`${rule}: runs the model does not expect (trigger seqs): ${sample(stray)}`);
  if (doubled.length > 0) violations.push(`${rule}: matches with more than one run: ${sample(doubled)}`);
  return violations;
}

/**
 * The expected runs of each rule, from the log alone, and the debounce batches, against the runs:
 * - deliver: one run per `chaos.order`;
 * - burst (`count` 3 by key): the 3rd, 6th, … `chaos.fail` of each key, in seq order;
 * - pair (`all` by a key used by one pair): the later of its two events, when both are logged;
 * - gate (`throttle` by key): an alert passes when no passed alert of its key is younger than the window,
 *   in log time;
 * - flap (`debounce` pass all by key): the batches partition the key's events into consecutive groups;
 *   events less than `quiet` apart share a group, more than `quiet` apart do not.
 */
function checkMatches(chaos: readonly EventRow[], runs: readonly RunRow[], inputs: FinalInputs): string[] {
  const violations: string[] = [];
  const ofType = (type: string) => chaos.filter((e) => e.type === type);

  violations.push(
    ...compareTriggers(
      'deliver',
      ofType('chaos.order').map((e) => e.seq),
      runs,
    ),
  );

  const bursts: number[] = [];
  for (const events of groupBy(ofType('chaos.fail'), (e) => e.k!).values()) {
    events.forEach((e, i) => {
      if ((i + 1) % 3 === 0) bursts.push(e.seq);
    });
  }
  violations.push(...compareTriggers('burst', bursts, runs));

  const pairs: number[] = [];
  const pairEvents = chaos.filter((e) => e.type === 'chaos.pair.opened' || e.type === 'chaos.pair.closed');
  for (const events of groupBy(pairEvents, (e) => e.k!).values()) {
    const types = new Set(events.map((e) => e.type));
    if (types.size === 2) pairs.push(Math.max(...events.map((e) => e.seq)));
  }
  violations.push(...compareTriggers('pair', pairs, runs));

  const passed: number[] = [];
  for (const events of groupBy(ofType('chaos.alert'), (e) => e.k!).values()) {
    let last: number | undefined;
    for (const e of events) {
      if (last === undefined || e.receivedAt - last >= inputs.timings.throttleMs) {
        passed.push(e.seq);
        last = e.receivedAt;
      }
    }
  }
  violations.push(...compareTriggers('gate', passed, runs));

  violations.push(...checkDebounce(ofType('chaos.flap'), runs, inputs.timings.quietMs));
  return violations;
}

function checkDebounce(flaps: readonly EventRow[], runs: readonly RunRow[], quietMs: number): string[] {
  const violations: string[] = [];
  const bySeq = new Map(flaps.map((e) => [e.seq, e]));
  const batchOf = new Map<number, string>();
  const twice: number[] = [];
  const flapRuns = runs.filter((r) => r.rule === 'flap');
  for (const run of flapRuns) {
    const batch = run.context.batch ?? [];
    for (const seq of batch) {
      if (batchOf.has(seq)) twice.push(seq);
      batchOf.set(seq, run.id);
    }
    const keys = new Set(batch.map((seq) => bySeq.get(seq)?.k));
    if (keys.size !== 1 || keys.has(undefined)) {
      violations.push(
        `flap: run ${run.id} batches events of several keys or unknown events: ${sample(batch)}`,
      );
    }
    if (run.context.event !== batch.at(-1)) {
      violations.push(`flap: run ${run.id} does not act on the last event of its batch`);
    }
  }
  if (twice.length > 0) violations.push(`flap: events released by more than one run: ${sample(twice)}`);
  const never = flaps.filter((e) => !batchOf.has(e.seq)).map((e) => e.seq);
  if (never.length > 0)
    violations.push(`flap: events never released (a debounce that did not close): ${sample(never)}`);
  for (const events of groupBy(flaps, (e) => e.k!).values()) {
    for (let i = 1; i < events.length; i++) {
      const before = events[i - 1]!;
      const after = events[i]!;
      const gap = after.receivedAt - before.receivedAt;
      const together = batchOf.get(before.seq) === batchOf.get(after.seq);
      if (together && gap > quietMs) {
        violations.push(
          `flap: seqs ${before.seq} and ${after.seq} are ${gap} ms apart but released together`,
        );
      } else if (!together && gap < quietMs && batchOf.has(before.seq) && batchOf.has(after.seq)) {
        violations.push(`flap: seqs ${before.seq} and ${after.seq} are ${gap} ms apart but released apart`);
      }
    }
  }
  return violations;
}

/**
 * Every run ended (succeeded, or failed only as abandoned), with exactly one outcome event; each step's
 * attempts are numbered 1..n, each recorded once, and a succeeded run has one succeeded attempt per step,
 * its last.
 */
function checkRuns(
  runs: readonly RunRow[],
  attempts: readonly AttemptRow[],
  events: readonly EventRow[],
): string[] {
  const violations: string[] = [];
  const open = runs.filter((r) => r.status !== 'succeeded' && r.status !== 'failed');
  if (open.length > 0) violations.push(`runs that never ended: ${sample(open.map((r) => [r.id, r.status]))}`);
  const badFailures = runs.filter((r) => r.status === 'failed' && r.errorCode !== 'REFLEX_ERR_RUN_ABANDONED');
  if (badFailures.length > 0) {
    violations.push(
      `runs failed for another reason than abandonment: ${sample(badFailures.map((r) => [r.id, r.errorCode]))}`,
    );
  }
  const outcomes = new Map<string, number>();
  for (const e of events) {
    if (e.source === 'reflex' && e.type.startsWith('reflex.run.'))
      outcomes.set(e.id, (outcomes.get(e.id) ?? 0) + 1);
  }
  const withoutOutcome: string[] = [];
  for (const run of runs) {
    if (run.status !== 'succeeded' && run.status !== 'failed') continue;
    const other = run.status === 'succeeded' ? 'failed' : 'succeeded';
    if (outcomes.get(`${run.id}.${run.status}`) !== 1 || outcomes.has(`${run.id}.${other}`)) {
      withoutOutcome.push(run.id);
    }
  }
  if (withoutOutcome.length > 0)
    violations.push(`runs without exactly one outcome event: ${sample(withoutOutcome)}`);

  const attemptsOf = groupBy(attempts, (a) => a.runId);
  const misnumbered: unknown[] = [];
  const unfinished: string[] = [];
  for (const run of runs) {
    const own = attemptsOf.get(run.id) ?? [];
    const spec = steps[run.rule];
    for (const [step, tries] of groupBy(own, (a) => String(a.step))) {
      const numbers = tries.map((a) => a.attempt);
      if (numbers.some((n, i) => n !== i + 1)) misnumbered.push({ run: run.id, step: Number(step), numbers });
      const successes = tries.filter((a) => a.status === 'succeeded').length;
      const last = tries.at(-1)!;
      if (successes > 1 || (successes === 1 && last.status !== 'succeeded')) {
        misnumbered.push({ run: run.id, step: Number(step), successes });
      }
    }
    if (run.status === 'succeeded' && spec) {
      const done = spec.ids.every((_, step) => own.some((a) => a.step === step && a.status === 'succeeded'));
      if (!done) unfinished.push(run.id);
    }
  }
  if (misnumbered.length > 0) {
    violations.push(
      `attempts not numbered 1..n, or recorded twice (a step tried twice at once): ${sample(misnumbered)}`,
    );
  }
  if (unfinished.length > 0)
    violations.push(`succeeded runs without a succeeded attempt of every step: ${sample(unfinished)}`);
  return violations;
}

/**
 * Every call to the target is for a step of a known run; every http step of a succeeded run reached the
 * target and got its 200; each recorded try (other than an abandonment) is one call at least; and no
 * step was in flight twice at the same moment.
 */
function checkDeliveries(
  runs: readonly RunRow[],
  attempts: readonly AttemptRow[],
  inputs: FinalInputs,
): string[] {
  const violations: string[] = [];
  const byKey = groupBy(inputs.deliveries, (d) => d.key);
  const expectedKeys = new Set<string>();
  const undelivered: string[] = [];
  const uncounted: unknown[] = [];
  const attemptsOf = groupBy(attempts, (a) => `${a.runId}:${a.stepId}`);
  for (const run of runs) {
    for (const stepId of steps[run.rule]?.http ?? []) {
      const key = `${run.id}:${stepId}`;
      expectedKeys.add(key);
      const calls = byKey.get(key) ?? [];
      const tries = (attemptsOf.get(key) ?? []).filter((a) => !notTried.has(a.errorCode ?? ''));
      if (tries.length > calls.length) uncounted.push({ key, tries: tries.length, calls: calls.length });
      const succeeded = tries.some((a) => a.status === 'succeeded');
      if (succeeded && !calls.some((c) => c.status === 200)) undelivered.push(key);
    }
  }
  if (undelivered.length > 0)
    violations.push(`steps recorded as succeeded that the target never answered 200: ${sample(undelivered)}`);
  if (uncounted.length > 0) violations.push(`more tries recorded than calls received: ${sample(uncounted)}`);
  const stray = [...byKey.keys()].filter((key) => !expectedKeys.has(key));
  if (stray.length > 0) violations.push(`calls with an idempotency key of no run: ${sample(stray)}`);
  if (inputs.overlaps.length > 0) {
    violations.push(
      `steps in flight twice at the same time (one run executed twice at once): ${sample(inputs.overlaps)}`,
    );
  }
  return violations;
}

/** Reads the stopped node's store and checks every invariant of the chaos loop against it. */
export function checkFinal(database: string, inputs: FinalInputs): FinalResult {
  const db = open(database);
  try {
    const events: EventRow[] = (
      db.prepare('SELECT seq, source, id, type, received_at, event FROM events ORDER BY seq').all() as Array<{
        seq: number;
        source: string;
        id: string;
        type: string;
        received_at: number;
        event: string;
      }>
    ).map((row) => {
      const data =
        row.source === 'chaos' ? (JSON.parse(row.event) as { data?: { k?: string } }).data : undefined;
      return {
        seq: row.seq,
        source: row.source,
        id: row.id,
        type: row.type,
        receivedAt: row.received_at,
        k: data?.k,
      };
    });
    const runs: RunRow[] = (
      db.prepare('SELECT id, rule, trigger_seq, status, context, error FROM runs').all() as Array<{
        id: string;
        rule: string;
        trigger_seq: number;
        status: string;
        context: string;
        error: string | null;
      }>
    ).map((row) => ({
      id: row.id,
      rule: row.rule,
      triggerSeq: row.trigger_seq,
      status: row.status,
      context: JSON.parse(row.context) as RunRow['context'],
      errorCode: codeOf(row.error),
    }));
    const attempts: AttemptRow[] = (
      db
        .prepare('SELECT run_id, step, step_id, attempt, status, error FROM attempts ORDER BY id')
        .all() as Array<{
        run_id: string;
        step: number;
        step_id: string;
        attempt: number;
        status: string;
        error: string | null;
      }>
    ).map((row) => ({
      runId: row.run_id,
      step: row.step,
      stepId: row.step_id,
      attempt: row.attempt,
      status: row.status,
      errorCode: codeOf(row.error),
    }));
    const timersLeft = (db.prepare('SELECT count(*) AS n FROM timers').get() as { n: number }).n;
    const offset = db.prepare("SELECT seq FROM offsets WHERE consumer = 'dispatcher'").get() as
      | { seq: number }
      | undefined;

    const violations: string[] = [];
    const identities = new Set<string>();
    const doubled: string[] = [];
    for (const e of events) {
      const identity = `${e.source}/${e.id}`;
      if (identities.has(identity)) doubled.push(identity);
      identities.add(identity);
    }
    if (doubled.length > 0) violations.push(`events logged more than once: ${sample(doubled)}`);
    const chaos = events.filter((e) => e.source === 'chaos');
    const logged = new Set(chaos.map((e) => e.id));
    const lost = [...inputs.acked].filter((id) => !logged.has(id));
    if (lost.length > 0) violations.push(`acknowledged events missing from the log: ${sample(lost)}`);
    const unsent = [...logged].filter((id) => !inputs.sent.has(id));
    if (unsent.length > 0) violations.push(`logged events that were never sent: ${sample(unsent)}`);
    const last = events.at(-1)?.seq ?? 0;
    if ((offset?.seq ?? 0) !== last) violations.push(`dispatched up to ${offset?.seq} of ${last} events`);
    if (timersLeft > 0) violations.push(`${timersLeft} timers left set after the drain`);

    violations.push(...checkMatches(chaos, runs, inputs));
    violations.push(...checkRuns(runs, attempts, events));
    violations.push(...checkDeliveries(runs, attempts, inputs));
    return {
      violations,
      logged: chaos.length,
      runs: runs.length,
      failedRuns: runs.filter((r) => r.status === 'failed').length,
      attempts: attempts.length,
      timers: events.filter((e) => e.type === 'reflex.timer').length,
    };
  } finally {
    db.close();
  }
}
