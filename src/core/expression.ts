import type { ASTNode, ParseResult } from '@marcbachmann/cel-js';
import { TypeError as CelTypeError, Environment, EvaluationError, ParseError } from '@marcbachmann/cel-js';
import { evaluate as celEvaluate, Duration, UnsignedInt } from '@marcbachmann/cel-js/evaluator';
import { ReflexError } from './errors.js';

/** The variables an expression can read. */
export interface ExpressionContext {
  /** The CloudEvent being decided on, as JSON (with `data`). */
  event: unknown;
  /** Durable facts by name (`facts.<name>`). */
  facts: Record<string, unknown>;
  /** The rulebook's `vars`. */
  vars: Record<string, unknown>;
  /** The current time in milliseconds since the epoch; CEL sees it as a timestamp. */
  now: number;
  /** The events of a correlation by name, when there is one. */
  events?: Record<string, unknown>;
  /** The events a `count`, `batch` or `debounce` (pass: all) collected, oldest first. */
  batch?: unknown[];
  /** Finished workflow steps by id (`steps.<id>.output`), inside a run. */
  steps?: Record<string, unknown>;
  /** The run being executed, inside a run. */
  run?: { id: string; rule: string };
}

/** A CEL expression compiled once, to be evaluated many times. */
export interface Expression {
  readonly source: string;
  /**
   * Evaluates against `ctx` and returns a plain JSON value: integers as numbers (as strings past 2^53),
   * timestamps as ISO strings, durations like `"90s"`, bytes as base64.
   * Throws REFLEX_ERR_CONDITION_FAILED when evaluation fails (a missing field, a type mismatch).
   */
  evaluate(ctx: ExpressionContext): unknown;
}

/** An {@link Expression} that also tells what the type checker knows of its result. */
export interface TypedExpression extends Expression {
  /**
   * The CEL type the expression gives, as far as it is known before evaluation: `bool`, `int`,
   * `string`, `list`, ..., or `dyn` when it depends on the data (most field reads do).
   */
  readonly resultType: string;
}

/**
 * Hard limits on what an expression may be, so a hostile rulebook cannot make the parser, the type
 * checker or an evaluation explode. Far above what a hand-written condition needs.
 */
export const expressionLimits = Object.freeze({
  /** Characters in one expression. */
  maxLength: 8192,
  /** AST nodes in one expression. */
  maxAstNodes: 2000,
  /** Nesting of calls, field selections, indexes and literals. */
  maxDepth: 32,
  /** Elements in one list literal. */
  maxListElements: 256,
  /** Entries in one map literal. */
  maxMapEntries: 256,
  /** Arguments of one call. */
  maxCallArguments: 16,
  /**
   * Macros (`all`, `exists`, `exists_one`, `map`, `filter`) nested in one another. Each level multiplies
   * the work by the size of a list that comes from the event, so deep nesting is a denial of service.
   */
  maxComprehensionNesting: 3,
  /** Nesting of a result turned into JSON. */
  maxResultDepth: 128,
  /** Characters in the regular expression of one `matches` call. */
  maxRegexLength: 512,
});

/**
 * JSON numbers reach CEL as JS numbers, which cel-js types as `double`, while CEL integer literals are
 * BigInt (`int`). cel-js already compares them across types (`event.data.count == 5`,
 * `event.data.value > 90`, `x in [1, 5]` all hold for the JSON number 5) but has no mixed arithmetic, so
 * `event.data.count + 1` would fail with "no such overload: double + int". We register the mixed
 * overloads below, computing in double, the type every JSON number has anyway: `count + 1` is 6,
 * `count / 2` is 2.5 (JSON has no integer type that would make integer division expected), and `%` is
 * defined on doubles so `count % 2 == 0` works. The alternative, turning integral JSON numbers into
 * BigInt, needs a deep copy of the event per evaluation and would make `x / 2` depend on whether the
 * sender wrote `5` or `5.5`. Pure `int` arithmetic (`size(x) + 1`, `3 / 2`) keeps CEL's integer
 * semantics. A side effect: `1 + 2.5` type-checks (and is 3.5), where strict CEL would refuse it.
 */
function registerMixedNumbers(env: Environment): void {
  const toNumber = (v: unknown): number => Number(v as number | bigint);
  const ops: Record<string, (a: number, b: number) => number> = {
    '+': (a, b) => a + b,
    '-': (a, b) => a - b,
    '*': (a, b) => a * b,
    '/': (a, b) => a / b,
  };
  for (const [op, fn] of Object.entries(ops)) {
    const handler = (a: unknown, b: unknown): number => fn(toNumber(a), toNumber(b));
    env.registerOperator(`double ${op} int: double`, handler);
    env.registerOperator(`int ${op} double: double`, handler);
  }
  const modulo = (a: unknown, b: unknown): number => {
    const divisor = toNumber(b);
    if (divisor === 0) throw new EvaluationError({ code: 'modulo_by_zero', message: 'modulo by zero' });
    return toNumber(a) % divisor;
  };
  env.registerOperator('double % double: double', modulo);
  env.registerOperator('double % int: double', modulo);
  env.registerOperator('int % double: double', modulo);
}

const variables = ['event', 'facts', 'vars', 'now', 'events', 'batch', 'steps', 'run'] as const;

// Building an Environment is costly and it holds no per-expression state, so there is one.
const environment = (() => {
  const env = new Environment({
    unlistedVariablesAreDyn: false,
    // JSON is mixed by nature: `{"host": event.data.host, "port": 80}` must be a valid map literal.
    homogeneousAggregateLiterals: false,
    enableOptionalTypes: false,
    limits: {
      maxAstNodes: expressionLimits.maxAstNodes,
      maxDepth: expressionLimits.maxDepth,
      maxListElements: expressionLimits.maxListElements,
      maxMapEntries: expressionLimits.maxMapEntries,
      maxCallArguments: expressionLimits.maxCallArguments,
    },
  });
  for (const name of variables) {
    env.registerVariable(
      name,
      name === 'now' ? 'google.protobuf.Timestamp' : name === 'batch' ? 'list' : 'map',
    );
  }
  registerMixedNumbers(env);
  return env;
})();

// `type(x)` gives an instance of a class cel-js does not export; take it from a value.
const CelType = (celEvaluate('type(1)') as object).constructor;

const macros = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

type CelError = ParseError | CelTypeError | EvaluationError;

function isCelError(error: unknown): error is CelError {
  return error instanceof ParseError || error instanceof CelTypeError || error instanceof EvaluationError;
}

function offsetOf(error: CelError): number | undefined {
  const start = error.range?.start ?? error.node?.pos;
  return typeof start === 'number' ? start : undefined;
}

function invalid(source: string, reason: string, offset?: number): ReflexError {
  return new ReflexError(
    'REFLEX_ERR_CONDITION_INVALID',
    { expression: source, reason },
    { details: offset === undefined ? {} : { offset } },
  );
}

/** Calls the visitor on every node of the AST, without recursion, with how deep in macros it sits. */
function walk(root: ASTNode, visit: (node: ASTNode, macroDepth: number) => void): void {
  const stack: Array<[ASTNode, number]> = [[root, 0]];
  while (stack.length > 0) {
    const [node, outer] = stack.pop()!;
    const depth = outer + (node.op === 'rcall' && macros.has(node.args[0]) ? 1 : 0);
    visit(node, depth);
    const push = (child: unknown): void => {
      if (child !== null && typeof child === 'object' && 'op' in child) stack.push([child as ASTNode, depth]);
    };
    const args: unknown = node.args;
    if (Array.isArray(args)) {
      for (const arg of args) {
        if (Array.isArray(arg))
          for (const inner of arg) Array.isArray(inner) ? inner.forEach(push) : push(inner);
        else push(arg);
      }
    } else push(args);
  }
}

/**
 * Why the regular expression `source` could take exponential time to fail on a crafted string, or
 * undefined when it cannot: a repeated group that itself holds a repetition (`(a+)+`, `(\w*)*`,
 * `(x{2,})+`), the shape behind catastrophic backtracking. A heuristic: it accepts no such nesting,
 * and does not see every slow expression (`(a|aa)+` passes).
 */
export function regexHazard(source: string): string | undefined {
  // Per open group: whether something inside it repeats.
  const open: boolean[] = [];
  // The group just closed, while the next token may quantify it: whether something inside it repeats.
  let closed: boolean | undefined;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    let repeats = false;
    if (c === '\\') {
      i++;
    } else if (c === '[') {
      // A character class: its text holds no groups or quantifiers.
      for (i++; i < source.length && source[i] !== ']'; i++) if (source[i] === '\\') i++;
    } else if (c === '(') {
      open.push(false);
      closed = undefined;
      continue;
    } else if (c === ')') {
      const inner = open.pop() ?? false;
      if (inner && open.length > 0) open[open.length - 1] = true;
      closed = inner;
      continue;
    } else if (c === '*' || c === '+') {
      repeats = true;
    } else if (c === '{') {
      const bound = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i));
      if (bound) {
        const [, low, comma, high] = bound;
        // `{3}` matches one way only; `{2,}` and `{1,5}` can split a text in several.
        repeats = comma !== undefined && (high === '' || Number(high) > Number(low));
        i += bound[0].length - 1;
      }
    }
    if (repeats) {
      if (closed === true) return 'a repeated group holds a repetition itself';
      if (open.length > 0) open[open.length - 1] = true;
    }
    // Only the token right after a group quantifies it (after a quantifier, `?` makes it lazy).
    closed = undefined;
  }
  return undefined;
}

/**
 * Refuses `matches` calls whose regular expression is not written in the rule, or could backtrack
 * exponentially: JavaScript regular expressions backtrack, and the engine is one thread, so one event
 * crafted against a slow expression would stall every rule.
 */
function checkRegexes(source: string, root: ASTNode): void {
  walk(root, (node) => {
    // `text.matches(regex)`; the function form `matches(text, regex)` is not offered.
    if (node.op !== 'rcall' || node.args[0] !== 'matches') return;
    const literal = (node.args[2] as unknown[])[0] as ASTNode | undefined;
    if (literal?.op !== 'value' || typeof literal.args !== 'string') {
      throw invalid(
        source,
        'the regular expression of `matches` must be a string written in the expression (one that comes from an event or a fact could be crafted to take exponential time)',
        node.start,
      );
    }
    const regex = literal.args;
    if (regex.length > expressionLimits.maxRegexLength) {
      throw invalid(
        source,
        `the regular expression of \`matches\` is longer than ${expressionLimits.maxRegexLength} characters`,
        literal.start,
      );
    }
    const hazard = regexHazard(regex);
    if (hazard !== undefined) {
      throw invalid(
        source,
        `the regular expression ${JSON.stringify(regex)} could take exponential time on some strings (${hazard}); write it without nested repetition, e.g. \`(ab)+\` rather than \`(a+b?)+\``,
        literal.start,
      );
    }
  });
}

/** Returns a node where macros nest deeper than the limit, if there is one. */
function comprehensionsTooDeep(root: ASTNode): { node: ASTNode } | undefined {
  let found: { node: ASTNode } | undefined;
  walk(root, (node, depth) => {
    if (found === undefined && depth > expressionLimits.maxComprehensionNesting) found = { node };
  });
  return found;
}

/**
 * Says what went wrong in the user's words. A missing field is the common case, so it names the field
 * and the value it was read from (`no field \`x\` in \`event.data\``).
 */
function runtimeReason(source: string, error: unknown): { reason: string; offset?: number } {
  if (!isCelError(error)) {
    return { reason: error instanceof Error ? error.message : String(error) };
  }
  const offset = offsetOf(error);
  const node = error.node as ASTNode | undefined;
  let reason = error.summary;
  if (error.code === 'no_such_key' && node?.op === '.') {
    const [left, field] = node.args;
    reason = `no field \`${field}\` in \`${source.slice(left.start, left.end)}\``;
  } else if (error.code === 'unknown_variable' && node?.op === 'id') {
    reason = `\`${node.args}\` is not available here`;
  }
  return offset === undefined ? { reason } : { reason, offset };
}

function failed(source: string, error: unknown): ReflexError {
  if (error instanceof ReflexError) return error;
  const { reason, offset } = runtimeReason(source, error);
  return new ReflexError(
    'REFLEX_ERR_CONDITION_FAILED',
    { expression: source, reason },
    { cause: error, details: offset === undefined ? {} : { offset } },
  );
}

class NotJson extends Error {}

function formatDuration(d: Duration): string {
  let nanos = d.seconds * 1_000_000_000n + BigInt(d.nanos);
  const sign = nanos < 0n ? '-' : '';
  if (nanos < 0n) nanos = -nanos;
  const whole = nanos / 1_000_000_000n;
  const fraction = nanos % 1_000_000_000n;
  if (fraction === 0n) return `${sign}${whole}s`;
  return `${sign}${whole}.${fraction.toString().padStart(9, '0').replace(/0+$/, '')}s`;
}

function base64(bytes: Uint8Array): string {
  let binary = '';
  // Chunks keep String.fromCharCode within the engine's argument limit.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function integer(value: bigint): number | string {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(value)
    : value.toString();
}

function setKey(out: Record<string, unknown>, key: string, value: unknown): void {
  // A JSON key "__proto__" must stay a key: plain assignment would set the prototype instead.
  if (key === '__proto__')
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  else out[key] = value;
}

/**
 * Turns a CEL value into a plain JSON value. Always copies containers, so a caller that changes the
 * result cannot change the event or the facts it came from.
 */
function toJson(value: unknown, depth: number): unknown {
  switch (typeof value) {
    case 'boolean':
    case 'string':
      return value;
    case 'number':
      if (Number.isFinite(value)) return value;
      throw new NotJson(`the result is ${value}, which JSON cannot hold`);
    case 'bigint':
      return integer(value);
    case 'object':
      break;
    default:
      throw new NotJson(`a ${typeof value} cannot be turned into JSON`);
  }
  if (value === null) return null;
  if (depth > expressionLimits.maxResultDepth) {
    throw new NotJson(`the result nests deeper than ${expressionLimits.maxResultDepth} levels`);
  }
  if (Array.isArray(value) || value instanceof Set) {
    const out: unknown[] = [];
    for (const item of value) out.push(toJson(item, depth + 1));
    return out;
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new NotJson('the result is an invalid timestamp');
    return value.toISOString();
  }
  if (value instanceof Duration) return formatDuration(value);
  if (value instanceof UnsignedInt) return integer(value.valueOf());
  if (value instanceof Uint8Array) return base64(value);
  if (value.constructor === CelType) return (value as { name: string }).name;
  const out: Record<string, unknown> = {};
  if (value instanceof Map) {
    for (const [key, item] of value) setKey(out, String(key), toJson(item, depth + 1));
    return out;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new NotJson(`a ${value.constructor?.name ?? 'value'} cannot be turned into JSON`);
  }
  for (const key of Object.keys(value)) {
    setKey(out, key, toJson((value as Record<string, unknown>)[key], depth + 1));
  }
  return out;
}

/**
 * Reads whether the expression names `now`, so evaluations that do not read it skip building a Date.
 * Over-approximates (a macro variable called `now` counts), which only costs that Date.
 */
function readsNow(source: string): boolean {
  return /\bnow\b/.test(source);
}

class CelExpression implements TypedExpression {
  readonly source: string;
  readonly resultType: string;
  readonly #run: ParseResult;
  readonly #readsNow: boolean;

  constructor(source: string, run: ParseResult, resultType: string) {
    this.source = source;
    this.resultType = resultType;
    this.#run = run;
    this.#readsNow = readsNow(source);
  }

  evaluate(ctx: ExpressionContext): unknown {
    let result: unknown;
    try {
      result = this.#run({
        event: ctx.event,
        facts: ctx.facts,
        vars: ctx.vars,
        now: this.#readsNow ? new Date(ctx.now) : undefined,
        events: ctx.events,
        batch: ctx.batch,
        steps: ctx.steps,
        run: ctx.run,
      });
    } catch (error) {
      throw failed(this.source, error);
    }
    // Conditions return booleans: skip the conversion call on the hot path.
    if (typeof result === 'boolean') return result;
    try {
      return toJson(result, 0);
    } catch (error) {
      if (error instanceof NotJson) {
        throw new ReflexError('REFLEX_ERR_CONDITION_FAILED', {
          expression: this.source,
          reason: error.message,
        });
      }
      throw failed(this.source, error);
    }
  }
}

/**
 * Compiles a CEL expression over `event`, `facts`, `vars`, `now`, `events`, `batch`, `steps` and `run`: parses
 * it, type-checks it (an unknown variable or function is an error here, not at the first event) and
 * returns an object that evaluates it many times.
 *
 * Throws ReflexError('REFLEX_ERR_CONDITION_INVALID', { expression, reason }, { details: { offset } })
 * where offset is the 0-based character offset of the error in `source` when known.
 *
 * @example
 * const severity = compileExpression('event.data.severity.upperAscii()');
 * severity.evaluate({ event, facts: {}, vars: {}, now: Date.now() }); // "CRITICAL"
 */
export function compileExpression(source: string): TypedExpression {
  if (typeof source !== 'string') {
    throw invalid(
      String(source),
      `expected the expression as text, got ${source === null ? 'null' : typeof source}`,
    );
  }
  if (source.length > expressionLimits.maxLength) {
    throw invalid(
      `${source.slice(0, 60)}…`,
      `it is ${source.length} characters long, more than the ${expressionLimits.maxLength} allowed`,
    );
  }
  if (source.trim() === '') throw invalid(source, 'the expression is empty', 0);
  let run: ParseResult;
  try {
    run = environment.parse(source);
  } catch (error) {
    if (isCelError(error)) throw invalid(source, error.summary, offsetOf(error));
    throw invalid(source, error instanceof Error ? error.message : String(error));
  }
  const checked = run.check();
  if (!checked.valid) {
    const error: unknown = checked.error;
    if (error instanceof CelTypeError && error.code === 'unknown_variable' && error.node?.op === 'id') {
      throw invalid(
        source,
        `there is no variable \`${error.node.args}\` (the variables are ${variables.join(', ')})`,
        offsetOf(error),
      );
    }
    if (isCelError(error)) throw invalid(source, error.summary, offsetOf(error));
    throw invalid(source, error instanceof Error ? error.message : 'it does not type-check');
  }
  checkRegexes(source, run.ast);
  const deep = comprehensionsTooDeep(run.ast);
  if (deep) {
    throw invalid(
      source,
      `macros (all, exists, exists_one, map, filter) nest deeper than ${expressionLimits.maxComprehensionNesting}`,
      deep.node.start,
    );
  }
  return new CelExpression(source, run, checked.type ?? 'dyn');
}
