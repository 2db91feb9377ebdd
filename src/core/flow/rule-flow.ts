import {
  type AbsenceSpec,
  type AbsenceState,
  type AllSpec,
  type AllState,
  absenceOnTime,
  type CountSpec,
  type CountState,
  type SequenceSpec,
  type SequenceState,
  stepAbsence,
  stepAll,
  stepAny,
  stepCount,
  stepSequence,
} from './correlation.js';
import type { Firing, Held, StageNote, StageResult, SubCondition } from './stage.js';
import {
  type BatchSpec,
  type BatchState,
  batchOnTime,
  type DebounceSpec,
  type DebounceState,
  debounceOnTime,
  type RateLimitSpec,
  type RateLimitState,
  rateLimitOnTime,
  stepBatch,
  stepDebounce,
  stepDedupe,
  stepRateLimit,
  stepThrottle,
  type UntilState,
  type WindowSpec,
} from './storm-control.js';

/** How a rule's `when` combines events. */
export type WhenSpec =
  | { type: 'single' }
  | { type: 'any'; subs: readonly SubCondition[] }
  | ({ type: 'all' } & AllSpec)
  | ({ type: 'sequence' } & SequenceSpec)
  | ({ type: 'absence' } & AbsenceSpec)
  | ({ type: 'count'; subs: readonly SubCondition[] } & CountSpec);

/** A rule's flow: its `when` and its storm control, as the dispatcher runs them. */
export interface FlowSpec {
  when: WhenSpec;
  dedupe?: WindowSpec;
  throttle?: WindowSpec;
  debounce?: DebounceSpec;
  rateLimit?: RateLimitSpec;
  batch?: BatchSpec;
}

/** The stages that keep state, in the order firings pass them. `when` and `dedupe` come first. */
export const stormStages = ['throttle', 'debounce', 'rateLimit', 'batch'] as const;
export type StageName = 'dedupe' | 'when' | (typeof stormStages)[number];

/** Whether a rule needs any state at all (otherwise the dispatcher takes its fast path). */
export function isStateful(spec: FlowSpec): boolean {
  return (
    (spec.when.type !== 'single' && spec.when.type !== 'any') ||
    spec.dedupe !== undefined ||
    stormStages.some((stage) => spec[stage] !== undefined)
  );
}

/** Where a rule's stage states live: the dispatcher's cache, written to the store with its offset. */
export interface FlowStates {
  get(stage: StageName, key: string): unknown;
  /** Records a stage's new state, its expiry and its timer (see StageResult). */
  put(stage: StageName, key: string, result: StageResult<unknown>): void;
}

/** What the dispatcher supplies to evaluate a rule's expressions. */
export interface FlowExpressions {
  /** The correlation key of an event for a sub-condition (`by`), or for `dedupe` (sub -1). */
  keyOf(stage: 'when' | 'dedupe', event: Held, sub: number): string;
  /** The key of a firing for a storm-control stage. */
  firingKey(stage: (typeof stormStages)[number], firing: Firing): string;
  /** A sub-condition's `if`, given the events already held. */
  check(sub: number, event: Held, held: Record<string, Held>): boolean;
}

/** An audit-worthy note, with the stage and key it came from. */
export interface FlowNote {
  stage: StageName;
  key: string;
  note: StageNote;
}

export interface FlowOutcome {
  firings: Firing[];
  notes: FlowNote[];
}

/**
 * Runs one event through a rule's flow: dedupe, then `when`, then each storm-control stage in order.
 * `subs` are the sub-conditions whose patterns the event matched (`[0]` for a single-event rule).
 */
export function flowEvent(
  spec: FlowSpec,
  event: Held,
  subs: readonly number[],
  states: FlowStates,
  expressions: FlowExpressions,
): FlowOutcome {
  const notes: FlowNote[] = [];
  const t = event.t;
  if (spec.dedupe) {
    const key = expressions.keyOf('dedupe', event, -1);
    const result = stepDedupe(spec.dedupe, states.get('dedupe', key) as UntilState | undefined, t);
    states.put('dedupe', key, result);
    for (const note of result.notes) notes.push({ stage: 'dedupe', key, note });
    if (!result.pass) return { firings: [], notes };
  }
  const fired: Firing[] = [];
  const when = spec.when;
  if (when.type === 'single') {
    if (expressions.check(0, event, {})) fired.push({ event });
  } else if (when.type === 'any') {
    fired.push(...stepAny(when.subs, { event, subs }, expressions.check));
  } else {
    // Sub-conditions may key the same event differently (`by` per sub): one step per key.
    const byKey = new Map<string, number[]>();
    for (const sub of subs) {
      const key = expressions.keyOf('when', event, sub);
      const list = byKey.get(key) ?? [];
      list.push(sub);
      byKey.set(key, list);
    }
    for (const [key, keyed] of byKey) {
      const result = stepWhen(when, states.get('when', key), { event, subs: keyed }, expressions);
      states.put('when', key, result);
      fired.push(...result.firings);
      for (const note of result.notes) notes.push({ stage: 'when', key, note });
    }
  }
  return { firings: pipe(spec, 0, fired, t, states, expressions, notes), notes };
}

/** Runs a due timer of one stage and key through the rest of the rule's flow. */
export function flowTimer(
  spec: FlowSpec,
  stage: StageName,
  key: string,
  t: number,
  states: FlowStates,
  expressions: FlowExpressions,
): FlowOutcome {
  const notes: FlowNote[] = [];
  let result: StageResult<unknown>;
  const state = states.get(stage, key);
  switch (stage) {
    case 'when':
      if (spec.when.type !== 'absence') return { firings: [], notes };
      result = absenceOnTime(spec.when, state as AbsenceState | undefined, t);
      break;
    case 'debounce':
      if (!spec.debounce) return { firings: [], notes };
      result = debounceOnTime(spec.debounce, state as DebounceState | undefined, t);
      break;
    case 'rateLimit':
      if (!spec.rateLimit) return { firings: [], notes };
      result = rateLimitOnTime(spec.rateLimit, state as RateLimitState | undefined, t);
      break;
    case 'batch':
      if (!spec.batch) return { firings: [], notes };
      result = batchOnTime(spec.batch, state as BatchState | undefined, t);
      break;
    default:
      return { firings: [], notes };
  }
  states.put(stage, key, result);
  const next = stage === 'when' ? 0 : stormStages.indexOf(stage) + 1;
  return { firings: pipe(spec, next, result.firings, t, states, expressions, notes), notes };
}

function stepWhen(
  when: Exclude<WhenSpec, { type: 'single' } | { type: 'any' }>,
  state: unknown,
  input: { event: Held; subs: readonly number[] },
  expressions: FlowExpressions,
): StageResult<unknown> {
  switch (when.type) {
    case 'all':
      return stepAll(when, state as AllState | undefined, input, expressions.check);
    case 'sequence':
      return stepSequence(when, state as SequenceState | undefined, input, expressions.check);
    case 'absence':
      return stepAbsence(when, state as AbsenceState | undefined, input, expressions.check);
    case 'count':
      return stepCount(when, state as CountState | undefined, input, expressions.check);
  }
}

/** Passes firings through the storm-control stages from `from` on. */
function pipe(
  spec: FlowSpec,
  from: number,
  firings: Firing[],
  t: number,
  states: FlowStates,
  expressions: FlowExpressions,
  notes: FlowNote[],
): Firing[] {
  let current = firings;
  for (let i = from; i < stormStages.length && current.length > 0; i++) {
    const stage = stormStages[i]!;
    if (!spec[stage]) continue;
    const next: Firing[] = [];
    for (const firing of current) {
      const key = expressions.firingKey(stage, firing);
      const state = states.get(stage, key);
      let result: StageResult<unknown>;
      switch (stage) {
        case 'throttle':
          result = stepThrottle(spec.throttle!, state as UntilState | undefined, firing, t);
          break;
        case 'debounce':
          result = stepDebounce(spec.debounce!, state as DebounceState | undefined, firing, t);
          break;
        case 'rateLimit':
          result = stepRateLimit(spec.rateLimit!, state as RateLimitState | undefined, firing, t);
          break;
        case 'batch':
          result = stepBatch(spec.batch!, state as BatchState | undefined, firing, t);
          break;
      }
      states.put(stage, key, result);
      next.push(...result.firings);
      for (const note of result.notes) notes.push({ stage, key, note });
    }
    current = next;
  }
  return current;
}
