import { type FieldGoal, solveConjunction } from './array-consistency.js';
import { expandPattern, type Step } from './automaton/conjunctions.js';
import { createCompiledMatcher } from './compiled-matcher.js';
import { type PlacedValue, readFieldValues, valuesAt } from './event-fields.js';
import { describeMatchers, matchValue } from './match-value.js';
import type { Pattern, PatternCondition } from './pattern.js';

/** Where a pattern that did not match fails: the first field, in pattern order, that cannot hold. */
export interface PatternMismatch {
  matched: false;
  /** The event field, keys joined with `.`, e.g. `data.labels.severity`. */
  path: string;
  /** What the pattern wanted there, in words, e.g. `one of ["critical"]`. */
  expected: string;
  /**
   * What the event holds there: the value, or a list when there are several; absent when nothing is.
   * Shortened to an excerpt when large (see `truncated`).
   */
  actual?: unknown;
  /** Whether the event holds anything at `path` (a value, an object or an array). */
  present: boolean;
  /**
   * Set when `actual` is an excerpt: only the first {@link explainLimits}`.maxActualValues` values, and
   * strings (or objects and lists, then written as JSON text) cut at `maxActualChars`, ending in `…`.
   */
  truncated?: true;
}

/** A pattern that did not match, where working out which field fails would take more than allowed. */
export interface PatternMismatchUnexplained {
  matched: false;
  path: null;
  /** Why the failing field is not named, in words. */
  reason: string;
}

/**
 * Why a pattern did or did not match an event, for `reflex explain`. `matched` is always the compiled
 * matcher's answer (the one dispatch gives).
 */
export type PatternExplanation = { matched: true } | PatternMismatch | PatternMismatchUnexplained;

/** What an explanation shows and how much work it may do. */
export const explainLimits = Object.freeze({
  /** `actual` shows at most this many of the values found at the failing field. */
  maxActualValues: 10,
  /** In `actual`, longer strings, and objects and lists longer than this as JSON text, are cut. */
  maxActualChars: 200,
  /**
   * Work allowed for naming the failing fields of one event's explanations, all patterns together: one
   * unit per field value looked at, counted each time a combination of fields is decided. Past it, a
   * failing pattern is explained as "not worked out" (`path: null`).
   */
  maxWork: 1_000_000,
});

/** Explains many patterns (a rulebook's) against events. */
export interface PatternExplainer {
  /**
   * How each pattern fares on `event`: call the answer with a pattern's index. Whether each matched comes
   * from one pass of the compiled matcher over all of them; where one that failed fails is worked out
   * when asked for, within {@link explainLimits}`.maxWork` for the event.
   */
  explain(event: unknown): EventExplanations;
}

/** The explanations of one event, by pattern index. */
export interface EventExplanations {
  /** The explanation of pattern `index`, worked out at once. */
  (index: number): PatternExplanation;
  /**
   * The same, worked out in steps: the generator pauses after each combination of fields it decides (each
   * costs at most about the event's size), so that a caller can let other work run in between.
   */
  steps(index: number): Generator<void, PatternExplanation, void>;
}

/**
 * Builds an explainer for `patterns` (compiling them into one automaton). Throws
 * REFLEX_ERR_PATTERN_TOO_COMPLEX for a pattern the compiled matcher refuses.
 *
 * @example
 * const explainer = createPatternExplainer([parsePattern({ type: ['a'] }), parsePattern({ type: ['b'] })]);
 * const of = explainer.explain({ type: 'b' });
 * of(1); // { matched: true }
 * of(0); // { matched: false, path: 'type', expected: 'one of ["a"]', actual: 'b', present: true }
 */
export function createPatternExplainer(patterns: readonly Pattern[]): PatternExplainer {
  const matcher = createCompiledMatcher();
  const paths = new Set<string>();
  patterns.forEach((pattern, index) => {
    matcher.add(index, pattern);
    collectPaths(pattern.conditions, paths);
  });
  return {
    explain(event) {
      const matched = new Set(matcher.match(event));
      let context: Context | undefined;
      const answers = new Map<number, PatternExplanation>();
      function* steps(index: number): Generator<void, PatternExplanation, void> {
        const pattern = patterns[index];
        if (pattern === undefined) throw new RangeError(`no pattern at index ${index}`);
        let answer = answers.get(index);
        if (answer === undefined) {
          if (matched.has(index)) {
            answer = { matched: true };
          } else {
            if (context === undefined) {
              context = { event, fields: readFieldValues(event, paths), goals: new Map(), work: 0 };
              yield;
            }
            answer = yield* describeFailure(pattern.conditions, context);
          }
          answers.set(index, answer);
        }
        return answer;
      }
      const of = (index: number): PatternExplanation => {
        const run = steps(index);
        for (;;) {
          const step = run.next();
          if (step.done) return step.value;
        }
      };
      return Object.assign(of, { steps });
    },
  };
}

/**
 * Explains one pattern against one event.
 *
 * @example
 * explainPattern(parsePattern({ data: { severity: ['critical'] } }), { data: { severity: 'warning' } })
 * // { matched: false, path: 'data.severity', expected: 'one of ["critical"]', actual: 'warning', present: true }
 */
export function explainPattern(pattern: Pattern, event: unknown): PatternExplanation {
  return createPatternExplainer([pattern]).explain(event)(0);
}

/** What the explanations of one event share: its fields, read once, and the work done so far. */
interface Context {
  readonly event: unknown;
  readonly fields: ReadonlyMap<string, readonly PlacedValue[]>;
  /** Goals by step key: a step's values are looked at once per event. */
  readonly goals: Map<string, FieldGoal>;
  work: number;
}

function collectPaths(conditions: readonly PatternCondition[], into: Set<string>): void {
  for (const condition of conditions) {
    if (condition.type === 'field') into.add(condition.path);
    else for (const alternative of condition.alternatives) collectPaths(alternative, into);
  }
}

const outOfWork = Symbol('explanation work exhausted');

function goalOf(step: Step, context: Context): FieldGoal {
  let goal = context.goals.get(step.key);
  if (goal === undefined) {
    const found = context.fields.get(step.path) ?? [];
    context.work += found.length;
    const hits = found
      .filter((v) => step.matchers.some((matcher) => matchValue(matcher, v.value)))
      .map((v) => v.place);
    goal = { hits, absentOk: step.absent, values: step.absent ? found.map((v) => v.place) : [] };
    context.goals.set(step.key, goal);
  }
  return goal;
}

/** A step of an explanation: pauses between pieces of work, returns `T`. */
type Steps<T> = Generator<void, T, void>;

/**
 * Whether `conditions` can all hold on the event; `undefined` when that could not be decided within the
 * work allowed. Throws `outOfWork` when the event's work is used up. Pauses after each conjunction.
 */
function* satisfiable(conditions: readonly PatternCondition[], context: Context): Steps<boolean | undefined> {
  let undecided = false;
  for (const conjunction of expandPattern({ source: null, conditions })) {
    const goals = conjunction.steps.map((step) => goalOf(step, context));
    for (const goal of goals) context.work += 1 + goal.hits.length + goal.values.length;
    if (context.work > explainLimits.maxWork) throw outOfWork;
    const holds = solveConjunction(goals);
    yield;
    if (holds === true) return true;
    if (holds === undefined) undecided = true;
  }
  return undecided ? undefined : false;
}

function fieldPaths(conditions: readonly PatternCondition[]): string[] {
  return conditions.flatMap((condition) => (condition.type === 'field' ? [condition.path] : ['(`$or`)']));
}

function* describeFailure(
  conditions: readonly PatternCondition[],
  context: Context,
): Steps<PatternMismatch | PatternMismatchUnexplained> {
  try {
    return yield* firstFailing(conditions, context);
  } catch (error) {
    if (error !== outOfWork) throw error;
    return {
      matched: false,
      path: null,
      reason: `which field fails was not worked out: explaining this event needs more than the work limit of ${explainLimits.maxWork}`,
    };
  }
}

function* firstFailing(
  conditions: readonly PatternCondition[],
  context: Context,
): Steps<PatternMismatch | PatternMismatchUnexplained> {
  // The first condition that cannot hold together with those before it. One exists: the whole list fails.
  let k = 0;
  for (; k < conditions.length - 1; k++) {
    const holds = yield* satisfiable(conditions.slice(0, k + 1), context);
    if (holds === undefined) {
      return {
        matched: false,
        path: null,
        reason:
          'which field fails could not be worked out: the event spells a field both with dotted keys and with nested objects inside arrays, in more combinations than Reflex tries',
      };
    }
    if (!holds) break;
  }
  const condition = conditions[k]!;
  if (condition.type === 'or') {
    const [first] = condition.alternatives;
    const inner = yield* firstFailing([...conditions.slice(0, k), ...first!], context);
    if (inner.path === null) return inner;
    return {
      ...inner,
      expected: `${inner.expected} (or another of the ${condition.alternatives.length} \`$or\` alternatives)`,
    };
  }
  const found = valuesAt(context.event, condition.path, explainLimits.maxActualValues + 1);
  const failure: PatternMismatch = {
    matched: false,
    path: condition.path,
    expected: describeMatchers(condition.matchers),
    present: found.length > 0,
  };
  if (found.length > 0) {
    const shown = found.slice(0, explainLimits.maxActualValues).map(excerpt);
    failure.actual = found.length === 1 ? shown[0]!.value : shown.map((s) => s.value);
    if (found.length > explainLimits.maxActualValues || shown.some((s) => s.cut)) failure.truncated = true;
  }
  if (k > 0 && (yield* satisfiable([condition], context)) === true) {
    // It holds on its own, so it clashes with earlier fields over array elements.
    failure.expected += `, in the same array element as ${fieldPaths(conditions.slice(0, k)).join(', ')}`;
  }
  return failure;
}

/** Cuts `text` to `max` UTF-16 units without splitting a surrogate pair. */
function cut(text: string, max: number): string {
  const end = text.charCodeAt(max - 1) >= 0xd800 && text.charCodeAt(max - 1) <= 0xdbff ? max - 1 : max;
  return `${text.slice(0, end)}…`;
}

/** A value as `actual` shows it: itself when short, else a cut string (JSON text for objects and lists). */
function excerpt(value: unknown): { value: unknown; cut: boolean } {
  const max = explainLimits.maxActualChars;
  if (typeof value === 'string')
    return value.length > max ? { value: cut(value, max), cut: true } : { value, cut: false };
  if (value === null || typeof value !== 'object') return { value, cut: false };
  const text = jsonPrefix(value, max);
  return text.length > max ? { value: cut(text, max), cut: true } : { value, cut: false };
}

/**
 * The JSON text of `value` (JSON data: what `JSON.parse` gives), written only until it is longer than
 * `max`: a large value costs what its first `max` characters do.
 */
function jsonPrefix(value: unknown, max: number): string {
  let text = '';
  const write = (v: unknown): boolean => {
    if (Array.isArray(v)) {
      text += '[';
      for (let i = 0; i < v.length; i++) {
        if (i > 0) text += ',';
        if (!write(v[i]) || text.length > max) return false;
      }
      text += ']';
    } else if (v !== null && typeof v === 'object') {
      text += '{';
      let first = true;
      for (const key in v) {
        if (!Object.hasOwn(v, key)) continue;
        const child = (v as Record<string, unknown>)[key];
        if (child === undefined) continue;
        text += `${first ? '' : ','}${JSON.stringify(key.length > max ? key.slice(0, max + 1) : key)}:`;
        first = false;
        if (!write(child) || text.length > max) return false;
      }
      text += '}';
    } else if (typeof v === 'string') {
      text += JSON.stringify(v.length > max ? v.slice(0, max + 1) : v);
    } else {
      text += JSON.stringify(v) ?? 'null';
    }
    return text.length <= max;
  };
  write(value);
  return text;
}
