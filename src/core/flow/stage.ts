import type { CloudEvent } from '../event.js';

/**
 * The shared vocabulary of the flow stages: correlation (`all`, `any`, `sequence`, `absence`, `count`)
 * and storm control (`dedupe`, `throttle`, `debounce`, `rateLimit`, `batch`).
 *
 * Every stage is a pure state machine for one (rule, stage, key): given its state, an input and the
 * time, it returns its next state, what it passes on, and the one timer it wants. Time is the log time
 * of the event being dispatched, so replaying the log gives the same result.
 */

/** An event a stage holds or passes on: its place in the log, its time, and (when kept) its content. */
export interface Held {
  seq: number;
  /** Log time in ms. */
  t: number;
  /** Kept only where an expression or a later stage needs it; otherwise read from the log by `seq`. */
  event?: CloudEvent;
}

/** What a stage passes on, and finally what a run sees as `event`, `events` and `batch`. */
export interface Firing {
  event: Held;
  events?: Record<string, Held>;
  batch?: Held[];
}

/** Something worth recording about an input that did not (yet) fire, for the audit trail and explain. */
export type StageNote =
  /** Held in a partial match or a window, waiting for more. */
  | { kind: 'held'; detail: Record<string, unknown> }
  /** Dropped or delayed by storm control, until the given time. */
  | { kind: 'suppressed'; until: number | null; detail: Record<string, unknown> }
  /** Ended a wait without firing: the awaited event of an `absence` came in time. */
  | { kind: 'ended'; detail: Record<string, unknown> };

/** A stage's answer to one input or to the passing of time. */
export interface StageResult<S> {
  /** The next state; `undefined` deletes it. */
  state: S | undefined;
  /**
   * After this time the state no longer matters if nothing else happens, and may be dropped. A state
   * that waits for its timer has none: its timer ends it, however late the timer is handled.
   */
  expiresAt?: number;
  firings: Firing[];
  /**
   * The stage's single timer: a time sets (or moves) it, `null` cancels it, `undefined` leaves it. When it
   * is due, the stage is called with `onTime`.
   */
  timer?: number | null;
  notes: StageNote[];
}

/** A result that changes nothing. */
export function unchanged<S>(state: S | undefined, expiresAt?: number): StageResult<S> {
  return expiresAt === undefined
    ? { state, firings: [], notes: [] }
    : { state, expiresAt, firings: [], notes: [] };
}

/** Names the sub-conditions of a correlation: `events.<name>` in expressions. */
export interface SubCondition {
  name: string;
}

/**
 * Tells whether a sub-condition's `if` holds for `event`, given the events the partial match already
 * holds by name. Supplied by the dispatcher, which owns the compiled CEL and the facts.
 */
export type SubCheck = (sub: number, event: Held, held: Record<string, Held>) => boolean;

/**
 * One flow stage: a pure state machine kept per (rule, stage, key), of one kind (`all`, `throttle`…).
 * Every stage has this one shape and is held in the registry of `stages.ts` by its kind; the flow
 * runs a rule's stages by looking them up there, never by switching over kinds.
 */
export interface Stage<Spec, State, Input> {
  /**
   * Whether a state read back from the flow-state cache is one of this stage's. States are stored
   * with the hash of the rule's flow, so a state under a stage was made by it; the check is what lets
   * the plain data be read as `State`.
   */
  isState(value: unknown): value is State;
  /** Takes one input at time `t`; `check` decides the `if` of correlation sub-conditions. */
  step(spec: Spec, state: State | undefined, input: Input, t: number, check: SubCheck): StageResult<State>;
  /** Handles the stage's due timer. Absent: the stage sets no timer. */
  onTime?(spec: Spec, state: State | undefined, t: number): StageResult<State>;
}
