import { type EventField, type EventFields, flattenEvent } from './event-fields.js';
import { matchValue } from './match-value.js';
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
 * all within the same element of any array of objects they share. The test oracle: exponential in the
 * number of arrays (see {@link createReferenceMatcher}).
 *
 * @example matchPattern(parsePattern({ type: [{ prefix: 'order.' }] }), event)
 */
export function matchPattern(pattern: Pattern, event: unknown): boolean {
  return satisfiable(pattern.conditions, flattenEvent(event));
}

/**
 * The simple, obviously-correct matcher: tries every pattern on every event. It is the test oracle for
 * the compiled automaton, so it favours clarity over speed: its search for array-consistent values takes
 * n^(k-1) steps for k fields in k arrays of n elements. Nothing a request reaches may use it; matching
 * and explanations use the compiled matcher (compiled-matcher.ts) and explain.ts.
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
