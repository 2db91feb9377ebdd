import { type EventField, type EventFields, flattenEvent, valuesAt } from './event-fields.js';
import { describeMatchers, matchValue } from './match-value.js';
import type { Matcher } from './matcher.js';
import type { FieldCondition, Pattern, PatternCondition } from './pattern.js';

/**
 * The array elements a partial match has committed to: array number → element index. Two values can take
 * part in one match only if they agree on every array they both sit in ("array-consistent" matching, as
 * aws/event-ruler's `rulesForJSONEvent`): `{"d": {"a": [..], "b": [..]}}` needs `a` and `b` in one element
 * of `d` when `d` is an array of objects.
 */
type Membership = ReadonlyMap<number, number>;

function consistent(field: EventField, membership: Membership): boolean {
  return field.arrays.every(({ array, index }) => {
    const taken = membership.get(array);
    return taken === undefined || taken === index;
  });
}

function hasExistsFalse(condition: FieldCondition): boolean {
  return condition.matchers.some((matcher) => matcher.type === 'exists' && !matcher.value);
}

/**
 * Depth-first search for one way to satisfy `goals[index..]` on top of `membership`. Fields that may be
 * satisfied by absence (`exists: false`) are checked at the end, against the final membership, so
 * `{"a": [{"exists": true}], "b": [{"exists": false}]}` under an array means "an element with `a` and
 * without `b`" whatever order the two fields are written in.
 */
function solve(
  goals: readonly PatternCondition[],
  index: number,
  membership: Membership,
  absent: readonly FieldCondition[],
  fields: EventFields,
): boolean {
  const goal = goals[index];
  if (goal === undefined) {
    return absent.every(
      (condition) => !(fields.get(condition.path) ?? []).some((f) => consistent(f, membership)),
    );
  }
  if (goal.type === 'or') {
    const rest = goals.slice(index + 1);
    return goal.alternatives.some((alternative) =>
      solve([...alternative, ...rest], 0, membership, absent, fields),
    );
  }
  // Values that commit to the same new array elements lead to the same search below: try each once.
  const tried = new Set<string>();
  for (const field of fields.get(goal.path) ?? []) {
    if (!consistent(field, membership) || !goal.matchers.some((matcher) => matchValue(matcher, field.value)))
      continue;
    const added = field.arrays.filter(({ array }) => !membership.has(array));
    const key = added.map(({ array, index: i }) => `${array}:${i}`).join(',');
    if (tried.has(key)) continue;
    tried.add(key);
    const next = new Map(membership);
    for (const { array, index: i } of added) next.set(array, i);
    if (solve(goals, index + 1, next, absent, fields)) return true;
  }
  if (hasExistsFalse(goal)) return solve(goals, index + 1, membership, [...absent, goal], fields);
  return false;
}

function satisfiable(conditions: readonly PatternCondition[], fields: EventFields): boolean {
  return solve(conditions, 0, new Map(), [], fields);
}

/**
 * Whether `pattern` matches `event`: every condition holds, each field by at least one of its values,
 * all within the same element of any array of objects they share.
 *
 * @example matchPattern(parsePattern({ type: [{ prefix: 'order.' }] }), event)
 */
export function matchPattern(pattern: Pattern, event: unknown): boolean {
  return satisfiable(pattern.conditions, flattenEvent(event));
}

/**
 * The simple, obviously-correct matcher: tries every pattern on every event. It is the test oracle for
 * the compiled automaton, so it favours clarity over speed.
 */
export function createReferenceMatcher(): Matcher {
  const patterns = new Map<number, Pattern>();
  return {
    add(id, pattern) {
      patterns.set(id, pattern);
    },
    remove(id) {
      patterns.delete(id);
    },
    match(event) {
      if (patterns.size === 0) return [];
      const fields = flattenEvent(event);
      const matched: number[] = [];
      for (const [id, pattern] of patterns) {
        if (satisfiable(pattern.conditions, fields)) matched.push(id);
      }
      return matched.sort((a, b) => a - b);
    },
    get size() {
      return patterns.size;
    },
  };
}

/**
 * Why a pattern did or did not match, for `reflex explain`. On no-match: the first field, in pattern
 * order, that cannot be satisfied together with the fields before it.
 */
export type PatternExplanation =
  | { matched: true }
  | {
      matched: false;
      /** The event field, keys joined with `.`, e.g. `data.labels.severity`. */
      path: string;
      /** What the pattern wanted there, in words, e.g. `one of ["critical"]`. */
      expected: string;
      /** What the event holds there: the value, or a list when there are several; absent when nothing is. */
      actual?: unknown;
      /** Whether the event holds anything at `path` (a value, an object or an array). */
      present: boolean;
    };

type Failure = Extract<PatternExplanation, { matched: false }>;

function fieldPaths(conditions: readonly PatternCondition[]): string[] {
  return conditions.flatMap((condition) => (condition.type === 'field' ? [condition.path] : ['(`$or`)']));
}

function describeFailure(
  conditions: readonly PatternCondition[],
  fields: EventFields,
  event: unknown,
): Failure {
  // The first condition that cannot hold together with those before it. One exists: the whole list fails.
  let k = 0;
  while (k < conditions.length - 1 && satisfiable(conditions.slice(0, k + 1), fields)) k++;
  const condition = conditions[k]!;
  if (condition.type === 'or') {
    const [first] = condition.alternatives;
    const inner = describeFailure([...conditions.slice(0, k), ...first!], fields, event);
    return {
      ...inner,
      expected: `${inner.expected} (or another of the ${condition.alternatives.length} \`$or\` alternatives)`,
    };
  }
  const found = valuesAt(event, condition.path);
  const failure: Failure = {
    matched: false,
    path: condition.path,
    expected: describeMatchers(condition.matchers),
    present: found.length > 0,
  };
  if (found.length > 0) failure.actual = found.length === 1 ? found[0] : found;
  if (satisfiable([condition], fields)) {
    // It holds on its own, so it clashes with earlier fields over array elements.
    failure.expected += `, in the same array element as ${fieldPaths(conditions.slice(0, k)).join(', ')}`;
  }
  return failure;
}

/**
 * Explains the outcome of {@link matchPattern}, with which it always agrees on `matched`.
 *
 * @example
 * explainPattern(parsePattern({ data: { severity: ['critical'] } }), { data: { severity: 'warning' } })
 * // { matched: false, path: 'data.severity', expected: 'one of ["critical"]', actual: 'warning', present: true }
 */
export function explainPattern(pattern: Pattern, event: unknown): PatternExplanation {
  const fields = flattenEvent(event);
  if (satisfiable(pattern.conditions, fields)) return { matched: true };
  return describeFailure(pattern.conditions, fields, event);
}
