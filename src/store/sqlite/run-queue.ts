import type { CloudEvent } from '../../core/event.js';
import type { AttemptCompletion, Run, RunClaim, RunQueue } from '../../core/ports/store.js';
import { type RunRow, toRun } from '../store-rows.js';

/** A `runs` row with its lease, which only the run queue reads. */
type LeasedRunRow = RunRow & { lease_owner: string | null; lease_until: number | null };

import { byDueThenId, type ClaimCandidate, jsonOrNull, setOwn } from '../store-values.js';
import type { SqliteAuditLog } from './audit.js';
import type { SqliteContext } from './context.js';
import type { SqliteEventLog } from './event-log.js';

/**
 * The run queue on SQLite: claims under leases, concurrency slots, and completions (each recorded with
 * what follows from it — next step, retry, or the end of the run with its outcome event — in one
 * transaction).
 */
export class SqliteRunQueue implements RunQueue {
  readonly #log: SqliteEventLog;
  readonly #audit: SqliteAuditLog;

  readonly #dueRuns;
  readonly #queuedKeys;
  readonly #queueOfKey;
  readonly #leaseRun;
  readonly #extendLease;
  readonly #releaseLeases;
  readonly #runForCompletion;
  readonly #insertAttempt;
  readonly #runNextStep;
  readonly #runRetry;
  readonly #runSucceeded;
  readonly #runFailed;
  readonly #insertDeadLetter;
  readonly #nextDue;

  // Transactions: better-sqlite3 wraps the function in BEGIN/COMMIT and rolls back if it throws.
  readonly #claim;
  readonly #extend;
  readonly #complete;
  /** Runs a function in one transaction (for batches of completions). */
  readonly #completeBatch;
  #completions: Array<{
    completion: AttemptCompletion;
    resolve: (held: boolean) => void;
    reject: (error: unknown) => void;
  }> = [];
  readonly #nextRunDue;

  constructor({ db }: SqliteContext, log: SqliteEventLog, audit: SqliteAuditLog) {
    this.#log = log;
    this.#audit = audit;

    // Runs free to go when due: no concurrency key, or already holding a slot (claimed before). Both arms
    // read a partial index in due order; SQLite merges them and stops at the limit. INDEXED BY because
    // without statistics the planner takes runs_by_status and sorts every pending run; it also makes a
    // WHERE that no longer matches the partial index's fail loudly instead of scanning.
    this.#dueRuns = db.prepare<[number, number, number], ClaimCandidate>(
      `SELECT id, next_attempt_at AS due FROM runs INDEXED BY runs_due
       WHERE status = 'pending' AND (concurrency_key IS NULL OR started_at IS NOT NULL)
         AND next_attempt_at <= ?
       UNION ALL
       SELECT id, lease_until AS due FROM runs INDEXED BY runs_leased
       WHERE status = 'running' AND lease_until <= ?
       ORDER BY due, id LIMIT ?`,
    );
    // Every concurrency key with runs waiting for a slot, and how many slots it has taken. The keys are
    // found by skipping through runs_queued (one seek per key), so a long queue is not read through.
    this.#queuedKeys = db.prepare<[], { key: string; active: number }>(
      `WITH RECURSIVE keys (key) AS (
         SELECT min(concurrency_key) FROM runs INDEXED BY runs_queued
         WHERE status = 'pending' AND started_at IS NULL AND concurrency_key IS NOT NULL
         UNION ALL
         SELECT (SELECT min(concurrency_key) FROM runs INDEXED BY runs_queued
                 WHERE status = 'pending' AND started_at IS NULL AND concurrency_key IS NOT NULL
                   AND concurrency_key > keys.key)
         FROM keys WHERE keys.key IS NOT NULL
       )
       SELECT key, (SELECT count(*) FROM runs INDEXED BY runs_by_concurrency
                    WHERE concurrency_key = keys.key AND status IN ('pending', 'running')
                      AND started_at IS NOT NULL) AS active
       FROM keys WHERE key IS NOT NULL`,
    );
    // The runs waiting for a slot of one key, in the order they may start.
    this.#queueOfKey = db.prepare<[string, number], ClaimCandidate & { max: number }>(
      `SELECT id, next_attempt_at AS due, concurrency_max AS max FROM runs INDEXED BY runs_queued
       WHERE status = 'pending' AND started_at IS NULL AND concurrency_key IS NOT NULL
         AND concurrency_key = ?
       ORDER BY id LIMIT ?`,
    );
    this.#leaseRun = db.prepare<[string, number, number, string], RunRow>(
      `UPDATE runs SET status = 'running', lease_owner = ?, lease_until = ?,
                       started_at = coalesce(started_at, ?), next_attempt_at = NULL, claims = claims + 1
       WHERE id = ? RETURNING *`,
    );
    this.#extendLease = db.prepare<[number, string, string]>(
      `UPDATE runs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = 'running'`,
    );
    this.#releaseLeases = db.prepare<[number, string]>(
      `UPDATE runs SET status = 'pending', next_attempt_at = ?, lease_owner = NULL, lease_until = NULL,
                       claims = max(claims - 1, 0)
       WHERE lease_owner = ? AND status = 'running'`,
    );
    this.#runForCompletion = db.prepare<
      [string],
      Pick<
        LeasedRunRow,
        | 'rule'
        | 'status'
        | 'lease_owner'
        | 'step'
        | 'attempt'
        | 'outputs'
        | 'trigger_seq'
        | 'trigger_partition'
      >
    >(
      'SELECT rule, status, lease_owner, step, attempt, outputs, trigger_seq, trigger_partition FROM runs WHERE id = ?',
    );
    this.#insertAttempt = db.prepare<
      [string, number, string, string, number, number, number, string, string | null, string | null]
    >(
      `INSERT INTO attempts (run_id, step, step_id, action, attempt, started_at, finished_at, status, output, error)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#runNextStep = db.prepare<[string, string]>(
      'UPDATE runs SET step = step + 1, attempt = 0, claims = 1, outputs = ?, error = NULL WHERE id = ?',
    );
    this.#runRetry = db.prepare<[number, string | null, string]>(
      `UPDATE runs SET status = 'pending', attempt = attempt + 1, claims = 0, next_attempt_at = ?, error = ?,
                       lease_owner = NULL, lease_until = NULL
       WHERE id = ?`,
    );
    this.#runSucceeded = db.prepare<[string, number, string]>(
      `UPDATE runs SET status = 'succeeded', step = step + 1, attempt = 0, outputs = ?, finished_at = ?,
                       error = NULL, next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL
       WHERE id = ?`,
    );
    this.#runFailed = db.prepare<[number, string, string]>(
      `UPDATE runs SET status = 'failed', attempt = attempt + 1, finished_at = ?, error = ?,
                       next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL
       WHERE id = ?`,
    );
    this.#insertDeadLetter = db.prepare<[string, string, number, string, number]>(
      'INSERT INTO dead_letters (run_id, rule, step, error, created_at) VALUES (?, ?, ?, ?, ?)',
    );
    this.#nextDue = db.prepare<[], { due: number | null }>(
      `SELECT min(due) AS due FROM (
         SELECT min(next_attempt_at) AS due FROM runs INDEXED BY runs_due
         WHERE status = 'pending' AND (concurrency_key IS NULL OR started_at IS NOT NULL)
         UNION ALL
         SELECT min(lease_until) FROM runs INDEXED BY runs_leased WHERE status = 'running')`,
    );

    this.#claim = db.transaction((claim: RunClaim): Run[] => {
      const limit = Math.max(0, claim.limit);
      if (limit === 0) return [];
      const candidates = [
        ...this.#dueRuns.all(claim.now, claim.now, limit),
        ...this.#startable(claim.now, limit),
      ];
      candidates.sort(byDueThenId);
      const until = claim.now + claim.leaseMs;
      return candidates
        .slice(0, limit)
        .map(({ id }) => toRun(this.#leaseRun.get(claim.owner, until, claim.now, id)!));
    });
    this.#extend = db.transaction((owner: string, runIds: readonly string[], until: number) => {
      for (const id of runIds) this.#extendLease.run(until, id, owner);
    });
    this.#completeBatch = db.transaction((work: () => void) => work());
    this.#complete = db.transaction((completion: AttemptCompletion): boolean => {
      const { attempt, outcome, at } = completion;
      const run = this.#runForCompletion.get(attempt.runId);
      if (run === undefined || run.status !== 'running' || run.lease_owner !== completion.owner) return false;
      // Only the next attempt of the current step: a try is recorded once, even if it was executed twice.
      if (run.step !== attempt.step || run.attempt + 1 !== attempt.attempt) return false;
      this.#insertAttempt.run(
        attempt.runId,
        attempt.step,
        attempt.stepId,
        attempt.action,
        attempt.attempt,
        attempt.startedAt,
        attempt.finishedAt,
        attempt.status,
        jsonOrNull(attempt.output),
        jsonOrNull(attempt.error),
      );
      switch (outcome.type) {
        case 'next-step':
        case 'succeeded': {
          const outputs = JSON.parse(run.outputs) as Record<string, unknown>;
          // JSON has no undefined: a step without output is recorded as null, so its key is kept.
          setOwn(outputs, attempt.stepId, outcome.output ?? null);
          if (outcome.type === 'next-step') {
            this.#runNextStep.run(JSON.stringify(outputs), attempt.runId);
            break;
          }
          this.#runSucceeded.run(JSON.stringify(outputs), at, attempt.runId);
          this.#finish(
            attempt.runId,
            run.rule,
            { seq: run.trigger_seq, partition: run.trigger_partition },
            outcome.event,
            at,
            'run.succeeded',
            {},
          );
          break;
        }
        case 'retry':
          this.#runRetry.run(outcome.at, jsonOrNull(attempt.error), attempt.runId);
          break;
        case 'failed': {
          const error = JSON.stringify(outcome.error);
          this.#runFailed.run(at, error, attempt.runId);
          this.#insertDeadLetter.run(attempt.runId, run.rule, run.step, error, at);
          this.#finish(
            attempt.runId,
            run.rule,
            { seq: run.trigger_seq, partition: run.trigger_partition },
            outcome.event,
            at,
            'run.failed',
            {
              step: run.step,
              error: outcome.error.code,
            },
          );
          break;
        }
      }
      return true;
    });
    // One read transaction, so a commit cannot land between the reads.
    this.#nextRunDue = db.transaction((): number | undefined => {
      const due = this.#nextDue.get()?.due ?? undefined;
      const startable = this.#nextStartable();
      if (due === undefined) return startable;
      return startable === undefined ? due : Math.min(due, startable);
    });
  }

  async claimRuns(claim: RunClaim): Promise<Run[]> {
    return this.#claim.immediate(claim);
  }

  async extendLeases(owner: string, runIds: readonly string[], until: number): Promise<void> {
    this.#extend.immediate(owner, runIds, until);
  }

  async releaseLeases(owner: string, now: number): Promise<void> {
    this.#releaseLeases.run(now, owner);
  }

  completeAttempt(completion: AttemptCompletion): Promise<boolean> {
    // Completions that arrive in the same turn of the event loop share one transaction: each small
    // commit rewrites the same few pages (runs, attempts, events, audit), so a thousand runs a second
    // would otherwise write the same pages a thousand times.
    return new Promise<boolean>((resolve, reject) => {
      this.#completions.push({ completion, resolve, reject });
      if (this.#completions.length === 1) setImmediate(() => this.flushCompletions());
    });
  }

  /** Commits the completions waiting, in one transaction (also when the store closes). */
  flushCompletions(): void {
    const batch = this.#completions;
    this.#completions = [];
    if (batch.length === 0) return;
    const results: Array<{ ok: true; held: boolean } | { ok: false; error: unknown }> = [];
    try {
      this.#completeBatch.immediate(() => {
        for (const { completion } of batch) {
          // Inside the batch's transaction each completion is a savepoint: one that fails is undone
          // alone and reported to its caller; the others still commit.
          try {
            results.push({ ok: true, held: this.#complete(completion) });
          } catch (error) {
            results.push({ ok: false, error });
          }
        }
      });
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
      return;
    }
    batch.forEach((waiting, i) => {
      const result = results[i]!;
      if (result.ok) waiting.resolve(result.held);
      else waiting.reject(result.error);
    });
  }

  async nextRunDueAt(): Promise<number | undefined> {
    return this.#nextRunDue();
  }

  /**
   * Runs waiting for a concurrency slot that may start now, at most `limit` per key: in id order, while
   * the key has fewer active runs than the run's `max`, stopping at the first that is not due (a younger
   * run never overtakes an older one of its key).
   */
  #startable(now: number, limit: number): ClaimCandidate[] {
    const startable: ClaimCandidate[] = [];
    for (const { key, active } of this.#queuedKeys.all()) {
      let taken = active;
      let due = Number.NEGATIVE_INFINITY;
      for (const run of this.#queueOfKey.all(key, limit)) {
        if (run.due > now || taken >= run.max) break;
        taken += 1;
        // Never earlier than an older run of the key, so a claim cut off at `limit` keeps their order.
        due = Math.max(due, run.due);
        startable.push({ id: run.id, due });
      }
    }
    return startable;
  }

  /** When the first run waiting for a concurrency slot that is free may start; undefined if none. */
  #nextStartable(): number | undefined {
    let next: number | undefined;
    for (const { key, active } of this.#queuedKeys.all()) {
      const [head] = this.#queueOfKey.all(key, 1);
      if (head === undefined || active >= head.max) continue;
      if (next === undefined || head.due < next) next = head.due;
    }
    return next;
  }

  /** The end of a run: its outcome event goes to the log (dedup applies) and the audit trail says so. */
  #finish(
    runId: string,
    rule: string,
    trigger: { seq: number; partition: number },
    event: CloudEvent,
    at: number,
    kind: 'run.succeeded' | 'run.failed',
    detail: Record<string, unknown>,
  ): void {
    const appended = this.#log.appendOne(event, at, trigger.partition);
    this.#audit.writeAudit({
      at,
      kind,
      seq: trigger.seq,
      rule,
      runId,
      detail: { ...detail, eventSeq: appended.seq },
    });
  }
}
