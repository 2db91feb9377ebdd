import type { AppendResult, LogPosition } from '../event.js';
import type { AuditEntry } from './audit-log.js';
import type { NewRun } from './run-queue.js';

/**
 * The DispatchStore port: what the dispatchers keep — one offset per (consumer, partition), the runs a
 * batch created, flow states, timers, the facts view each dispatcher decides with, and which rulebook
 * version decided which events.
 */
export interface DispatchStore {
  /** The seq the named consumer has read `partition` through, 0 if it has none. */
  getOffset(consumer: string, partition: number): Promise<number>;
  /**
   * Records what a dispatcher decided for a batch of its partition's events — new runs, audit entries,
   * rulebook activation, flow states, timers, its facts view — and advances its offset, all in one
   * transaction. A run for a (`triggerSeq`, `rule`) that already exists is an error: a match is never
   * doubled.
   *
   * A backend may make this commit durable lazily — at the latest with its next durable commit: a batch
   * lost to a power cut is decided again from the older offset into the same runs (run ids come from
   * what caused them), so an action done for a lost run is redone under the same idempotency key.
   * `fireDueTimers` may be lazy for the same reason; `appendEvents` and `changeFact` must be durable
   * when they return, since their callers acknowledge on it.
   */
  commitDispatch(commit: DispatchCommit): Promise<void>;
  /**
   * The facts as the consumer's dispatcher of `partition` saw them at its offset: every fact change with
   * a seq up to the offset applied (as committed with it by `commitDispatch`).
   */
  loadFactsView(consumer: string, partition: number): Promise<Record<string, unknown>>;
  /** Every stored flow state of `partition` (correlation partial matches, storm-control windows). */
  loadFlowStates(partition: number): Promise<FlowStateRow[]>;
  /**
   * The rulebook version the dispatcher used for the event at `position`, if it has dispatched it.
   */
  rulebookVersionAt(position: LogPosition): Promise<number | undefined>;
  /**
   * Turns due timers of every partition (`due <= now`, earliest first, at most `limit`) into
   * `reflex.timer` events, each in its timer's partition, and deletes them, in one transaction. The
   * event: source `reflex`, id `<rule>/<stage>/<key>@<due>` (then `/<partition>` beyond partition 0),
   * time = now, data `{ rule, stage, key, due }`. Returns the appended events' results.
   */
  fireDueTimers(now: number, limit: number): Promise<AppendResult[]>;
  /** The earliest timer's due time (any partition), or undefined if there is none. */
  nextTimerDueAt(): Promise<number | undefined>;
}

export interface DispatchCommit {
  consumer: string;
  /** The partition whose events the batch holds; its flow states, timers and facts view are this partition's. */
  partition: number;
  /** The seq the partition has been read through with this batch (the last event's, or a later `through`). */
  offset: number;
  runs: NewRun[];
  audit: AuditEntry[];
  /** Set when this batch is the first dispatched with a new rulebook version. */
  activation?: { seq: number; version: number };
  /** Flow states written or deleted by this batch. */
  states?: FlowStateChange[];
  /** Timers set, moved or cancelled by this batch. */
  timers?: TimerChange[];
  /** Facts view changes applied in this batch (`value: undefined`: the fact was removed). */
  facts?: FactViewChange[];
}

/** One fact of a dispatcher's facts view, as changed in a dispatch commit. */
export interface FactViewChange {
  name: string;
  /** undefined: the fact is not set. */
  value: unknown;
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

/**
 * A change to a stage's timer in a dispatch commit: `due: null` cancels it. One timer per (rule, stage,
 * key); it belongs to the commit's partition, and its `reflex.timer` event goes there.
 */
export interface TimerChange {
  rule: string;
  stage: string;
  key: string;
  due: number | null;
}
