import type { ErrorInfo } from '../errors.js';
import type { AppendResult, CloudEvent, LoggedEvent } from '../event.js';

/**
 * The Store port: everything Reflex keeps durably — the event log, the dispatcher's offset, runs and
 * their attempts, facts, dead letters, rulebook versions and the audit trail.
 *
 * Methods are async so a networked backend (PostgreSQL) can implement the same port; the embedded SQLite
 * backend answers synchronously inside. Every method that changes several things does so in ONE
 * transaction: that is what the engine's guarantees rest on. Times are milliseconds since the epoch.
 */
export interface Store {
  // --- the log ---
  /**
   * Appends events in one transaction (a group commit) and returns, in order, each one's `seq`; an event
   * whose (`source`, `id`) is already in the log (or earlier in the same batch) is not appended again and
   * comes back with `duplicate: true` and the original's `seq`.
   */
  appendEvents(events: readonly CloudEvent[], receivedAt: number): Promise<AppendResult[]>;
  /**
   * Events with `seq > afterSeq`, oldest first, at most `limit`. The dispatcher reads with this, so it
   * stops short of any event whose `appendEvents` (or `changeFact`) has committed but not yet returned:
   * nothing is decided before its sender could have been told it is stored.
   */
  readEvents(afterSeq: number, limit: number): Promise<LoggedEvent[]>;
  getEvent(seq: number): Promise<LoggedEvent | undefined>;
  /** Events with this id (one per source that used it), oldest first. */
  findEventsById(id: string, source?: string): Promise<LoggedEvent[]>;
  /** A page of events that pass the filters, in the cursor's direction. */
  listEvents(query: EventQuery): Promise<LoggedEvent[]>;
  /**
   * A page as {@link listEvents} gives it, that also ends before the events' stored JSON text would
   * pass `maxBytes` in total (a first event larger than that is a page of its own); `more` says whether
   * another event passes the filters after the page. An event that does not fit is not parsed.
   */
  pageEvents(query: EventQuery, maxBytes: number): Promise<StorePage<LoggedEvent>>;
  /** The highest `seq` in the log, 0 when it is empty. */
  lastSeq(): Promise<number>;

  // --- dispatch ---
  /** The last `seq` the named consumer has committed, 0 if it has none. */
  getOffset(consumer: string): Promise<number>;
  /**
   * Records what the dispatcher decided for a batch of events — new runs, audit entries, rulebook
   * activation — and advances its offset, all in one transaction. A run for a (`triggerSeq`, `rule`)
   * that already exists is an error: a match is never doubled.
   *
   * A backend may make this commit durable lazily — at the latest with its next durable commit: a batch
   * lost to a power cut is decided again from the older offset into the same runs (run ids come from
   * what caused them), so an action done for a lost run is redone under the same idempotency key.
   * `claimRuns`, `extendLeases`, `releaseLeases`, `completeAttempt` and `fireDueTimers` may be lazy for
   * the same reason (actions are at-least-once); `appendEvents` and `changeFact` must be durable when
   * they return, since their callers acknowledge on it.
   */
  commitDispatch(commit: DispatchCommit): Promise<void>;

  // --- rulebooks ---
  /** Saves a rulebook version, or returns the id of the stored version with the same hash. */
  saveRulebookVersion(version: NewRulebookVersion): Promise<number>;
  getRulebookVersion(id: number): Promise<RulebookVersion | undefined>;
  /** The rulebook version the dispatcher used for the event at `seq`, if it has dispatched it. */
  rulebookVersionAt(seq: number): Promise<number | undefined>;

  // --- runs ---
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
   * the run (then its outcome event is appended to the log, and on failure a dead letter is written).
   * A recorded attempt ends the count of `claims` for its step: a retry sets it to 0 (the next claim is
   * the retry's first), the next step to 1 (the claim in hand goes on with it); the end of the run
   * leaves it as it was. Returns false, and changes nothing, when `owner` no longer holds the run's lease,
   * or when the attempt is not the next one of the run's current step (`step` is the run's, `attempt` one
   * more than the run's): each try is recorded once, even one that was executed twice.
   */
  completeAttempt(completion: AttemptCompletion): Promise<boolean>;
  /** The earliest `nextAttemptAt` of a pending run, or of a lease that will expire; undefined if none. */
  nextRunDueAt(): Promise<number | undefined>;
  getRun(id: string): Promise<RunDetail | undefined>;
  listRuns(query: RunQuery): Promise<Run[]>;
  /**
   * A page as {@link listRuns} gives it, that also ends before the runs' stored JSON (context, outputs,
   * error) would pass `maxBytes` in total (a first run larger than that is a page of its own); `more`
   * says whether another run passes the filters after the page.
   */
  pageRuns(query: RunQuery, maxBytes: number): Promise<StorePage<Run>>;
  /** Runs that the event at `seq` triggered. */
  runsForEvent(seq: number): Promise<Run[]>;
  listDeadLetters(limit: number): Promise<DeadLetter[]>;

  // --- facts ---
  getFacts(): Promise<Record<string, unknown>>;
  /**
   * Sets a fact (or removes it, with `undefined`) and, when that changes its value, appends a
   * `reflex.fact.changed` event (source `reflex`, id `fact/<name>/<n>` with n counting the fact's changes,
   * data `{ name, value, previous, added, removed }`: null for "absent", and `added`/`removed` say when
   * the fact was not set before or is not set after) — in one transaction. Setting the value a
   * fact already has changes nothing and appends nothing, so a retried step does not repeat the event;
   * values are compared as JSON, where the order of an object's keys carries no meaning.
   * `chain` (default 0) is the event's `reflexchain` depth: a change made by a run is one deeper than
   * the run's trigger, so a rule that reacts to fact changes by changing facts cannot loop forever.
   */
  changeFact(name: string, value: unknown, at: number, chain?: number): Promise<FactChange>;

  // --- flow state and timers ---
  /** Every stored flow state (correlation partial matches, storm-control windows), for the dispatcher. */
  loadFlowStates(): Promise<FlowStateRow[]>;
  /**
   * Turns due timers (`due <= now`, earliest first, at most `limit`) into `reflex.timer` events in the
   * log and deletes them, in one transaction. The event: source `reflex`, id `<rule>/<stage>/<key>@<due>`,
   * time = now, data `{ rule, stage, key, due }`. Returns the appended events' results.
   */
  fireDueTimers(now: number, limit: number): Promise<AppendResult[]>;
  /** The earliest timer's due time, or undefined if there is none. */
  nextTimerDueAt(): Promise<number | undefined>;

  // --- audit ---
  appendAudit(entries: readonly AuditEntry[]): Promise<void>;
  /** Audit entries about the event at `seq`, in the order written. */
  auditForEvent(seq: number): Promise<AuditEntry[]>;

  // --- keys ---
  /**
   * A random key (hex) made once with the store and kept with its data (and its backups), never shown
   * by the API. Ids derived from it with an HMAC cannot be predicted from outside, so nobody can post an
   * event under such an id before Reflex appends it, yet they stay the same when a decision is replayed.
   */
  idKey(): Promise<string>;

  close(): Promise<void>;
}

/** What `changeFact` did. */
export interface FactChange {
  changed: boolean;
  /** The `reflex.fact.changed` event, when the value changed. */
  event?: AppendResult;
}

/** The state of one flow stage of one rule for one key, as stored. */
export interface FlowStateRow {
  rule: string;
  /** `when`, `dedupe`, `throttle`, `debounce`, `rateLimit` or `batch`. */
  stage: string;
  key: string;
  /** The rule's flow definition hash the state was made under (`Rule.flowHash`). */
  hash: string;
  /** JSON-serialisable stage state. */
  state: unknown;
  /** When the state may be dropped, if nothing touches it; null: never on its own. */
  expiresAt: number | null;
}

/** A change to a flow state in a dispatch commit: `state: null` deletes the row. */
export type FlowStateChange = Omit<FlowStateRow, 'state'> & { state: unknown | null };

/** A change to a stage's timer in a dispatch commit: `due: null` cancels it. One timer per (rule, stage, key). */
export interface TimerChange {
  rule: string;
  stage: string;
  key: string;
  due: number | null;
}

/** One page of a listing bounded by size (`Store.pageEvents`, `Store.pageRuns`). */
export interface StorePage<T> {
  items: T[];
  /** Whether more items pass the filters after this page. */
  more: boolean;
}

/** Filters and position for `Store.listEvents`. */
export interface EventQuery {
  type?: string;
  source?: string;
  /** Oldest first from just after this seq (tailing). */
  after?: number;
  /** Newest first from just before this seq (browsing back). Used when `after` is absent. */
  before?: number;
  limit: number;
}

export interface RunQuery {
  rule?: string;
  status?: RunStatus;
  /** Newest first from just before this run id. */
  before?: string;
  limit: number;
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

export interface NewRulebookVersion {
  /** Hash of the files' contents: saving the same rulebooks twice gives the same version. */
  hash: string;
  /** The rulebook files as loaded, so the version can be compiled again later (explain, runs after restart). */
  files: Array<{ path: string; content: string }>;
  createdAt: number;
}

export interface RulebookVersion extends NewRulebookVersion {
  id: number;
}

export const AuditKind = {
  /** A rule's pattern matched and its condition (if any) held: a run was created. */
  runCreated: 'run.created',
  /** The pattern matched but the condition was false. */
  conditionFalse: 'rule.condition-false',
  /** The pattern matched but the condition could not be evaluated. */
  conditionError: 'rule.condition-error',
  /** A rule matched after an earlier rule said `stop: true`. */
  stopped: 'rule.stopped',
  /** A rule matched an event derived from too long a chain of rule outcomes. */
  chainTooDeep: 'rule.chain-too-deep',
  /** The event is held in a correlation's partial match or a storm-control window, waiting for more. */
  held: 'rule.held',
  /** Storm control dropped or delayed the event or its firing (detail: by, key, until). */
  suppressed: 'rule.suppressed',
  /** The event was the awaited one of an `absence` and came in time: that wait ended without firing. */
  waitEnded: 'rule.wait-ended',
  /** A `by`/`key` expression failed on the event, so the rule skipped it. */
  keyError: 'rule.key-error',
  runSucceeded: 'run.succeeded',
  runFailed: 'run.failed',
  rulebookLoaded: 'rulebook.loaded',
  rulebookRejected: 'rulebook.rejected',
} as const;
export type AuditKind = (typeof AuditKind)[keyof typeof AuditKind];

/** One decision in the append-only audit trail. */
export interface AuditEntry {
  at: number;
  kind: AuditKind;
  seq?: number;
  rule?: string;
  runId?: string;
  detail?: Record<string, unknown>;
}

export interface DispatchCommit {
  consumer: string;
  /** The last seq this commit covers. */
  offset: number;
  runs: NewRun[];
  audit: AuditEntry[];
  /** Set when this batch is the first dispatched with a new rulebook version. */
  activation?: { seq: number; version: number };
  /** Flow states written or deleted by this batch. */
  states?: FlowStateChange[];
  /** Timers set, moved or cancelled by this batch. */
  timers?: TimerChange[];
}
