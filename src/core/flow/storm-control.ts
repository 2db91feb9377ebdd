import type { Firing, Held, StageResult } from './stage.js';
import { unchanged } from './stage.js';

/**
 * Storm-control stages, per rule and key. `dedupe` filters incoming events; the others act on firings
 * (what `when` produced). The definitions, with timelines, are in docs/rules.md ("Storm control").
 */

// --- dedupe ---

export interface WindowSpec {
  windowMs: number;
}

export interface UntilState {
  /** The accepted event's (or passed firing's) time plus the window. */
  until: number;
}

/** `dedupe`: an event with a key already accepted less than the window ago is dropped. */
export function stepDedupe(
  spec: WindowSpec,
  state: UntilState | undefined,
  t: number,
): StageResult<UntilState> & { pass: boolean } {
  if (state && t < state.until) {
    return {
      ...unchanged(state, state.until),
      pass: false,
      notes: [{ kind: 'suppressed', until: state.until, detail: { by: 'dedupe' } }],
    };
  }
  const next = { until: t + spec.windowMs };
  return { state: next, expiresAt: next.until, firings: [], notes: [], pass: true };
}

// --- throttle ---

/** `throttle`: the first firing of a key passes, the rest are dropped until the window after it ends. */
export function stepThrottle(
  spec: WindowSpec,
  state: UntilState | undefined,
  firing: Firing,
  t: number,
): StageResult<UntilState> {
  if (state && t < state.until) {
    return {
      ...unchanged(state, state.until),
      notes: [{ kind: 'suppressed', until: state.until, detail: { by: 'throttle' } }],
    };
  }
  const next = { until: t + spec.windowMs };
  return { state: next, expiresAt: next.until, firings: [firing], notes: [] };
}

// --- debounce ---

export interface DebounceSpec {
  quietMs: number;
  /** At the latest this long after the first held firing, the group passes even if firings keep coming. */
  maxWaitMs?: number;
  pass: 'first' | 'last' | 'all';
}

export interface DebounceState {
  /** Held firings: only the first or the last for those modes, all of them for `all`. */
  held: Firing[];
  first: number;
  deadline: number;
}

/** `debounce`: hold firings until the key has been quiet for `quiet` (or `maxWait` passed); then one passes. */
export function stepDebounce(
  spec: DebounceSpec,
  state: DebounceState | undefined,
  firing: Firing,
  t: number,
): StageResult<DebounceState> {
  const settled = debounceOnTime(spec, state, t);
  const current = settled.state;
  const first = current?.first ?? t;
  const held = !current
    ? [firing]
    : spec.pass === 'first'
      ? current.held
      : spec.pass === 'last'
        ? [firing]
        : [...current.held, firing];
  let deadline = t + spec.quietMs;
  if (spec.maxWaitMs !== undefined) deadline = Math.min(deadline, first + spec.maxWaitMs);
  return {
    state: { held, first, deadline },
    firings: settled.firings,
    timer: deadline,
    notes: [{ kind: 'suppressed', until: deadline, detail: { by: 'debounce', waiting: true } }],
  };
}

/** Time passes for a debounce: at the deadline the held group passes as one firing. */
export function debounceOnTime(
  spec: DebounceSpec,
  state: DebounceState | undefined,
  t: number,
): StageResult<DebounceState> {
  if (!state || t < state.deadline) return unchanged(state);
  return {
    state: undefined,
    firings: [groupFiring(state.held, spec.pass === 'all')],
    timer: null,
    notes: [],
  };
}

/** One firing standing for several: the last one, with every event of the group as `batch` if asked. */
function groupFiring(held: readonly Firing[], asBatch: boolean): Firing {
  const last = held[held.length - 1]!;
  if (!asBatch) return last;
  const batch: Held[] = [];
  for (const firing of held) for (const event of firing.batch ?? [firing.event]) batch.push(event);
  return { ...last, batch };
}

// --- rateLimit ---

export interface RateLimitSpec {
  max: number;
  perMs: number;
  excess: 'drop' | 'delay';
  /** Firings waiting beyond this are dropped. @default 1000 */
  maxQueue: number;
}

export interface RateLimitState {
  /** Times at which firings passed, within the last `per`. */
  passed: number[];
  /** Delayed firings, oldest first. */
  queue: Firing[];
}

/** `rateLimit`: at most `max` firings per key in any interval of `per`; the excess is dropped or delayed. */
export function stepRateLimit(
  spec: RateLimitSpec,
  state: RateLimitState | undefined,
  firing: Firing,
  t: number,
): StageResult<RateLimitState> {
  const released = rateLimitOnTime(spec, state, t);
  const passed = released.state?.passed ?? [];
  const queue = released.state?.queue ?? [];
  const firings = [...released.firings];
  if (passed.length < spec.max && queue.length === 0) {
    firings.push(firing);
    return rateState(spec, [...passed, t], queue, firings, released.timer);
  }
  const freeAt = passed[0]! + spec.perMs;
  if (spec.excess === 'delay' && queue.length < spec.maxQueue) {
    const result = rateState(spec, passed, [...queue, firing], firings, freeAt);
    result.notes.push({
      kind: 'suppressed',
      until: null,
      detail: { by: 'rateLimit', delayed: true, position: queue.length + 1 },
    });
    return result;
  }
  const result = rateState(spec, passed, queue, firings, released.timer);
  result.notes.push({ kind: 'suppressed', until: freeAt, detail: { by: 'rateLimit', dropped: true } });
  return result;
}

/** Time passes for a rate limit: queued firings pass as slots free up. */
export function rateLimitOnTime(
  spec: RateLimitSpec,
  state: RateLimitState | undefined,
  t: number,
): StageResult<RateLimitState> {
  if (!state) return unchanged<RateLimitState>(undefined);
  const passed = state.passed.filter((p) => p > t - spec.perMs);
  const queue = [...state.queue];
  const firings: Firing[] = [];
  while (queue.length > 0 && passed.length < spec.max) {
    firings.push(queue.shift()!);
    passed.push(t);
  }
  const timer = queue.length > 0 ? passed[0]! + spec.perMs : state.queue.length > 0 ? null : undefined;
  return rateState(spec, passed, queue, firings, timer);
}

function rateState(
  spec: RateLimitSpec,
  passed: number[],
  queue: Firing[],
  firings: Firing[],
  timer: number | null | undefined,
): StageResult<RateLimitState> {
  const result: StageResult<RateLimitState> = { state: undefined, firings, notes: [] };
  if (timer !== undefined) result.timer = timer;
  if (passed.length === 0 && queue.length === 0) return result;
  result.state = { passed, queue };
  // Delayed firings never expire on their own: they wait for their slot.
  if (queue.length === 0) result.expiresAt = passed[passed.length - 1]! + spec.perMs;
  return result;
}

// --- batch ---

export interface BatchSpec {
  size: number;
  windowMs: number;
}

export interface BatchState {
  held: Firing[];
  deadline: number;
}

/** `batch`: collect firings per key; `size` of them, or `window` after the first, pass as one. */
export function stepBatch(
  spec: BatchSpec,
  state: BatchState | undefined,
  firing: Firing,
  t: number,
): StageResult<BatchState> {
  const settled = batchOnTime(spec, state, t);
  const current = settled.state;
  const held = [...(current?.held ?? []), firing];
  const firings = [...settled.firings];
  if (held.length >= spec.size) {
    firings.push(groupFiring(held, true));
    return { state: undefined, firings, timer: null, notes: [] };
  }
  const deadline = current?.deadline ?? t + spec.windowMs;
  return {
    state: { held, deadline },
    firings,
    timer: deadline,
    notes: [
      {
        kind: 'held',
        detail: { by: 'batch', count: held.length, of: spec.size, until: new Date(deadline).toISOString() },
      },
    ],
  };
}

/** Time passes for a batch: at the end of its window, what was collected passes as one firing. */
export function batchOnTime(
  _spec: BatchSpec,
  state: BatchState | undefined,
  t: number,
): StageResult<BatchState> {
  if (!state || t < state.deadline) return unchanged(state);
  return { state: undefined, firings: [groupFiring(state.held, true)], timer: null, notes: [] };
}
