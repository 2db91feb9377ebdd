import {
  type AbsenceSpec,
  type AbsenceState,
  type AllSpec,
  type AllState,
  absenceOnTime,
  type CorrelationInput,
  type CountSpec,
  type CountState,
  type SequenceSpec,
  type SequenceState,
  stepAbsence,
  stepAll,
  stepCount,
  stepSequence,
} from './correlation.js';
import type { Firing, Held, Stage, StageResult, SubCheck } from './stage.js';
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

/** What each kind of stage is configured with, keeps, and takes. */
export interface StageTypes {
  /** Filters incoming events: a firing comes out for an event that passes. */
  dedupe: { spec: WindowSpec; state: UntilState; input: Held };
  all: { spec: AllSpec; state: AllState; input: CorrelationInput };
  sequence: { spec: SequenceSpec; state: SequenceState; input: CorrelationInput };
  absence: { spec: AbsenceSpec; state: AbsenceState; input: CorrelationInput };
  count: { spec: CountSpec; state: CountState; input: CorrelationInput };
  throttle: { spec: WindowSpec; state: UntilState; input: Firing };
  debounce: { spec: DebounceSpec; state: DebounceState; input: Firing };
  rateLimit: { spec: RateLimitSpec; state: RateLimitState; input: Firing };
  batch: { spec: BatchSpec; state: BatchState; input: Firing };
}

/** The kinds of stage that keep state. */
export type StageKind = keyof StageTypes;

/** The stage of kind `K`. */
export type StageOf<K extends StageKind> = Stage<
  StageTypes[K]['spec'],
  StageTypes[K]['state'],
  StageTypes[K]['input']
>;

/** The storm-control stages that act on firings, in the order firings pass them. */
export const stormStages = ['throttle', 'debounce', 'rateLimit', 'batch'] as const;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);
const hasList = (value: Record<string, unknown>, name: string) => Array.isArray(value[name]);
const hasNumber = (value: Record<string, unknown>, name: string) => typeof value[name] === 'number';

/** Every stateful stage by kind: the one place that knows which function runs which kind. */
export const stages: { readonly [K in StageKind]: StageOf<K> } = Object.freeze({
  dedupe: {
    isState: (value): value is UntilState => isRecord(value) && hasNumber(value, 'until'),
    step(spec, state, event, t) {
      const result = stepDedupe(spec, state, t);
      return { ...result, firings: result.pass ? [{ event }] : [] };
    },
  },
  all: {
    isState: (value): value is AllState => isRecord(value) && hasList(value, 'slots'),
    step: (spec, state, input, _t, check) => stepAll(spec, state, input, check),
  },
  sequence: {
    isState: (value): value is SequenceState => isRecord(value) && hasList(value, 'held'),
    step: (spec, state, input, _t, check) => stepSequence(spec, state, input, check),
  },
  absence: {
    isState: (value): value is AbsenceState =>
      isRecord(value) && isRecord(value.after) && hasNumber(value, 'deadline'),
    step: (spec, state, input, _t, check) => stepAbsence(spec, state, input, check),
    onTime: absenceOnTime,
  },
  count: {
    isState: (value): value is CountState => isRecord(value) && hasList(value, 'held'),
    step: (spec, state, input, _t, check) => stepCount(spec, state, input, check),
  },
  throttle: {
    isState: (value): value is UntilState => isRecord(value) && hasNumber(value, 'until'),
    step: (spec, state, firing, t) => stepThrottle(spec, state, firing, t),
  },
  debounce: {
    isState: (value): value is DebounceState =>
      isRecord(value) && hasList(value, 'held') && hasNumber(value, 'deadline'),
    step: (spec, state, firing, t) => stepDebounce(spec, state, firing, t),
    onTime: debounceOnTime,
  },
  rateLimit: {
    isState: (value): value is RateLimitState =>
      isRecord(value) && hasList(value, 'passed') && hasList(value, 'queue'),
    step: (spec, state, firing, t) => stepRateLimit(spec, state, firing, t),
    onTime: rateLimitOnTime,
  },
  batch: {
    isState: (value): value is BatchState =>
      isRecord(value) && hasList(value, 'held') && hasNumber(value, 'deadline'),
    step: (spec, state, firing, t) => stepBatch(spec, state, firing, t),
    onTime: batchOnTime,
  },
});

/** A state as its stage reads it: undefined when there is none (or it is not the stage's). */
function stateOf<K extends StageKind>(
  stage: StageOf<K>,
  stored: unknown,
): StageTypes[K]['state'] | undefined {
  return stage.isState(stored) ? stored : undefined;
}

/** Runs the stage of `kind` on one input, with the state stored for it. */
export function stepStage<K extends StageKind>(
  kind: K,
  spec: StageTypes[K]['spec'],
  stored: unknown,
  input: StageTypes[K]['input'],
  t: number,
  check: SubCheck,
): StageResult<StageTypes[K]['state']> {
  const stage: StageOf<K> = stages[kind];
  return stage.step(spec, stateOf(stage, stored), input, t, check);
}

/** Runs the due timer of the stage of `kind`; undefined when that kind sets no timer. */
export function timeStage<K extends StageKind>(
  kind: K,
  spec: StageTypes[K]['spec'],
  stored: unknown,
  t: number,
): StageResult<StageTypes[K]['state']> | undefined {
  const stage: StageOf<K> = stages[kind];
  return stage.onTime?.(spec, stateOf(stage, stored), t);
}
