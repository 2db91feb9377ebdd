import type { ErrorInfo } from '../errors.js';
import type { CloudEvent } from '../event.js';

/**
 * The RunQueue port: runs waiting, running and finished, claimed by executors under leases.
 *
 * A backend may make `claimRuns`, `extendLeases`, `releaseLeases` and `completeAttempt` durable lazily —
 * at the latest with its next durable commit (see `DispatchStore.commitDispatch`): actions are
 * at-least-once, and a lost claim or completion is redone under the same idempotency key.
 */
export interface RunQueue {
  /**
   * Leases up to `limit` runs that are due (`pending` with `nextAttemptAt <= now`, or `running` with an
   * expired lease), oldest first, marks them `running` for `owner` until `now + leaseMs`, counts the claim
   * in their `claims`, and returns them.
   * A run with a concurrency key is not claimed while `max` runs of that key are active (claimed at least
   * once and not finished, waits between retries included), nor before an older waiting run of its key:
   * runs of one key start in creation order.
   */
  claimRuns(claim: RunClaim): Promise<Run[]>;
  /** Pushes the lease of runs still held by `owner` out to `until`. */
  extendLeases(owner: string, runIds: readonly string[], until: number): Promise<void>;
  /**
   * Gives back every lease `owner` holds, so the runs can be claimed at once (used when draining). The
   * claim that gave each lease no longer counts in the run's `claims`: the run was handed back, its
   * process did not die.
   */
  releaseLeases(owner: string, now: number): Promise<void>;
  /**
   * Records an attempt and what follows from it, in one transaction: the next step, a retry, or the end of
   * the run (then its outcome event is appended to the log in the partition of the run's trigger, and on
   * failure a dead letter is written).
   * A recorded attempt ends the count of `claims` for its step: a retry sets it to 0 (the next claim is
   * the retry's first), the next step to 1 (the claim in hand goes on with it); the end of the run
   * leaves it as it was. Returns false, and changes nothing, when `owner` no longer holds the run's lease,
   * or when the attempt is not the next one of the run's current step (`step` is the run's, `attempt` one
   * more than the run's): each try is recorded once, even one that was executed twice.
   */
  completeAttempt(completion: AttemptCompletion): Promise<boolean>;
  /** The earliest `nextAttemptAt` of a pending run, or of a lease that will expire; undefined if none. */
  nextRunDueAt(): Promise<number | undefined>;
}

export const RunStatus = {
  pending: 'pending',
  running: 'running',
  succeeded: 'succeeded',
  failed: 'failed',
} as const;
export type RunStatus = (typeof RunStatus)[keyof typeof RunStatus];

/** The event that caused a run. */
export interface RunTrigger {
  seq: number;
  /** The trigger's partition: the run's outcome event goes to it. */
  partition: number;
  id: string;
  source: string;
  type: string;
}

/**
 * The events a run's templates see, by seq: `event`, the correlation's `events` by name, and the `batch`
 * a count, batch or debounce collected. For a plain rule, `event` is the trigger.
 */
export interface RunContext {
  event: number;
  events?: Record<string, number>;
  batch?: number[];
}

/** Limits how many runs with the same key execute at once (the rule's `concurrency`). */
export interface RunConcurrency {
  key: string;
  max: number;
}

/** One execution of a rule's `then` for one match. */
export interface Run {
  /** Sortable by creation time. */
  id: string;
  rule: string;
  rulebookVersion: number;
  trigger: RunTrigger;
  /** Distinguishes several runs of one rule caused by the same event (0 for the first). */
  ordinal: number;
  context: RunContext;
  concurrency: RunConcurrency | null;
  status: RunStatus;
  /** Index of the step to run next (equal to the number of steps once succeeded). */
  step: number;
  /** Attempts already made on the current step. */
  attempt: number;
  /**
   * Claims of the run since the last attempt of its current step was recorded, the claim in hand
   * included: each one beyond the first is an executor that took the run up and died before recording
   * an attempt (see `claimRuns`, `completeAttempt`, `releaseLeases`). The executor fails a run that has
   * too many, so a step that kills its process cannot loop forever.
   */
  claims: number;
  /** Outputs of finished steps, by step id. */
  outputs: Record<string, unknown>;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** When a pending run may next be attempted. */
  nextAttemptAt: number | null;
  error: ErrorInfo | null;
}

export interface RunDetail extends Run {
  attempts: Attempt[];
}

/** One try of one step of a run. */
export interface Attempt {
  runId: string;
  step: number;
  stepId: string;
  action: string;
  /** 1 for the first try. */
  attempt: number;
  startedAt: number;
  finishedAt: number;
  status: 'succeeded' | 'failed';
  output?: unknown;
  error?: ErrorInfo;
}

export interface NewRun {
  id: string;
  rule: string;
  rulebookVersion: number;
  trigger: RunTrigger;
  /** Unique with (trigger.seq, rule). */
  ordinal: number;
  context: RunContext;
  concurrency?: RunConcurrency;
  createdAt: number;
}

export interface RunClaim {
  owner: string;
  now: number;
  leaseMs: number;
  limit: number;
}

export type AttemptOutcome =
  /** The step succeeded and another follows. */
  | { type: 'next-step'; output: unknown }
  /** The step failed and will be tried again at `at`. */
  | { type: 'retry'; at: number }
  /** The last step succeeded; `event` (reflex.run.succeeded) is appended to the log. */
  | { type: 'succeeded'; output: unknown; event: CloudEvent }
  /** The run failed for good; `event` (reflex.run.failed) is appended and a dead letter is written. */
  | { type: 'failed'; error: ErrorInfo; event: CloudEvent };

export interface AttemptCompletion {
  owner: string;
  attempt: Attempt;
  outcome: AttemptOutcome;
  at: number;
}

/** A run that failed after its last attempt, kept for inspection and replay. */
export interface DeadLetter {
  runId: string;
  rule: string;
  step: number;
  error: ErrorInfo;
  createdAt: number;
}
