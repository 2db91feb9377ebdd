import type { ASTNode } from '@marcbachmann/cel-js';
import { EvaluationError } from '@marcbachmann/cel-js';
import { UnsignedInt } from '@marcbachmann/cel-js/evaluator';
import type { RE2JS } from 're2js';
import { toCel } from './expression-data.js';

/**
 * How Reflex runs a type-checked cel-js expression: within a cost budget, with map literals that keep
 * every key, and `matches()` on RE2.
 *
 * cel-js evaluates an expression by calling `evaluate` on each node of its AST. After the type check
 * has settled every node, {@link instrument} gives the nodes that need it an `evaluate` of its own that
 * counts the work and then does what the library's would (the node's `meta` says what that is). This
 * reads the library's internals, so its version is pinned (package.json) and the tests of
 * expression.ts hold the behaviour.
 *
 * Outside macros every node is evaluated at most once, so the size of an expression (at most 2 000
 * nodes) bounds that part. What can grow is counted in cost units, one unit being about one node of a
 * macro's body, some tens of nanoseconds (see {@link costs}).
 */

/** What counts against an evaluation's budget, in units. */
export const costs = Object.freeze({
  /**
   * Each step of a macro (`all`, `exists`, `exists_one`, `map`, `filter`) costs the nodes of its body,
   * not counting the bodies of macros inside it, which count their own steps: nested macros cost the
   * product of the lists' sizes.
   */
  perBodyNode: 1,
  /**
   * Text and bytes cost 1 unit per this many characters wherever an operation reads or builds them in
   * proportion to their length: functions (`contains`, `size`, `split`, …) and ordering read their
   * operands, `+` and functions are charged for what they return.
   */
  charactersPerUnit: 8,
  /**
   * Lists cost 1 per element and maps 1 per entry where they are built (`+`, functions), compared
   * (`==`, `!=`: the whole nested value, shared parts each time they are reached), scanned (`in` a
   * list) or copied (a macro over a map copies its keys), and when the result is turned into JSON.
   */
  perElement: 1,
  /**
   * `matches()` costs this per character of the text and instruction of the regular expression's RE2
   * program. RE2 is linear in the text, but RE2JS can spend some hundreds of nanoseconds per character
   * and instruction building DFA states for a crafted text, more than any other operation here.
   */
  perRegexStep: 4,
  /**
   * An error inside a macro's body, which the macro catches (`exists` goes on to the next element),
   * costs this, plus 1 per 64 characters of the expression: cel-js builds a message quoting it and
   * captures a stack trace, some 15 µs.
   */
  error: 500,
});

/** Thrown when an evaluation has spent its budget; one object, so that throwing it again is cheap. */
export class BudgetExceeded extends Error {
  constructor() {
    super('the expression exceeded its cost budget');
    this.name = 'BudgetExceeded';
  }
}

const exceeded = new BudgetExceeded();

// Evaluation is synchronous and never nested, so one budget serves every expression in turn.
let budget = 0;
let remaining = 0;
let lastChargedError: unknown;

/** Gives the next evaluation `units` to spend. */
export function startBudget(units: number): void {
  budget = units;
  remaining = units;
  lastChargedError = undefined;
}

/** The units the last evaluation spent (for tests and the figures in docs/rules.md). */
export function budgetSpent(): number {
  return budget - remaining;
}

/** Whether the evaluation that just ran went over its budget, even where cel-js caught the error. */
export function budgetExceeded(): boolean {
  return remaining < 0;
}

/** Spends `units` of the current budget; throws {@link BudgetExceeded} once it is gone. */
export function spend(units: number): void {
  remaining -= units;
  if (remaining < 0) throw exceeded;
}

function text(length: number): number {
  return Math.floor(length / costs.charactersPerUnit);
}

/** What reading or building `value` costs, not counting what it contains. */
function shallow(value: unknown): number {
  if (typeof value === 'string') return text(value.length);
  if (value === null || typeof value !== 'object') return 0;
  if (Array.isArray(value)) return value.length * costs.perElement;
  if (value instanceof Map || value instanceof Set) return value.size * costs.perElement;
  if (value instanceof Uint8Array) return text(value.length);
  return 0;
}

/** What reading text costs: operations on lists and maps that do not walk them are not charged. */
function textual(value: unknown): number {
  if (typeof value === 'string') return text(value.length);
  if (value instanceof Uint8Array) return text(value.length);
  return 0;
}

/**
 * What walking all of `value` costs, counting shared parts each time they are reached (so does a deep
 * comparison). Stops counting past `limit`: a value built of shared lists can be far larger than memory.
 */
function deep(value: unknown, limit = remaining + 1): number {
  if (value === null || typeof value !== 'object') return typeof value === 'string' ? text(value.length) : 0;
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item === 'string') total += text(item.length);
    else if (item !== null && typeof item === 'object') {
      if (Array.isArray(item)) {
        total += (1 + item.length) * costs.perElement;
        if (total > limit) return total;
        for (const child of item)
          if (child !== null && typeof child === 'object') stack.push(child);
          else if (typeof child === 'string' && child.length >= 8) stack.push(child);
      } else if (item instanceof Map) {
        total += (1 + item.size) * costs.perElement;
        if (total > limit) return total;
        for (const child of item.values()) stack.push(child);
      } else total += 1 + shallow(item);
    }
    if (total > limit) return total;
  }
  return total;
}

/** How `value` is charged where it is the right side of `in`: a list is scanned, a map is not. */
function membership(value: unknown): number {
  return Array.isArray(value) ? deep(value) : 0;
}

/** A macro over a map copies its keys before it starts; over a list it does not. */
function iterable(value: unknown): number {
  return value instanceof Map ? value.size * costs.perElement : 0;
}

// --- the AST, as far as this file reads it (the library's types do not describe its internals) ---

type Evaluate = (ev: Evaluator, ast: RuntimeNode, ctx: unknown) => unknown;

interface Evaluator {
  run(node: RuntimeNode, ctx: unknown): unknown;
}

interface Macro {
  evaluate: (ev: Evaluator, macro: Macro, ctx: unknown) => unknown;
  [part: string]: unknown;
}

interface RuntimeNode {
  op: string;
  args: unknown;
  start: number;
  end: number;
  checkedType?: { kind: string; hasDynType?: boolean };
  readonly meta: { evaluate: Evaluate; alternate?: RuntimeNode; macro?: Macro };
  evaluate: Evaluate;
}

/** The nodes of a parsed expression, found once: every ASTNode is an instance of one class. */
function isNode(value: unknown, nodeClass: unknown): value is RuntimeNode {
  return value !== null && typeof value === 'object' && value.constructor === nodeClass;
}

type Charge = (value: unknown) => number;

const comparisons = new Set(['<', '<=', '>', '>=']);

/** What {@link instrument} needs besides the AST. */
export interface InstrumentOptions {
  /** The expression's text: an error's message quotes it, which costs by its length. */
  source: string;
  /** The compiled regular expression of each `matches` call, by the call's node. */
  regexes: ReadonlyMap<ASTNode, RE2JS>;
}

interface NodeInfo {
  /** What the node's value costs: what it reads or builds in proportion to its size. */
  charges: Set<Charge>;
  /** For the body of a macro: the nodes it holds, spent at each step. */
  weight: number;
  /** Inside a macro's body, where an error it throws may be caught and the loop go on. */
  catchable: boolean;
}

/**
 * Finds the nodes of a checked AST that need counting: the body of each macro (weighed by its nodes,
 * not counting the bodies of macros inside it, which count themselves), the operands and results that
 * cost by their size, and the left side of `&&` and `||` in a body (cel-js catches its errors).
 */
function survey(root: RuntimeNode): Map<RuntimeNode, NodeInfo> {
  const nodeClass = root.constructor;
  const found = new Map<RuntimeNode, NodeInfo>();
  const info = (node: RuntimeNode): NodeInfo => {
    let entry = found.get(node);
    if (!entry) {
      entry = { charges: new Set(), weight: 0, catchable: false };
      found.set(node, entry);
    }
    return entry;
  };
  // [node, the body it is in (or undefined at the top), how its value is charged]
  const stack: Array<[RuntimeNode, NodeInfo | undefined, Charge | undefined]> = [
    [root, undefined, undefined],
  ];
  const seen = new Set<RuntimeNode>();
  while (stack.length > 0) {
    const [node, body, charge] = stack.pop()!;
    const push = (child: unknown, into: NodeInfo | undefined = body, how?: Charge) => {
      if (isNode(child, nodeClass)) stack.push([child, into, how]);
    };
    const entry = info(node);
    if (charge) entry.charges.add(charge);
    if (seen.has(node)) continue;
    seen.add(node);
    if (body) body.weight += 1;
    const meta = node.meta;
    if (meta.alternate) {
      // A macro call runs the comprehension it was expanded into; its own arguments are parts of it.
      push(meta.alternate);
      continue;
    }
    if (meta.macro) {
      for (const part of Object.values(meta.macro)) {
        if (Array.isArray(part)) for (const item of part) push(item);
        else push(part);
      }
      continue;
    }
    const args = node.args as unknown;
    switch (node.op) {
      case 'comprehension': {
        const parts = args as { iterable: RuntimeNode; init: unknown; step: RuntimeNode };
        push(parts.iterable, body, iterable);
        push(parts.init);
        if (isNode(parts.step, nodeClass)) {
          const step = info(parts.step);
          step.catchable = true;
          push(parts.step, step);
        }
        continue;
      }
      case '||':
      case '&&': {
        const [left, right] = args as unknown[];
        if (body && isNode(left, nodeClass)) info(left).catchable = true;
        push(left);
        push(right);
        continue;
      }
      case '==':
      case '!=':
        for (const side of args as unknown[]) push(side, body, deep);
        continue;
      case 'in': {
        const [element, collection] = args as unknown[];
        push(element);
        push(collection, body, membership);
        continue;
      }
      case '+':
        entry.charges.add(shallow);
        for (const side of args as unknown[]) push(side);
        continue;
      case 'call':
      case 'rcall': {
        // A function is charged by the text it reads and by what it returns; `join` reads a list.
        const name = (args as unknown[])[0];
        entry.charges.add(shallow);
        const operands =
          node.op === 'call'
            ? ((args as unknown[])[1] as unknown[])
            : [(args as unknown[])[1], ...((args as unknown[])[2] as unknown[])];
        const readsList = name === 'join' && node.op === 'rcall';
        operands.forEach((operand, i) => {
          push(operand, body, readsList && i === 0 ? shallow : textual);
        });
        continue;
      }
      default:
        if (comparisons.has(node.op)) {
          for (const side of args as unknown[]) push(side, body, textual);
          continue;
        }
    }
    if (Array.isArray(args)) {
      for (const arg of args) {
        if (Array.isArray(arg)) for (const inner of arg) push(inner);
        else push(arg);
      }
    } else push(args);
  }
  return found;
}

/** A map literal as a `Map`, so that every key stays a key (cel-js's own drops `constructor`, …). */
function evaluateMapLiteral(ev: Evaluator, node: RuntimeNode, ctx: unknown): unknown {
  const out = new Map<unknown, unknown>();
  for (const [keyNode, valueNode] of node.args as Array<[RuntimeNode, RuntimeNode]>) {
    const key = ev.run(keyNode, ctx);
    if (key === null || (typeof key === 'object' && !(key instanceof UnsignedInt))) {
      throw celError('invalid_map_key', 'a map key must be a string, a number or a bool', keyNode);
    }
    out.set(key, ev.run(valueNode, ctx));
  }
  return out;
}

/** An error in cel-js's own class, so it is worded and located like the library's. */
function celError(code: string, message: string, node: RuntimeNode): EvaluationError {
  // The declared constructor takes (message, node); the library's also takes an options object with a code.
  return new EvaluationError({ code, message, node } as unknown as string);
}

/** `matches()` on the RE2 program compiled when the rule was loaded: linear in the text. */
function evaluateMatches(re: RE2JS, textNode: RuntimeNode): Evaluate {
  const program = Math.max(1, re.programSize());
  return (ev, node, ctx) => {
    const value = ev.run(textNode, ctx);
    if (typeof value !== 'string') {
      throw celError(
        'no_matching_overload',
        `found no matching overload for 'matches(${value === null ? 'null' : typeof value}, string)'`,
        node,
      );
    }
    spend(value.length * program * costs.perRegexStep);
    return re.test(value);
  };
}

/**
 * Gives the nodes of a checked expression the evaluation described at the top of this file. Call once,
 * after `check()`: the type check settles which operation each node runs.
 */
export function instrument(root: ASTNode, options: InstrumentOptions): void {
  const errorCost = costs.error + (options.source.length >>> 6);
  for (const [node, info] of survey(root as unknown as RuntimeNode)) {
    const meta = node.meta;
    let inner: Evaluate;
    const re = options.regexes.get(node as unknown as ASTNode);
    if (re) {
      const args = node.args as unknown[];
      const textNode = (node.op === 'rcall' ? args[1] : (args[1] as unknown[])[0]) as RuntimeNode;
      inner = evaluateMatches(re, textNode);
    } else if (meta.alternate) {
      const alternate = meta.alternate;
      inner = (ev, _node, ctx) => alternate.evaluate(ev, alternate, ctx);
    } else if (meta.macro) {
      const macro = meta.macro;
      inner = (ev, _node, ctx) => macro.evaluate(ev, macro, ctx);
    } else if (node.op === 'map') {
      inner = evaluateMapLiteral;
    } else {
      inner = meta.evaluate;
    }
    // `bytes.json()` parses text into plain objects, which must reach CEL as data does.
    const isJson = isCall(node, 'json');
    // A literal's size is known: one that costs nothing by size needs no charge at each evaluation.
    const charges = [...info.charges].filter((c) => node.op !== 'value' || c(node.args) > 0);
    const charge: Charge | undefined =
      charges.length <= 1 ? charges[0] : (value) => charges.reduce((sum, c) => sum + c(value), 0);
    const weight = info.weight * costs.perBodyNode;
    const catchable = info.catchable;
    if (weight === 0 && !catchable && !charge && !isJson && inner === meta.evaluate) continue;
    node.evaluate = function evaluate(ev, ast, ctx) {
      if (weight > 0) {
        remaining -= weight;
        if (remaining < 0) throw exceeded;
      }
      let value: unknown;
      if (catchable) {
        try {
          value = inner.call(node, ev, ast, ctx);
        } catch (error) {
          // cel-js catches it and goes on: what building the error cost is charged, once.
          if (error !== exceeded && error !== lastChargedError) {
            lastChargedError = error;
            spend(errorCost);
          }
          throw error;
        }
      } else value = inner.call(node, ev, ast, ctx);
      if (isJson) value = toCel(value);
      // Numbers, booleans and null cost nothing by size: skip the call for them.
      if (
        charge !== undefined &&
        value !== null &&
        (typeof value === 'object' || typeof value === 'string')
      ) {
        remaining -= charge(value);
        if (remaining < 0) throw exceeded;
      }
      return value;
    };
  }
}

function isCall(node: RuntimeNode, name: string): boolean {
  return (node.op === 'rcall' || node.op === 'call') && (node.args as unknown[])[0] === name;
}
