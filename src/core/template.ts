import { ReflexError } from './errors.js';
import { compileExpression, type Expression, type ExpressionContext } from './expression.js';

/** Action parameters from a rulebook, with their `${{ <CEL> }}` parts compiled. */
export interface Template {
  /** The value as written in the rulebook. */
  readonly source: unknown;
  /** True when no string holds an expression: `render` then gives the same value whatever the context. */
  readonly isStatic: boolean;
  /**
   * Evaluates every expression against `ctx` and returns a new JSON tree (a fresh copy each time).
   * Throws REFLEX_ERR_TEMPLATE_FAILED, with `details.path`, when an expression fails.
   */
  render(ctx: ExpressionContext): unknown;
}

type Path = Array<string | number>;

/** A piece of a templated string: literal text, or an expression. */
type Part = string | { expression: Expression };

type Node =
  | { kind: 'literal'; value: unknown }
  /** A string that is one expression and nothing else: the result keeps its type. */
  | { kind: 'whole'; expression: Expression; template: string; path: Path }
  /** A string mixing text and expressions: the result is text. */
  | { kind: 'text'; parts: Part[]; template: string; path: Path }
  | { kind: 'list'; items: Node[] }
  | { kind: 'map'; entries: Array<[string, Node]> };

const open = '${{';
const escapedOpen = '$${{';
/** Deepest nesting of lists and maps in a template; also stops a cyclic object from a TypeScript rule. */
const maxDepth = 64;

function invalid(template: string, reason: string, path: Path, offset?: number): ReflexError {
  return new ReflexError(
    'REFLEX_ERR_TEMPLATE_INVALID',
    { template, reason },
    { details: offset === undefined ? { path } : { path, offset } },
  );
}

/**
 * Finds the `}}` that closes an expression starting at `from`, skipping CEL string literals (which may
 * hold `}}`) and map literals (`{"a": {"b": 1}}` ends in `}}` too). Returns -1 when there is none.
 */
function findClose(text: string, from: number): number {
  let depth = 0;
  let i = from;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"' || c === "'") {
      const triple = text.startsWith(c.repeat(3), i);
      const quote = triple ? c.repeat(3) : c;
      i += quote.length;
      for (;;) {
        if (i >= text.length) return -1;
        // cel-js skips the character after a backslash in raw strings too (`r"a\"b"` is one string).
        if (text[i] === '\\') {
          i += 2;
          continue;
        }
        if (text.startsWith(quote, i)) {
          i += quote.length;
          break;
        }
        if (!triple && (text[i] === '\n' || text[i] === '\r')) return -1;
        i += 1;
      }
      continue;
    }
    if (c === '{') depth += 1;
    else if (c === '}') {
      if (depth > 0) depth -= 1;
      else if (text[i + 1] === '}') return i;
    }
    i += 1;
  }
  return -1;
}

/** Splits a string into text and compiled expressions. */
function parseString(text: string, path: Path): Part[] {
  const parts: Part[] = [];
  let literal = '';
  let i = 0;
  while (i < text.length) {
    if (text.startsWith(escapedOpen, i)) {
      literal += open;
      i += escapedOpen.length;
      continue;
    }
    if (!text.startsWith(open, i)) {
      literal += text[i];
      i += 1;
      continue;
    }
    const bodyStart = i + open.length;
    const close = findClose(text, bodyStart);
    if (close === -1) {
      throw invalid(text, 'a `${{` has no matching `}}`', path, i);
    }
    const body = text.slice(bodyStart, close);
    const source = body.trim();
    const sourceStart = bodyStart + (body.length - body.trimStart().length);
    if (source === '') throw invalid(text, 'the expression between `${{` and `}}` is empty', path, i);
    let expression: Expression;
    try {
      expression = compileExpression(source);
    } catch (error) {
      if (!(error instanceof ReflexError)) throw error;
      const inner = error.details?.offset;
      throw invalid(
        text,
        String(error.params.reason ?? error.message),
        path,
        typeof inner === 'number' ? sourceStart + inner : sourceStart,
      );
    }
    if (literal !== '') parts.push(literal);
    literal = '';
    parts.push({ expression });
    i = close + 2;
  }
  if (literal !== '' || parts.length === 0) parts.push(literal);
  return parts;
}

function compileNode(value: unknown, path: Path): Node {
  if (path.length > maxDepth) {
    throw invalid(describePath(path), `the value nests deeper than ${maxDepth} levels`, path);
  }
  if (typeof value === 'string') {
    if (!value.includes(open)) return { kind: 'literal', value };
    const parts = parseString(value, path);
    const expressions = parts.filter((p) => typeof p !== 'string');
    if (expressions.length === 0) return { kind: 'literal', value: parts.join('') };
    const onlyBlank = parts.every((p) => typeof p !== 'string' || p.trim() === '');
    if (expressions.length === 1 && onlyBlank) {
      return { kind: 'whole', expression: expressions[0]!.expression, template: value, path };
    }
    return { kind: 'text', parts, template: value, path };
  }
  if (value === null || value === undefined || typeof value === 'number' || typeof value === 'boolean') {
    return { kind: 'literal', value };
  }
  if (Array.isArray(value)) {
    return { kind: 'list', items: value.map((item, i) => compileNode(item, [...path, i])) };
  }
  if (typeof value === 'object') {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) {
      const entries: Array<[string, Node]> = [];
      for (const key of Object.keys(value)) {
        entries.push([key, compileNode((value as Record<string, unknown>)[key], [...path, key])]);
      }
      return { kind: 'map', entries };
    }
  }
  const what = typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value;
  throw invalid(describePath(path), `a ${what} is not a JSON value`, path);
}

function describePath(path: Path): string {
  return path.length === 0 ? '(value)' : path.join('.');
}

function isStaticNode(node: Node): boolean {
  switch (node.kind) {
    case 'literal':
      return true;
    case 'list':
      return node.items.every(isStaticNode);
    case 'map':
      return node.entries.every(([, item]) => isStaticNode(item));
    default:
      return false;
  }
}

function evaluate(
  expression: Expression,
  node: { template: string; path: Path },
  ctx: ExpressionContext,
): unknown {
  try {
    return expression.evaluate(ctx);
  } catch (error) {
    const reason =
      error instanceof ReflexError ? String(error.params.reason ?? error.message) : String(error);
    const fix =
      error instanceof ReflexError && error.params.fix !== undefined
        ? String(error.params.fix)
        : 'check the fields it reads exist in the event';
    throw new ReflexError(
      'REFLEX_ERR_TEMPLATE_FAILED',
      { template: node.template, reason, fix },
      { cause: error, details: { path: node.path } },
    );
  }
}

function renderNode(node: Node, ctx: ExpressionContext): unknown {
  switch (node.kind) {
    case 'literal':
      return node.value;
    case 'whole':
      return evaluate(node.expression, node, ctx);
    case 'text': {
      let out = '';
      for (const part of node.parts) {
        if (typeof part === 'string') {
          out += part;
          continue;
        }
        const value = evaluate(part.expression, node, ctx);
        out += typeof value === 'string' ? value : JSON.stringify(value);
      }
      return out;
    }
    case 'list':
      return node.items.map((item) => renderNode(item, ctx));
    case 'map': {
      const out: Record<string, unknown> = {};
      for (const [key, item] of node.entries) {
        const value = renderNode(item, ctx);
        // A rulebook key "__proto__" must stay a key: plain assignment would set the prototype instead.
        if (key === '__proto__') {
          Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
        } else out[key] = value;
      }
      return out;
    }
  }
}

/**
 * Compiles action parameters: any JSON tree (strings, numbers, booleans, null, lists, maps) from a
 * rulebook. Every string may hold `${{ expr }}` parts:
 * - a string that is exactly one `${{ expr }}` (surrounding whitespace allowed) keeps the expression's
 *   type (number, bool, list, map, null);
 * - a string with text around, or several parts, renders each part to text (strings as-is, other values
 *   as JSON) and joins them;
 * - `$${{` writes a literal `${{`.
 * Object keys are not templated.
 *
 * Throws ReflexError('REFLEX_ERR_TEMPLATE_INVALID', { template, reason }, { details: { path, offset } }),
 * with `path` within `value` and `offset` the character offset in that string.
 *
 * @example
 * const params = compileTemplate({ url: 'https://x/${{ event.data.host }}', port: '${{ event.data.port }}' });
 * params.render(ctx); // { url: 'https://x/web-1', port: 8080 }
 */
export function compileTemplate(value: unknown): Template {
  const root = compileNode(value, []);
  const isStatic = isStaticNode(root);
  return {
    source: value,
    isStatic,
    render: (ctx: ExpressionContext) => renderNode(root, ctx),
  };
}
