import type { Firing, Held, StageNote, StageResult, SubCheck, SubCondition } from './stage.js';
import { unchanged } from './stage.js';

/**
 * Correlation stages: the `when` of a rule over several events, per key. The semantics are written out
 * with timelines in docs/rules.md ("Correlation"); the comments here only say how.
 */

/** An input to a correlation: an event, and which sub-conditions' patterns it matched (ascending). */
export interface CorrelationInput {
  event: Held;
  subs: readonly number[];
}

// --- all ---

export interface AllSpec {
  subs: readonly SubCondition[];
  /** Window in ms: held events older than `t - windowMs` drop out. */
  windowMs: number;
}

export interface AllState {
  /** One slot per sub-condition: the latest event that matched it, or null. */
  slots: Array<Held | null>;
}

function heldByName(
  subs: readonly SubCondition[],
  slots: ReadonlyArray<Held | null>,
  except = -1,
): Record<string, Held> {
  const out: Record<string, Held> = {};
  slots.forEach((slot, i) => {
    if (slot && i !== except) out[subs[i]!.name] = slot;
  });
  return out;
}

/** `all`: every sub-condition matched by a distinct event, in any order, within the window. */
export function stepAll(
  spec: AllSpec,
  state: AllState | undefined,
  input: CorrelationInput,
  check: SubCheck,
): StageResult<AllState> {
  const t = input.event.t;
  const slots: Array<Held | null> = state
    ? state.slots.map((slot) => (slot && slot.t >= t - spec.windowMs ? slot : null))
    : spec.subs.map(() => null);
  const passing = input.subs.filter((sub) => check(sub, input.event, heldByName(spec.subs, slots, sub)));
  if (passing.length === 0) return settle(spec, slots, state);
  const target = passing.find((sub) => slots[sub] === null) ?? passing[0]!;
  slots[target] = input.event;
  if (slots.every((slot) => slot !== null)) {
    return {
      state: undefined,
      firings: [{ event: input.event, events: heldByName(spec.subs, slots) }],
      notes: [],
    };
  }
  return {
    state: { slots },
    expiresAt: newest(slots) + spec.windowMs,
    firings: [],
    notes: [
      { kind: 'held', detail: { slot: spec.subs[target]!.name, waitingFor: missing(spec.subs, slots) } },
    ],
  };
}

function settle(
  spec: AllSpec,
  slots: Array<Held | null>,
  before: AllState | undefined,
): StageResult<AllState> {
  if (!before) return unchanged<AllState>(undefined);
  if (slots.every((slot) => slot === null)) return { state: undefined, firings: [], notes: [] };
  return { state: { slots }, expiresAt: newest(slots) + spec.windowMs, firings: [], notes: [] };
}

/** The partial match matters until its newest event leaves the window; older ones drop out one by one. */
function newest(slots: ReadonlyArray<Held | null>): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const slot of slots) if (slot && slot.t > max) max = slot.t;
  return max;
}

function missing(subs: readonly SubCondition[], slots: ReadonlyArray<Held | null>): string[] {
  return subs.filter((_, i) => slots[i] === null).map((sub) => sub.name);
}

// --- any ---

/** `any`: an event matching at least one sub-condition fires once, with every sub it matched named. */
export function stepAny(subs: readonly SubCondition[], input: CorrelationInput, check: SubCheck): Firing[] {
  const events: Record<string, Held> = {};
  for (const sub of input.subs) if (check(sub, input.event, {})) events[subs[sub]!.name] = input.event;
  return Object.keys(events).length === 0 ? [] : [{ event: input.event, events }];
}

// --- sequence ---

export interface SequenceSpec {
  subs: readonly SubCondition[];
  /** Window in ms from the first event of the sequence. */
  windowMs: number;
}

export interface SequenceState {
  /** Events for the first `held.length` sub-conditions, in order. */
  held: Held[];
}

/** `sequence`: the sub-conditions matched in this order, within the window from the first. */
export function stepSequence(
  spec: SequenceSpec,
  state: SequenceState | undefined,
  input: CorrelationInput,
  check: SubCheck,
): StageResult<SequenceState> {
  const t = input.event.t;
  let held = state?.held ?? [];
  const expired = held.length > 0 && t - held[0]!.t > spec.windowMs;
  if (expired) held = [];
  const names = (events: readonly Held[]) => heldByName(spec.subs, events);
  const next = held.length;
  if (next > 0 && input.subs.includes(next) && check(next, input.event, names(held))) {
    const advanced = [...held, input.event];
    if (advanced.length === spec.subs.length) {
      return { state: undefined, firings: [{ event: input.event, events: names(advanced) }], notes: [] };
    }
    return held_(spec, advanced);
  }
  if (next <= 1 && input.subs.includes(0) && check(0, input.event, {})) return held_(spec, [input.event]);
  if (expired) return { state: undefined, firings: [], notes: [] };
  return unchanged(state, state ? state.held[0]!.t + spec.windowMs : undefined);
}

function held_(spec: SequenceSpec, held: Held[]): StageResult<SequenceState> {
  return {
    state: { held },
    expiresAt: held[0]!.t + spec.windowMs,
    firings: [],
    notes: [
      {
        kind: 'held',
        detail: { step: held.length, of: spec.subs.length, next: spec.subs[held.length]!.name },
      },
    ],
  };
}

// --- absence ---

export interface AbsenceSpec {
  /** Names of the two sub-conditions: sub 0 is `after` (A), sub 1 is `expect` (B). */
  subs: readonly SubCondition[];
  windowMs: number;
}

export interface AbsenceState {
  after: Held;
  deadline: number;
}

/** `absence`: A happened and no B followed within the window; fires at the deadline. */
export function stepAbsence(
  spec: AbsenceSpec,
  state: AbsenceState | undefined,
  input: CorrelationInput,
  check: SubCheck,
): StageResult<AbsenceState> {
  const t = input.event.t;
  const firings: Firing[] = [];
  const notes: StageNote[] = [];
  let current = state;
  if (current && t >= current.deadline) {
    firings.push(absenceFiring(spec, current));
    current = undefined;
  }
  if (current && input.subs.includes(1) && check(1, input.event, { [spec.subs[0]!.name]: current.after })) {
    notes.push({
      kind: 'ended',
      detail: { slot: spec.subs[1]!.name, deadline: new Date(current.deadline).toISOString() },
    });
    current = undefined;
  }
  if (input.subs.includes(0) && check(0, input.event, {})) {
    const next = { after: input.event, deadline: t + spec.windowMs };
    notes.push({
      kind: 'held',
      detail: { waitingFor: spec.subs[1]!.name, deadline: new Date(next.deadline).toISOString() },
    });
    return { state: next, firings, timer: next.deadline, notes };
  }
  if (current === state) return unchanged(state);
  // The wait ended: it fired (its deadline had passed) or B came in time.
  return { state: undefined, firings, timer: null, notes };
}

/** Time passes for an absence: at or after the deadline, it fires. */
export function absenceOnTime(
  spec: AbsenceSpec,
  state: AbsenceState | undefined,
  t: number,
): StageResult<AbsenceState> {
  if (!state || t < state.deadline) return unchanged(state);
  return { state: undefined, firings: [absenceFiring(spec, state)], timer: null, notes: [] };
}

function absenceFiring(spec: AbsenceSpec, state: AbsenceState): Firing {
  return { event: state.after, events: { [spec.subs[0]!.name]: state.after } };
}

// --- count ---

export interface CountSpec {
  atLeast: number;
  windowMs: number;
}

export interface CountState {
  held: Held[];
}

/** `count`: at least N matching events within a sliding window; fires with them and starts afresh. */
export function stepCount(
  spec: CountSpec,
  state: CountState | undefined,
  input: CorrelationInput,
  check: SubCheck,
): StageResult<CountState> {
  if (!input.subs.includes(0) || !check(0, input.event, {})) return unchanged(state, expiryOf(spec, state));
  const t = input.event.t;
  const held = (state?.held ?? []).filter((h) => h.t > t - spec.windowMs);
  held.push(input.event);
  if (held.length >= spec.atLeast) {
    return { state: undefined, firings: [{ event: input.event, batch: held }], notes: [] };
  }
  const next = { held };
  return {
    state: next,
    expiresAt: expiryOf(spec, next),
    firings: [],
    notes: [{ kind: 'held', detail: { count: held.length, of: spec.atLeast } }],
  };
}

function expiryOf(spec: CountSpec, state: CountState | undefined): number | undefined {
  return state && state.held.length > 0 ? state.held[state.held.length - 1]!.t + spec.windowMs : undefined;
}
