import type { AbsenceSpec, AllSpec, CountSpec, SequenceSpec } from './correlation.js';
import { stepAny } from './correlation.js';
import type { Firing, Held, StageNote, StageResult, SubCondition } from './stage.js';
import { type StageTypes, stepStage, stormStages, timeStage } from './stages.js';
import type { WindowSpec } from './storm-control.js';

export { stormStages } from './stages.js';

/** How a rule's `when` combines events. */
export type WhenSpec =
  | { type: 'single' }
  | { type: 'any'; subs: readonly SubCondition[] }
  | ({ type: 'all' } & AllSpec)
  | ({ type: 'sequence' } & SequenceSpec)
  | ({ type: 'absence' } & AbsenceSpec)
  | ({ type: 'count'; subs: readonly SubCondition[] } & CountSpec);

/** The storm-control stages that act on firings. */
type StormStage = (typeof stormStages)[number];

/** A rule's storm-control stages, each configured for its kind. */
export type StormSpecs = { [K in StormStage]?: StageTypes[K]['spec'] };

/** A rule's flow: its `when`, `dedupe`, and its storm-control stages. */
export type FlowSpec = { when: WhenSpec; dedupe?: WindowSpec } & StormSpecs;

/** Where a stage's state is kept: `when` (whatever correlation it is), `dedupe`, or a storm stage. */
export type StageName = 'dedupe' | 'when' | StormStage;

/** Whether a `when` keeps state: a correlation other than `any`. */
function isCorrelation(when: WhenSpec): when is Exclude<WhenSpec, { type: 'single' | 'any' }> {
  return when.type !== 'single' && when.type !== 'any';
}

/** Whether `value` names a place where stage state is kept (a timer's `stage`, say). */
export function isStageName(value: unknown): value is StageName {
  return value === 'when' || value === 'dedupe' || stormStages.some((stage) => stage === value);
}

/** Whether a rule needs any state at all (otherwise the dispatcher takes its fast path). */
export function isStateful(spec: FlowSpec): boolean {
  return (
    isCorrelation(spec.when) ||
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
    const result = stepStage('dedupe', spec.dedupe, states.get('dedupe', key), event, t, expressions.check);
    states.put('dedupe', key, result);
    for (const note of result.notes) notes.push({ stage: 'dedupe', key, note });
    if (result.firings.length === 0) return { firings: [], notes };
  }
  const fired: Firing[] = [];
  const when = spec.when;
  if (when.type === 'single') {
    if (expressions.check(0, event, {})) fired.push({ event });
  } else if (when.type === 'any') {
    fired.push(...stepAny(when.subs, { event, subs }, expressions.check));
  } else if (isCorrelation(when)) {
    // Sub-conditions may key the same event differently (`by` per sub): one step per key.
    const byKey = new Map<string, number[]>();
    for (const sub of subs) {
      const key = expressions.keyOf('when', event, sub);
      const list = byKey.get(key) ?? [];
      list.push(sub);
      byKey.set(key, list);
    }
    for (const [key, keyed] of byKey) {
      const input = { event, subs: keyed };
      const result = stepStage(when.type, when, states.get('when', key), input, t, expressions.check);
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
  const state = states.get(stage, key);
  let result: StageResult<unknown> | undefined;
  // Firings of a `when` timer go through every storm stage; those of a storm stage, through the rest.
  let next = 0;
  if (stage === 'when') {
    if (isCorrelation(spec.when)) result = timeStage(spec.when.type, spec.when, state, t);
  } else if (stage !== 'dedupe') {
    const stormSpec = spec[stage];
    if (stormSpec !== undefined) result = timeStage(stage, stormSpec, state, t);
    next = stormStages.indexOf(stage) + 1;
  }
  if (result === undefined) return { firings: [], notes };
  states.put(stage, key, result);
  return { firings: pipe(spec, next, result.firings, t, states, expressions, notes), notes };
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
    const stageSpec = spec[stage];
    if (stageSpec === undefined) continue;
    const next: Firing[] = [];
    for (const firing of current) {
      const key = expressions.firingKey(stage, firing);
      const result = stepStage(stage, stageSpec, states.get(stage, key), firing, t, expressions.check);
      states.put(stage, key, result);
      next.push(...result.firings);
      for (const note of result.notes) notes.push({ stage, key, note });
    }
    current = next;
  }
  return current;
}
