import { ReflexError } from './errors.js';
import { compileExpression, type Expression, type ExpressionContext } from './expression.js';
import { redactUrlCredentials } from './redact.js';
import {
  buildUrl,
  isUserinfo,
  type UrlHost,
  type UrlPiece,
  UrlTemplateError,
  type UrlTemplatePiece,
  urlHost,
} from './url-template.js';

/** Action parameters from a rulebook, with their `${{ <CEL> }}` parts compiled. */
export interface Template {
  /** The value as written in the rulebook. */
  readonly source: unknown;
  /** True when no string holds an expression: `render` then gives the same value whatever the context. */
  readonly isStatic: boolean;
  /** The secrets the template reads (`${{ secrets.NAME }}`), with where each is read, in order. */
  readonly secrets: ReadonlyArray<{ name: string; path: Array<string | number> }>;
  /** The strings compiled as URLs ({@link TemplateOptions.urls}), with how their host is given. */
  readonly urls: ReadonlyArray<{ path: Array<string | number>; host: UrlHost }>;
  /**
   * Evaluates every expression against `ctx` and returns a new JSON tree (a fresh copy each time).
   * `secrets` holds the value of every secret the template reads.
   * Throws REFLEX_ERR_TEMPLATE_FAILED, with `details.path`, when an expression fails;
   * REFLEX_ERR_TEMPLATE_URL_HOST when a value from outside the rulebook would choose a URL's host;
   * REFLEX_ERR_SECRET_MISSING when a secret it reads is not in `secrets`.
   */
  render(ctx: ExpressionContext, secrets?: Readonly<Record<string, string>>): unknown;
}

/** How {@link compileTemplate} compiles some of the values. */
export interface TemplateOptions {
  /**
   * Keys of the top-level map whose string is a URL: each value inserted in it is encoded for the URL
   * component it lands in (see src/core/url-template.ts), so it cannot add structure or change the host.
   * @default none
   */
  urls?: readonly string[];
  /**
   * Whether a value from outside the rulebook may give the start or the host of those URLs: true when
   * the step lists the hosts it may call, which the action checks once the URL is built.
   * @default false
   */
  templatedHosts?: boolean;
}

type Path = Array<string | number>;

/**
 * A piece of a templated string: literal text, an expression, or a secret. `trusted` marks an expression
 * that only reads `vars` (the rulebook's own values), which a URL takes as written.
 */
type Part = string | { expression: Expression; trusted: boolean } | { secret: string };

type Node =
  | { kind: 'literal'; value: unknown }
  /** A string that is one expression and nothing else: the result keeps its type. */
  | { kind: 'whole'; expression: Expression; template: string; path: Path }
  /** A string mixing text and expressions: the result is text. */
  | { kind: 'text'; parts: Part[]; template: string; path: Path }
  /** A string that is a URL: values are encoded for where they land. */
  | { kind: 'url'; parts: Part[]; userinfo: boolean[]; template: string; path: Path; templatedHosts: boolean }
  | { kind: 'list'; items: Node[] }
  | { kind: 'map'; entries: Array<[string, Node]> };

const open = '${{';
/** `${{ secrets.NAME }}`: the only form in which a template reads a secret. */
const secretReference = /^secrets\.([A-Za-z_][A-Za-z0-9_]*)$/;
/** An expression that reads a value of `vars` and nothing else: `vars.a.b`, `vars["a"]`, `vars.list[0]`. */
const varsReference = /^vars(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\s*(?:"[^"\\]*"|'[^'\\]*'|\d+)\s*\])+$/;
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

function compileAt(source: string, text: string, path: Path, sourceStart: number): Expression {
  try {
    return compileExpression(source);
  } catch (error) {
    if (!(error instanceof ReflexError)) throw error;
    const inner = error.details?.offset;
    let reason = String(error.params.reason ?? error.message);
    // CEL does not know `secrets`: say how a secret is read instead of that there is no such variable.
    if (/`secrets`/.test(reason) && /\bsecrets\b/.test(source)) {
      reason =
        'a secret is read only as `${{ secrets.NAME }}` on its own, so that its value reaches the action unchanged and can be masked wherever it is echoed back';
    }
    throw invalid(text, reason, path, typeof inner === 'number' ? sourceStart + inner : sourceStart);
  }
}

/** Splits a string into text, compiled expressions and secrets. */
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
    const secret = secretReference.exec(source)?.[1];
    if (literal !== '') parts.push(literal);
    literal = '';
    parts.push(
      secret !== undefined
        ? { secret }
        : { expression: compileAt(source, text, path, sourceStart), trusted: varsReference.test(source) },
    );
    i = close + 2;
  }
  if (literal !== '' || parts.length === 0) parts.push(literal);
  return parts;
}

/** What compiling a template found besides its nodes. */
interface Found {
  secrets: Array<{ name: string; path: Path }>;
  urls: Array<{ path: Path; host: UrlHost }>;
  options: TemplateOptions;
}

function compileNode(value: unknown, path: Path, found: Found): Node {
  if (path.length > maxDepth) {
    throw invalid(describePath(path), `the value nests deeper than ${maxDepth} levels`, path);
  }
  if (typeof value === 'string') {
    const isUrl = path.length === 1 && found.options.urls?.includes(String(path[0])) === true;
    if (!value.includes(open)) {
      if (isUrl) found.urls.push({ path, host: urlHost([{ text: value }]) });
      return { kind: 'literal', value };
    }
    const parts = parseString(value, path);
    for (const part of parts) {
      if (typeof part === 'object' && 'secret' in part) found.secrets.push({ name: part.secret, path });
    }
    const values = parts.filter((p) => typeof p !== 'string');
    if (values.length === 0) return { kind: 'literal', value: parts.join('') };
    if (isUrl) return compileUrl(value, parts, path, found);
    const onlyBlank = parts.every((p) => typeof p !== 'string' || p.trim() === '');
    const single = values[0]!;
    if (values.length === 1 && onlyBlank && 'expression' in single) {
      return { kind: 'whole', expression: single.expression, template: value, path };
    }
    return { kind: 'text', parts, template: value, path };
  }
  if (value === null || value === undefined || typeof value === 'number' || typeof value === 'boolean') {
    return { kind: 'literal', value };
  }
  if (Array.isArray(value)) {
    return { kind: 'list', items: value.map((item, i) => compileNode(item, [...path, i], found)) };
  }
  if (typeof value === 'object') {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) {
      const entries: Array<[string, Node]> = [];
      for (const key of Object.keys(value)) {
        entries.push([key, compileNode((value as Record<string, unknown>)[key], [...path, key], found)]);
      }
      return { kind: 'map', entries };
    }
  }
  const what = typeof value === 'object' ? (value.constructor?.name ?? 'object') : typeof value;
  throw invalid(describePath(path), `a ${what} is not a JSON value`, path);
}

function compileUrl(template: string, parts: Part[], path: Path, found: Found): Node {
  const pieces: UrlTemplatePiece[] = parts.map((part) =>
    typeof part === 'string' ? { text: part } : { trusted: 'secret' in part || part.trusted },
  );
  const host = urlHost(pieces);
  const templatedHosts = found.options.templatedHosts === true;
  if (host.type === 'outside' && !templatedHosts) {
    throw new ReflexError(
      'REFLEX_ERR_TEMPLATE_URL_HOST',
      {
        template: redactUrlCredentials(template),
        reason:
          'no `/` ends the host before this `${{ }}`, so its value would be part of the scheme or the host',
      },
      { details: { path, offset: offsetOfPart(template, parts, host.piece) } },
    );
  }
  found.urls.push({ path, host });
  const userinfo = pieces.map((_, i) => isUserinfo(pieces, i));
  return { kind: 'url', parts, userinfo, template, path, templatedHosts };
}

/** Where the `${{` of the `index`-th part starts in the template, scanning as {@link parseString} does. */
function offsetOfPart(template: string, parts: Part[], index: number): number {
  const wanted = parts.slice(0, index + 1).filter((p) => typeof p !== 'string').length;
  let seen = 0;
  let i = 0;
  while (i < template.length) {
    if (template.startsWith(escapedOpen, i)) {
      i += escapedOpen.length;
    } else if (template.startsWith(open, i)) {
      seen += 1;
      if (seen === wanted) return i;
      i = findClose(template, i + open.length) + 2;
    } else {
      i += 1;
    }
  }
  return 0;
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

type Secrets = Readonly<Record<string, string>> | undefined;

function secretValue(name: string, secrets: Secrets): string {
  const value = secrets !== undefined && Object.hasOwn(secrets, name) ? secrets[name] : undefined;
  if (value === undefined) throw new ReflexError('REFLEX_ERR_SECRET_MISSING', { name });
  return value;
}

/** The text a part stands for: its text, the secret, or the expression's value (text as is, else JSON). */
function partText(
  part: Part,
  node: { template: string; path: Path },
  ctx: ExpressionContext,
  secrets: Secrets,
) {
  if (typeof part === 'string') return part;
  if ('secret' in part) return secretValue(part.secret, secrets);
  const value = evaluate(part.expression, node, ctx);
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function renderUrl(node: Extract<Node, { kind: 'url' }>, ctx: ExpressionContext, secrets: Secrets): string {
  const pieces: UrlPiece[] = node.parts.map((part, i) => {
    const text = partText(part, node, ctx, secrets);
    return typeof part === 'string'
      ? { text }
      : { value: text, trusted: 'secret' in part || part.trusted, userinfo: node.userinfo[i]! };
  });
  try {
    return buildUrl(pieces, node.templatedHosts);
  } catch (error) {
    if (!(error instanceof UrlTemplateError)) throw error;
    const template = redactUrlCredentials(node.template);
    throw error.reason === 'host'
      ? new ReflexError(
          'REFLEX_ERR_TEMPLATE_URL_HOST',
          { template, reason: error.message },
          { details: { path: node.path } },
        )
      : new ReflexError(
          'REFLEX_ERR_TEMPLATE_FAILED',
          { template, reason: error.message },
          { details: { path: node.path } },
        );
  }
}

function renderNode(node: Node, ctx: ExpressionContext, secrets: Secrets): unknown {
  switch (node.kind) {
    case 'literal':
      return node.value;
    case 'whole':
      return evaluate(node.expression, node, ctx);
    case 'text': {
      let out = '';
      for (const part of node.parts) out += partText(part, node, ctx, secrets);
      return out;
    }
    case 'url':
      return renderUrl(node, ctx, secrets);
    case 'list':
      return node.items.map((item) => renderNode(item, ctx, secrets));
    case 'map': {
      const out: Record<string, unknown> = {};
      for (const [key, item] of node.entries) {
        const value = renderNode(item, ctx, secrets);
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
 * - `$${{` writes a literal `${{`;
 * - `${{ secrets.NAME }}` inserts the secret NAME (given to `render`), and is the only way to read one.
 * Object keys are not templated. The strings named in `options.urls` are URLs: see {@link TemplateOptions}.
 *
 * Throws ReflexError('REFLEX_ERR_TEMPLATE_INVALID', { template, reason }, { details: { path, offset } }),
 * with `path` within `value` and `offset` the character offset in that string, and
 * REFLEX_ERR_TEMPLATE_URL_HOST for a URL whose host a value from outside the rulebook would give.
 *
 * @example
 * const params = compileTemplate(
 *   { url: 'https://x/hosts/${{ event.data.host }}', port: '${{ event.data.port }}' },
 *   { urls: ['url'] },
 * );
 * params.render(ctx); // { url: 'https://x/hosts/web-1', port: 8080 }
 */
export function compileTemplate(value: unknown, options: TemplateOptions = {}): Template {
  const found: Found = { secrets: [], urls: [], options };
  const root = compileNode(value, [], found);
  const isStatic = isStaticNode(root);
  return {
    source: value,
    isStatic,
    secrets: found.secrets,
    urls: found.urls,
    render: (ctx: ExpressionContext, secrets?: Readonly<Record<string, string>>) =>
      renderNode(root, ctx, secrets),
  };
}
