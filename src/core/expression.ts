import type { ASTNode, ParseResult } from '@marcbachmann/cel-js';
import { TypeError as CelTypeError, Environment, EvaluationError, ParseError } from '@marcbachmann/cel-js';
import { evaluate as celEvaluate } from '@marcbachmann/cel-js/evaluator';
import { RE2JS } from 're2js';
import { ReflexError } from './errors.js';
import { CelMemo, DataError, toCel, toJson } from './expression-data.js';
import { BudgetExceeded, budgetExceeded, instrument, spend, startBudget } from './expression-runtime.js';

/**
 * The variables an expression can read. Objects are read as immutable: what one expression converted
 * to CEL's form (expression-data.ts), the next one reading the same object reuses.
 */
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
   * Throws REFLEX_ERR_CONDITION_FAILED when evaluation fails (a missing field, a type mismatch), and
   * REFLEX_ERR_CONDITION_BUDGET_EXCEEDED when it does more work than {@link expressionLimits}.maxCost.
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
  /**
   * Cost units one evaluation may spend (expression-runtime.ts says what costs what): about a million
   * nodes of a macro's body, some tens of milliseconds. A macro over a list of 10 000 elements uses a
   * few percent of it; a macro nested in another over such a list does not fit.
   */
  maxCost: 1_000_000,
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
  // CEL's function form of `matches`. Both forms run the RE2 program compiled with the rule (see
  // expression-runtime.ts); this handler only gives the signature a body.
  env.registerFunction('matches(string, string): bool', (text: string, regex: string) =>
    RE2JS.compile(regex).test(text),
  );
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

function invalid(
  source: string,
  reason: string,
  offset?: number,
  fix = 'see docs/rules.md#conditions',
): ReflexError {
  return new ReflexError(
    'REFLEX_ERR_CONDITION_INVALID',
    { expression: source, reason, fix },
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

/** What to add to RE2's own message, for the JavaScript habits RE2 does not share. */
function re2Hint(regex: string): string {
  if (/\\[1-9]/.test(regex)) return '; RE2 has no backreferences';
  if (/\(\?<?[=!]/.test(regex)) return '; RE2 has no lookaround (`(?=`, `(?!`, `(?<=`, `(?<!`)';
  if (/\\u/.test(regex)) return '; RE2 writes a code point as `\\x{263a}`, not `\\u263a`';
  if (/[*+?}]\+/.test(regex)) return '; RE2 has no possessive quantifiers';
  return '';
}

/**
 * Compiles the regular expression of every `matches` call (`text.matches(re)` and `matches(text, re)`)
 * with RE2, whose time is linear in the text: a backtracking engine (JavaScript's) can take exponential
 * time on a crafted text, and one slow condition would stall every rule. The expression must be written
 * in the rule, so that it is checked here and compiled once.
 */
function compileRegexes(source: string, root: ASTNode): Map<ASTNode, RE2JS> {
  const compiled = new Map<ASTNode, RE2JS>();
  walk(root, (node) => {
    let literal: ASTNode | undefined;
    if (node.op === 'rcall' && node.args[0] === 'matches' && node.args[2].length === 1) {
      literal = node.args[2][0];
    } else if (node.op === 'call' && node.args[0] === 'matches' && node.args[1].length === 2) {
      literal = node.args[1][1];
    } else return;
    if (literal?.op !== 'value' || typeof literal.args !== 'string') {
      throw invalid(
        source,
        "the regular expression of `matches` must be a string written in the expression (one that comes from an event or a fact would be the sender's choice)",
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
    try {
      compiled.set(node, RE2JS.compile(regex));
    } catch (error) {
      const detail = (error instanceof Error ? error.message : String(error)).replace(
        /^error parsing regexp: /,
        '',
      );
      throw invalid(
        source,
        `the regular expression ${JSON.stringify(regex)} is not one RE2, the engine of \`matches\`, can run (${detail})${re2Hint(regex)}`,
        literal.start,
        'write it in RE2 syntax, see docs/rules.md#regular-expressions',
      );
    }
  });
  return compiled;
}

const numberText = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

function isNumberText(node: ASTNode): boolean {
  return node.op === 'value' && typeof node.args === 'string' && numberText.test(node.args);
}

/**
 * Refuses `event.data.count > "5"`: an ordering comparison of a value read from the data with text that
 * spells a number. The field holds a number (then the comparison fails every time the rule runs) or
 * text (then "10" < "5"); either way the rule does not do what it says.
 */
function checkNumbersAsText(source: string, root: ASTNode): void {
  walk(root, (node) => {
    if (node.op !== '<' && node.op !== '<=' && node.op !== '>' && node.op !== '>=') return;
    const [left, right] = node.args;
    const literal = isNumberText(left) ? left : isNumberText(right) ? right : undefined;
    if (!literal) return;
    const other = literal === left ? right : left;
    // Text against text (`"10" > "5"`, `string(x) > "5"`) is what it says; only a value from the data is in doubt.
    const otherType = (other as { checkedType?: { kind?: string } }).checkedType;
    if (otherType?.kind !== 'dyn') return;
    const quoted = source.slice(literal.start, literal.end);
    const number = (literal.args as string).trim();
    const otherText = source.slice(other.start, other.end);
    const [asNumber, asText] =
      literal === left
        ? [`${number} ${node.op} ${otherText}`, `${quoted} ${node.op} string(${otherText})`]
        : [`${otherText} ${node.op} ${number}`, `string(${otherText}) ${node.op} ${quoted}`];
    throw invalid(
      source,
      `\`${source.slice(node.start, node.end)}\` compares with the text ${quoted}, not a number (a number never compares with text, and text compares letter by letter: "10" < "5"); write \`${asNumber}\` to compare numbers, or \`${asText}\` if text order is really meant`,
      literal.start,
      'see docs/rules.md#values-of-different-types',
    );
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

/** CEL's names of types, in a user's words. */
function typeWords(type: string): string {
  const t = type.trim().replace(/^dyn<(.*)>$/, '$1');
  if (t === 'double') return 'a number';
  if (t === 'int') return 'an integer';
  if (t === 'uint') return 'an unsigned integer';
  if (t === 'string') return 'a string';
  if (t === 'bool') return 'a boolean';
  if (t === 'null' || t === 'null_type') return 'null';
  if (t === 'bytes') return 'bytes';
  if (t.startsWith('list')) return 'a list';
  if (t.startsWith('map')) return 'a map';
  if (t === 'google.protobuf.Timestamp') return 'a timestamp';
  if (t === 'google.protobuf.Duration') return 'a duration';
  if (t === 'dyn') return 'a value';
  return `a ${t}`;
}

/** Splits `a, map<b, c>` at its top-level commas. */
function typeList(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = '';
  for (const c of text) {
    if (c === '<') depth++;
    else if (c === '>') depth--;
    if (c === ',' && depth === 0) {
      out.push(current.trim());
      current = '';
    } else current += c;
  }
  if (current.trim() !== '') out.push(current.trim());
  return out;
}

const verbs: Record<string, string> = {
  '+': 'adds',
  '-': 'subtracts',
  '*': 'multiplies',
  '/': 'divides',
  '%': 'takes the remainder of',
};

const genericFix = 'check the values the expression reads, and see docs/rules.md#conditions';

/**
 * Says what went wrong in the user's words, and how to fix it. A missing field is the common case, so
 * it names the field and the value it was read from (`no field \`x\` in \`event.data\``); only that
 * case is fixed with `has()`.
 */
function runtimeReason(source: string, error: unknown): { reason: string; fix: string; offset?: number } {
  if (error instanceof DataError) {
    return {
      reason: error.message,
      fix: 'make the expression give a JSON value (a number, text, a list or a map)',
    };
  }
  if (!isCelError(error)) {
    return { reason: error instanceof Error ? error.message : String(error), fix: genericFix };
  }
  const offset = offsetOf(error);
  const node = error.node as ASTNode | undefined;
  const text = (n: { start: number; end: number }) => source.slice(n.start, n.end);
  let reason = error.summary;
  let fix = genericFix;
  switch (error.code) {
    case 'no_such_key':
      if (node?.op === '.') {
        const [left, field] = node.args;
        reason = `no field \`${field}\` in \`${text(left)}\``;
        fix = `guard missing fields with \`has(${text(node)})\``;
      } else if (node?.op === '[]') {
        const [left, key] = node.args;
        reason = `no key ${text(key)} in \`${text(left)}\``;
        fix = `test for the key first: \`${text(key)} in ${text(left)}\``;
      }
      break;
    case 'index_out_of_bounds':
      fix = 'check the length of the list first, e.g. `size(list) > 3 && list[3] == ...`';
      break;
    case 'no_such_overload': {
      const types = /^no such overload: (.*)$/.exec(error.summary)?.[1] ?? '';
      if (node && Array.isArray(node.args) && node.args.length === 2 && typeof node.args[0] === 'object') {
        const op = node.op;
        const [left, right] = node.args as [ASTNode, ASTNode];
        const [leftType = '', rightType = ''] = types.split(` ${op} `);
        if (op === '<' || op === '<=' || op === '>' || op === '>=' || op === '==' || op === '!=') {
          reason = `\`${text(node)}\` compares ${typeWords(leftType)} with ${typeWords(rightType)}`;
          fix =
            'compare values of the same type: write a number as `5`, not `"5"`, or convert one side with `int(...)`, `double(...)` or `string(...)`';
        } else if (op === 'in') {
          reason = `\`${text(node)}\` looks for ${typeWords(leftType)} in ${typeWords(rightType)}`;
          fix = 'put a list or a map on the right of `in`';
        } else if (verbs[op]) {
          reason = `\`${text(node)}\` ${verbs[op]} ${typeWords(leftType)} and ${typeWords(rightType)}`;
          const other = leftType.includes('string') ? right : rightType.includes('string') ? left : undefined;
          fix =
            op === '+' && other
              ? `convert the other value to text: \`${text(node).replace(text(other), `string(${text(other)})`)}\``
              : 'use values of one type: convert with `int(...)`, `double(...)` or `string(...)`';
        }
      } else if (node && (node.op === '!_' || node.op === '-_')) {
        const operand = types.slice(1);
        const not = node.op === '!_';
        reason = `\`${text(node)}\` needs ${not ? 'true or false' : 'a number'}, got ${typeWords(operand)}`;
        fix = not ? 'compare the value to make a boolean, e.g. `!(x > 0)`' : 'convert it with `double(...)`';
      }
      break;
    }
    case 'no_matching_overload': {
      const call = /'(?:(.+)\.)?(\w+)\((.*)\)'$/.exec(error.summary);
      if (call) {
        const [, receiver, name, args] = call;
        const given = typeList(args ?? '').map(typeWords);
        const withArgs = given.length === 0 ? 'nothing' : given.join(', ');
        reason = receiver
          ? `\`${name}\` was called on ${typeWords(receiver)} with ${withArgs}, which it does not take`
          : `\`${name}\` was called with ${withArgs}, which it does not take`;
        fix =
          'convert the values with `string(...)`, `int(...)` or `double(...)`; docs/rules.md#conditions lists what each function takes';
      }
      break;
    }
    case 'invalid_logical_operand': {
      // The error points at the operand that is not a boolean.
      const got = /got '(.*)'$/.exec(error.summary)?.[1] ?? 'dyn';
      const operand = node
        ? `\`${text(node)}\`, an operand of \`&&\` or \`||\`,`
        : 'an operand of `&&` or `||`';
      reason = `${operand} needs true or false, got ${typeWords(got)}`;
      fix = 'compare the value to make a boolean, e.g. `x > 0` or `x != ""`';
      break;
    }
    case 'invalid_condition_type': {
      const got = /got '(.*)'$/.exec(error.summary)?.[1] ?? 'dyn';
      reason = `the condition of \`? :\` needs true or false, got ${typeWords(got)}`;
      fix = 'compare the value to make a boolean, e.g. `x > 0 ? a : b`';
      break;
    }
    case 'division_by_zero':
    case 'modulo_by_zero':
      fix = 'guard the divisor, e.g. `b != 0 && a / b > 1`';
      break;
    case 'unknown_variable':
      if (node?.op === 'id') {
        reason = `\`${node.args}\` is not available here`;
        fix = `read \`${node.args}\` only where it is set: events in correlations, batch in count and batch rules, steps and run in action parameters`;
      }
      break;
  }
  return offset === undefined ? { reason, fix } : { reason, fix, offset };
}

function overBudget(source: string): ReflexError {
  return new ReflexError('REFLEX_ERR_CONDITION_BUDGET_EXCEEDED', {
    expression: source,
    limit: expressionLimits.maxCost,
    reason: `it needed more than its cost budget of ${expressionLimits.maxCost} units`,
    fix: 'make the expression do less work per event (see docs/rules.md#limits)',
  });
}

function failed(source: string, error: unknown): ReflexError {
  if (error instanceof ReflexError) return error;
  if (error instanceof BudgetExceeded || budgetExceeded()) return overBudget(source);
  const { reason, fix, offset } = runtimeReason(source, error);
  return new ReflexError(
    'REFLEX_ERR_CONDITION_FAILED',
    { expression: source, reason, fix },
    { cause: error, details: offset === undefined ? {} : { offset } },
  );
}

const jsonOptions = { maxDepth: expressionLimits.maxResultDepth, typeClass: CelType, spend };

// One memo per variable: one event (or snapshot, or vars) is read by one expression after another.
const memos = {
  event: new CelMemo(),
  facts: new CelMemo(),
  vars: new CelMemo(),
  events: new CelMemo(),
  steps: new CelMemo(),
};

/** The variables an expression reads: only those are turned into the form CEL reads. */
function variablesRead(root: ASTNode): Set<string> {
  const read = new Set<string>();
  // Macro variables are identifiers too: one named like a variable only costs that variable's conversion.
  walk(root, (node) => {
    if (node.op === 'id') read.add(node.args);
  });
  return read;
}

class CelExpression implements TypedExpression {
  readonly source: string;
  readonly resultType: string;
  readonly #run: ParseResult;
  readonly #reads: Readonly<Record<(typeof variables)[number], boolean>>;

  constructor(source: string, run: ParseResult, resultType: string) {
    this.source = source;
    this.resultType = resultType;
    this.#run = run;
    const read = variablesRead(run.ast);
    this.#reads = Object.fromEntries(variables.map((name) => [name, read.has(name)])) as Record<
      (typeof variables)[number],
      boolean
    >;
  }

  evaluate(ctx: ExpressionContext): unknown {
    const reads = this.#reads;
    startBudget(expressionLimits.maxCost);
    try {
      const result = this.#run({
        event: reads.event ? memos.event.of(ctx.event) : undefined,
        facts: reads.facts ? memos.facts.of(ctx.facts) : undefined,
        vars: reads.vars ? memos.vars.of(ctx.vars) : undefined,
        now: reads.now ? new Date(ctx.now) : undefined,
        events: reads.events ? memos.events.of(ctx.events) : undefined,
        batch: reads.batch ? ctx.batch?.map((item) => toCel(item)) : undefined,
        steps: reads.steps ? memos.steps.of(ctx.steps) : undefined,
        run: reads.run ? toCel(ctx.run) : undefined,
      });
      // cel-js catches errors inside macros and `||`: a budget spent there ends the evaluation too.
      if (budgetExceeded()) throw overBudget(this.source);
      // Conditions return booleans: skip the conversion call on the hot path.
      if (typeof result === 'boolean') return result;
      return toJson(result, jsonOptions);
    } catch (error) {
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
  const regexes = compileRegexes(source, run.ast);
  checkNumbersAsText(source, run.ast);
  const deep = comprehensionsTooDeep(run.ast);
  if (deep) {
    throw invalid(
      source,
      `macros (all, exists, exists_one, map, filter) nest deeper than ${expressionLimits.maxComprehensionNesting}`,
      deep.node.start,
    );
  }
  instrument(run.ast, { source, regexes });
  return new CelExpression(source, run, checked.type ?? 'dyn');
}
