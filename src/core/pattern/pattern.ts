import { ReflexError } from '../errors.js';
import { type Cidr, parseCidr } from './ip-address.js';
import { parseWildcard, type Wildcard, wildcardComplexity } from './wildcard.js';

/** A JSON value that is not an object or an array: what a pattern compares an event field with. */
export type JsonScalar = string | number | boolean | null;

/** A JSON path into the pattern as written, e.g. `['data', 'status', 0, 'prefix']`. */
export type PatternPath = ReadonlyArray<string | number>;

/** One end of a `numeric` range. */
export interface NumericBound {
  readonly value: number;
  /** `>=` / `<=` rather than `>` / `<`. */
  readonly inclusive: boolean;
}

/**
 * One entry of a field's list in a pattern. The field matches when any entry matches one of its values.
 * Operators that only apply to strings (`prefix`, `wildcard`, `cidr`, ...) never match other types;
 * the `anything-but` family matches every value it does not exclude, of any type, `null` included.
 */
export type ValueMatcher =
  /** A plain value: strings exactly, numbers by value (`300` equals `300.0`), `true`, `false`, `null`. */
  | { readonly type: 'exact'; readonly value: JsonScalar }
  | { readonly type: 'prefix'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly type: 'suffix'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly type: 'equals-ignore-case'; readonly value: string }
  | { readonly type: 'wildcard'; readonly wildcard: Wildcard }
  /** Numbers only; `=` has both bounds inclusive and equal. */
  | { readonly type: 'numeric'; readonly lower?: NumericBound; readonly upper?: NumericBound }
  | { readonly type: 'cidr'; readonly cidr: Cidr }
  /** `exists: true` matches any value; `exists: false` matches when the field has no value at all. */
  | { readonly type: 'exists'; readonly value: boolean }
  /** One of the two lists is empty: EventBridge does not mix strings and numbers here. */
  | {
      readonly type: 'anything-but';
      readonly strings: readonly string[];
      readonly numbers: readonly number[];
    }
  | { readonly type: 'anything-but-prefix'; readonly values: readonly string[] }
  | { readonly type: 'anything-but-suffix'; readonly values: readonly string[] }
  | { readonly type: 'anything-but-equals-ignore-case'; readonly values: readonly string[] }
  | { readonly type: 'anything-but-wildcard'; readonly wildcards: readonly Wildcard[] };

/** A field of the event and the values it may hold. */
export interface FieldCondition {
  readonly type: 'field';
  /**
   * The field's name, keys joined with `.` as EventBridge does: `{"a": {"b": [..]}}` and `{"a.b": [..]}`
   * both name `a.b`, and so do the events `{"a": {"b": 1}}` and `{"a.b": 1}`.
   */
  readonly path: string;
  /** Where the field's list is in the pattern. */
  readonly at: PatternPath;
  readonly matchers: readonly ValueMatcher[];
}

/** `$or`: at least one alternative must hold; each alternative is a list of conditions that must all hold. */
export interface OrCondition {
  readonly type: 'or';
  /** Where the `$or` list is in the pattern. */
  readonly at: PatternPath;
  readonly alternatives: ReadonlyArray<readonly PatternCondition[]>;
}

/** A node of a parsed pattern. */
export type PatternCondition = FieldCondition | OrCondition;

/**
 * A validated, parsed event pattern (EventBridge's pattern language). Build it with {@link parsePattern};
 * match it with a `Matcher`. Immutable.
 */
export interface Pattern {
  /** The original JSON, as given to {@link parsePattern}. */
  readonly source: unknown;
  /** Conditions that must all hold, in the order the pattern lists them. */
  readonly conditions: readonly PatternCondition[];
}

/** Limits that patterns must keep to, as EventBridge sets them. */
export const patternLimits = Object.freeze({
  /** `numeric` operands lie within ±this (EventBridge: -5.0e9 to +5.0e9 inclusive). */
  maxNumeric: 5e9,
  /** Highest {@link wildcardComplexity} allowed for the wildcards of one field. */
  maxWildcardComplexity: 10,
  /**
   * Longest path to a field's list inside a pattern (keys, and `$or` with its index, each count one):
   * far beyond any event's `--max-depth`, and a bound on the work of reading a pattern.
   */
  maxDepth: 64,
});

/** The operator keys of the pattern language; they cannot be field names inside `$or`. */
export const operatorNames = [
  'prefix',
  'suffix',
  'equals-ignore-case',
  'wildcard',
  'anything-but',
  'numeric',
  'exists',
  'cidr',
] as const;
const operatorSet: ReadonlySet<string> = new Set(operatorNames);
const operatorList = operatorNames.map((name) => `\`${name}\``).join(', ');

const rangeExample = '[">", 0, "<=", 5]';

function fail(at: PatternPath, reason: string, fix: string): never {
  throw new ReflexError(
    'REFLEX_ERR_PATTERN_INVALID',
    { path: at.length === 0 ? '(root)' : at.join('.'), reason, fix },
    { details: { path: [...at] } },
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (isPlainObject(value)) return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  return `a ${typeof value}, which is not JSON`;
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/**
 * Validates an EventBridge event pattern and parses it.
 *
 * Throws REFLEX_ERR_PATTERN_INVALID with `details.path`, the JSON path of the offending value inside the
 * pattern, so a rulebook loader can point at its line and column.
 *
 * @example
 * parsePattern({ type: ['order.created'], data: { total: [{ numeric: ['>', 100] }] } });
 */
export function parsePattern(json: unknown): Pattern {
  if (!isPlainObject(json)) {
    fail(
      [],
      `a pattern is a JSON object, not ${describe(json)}`,
      'write it as an object of field names, e.g. {"type": ["order.created"]}.',
    );
  }
  return Object.freeze({ source: json, conditions: parseConjunction(json, [], [], false) });
}

/** Parses an object whose fields must all hold (the pattern, or one `$or` alternative). */
function parseConjunction(
  object: Record<string, unknown>,
  at: PatternPath,
  keys: readonly string[],
  inOr: boolean,
): readonly PatternCondition[] {
  const conditions: PatternCondition[] = [];
  parseObject(object, at, keys, inOr, conditions);
  const seen = new Map<string, FieldCondition>();
  for (const condition of conditions) {
    if (condition.type !== 'field') continue;
    const earlier = seen.get(condition.path);
    if (earlier !== undefined) {
      fail(
        condition.at,
        `the field \`${condition.path}\` is also given at \`${earlier.at.join('.')}\` (dotted keys and nested objects name the same field)`,
        'merge the two lists into one.',
      );
    }
    seen.set(condition.path, condition);
  }
  return Object.freeze(conditions);
}

function parseObject(
  object: Record<string, unknown>,
  at: PatternPath,
  keys: readonly string[],
  inOr: boolean,
  into: PatternCondition[],
): void {
  if (at.length >= patternLimits.maxDepth) {
    fail(
      at,
      `the pattern nests deeper than ${patternLimits.maxDepth} levels`,
      'flatten it: no event field lies that deep (events nest at most `--max-depth` levels, 32 by default).',
    );
  }
  const entries = Object.entries(object);
  if (entries.length === 0) {
    fail(at, 'the object is empty', 'give it at least one field, or remove it.');
  }
  for (const [key, value] of entries) {
    const here = [...at, key];
    if (key === '$or') {
      into.push(parseOr(value, here, keys));
      continue;
    }
    if (inOr && operatorSet.has(key)) {
      fail(
        here,
        `\`${key}\` is an operator name and cannot be a field name inside \`$or\``,
        `write operators inside a field's list, e.g. {"field": [{"${key}": ...}]}.`,
      );
    }
    const path = [...keys, key];
    if (Array.isArray(value)) {
      into.push(parseField(value, here, path.join('.')));
    } else if (isPlainObject(value)) {
      parseObject(value, here, path, inOr, into);
    } else {
      fail(
        here,
        `\`${key}\` holds ${describe(value)}, but a field takes a list of values to match (or a nested object)`,
        `put the value in a list: ${JSON.stringify(key)}: [${JSON.stringify(value) ?? '...'}].`,
      );
    }
  }
}

function parseOr(value: unknown, at: PatternPath, keys: readonly string[]): OrCondition {
  const fix = 'write `$or` as a list of at least two objects, e.g. "$or": [{"a": ["x"]}, {"b": ["y"]}].';
  if (!Array.isArray(value)) fail(at, `\`$or\` holds ${describe(value)}, not a list`, fix);
  if (value.length < 2) fail(at, `\`$or\` has ${value.length} alternative(s); it needs at least two`, fix);
  const alternatives = value.map((alternative: unknown, i) => {
    if (!isPlainObject(alternative)) {
      fail([...at, i], `a \`$or\` alternative must be an object, not ${describe(alternative)}`, fix);
    }
    return parseConjunction(alternative, [...at, i], keys, true);
  });
  return Object.freeze({ type: 'or', at: Object.freeze(at), alternatives: Object.freeze(alternatives) });
}

function parseField(list: readonly unknown[], at: PatternPath, path: string): FieldCondition {
  if (list.length === 0) {
    fail(
      at,
      'the list of values to match is empty',
      'give at least one value, or [{"exists": false}] to require that the field is absent.',
    );
  }
  const matchers = list.map((item, i) => parseMatcher(item, [...at, i]));
  checkWildcards(matchers, at);
  return Object.freeze({ type: 'field', path, at: Object.freeze(at), matchers: Object.freeze(matchers) });
}

/** Rejects a field whose wildcards are too costly to match, pointing at the one that tips it over. */
function checkWildcards(matchers: readonly ValueMatcher[], at: PatternPath): void {
  const wildcards: Wildcard[] = [];
  for (const [i, matcher] of matchers.entries()) {
    const own =
      matcher.type === 'wildcard'
        ? [matcher.wildcard]
        : matcher.type === 'anything-but-wildcard'
          ? matcher.wildcards
          : [];
    if (own.length === 0) continue;
    wildcards.push(...own);
    const complexity = wildcardComplexity(wildcards, patternLimits.maxWildcardComplexity);
    if (complexity > patternLimits.maxWildcardComplexity) {
      fail(
        matcher.type === 'wildcard' ? [...at, i, 'wildcard'] : [...at, i, 'anything-but', 'wildcard'],
        `the wildcard pattern is too complex to match efficiently (complexity ${Number.isFinite(complexity) ? complexity : 'too high to measure'}, limit ${patternLimits.maxWildcardComplexity})`,
        'use fewer `*`, and avoid text that repeats after a `*`, e.g. "arn:aws:events:*:event-bus/*" rather than "*:*:*:*:*:event-bus/*".',
      );
    }
  }
}

function parseMatcher(item: unknown, at: PatternPath): ValueMatcher {
  if (typeof item === 'string' || typeof item === 'boolean' || item === null || isFiniteNumber(item)) {
    return Object.freeze({ type: 'exact', value: item });
  }
  if (Array.isArray(item)) {
    fail(
      at,
      'a value to match cannot itself be a list',
      'list the values directly: ["a", "b"] matches either.',
    );
  }
  if (!isPlainObject(item)) {
    fail(
      at,
      `${describe(item)} cannot be matched`,
      'use a string, a number, true, false, null, or an operator object.',
    );
  }
  const names = Object.keys(item);
  if (names.length !== 1) {
    fail(
      at,
      names.length === 0
        ? 'the operator object is empty'
        : `an operator object holds one operator, this one holds ${names.map((n) => `\`${n}\``).join(', ')}`,
      'write one operator per object, e.g. [{"prefix": "a"}, {"suffix": "b"}] matches either.',
    );
  }
  const name = names[0]!;
  const operand = item[name];
  const here = [...at, name];
  switch (name) {
    case 'prefix':
    case 'suffix':
      return parsePrefixOrSuffix(name, operand, here);
    case 'equals-ignore-case':
      return Object.freeze({ type: name, value: requireString(operand, here, name) });
    case 'wildcard':
      return Object.freeze({ type: name, wildcard: requireWildcard(operand, here) });
    case 'anything-but':
      return parseAnythingBut(operand, here);
    case 'numeric':
      return parseNumeric(operand, here);
    case 'exists':
      if (typeof operand !== 'boolean') {
        fail(
          here,
          `\`exists\` takes true or false, not ${describe(operand)}`,
          'write {"exists": true} or {"exists": false}.',
        );
      }
      return Object.freeze({ type: name, value: operand });
    case 'cidr': {
      const cidr = parseCidr(requireString(operand, here, name));
      if (typeof cidr === 'string') fail(here, cidr, 'write a block like "10.0.0.0/24" or "2001:db8::/32".');
      return Object.freeze({ type: name, cidr });
    }
    default: {
      const lower = name.toLowerCase();
      fail(
        here,
        `\`${name}\` is not an operator`,
        operatorSet.has(lower)
          ? `operator names are lower-case: write \`${lower}\`.`
          : `use one of ${operatorList}.`,
      );
    }
  }
}

function requireString(operand: unknown, at: PatternPath, operator: string): string {
  if (typeof operand !== 'string') {
    fail(at, `\`${operator}\` takes a string, not ${describe(operand)}`, `write {"${operator}": "text"}.`);
  }
  return operand;
}

function requireWildcard(operand: unknown, at: PatternPath): Wildcard {
  const wildcard = parseWildcard(requireString(operand, at, 'wildcard'));
  if (typeof wildcard === 'string') {
    fail(
      at,
      `${JSON.stringify(operand)}: ${wildcard}`,
      'write one `*` for any run of characters, `\\*` for a literal star and `\\\\` for a backslash.',
    );
  }
  return wildcard;
}

function parsePrefixOrSuffix(name: 'prefix' | 'suffix', operand: unknown, at: PatternPath): ValueMatcher {
  if (typeof operand === 'string') return Object.freeze({ type: name, value: operand, ignoreCase: false });
  if (isPlainObject(operand)) {
    const names = Object.keys(operand);
    if (names.length === 1 && names[0] === 'equals-ignore-case') {
      const value = requireString(
        operand['equals-ignore-case'],
        [...at, 'equals-ignore-case'],
        'equals-ignore-case',
      );
      return Object.freeze({ type: name, value, ignoreCase: true });
    }
  }
  fail(
    at,
    `\`${name}\` takes a string or {"equals-ignore-case": "text"}, not ${describe(operand)}`,
    `write {"${name}": "text"}; to match any of several, list several: [{"${name}": "a"}, {"${name}": "b"}].`,
  );
}

type AnythingButOperator = 'prefix' | 'suffix' | 'equals-ignore-case' | 'wildcard';
const anythingButOperators: ReadonlySet<string> = new Set<AnythingButOperator>([
  'prefix',
  'suffix',
  'equals-ignore-case',
  'wildcard',
]);

function parseAnythingBut(operand: unknown, at: PatternPath): ValueMatcher {
  const fix =
    'give a string, a number, a list of strings or of numbers, or one of {"prefix": ...}, {"suffix": ...}, {"equals-ignore-case": ...}, {"wildcard": ...}.';
  if (typeof operand === 'string')
    return Object.freeze({ type: 'anything-but', strings: [operand], numbers: [] });
  if (isFiniteNumber(operand)) {
    checkNumericRange(operand, at);
    return Object.freeze({ type: 'anything-but', strings: [], numbers: [operand] });
  }
  if (Array.isArray(operand)) {
    if (operand.length === 0) fail(at, 'the `anything-but` list is empty', fix);
    const strings: string[] = [];
    const numbers: number[] = [];
    for (const [i, value] of operand.entries()) {
      if (typeof value === 'string' && numbers.length === 0) strings.push(value);
      else if (isFiniteNumber(value) && strings.length === 0) {
        checkNumericRange(value, [...at, i]);
        numbers.push(value);
      } else {
        fail(
          [...at, i],
          typeof value === 'string' || isFiniteNumber(value)
            ? 'an `anything-but` list holds only strings or only numbers, not both'
            : `an \`anything-but\` list holds strings or numbers, not ${describe(value)}`,
          fix,
        );
      }
    }
    return Object.freeze({
      type: 'anything-but',
      strings: Object.freeze(strings),
      numbers: Object.freeze(numbers),
    });
  }
  if (isPlainObject(operand)) {
    const names = Object.keys(operand);
    const name = names[0];
    if (names.length !== 1 || name === undefined || !anythingButOperators.has(name)) {
      fail(
        names.length === 1 ? [...at, names[0]!] : at,
        names.length === 1
          ? `\`anything-but\` cannot hold \`${names[0]}\``
          : 'the `anything-but` object must hold exactly one operator',
        fix,
      );
    }
    return parseAnythingButOperator(name as AnythingButOperator, operand[name], [...at, name]);
  }
  fail(at, `\`anything-but\` cannot exclude ${describe(operand)}`, fix);
}

function parseAnythingButOperator(
  name: AnythingButOperator,
  operand: unknown,
  at: PatternPath,
): ValueMatcher {
  const fix = `write {"anything-but": {"${name}": "text"}} or a list of strings: {"anything-but": {"${name}": ["a", "b"]}}.`;
  const items: Array<{ value: string; at: PatternPath }> = [];
  if (typeof operand === 'string') {
    items.push({ value: operand, at });
  } else if (Array.isArray(operand) && operand.length > 0) {
    for (const [i, value] of operand.entries()) {
      if (typeof value !== 'string') fail([...at, i], `the list holds ${describe(value)}, not a string`, fix);
      items.push({ value, at: [...at, i] });
    }
  } else {
    fail(
      at,
      `\`anything-but\` \`${name}\` takes a string or a non-empty list of strings, not ${describe(operand)}`,
      fix,
    );
  }
  if (name === 'prefix' || name === 'suffix') {
    const empty = items.find((item) => item.value === '');
    if (empty !== undefined) {
      fail(empty.at, `an empty ${name} would exclude every string`, `give a non-empty ${name}.`);
    }
  }
  const values = Object.freeze(items.map((item) => item.value));
  switch (name) {
    case 'prefix':
      return Object.freeze({ type: 'anything-but-prefix', values });
    case 'suffix':
      return Object.freeze({ type: 'anything-but-suffix', values });
    case 'equals-ignore-case':
      return Object.freeze({ type: 'anything-but-equals-ignore-case', values });
    case 'wildcard':
      return Object.freeze({
        type: 'anything-but-wildcard',
        wildcards: Object.freeze(items.map((item) => requireWildcard(item.value, item.at))),
      });
  }
}

function checkNumericRange(value: number, at: PatternPath): void {
  if (Math.abs(value) > patternLimits.maxNumeric) {
    fail(
      at,
      `${value} is outside the range EventBridge compares, -5e9 to 5e9`,
      'use a number from -5000000000 to 5000000000.',
    );
  }
}

/** Numeric operators and whether each includes its bound. */
const lowerOperators: ReadonlyMap<unknown, boolean> = new Map([
  ['>', false],
  ['>=', true],
]);
const upperOperators: ReadonlyMap<unknown, boolean> = new Map([
  ['<', false],
  ['<=', true],
]);

function parseNumeric(operand: unknown, at: PatternPath): ValueMatcher {
  const fix = `write [">", 0], ["=", 5], ["<=", 10] or a range with the lower bound first, ${rangeExample}.`;
  if (!Array.isArray(operand))
    fail(at, `\`numeric\` takes a list like ${rangeExample}, not ${describe(operand)}`, fix);
  if (operand.length !== 2 && operand.length !== 4) {
    fail(
      at,
      `\`numeric\` takes an operator and a number, or two of each; this list has ${operand.length} item(s)`,
      fix,
    );
  }
  const bound = (i: number): number => {
    const value: unknown = operand[i];
    if (!isFiniteNumber(value)) fail([...at, i], `${describe(value)} is not a number`, fix);
    checkNumericRange(value, [...at, i]);
    return value;
  };
  const operator: unknown = operand[0];
  if (operator === '=' && operand.length === 2) {
    const value = bound(1);
    return Object.freeze({
      type: 'numeric',
      lower: { value, inclusive: true },
      upper: { value, inclusive: true },
    });
  }
  const upperInclusive = upperOperators.get(operator);
  if (upperInclusive !== undefined && operand.length === 2) {
    return Object.freeze({
      type: 'numeric',
      upper: Object.freeze({ value: bound(1), inclusive: upperInclusive }),
    });
  }
  const lowerInclusive = lowerOperators.get(operator);
  if (lowerInclusive === undefined) {
    fail(
      [...at, 0],
      operator === '=' || upperInclusive !== undefined
        ? `\`${String(operator)}\` cannot start a range`
        : `${describe(operator)} is not a numeric operator (=, <, <=, >, >=)`,
      fix,
    );
  }
  const lower = Object.freeze({ value: bound(1), inclusive: lowerInclusive });
  if (operand.length === 2) return Object.freeze({ type: 'numeric', lower });
  const second: unknown = operand[2];
  const secondInclusive = upperOperators.get(second);
  if (secondInclusive === undefined) {
    fail([...at, 2], `a range's second operator must be < or <=, not ${describe(second)}`, fix);
  }
  const upper = Object.freeze({ value: bound(3), inclusive: secondInclusive });
  if (lower.value >= upper.value) {
    fail(
      [...at, 3],
      `the range is empty: ${upper.value} is not above ${lower.value}`,
      'make the upper bound larger than the lower bound.',
    );
  }
  return Object.freeze({ type: 'numeric', lower, upper });
}
