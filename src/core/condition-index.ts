import { type ASTNode, Environment } from '@marcbachmann/cel-js';
import { operatorNames, type Pattern, parsePattern, patternLimits } from './pattern/pattern.js';

/**
 * Indexing for rules whose `when` is only a CEL condition: {@link impliedPattern} reads the constraints
 * on event fields that the condition's top-level `&&` requires (`event.type == "x"`,
 * `event.data.n > 5`, ...) and states them as an EventBridge pattern, so the automaton can find the rule
 * among thousands, and the condition is evaluated only for events that pass it.
 *
 * The pattern is a NECESSARY condition: every JSON event for which the condition is true matches it
 * (it is never narrower than the condition; it may be much wider). Anything the analysis does not
 * understand is left out, which only widens the pattern; the condition itself still decides.
 */

/** A value a field must equal, or a string operator on it, written as in a pattern's list. */
type Item = string | number | boolean | null | { prefix: string } | { suffix: string } | { wildcard: string };

/** What one conjunction requires of one field. */
type FieldRequirement =
  /** The field holds one of these (pattern list entries). */
  | { readonly type: 'any-of'; readonly items: readonly Item[] }
  /** The field is a number within the bounds. */
  | { readonly type: 'range'; readonly lower?: Bound; readonly upper?: Bound };

interface Bound {
  readonly value: number;
  readonly inclusive: boolean;
}

/** Fields a conjunction requires, by dotted path. */
type Conjunction = ReadonlyMap<string, FieldRequirement>;

/**
 * What a sub-expression implies when true: a disjunction of conjunctions, or `undefined` when nothing is
 * known (it may hold for any event).
 */
type Implied = readonly Conjunction[] | undefined;

/** Past this many alternatives the analysis gives up on a disjunction (a wider pattern is still sound). */
const maxAlternatives = 32;

// Parsing only: no type check, so any variable is accepted; the rule's own compile reports errors.
const parser = new Environment({
  unlistedVariablesAreDyn: true,
  homogeneousAggregateLiterals: false,
  enableOptionalTypes: false,
});

/** The dotted event path `node` reads through map keys only (`event.a.b`, `event["a-b"].c`), if it is one. */
function eventPath(node: ASTNode): string | undefined {
  const keys: string[] = [];
  let current: ASTNode = node;
  for (;;) {
    if (current.op === '.') {
      const [object, key] = current.args as [ASTNode, string];
      keys.push(key);
      current = object;
    } else if (current.op === '[]') {
      const [object, index] = current.args as [ASTNode, ASTNode];
      // List indexes would tie fields to array positions the pattern cannot express: not a path.
      if (index.op !== 'value' || typeof index.args !== 'string') return undefined;
      keys.push(index.args);
      current = object;
    } else if (current.op === 'id' && current.args === 'event') {
      return keys.length === 0 ? undefined : keys.reverse().join('.');
    } else {
      return undefined;
    }
  }
}

/** The JSON scalar a literal node stands for, if it is one a pattern can compare with. */
function literal(node: ASTNode): { value: string | number | boolean | null } | undefined {
  if (node.op === '-_') {
    const inner = literal(node.args as ASTNode);
    return inner !== undefined && typeof inner.value === 'number' ? { value: -inner.value } : undefined;
  }
  if (node.op !== 'value') return undefined;
  const value: unknown = node.args;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return { value };
  if (typeof value === 'number') return Number.isFinite(value) ? { value } : undefined;
  if (typeof value === 'bigint') {
    // Beyond 2^53 a JSON number cannot hold the integer exactly; CEL would compare differently.
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? { value: Number(value) }
      : undefined;
  }
  return undefined;
}

function only(path: string, requirement: FieldRequirement): Implied {
  return [new Map([[path, requirement]])];
}

const flipped: Record<string, string> = { '<': '>', '<=': '>=', '>': '<', '>=': '<=' };

function comparison(op: string, left: ASTNode, right: ASTNode): Implied {
  let path = eventPath(left);
  let other = right;
  let operator = op;
  if (path === undefined) {
    path = eventPath(right);
    other = left;
    operator = flipped[op] ?? op;
  }
  if (path === undefined) return undefined;
  const found = literal(other);
  if (found === undefined) return undefined;
  const { value } = found;
  if (operator === '==') return only(path, { type: 'any-of', items: [value] });
  if (typeof value !== 'number') return undefined;
  // A pattern's numeric bounds lie within ±5e9: past them, keep what still follows, or nothing.
  const max = patternLimits.maxNumeric;
  switch (operator) {
    case '>':
    case '>=':
      if (value < -max) return undefined;
      return only(path, {
        type: 'range',
        lower: value > max ? { value: max, inclusive: false } : { value, inclusive: operator === '>=' },
      });
    case '<':
    case '<=':
      if (value > max) return undefined;
      return only(path, {
        type: 'range',
        upper: value < -max ? { value: -max, inclusive: false } : { value, inclusive: operator === '<=' },
      });
    default:
      return undefined;
  }
}

function escapeWildcard(text: string): string {
  return text.replace(/[\\*]/g, (c) => `\\${c}`);
}

function call(node: ASTNode): Implied {
  const [name, receiver, args] = node.args as [string, ASTNode, ASTNode[]];
  const path = eventPath(receiver);
  const argument = args.length === 1 ? literal(args[0]!) : undefined;
  if (path === undefined || argument === undefined || typeof argument.value !== 'string') return undefined;
  const text = argument.value;
  switch (name) {
    case 'startsWith':
      return only(path, { type: 'any-of', items: [{ prefix: text }] });
    case 'endsWith':
      return only(path, { type: 'any-of', items: [{ suffix: text }] });
    case 'contains':
      // `contains("")` holds for every string; a wildcard "**" would not even parse.
      return text === ''
        ? undefined
        : only(path, { type: 'any-of', items: [{ wildcard: `*${escapeWildcard(text)}*` }] });
    default:
      return undefined;
  }
}

function membership(left: ASTNode, right: ASTNode): Implied {
  const path = eventPath(left);
  if (path === undefined || right.op !== 'list') return undefined;
  const items: Item[] = [];
  for (const element of right.args as ASTNode[]) {
    const found = literal(element);
    if (found === undefined) return undefined;
    items.push(found.value);
  }
  // `x in []` never holds; no pattern says "never", and saying nothing is still sound.
  return items.length === 0 ? undefined : only(path, { type: 'any-of', items });
}

/** Both requirements on one field: the tighter range, or (soundly) the first of two others. */
function both(a: FieldRequirement, b: FieldRequirement): FieldRequirement {
  if (a.type !== 'range' || b.type !== 'range') return a.type === 'any-of' ? a : b;
  const lower =
    a.lower === undefined ||
    (b.lower !== undefined &&
      (b.lower.value > a.lower.value || (b.lower.value === a.lower.value && !b.lower.inclusive)))
      ? b.lower
      : a.lower;
  const upper =
    a.upper === undefined ||
    (b.upper !== undefined &&
      (b.upper.value < a.upper.value || (b.upper.value === a.upper.value && !b.upper.inclusive)))
      ? b.upper
      : a.upper;
  // An empty range means the condition never holds; any one bound is still a sound (wider) pattern.
  if (lower !== undefined && upper !== undefined && lower.value >= upper.value)
    return { type: 'range', lower };
  return {
    type: 'range',
    ...(lower === undefined ? {} : { lower }),
    ...(upper === undefined ? {} : { upper }),
  };
}

function and(left: Implied, right: Implied): Implied {
  if (left === undefined) return right;
  if (right === undefined) return left;
  if (left.length * right.length > maxAlternatives) return left.length <= right.length ? left : right;
  const out: Conjunction[] = [];
  for (const a of left) {
    for (const b of right) {
      const merged = new Map(a);
      for (const [path, requirement] of b) {
        const earlier = merged.get(path);
        merged.set(path, earlier === undefined ? requirement : both(earlier, requirement));
      }
      out.push(merged);
    }
  }
  return out;
}

function or(left: Implied, right: Implied): Implied {
  if (left === undefined || right === undefined) return undefined;
  if (left.length + right.length > maxAlternatives) return undefined;
  return [...left, ...right];
}

function analyze(node: ASTNode): Implied {
  switch (node.op) {
    case '&&': {
      const [left, right] = node.args as [ASTNode, ASTNode];
      return and(analyze(left), analyze(right));
    }
    case '||': {
      const [left, right] = node.args as [ASTNode, ASTNode];
      return or(analyze(left), analyze(right));
    }
    case '==':
    case '<':
    case '<=':
    case '>':
    case '>=': {
      const [left, right] = node.args as [ASTNode, ASTNode];
      return comparison(node.op, left, right);
    }
    case 'in': {
      const [left, right] = node.args as [ASTNode, ASTNode];
      return membership(left, right);
    }
    case 'rcall':
      return call(node);
    default: {
      // A bare boolean field: `event.data.enabled`.
      const path = eventPath(node);
      return path === undefined ? undefined : only(path, { type: 'any-of', items: [true] });
    }
  }
}

/** Operator names cannot be field names inside `$or` (EventBridge), and `$or` cannot be one anywhere. */
const reservedInOr: ReadonlySet<string> = new Set(operatorNames);

function listOf(requirement: FieldRequirement): unknown[] {
  if (requirement.type === 'any-of') return [...requirement.items];
  const operands: Array<string | number> = [];
  if (requirement.lower !== undefined)
    operands.push(requirement.lower.inclusive ? '>=' : '>', requirement.lower.value);
  if (requirement.upper !== undefined)
    operands.push(requirement.upper.inclusive ? '<=' : '<', requirement.upper.value);
  return [{ numeric: operands }];
}

/** A conjunction as a pattern object with dotted keys, leaving out the fields a pattern cannot name. */
function patternObject(conjunction: Conjunction, inOr: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [path, requirement] of conjunction) {
    if (path === '$or' || (inOr && reservedInOr.has(path))) continue;
    Object.defineProperty(out, path, {
      value: listOf(requirement),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function toPattern(alternatives: readonly Conjunction[]): Pattern | undefined {
  let json: Record<string, unknown>;
  const [first] = alternatives;
  if (first === undefined) return undefined;
  const paths = new Set(alternatives.flatMap((c) => [...c.keys()]));
  if (alternatives.length === 1) {
    json = patternObject(first, false);
  } else if (paths.size === 1 && alternatives.every((c) => c.size === 1)) {
    // `||` on one field: one list holding every alternative's entries.
    const [path] = paths;
    json = patternObject(new Map([[path!, { type: 'any-of', items: [] }]]), false);
    Object.defineProperty(json, path!, {
      value: alternatives.flatMap((c) => listOf(c.get(path!)!)),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    const objects = alternatives.map((c) => patternObject(c, true));
    // An alternative with nothing left could match anything: then so could the whole `$or`.
    if (objects.some((o) => Object.keys(o).length === 0)) return undefined;
    json = { $or: objects };
  }
  if (Object.keys(json).length === 0) return undefined;
  try {
    return parsePattern(json);
  } catch {
    // A pattern the language cannot hold (e.g. a wildcard that is too complex): say nothing.
    return undefined;
  }
}

/**
 * The EventBridge pattern that every JSON event satisfying `condition` matches, or undefined when the
 * condition constrains no event field in a way a pattern can say. Reads the top-level `&&` conjuncts of
 * the forms `event.a.b == "lit"` (either side, strings, numbers, booleans, null), `event.x in [...]`,
 * `event.s.startsWith("p")` / `endsWith` / `contains`, numeric `event.n > 5` (`<`, `<=`, `>=`), and a
 * bare boolean field; `||` of such constraints becomes a list on one field or a `$or`. Everything else
 * (`!`, `!=`, `has()`, facts, macros, list indexes) is ignored: it is still evaluated, for the
 * candidates the pattern lets through.
 *
 * Accepts the condition's source or its cel-js AST. A source that does not parse gives undefined.
 *
 * @example
 * impliedPattern('event.type == "order.created" && event.data.total > 100 && facts.open')
 * // the pattern {"type": ["order.created"], "data.total": [{"numeric": [">", 100]}]}
 */
export function impliedPattern(condition: string | ASTNode): Pattern | undefined {
  let ast: ASTNode;
  if (typeof condition === 'string') {
    try {
      ast = parser.parse(condition).ast;
    } catch {
      return undefined;
    }
  } else {
    ast = condition;
  }
  const alternatives = analyze(ast);
  return alternatives === undefined ? undefined : toPattern(alternatives);
}
