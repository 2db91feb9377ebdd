import { createRequire } from 'node:module';
import Type from 'typebox';
import { Agent, type Dispatcher, request } from 'undici';
import { NonRetriableError, ReflexError, RetryAfterError } from '../core/errors.js';
import { allowedBy, type HostPattern, parseHostPattern } from '../core/host-allowlist.js';
import { jsonNestsWithin } from '../core/json-value.js';
import type { Action, ActionContext } from '../core/ports/action.js';
import { redactUrlCredentials } from '../core/redact.js';
import { abortedError } from './deadline.js';
import {
  DeniedAddressError,
  defaultHttpDenyList,
  deniedAddress,
  deniedName,
  guardedLookup,
  type HttpDenyList,
  type LookupFunction,
} from './http-deny.js';
import {
  describeValue,
  description,
  invalidParams,
  isRecord,
  optionalText,
  optionalTextMap,
  readObject,
  scalarText,
  TextMap,
} from './params.js';

const kind = 'http';

/**
 * The `http` step's parameters as a rulebook writes them (see Action.params); templates may stand for
 * the values typed loosely here.
 */
export const httpParamsSchema = Type.Object(
  {
    url: Type.String({
      minLength: 1,
      ...description(
        'The URL. Values of `${{ }}` are encoded for the part of the URL they land in; the scheme and host must be written out, or listed in `hosts`.',
      ),
    }),
    method: Type.Optional(Type.String(description('@default POST with json/body, else GET'))),
    headers: Type.Optional(TextMap),
    query: Type.Optional(
      Type.Unknown(
        description('Query parameters added to the URL: names to a value or a list of values, each encoded.'),
      ),
    ),
    json: Type.Optional(Type.Unknown(description('Sent as application/json.'))),
    body: Type.Optional(Type.String(description('Sent as is.'))),
    expect: Type.Optional(
      Type.Union([Type.Integer(), Type.String(), Type.Array(Type.Union([Type.Integer(), Type.String()]))], {
        ...description('Expected status: 200, [200, 204] or "2xx". @default "2xx"'),
      }),
    ),
    hosts: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        ...description(
          'The hosts the URL may have, when data from outside the rulebook gives its host: `api.example.com`, `*.svc.example.com`, `10.0.0.5:8443`. Not templated.',
        ),
      }),
    ),
  },
  { additionalProperties: false, ...description('Call an HTTP endpoint. Sends Idempotency-Key.') },
);

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

/**
 * Which answers count as success. `statuses` are exact codes; `classes` are hundreds (2 for `2xx`).
 * `text` is how the rulebook wrote it, for messages.
 */
export interface StatusExpectation {
  statuses: number[];
  classes: number[];
  text: string;
}

/** The `http` action's parameters once checked: the request to send and the answers to accept. */
export interface HttpParams {
  /** With the `query` parameters added. */
  url: string;
  /** The hosts the step may call (`hosts`); when given, the URL's host must be one of them. */
  hosts?: HostPattern[];
  /** Upper-case. */
  method: string;
  /** Names lower-cased. Content-Type is filled in for `json` (and `body`) unless given. */
  headers: Record<string, string>;
  body?: string;
  expect: StatusExpectation;
}

/** What a successful `http` step outputs (readable as `steps.<id>.output`). */
export interface HttpOutput {
  status: number;
  /** Response headers with lower-case names; repeated headers are joined with `, `; `set-cookie` is left out. */
  headers: Record<string, string>;
  /**
   * Parsed JSON when the response says it is JSON, parses, and nests no deeper than the output may
   * (one level less than `context.outputLimits.maxDepth`); else the text.
   */
  body: unknown;
  /** Present and true when the body was longer than `maxBodyBytes` and was cut (it is then text, not JSON). */
  truncated?: true;
}

/** Options of {@link createHttpAction}. */
export interface HttpActionOptions {
  /**
   * Where requests go through: a shared connection pool. A dispatcher given here must check resolved
   * addresses itself (see {@link guardedLookup}); names and literal addresses are checked before.
   * @default an undici `Agent` of this action, whose connections check every resolved address against `deny`
   */
  dispatcher?: Dispatcher;
  /**
   * Addresses and names no request is sent to, checked on the URL's host and on every address it
   * resolves to when a connection is made.
   * @default the built-in list, {@link defaultHttpDeny} (link-local and cloud metadata addresses)
   */
  deny?: HttpDenyList;
  /**
   * Resolves host names (tests give a fake DNS).
   * @default dns.lookup
   */
  lookup?: LookupFunction;
  /**
   * Largest response body kept in the output, in bytes; the rest is not read.
   * @default 65536 (64 KiB)
   */
  maxBodyBytes?: number;
  /**
   * Sent as `User-Agent` unless the step sets its own.
   * @default `reflex/<package version>`
   */
  userAgent?: string;
  /**
   * The time, to turn a Retry-After date into a delay.
   * @default Date.now
   */
  now?: () => number;
}

const defaultMaxBodyBytes = 65_536;
/** How much of an unexpected answer's body goes into the error's details. */
const excerptChars = 2048;
const methodToken = /^[A-Za-z]+$/;
/** RFC 9110 token characters, the only ones allowed in a header name. */
const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const statusClass = /^([1-5])xx$/i;
/** Client errors that can pass with time: Request Timeout, Too Early, Too Many Requests. */
const retriableClientErrors = new Set([408, 425, 429]);

function parseStatus(value: unknown): { status?: number; cls?: number } | undefined {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 100 && value <= 599)
    return { status: value };
  if (typeof value === 'string') {
    const text = value.trim();
    if (/^\d{3}$/.test(text)) return parseStatus(Number(text));
    const match = statusClass.exec(text);
    if (match) return { cls: Number(match[1]) };
  }
  return undefined;
}

function parseExpect(value: unknown): StatusExpectation {
  if (value === undefined) return { statuses: [], classes: [2], text: '2xx' };
  const items = Array.isArray(value) ? value : [value];
  const expectation: StatusExpectation = { statuses: [], classes: [], text: items.map(String).join(', ') };
  for (const item of items) {
    const parsed = parseStatus(item);
    if (parsed === undefined) {
      invalidParams(
        kind,
        `\`expect\` holds ${typeof item === 'string' ? JSON.stringify(item) : describeValue(item)}`,
        'give a status (200), a class ("2xx") or a list of them.',
      );
    }
    if (parsed.status !== undefined) expectation.statuses.push(parsed.status);
    if (parsed.cls !== undefined) expectation.classes.push(parsed.cls);
  }
  if (items.length === 0)
    invalidParams(kind, '`expect` is an empty list', 'list at least one status or class.');
  return expectation;
}

/** Percent-decodes userinfo; text that is not valid percent-encoding is taken as written. */
function decodeText(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Reads `hosts`: a list of host patterns written in the rulebook. */
function parseHosts(value: unknown): HostPattern[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0) {
    invalidParams(
      kind,
      `\`hosts\` is ${Array.isArray(value) ? 'an empty list' : describeValue(value)}`,
      'list the hosts the step may call, e.g. ["api.example.com", "*.svc.example.com"].',
    );
  }
  return value.map((item, index) => {
    const pattern = typeof item === 'string' ? parseHostPattern(item) : undefined;
    if (typeof pattern !== 'object') {
      invalidParams(
        kind,
        typeof pattern === 'string'
          ? `\`hosts[${index}]\`: ${pattern}`
          : `\`hosts[${index}]\` is ${describeValue(item)}`,
        'write host names or addresses, `*.` and a name for every name below it, and an optional :port.',
      );
    }
    return pattern;
  });
}

/** Reads `query`: names to a value or a list of values, each percent-encoded and appended to the URL. */
function queryText(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value)) {
    invalidParams(kind, `\`query\` is ${describeValue(value)}`, 'give `query` as a map of names to values.');
  }
  const pairs: string[] = [];
  for (const [name, entry] of Object.entries(value)) {
    for (const item of Array.isArray(entry) ? entry : [entry]) {
      if (item === null) continue;
      const text = scalarText(item);
      if (text === undefined) {
        invalidParams(
          kind,
          `\`query.${name}\` is ${describeValue(item)}`,
          'give each query value as a string, a number, a boolean or a list of them.',
        );
      }
      pairs.push(`${encodeURIComponent(name)}=${encodeURIComponent(text)}`);
    }
  }
  return pairs.join('&');
}

function isExpected(status: number, expectation: StatusExpectation): boolean {
  return expectation.statuses.includes(status) || expectation.classes.includes(Math.floor(status / 100));
}

/**
 * Checks an `http` step's rendered parameters.
 * Throws REFLEX_ERR_ACTION_INVALID_PARAMS.
 */
export function parseHttpParams(params: unknown): HttpParams {
  const raw = readObject(kind, params);
  const urlText = optionalText(kind, raw, 'url');
  if (urlText === undefined || urlText === '')
    invalidParams(kind, '`url` is missing', 'give the URL to call.');
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    invalidParams(
      kind,
      `\`url\` ${JSON.stringify(redactUrlCredentials(urlText))} is not a URL`,
      'write an absolute http:// or https:// URL.',
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    invalidParams(kind, `\`url\` uses ${url.protocol}`, 'use an http:// or https:// URL.');
  }
  const query = queryText(raw['query']);
  if (query) url.search = url.search === '' ? query : `${url.search.slice(1)}&${query}`;
  const hosts = parseHosts(raw['hosts']);
  if (raw['json'] !== undefined && raw['body'] !== undefined) {
    invalidParams(
      kind,
      'both `json` and `body` are given',
      'send either `json` (serialised for you) or `body` (text).',
    );
  }
  let body: string | undefined;
  let contentType: string | undefined;
  if (raw['json'] !== undefined) {
    body = JSON.stringify(raw['json']);
    contentType = 'application/json';
  } else if (raw['body'] !== undefined) {
    if (typeof raw['body'] !== 'string') {
      invalidParams(
        kind,
        `\`body\` is ${describeValue(raw['body'])}`,
        'give `body` as a string, or use `json` for structured data.',
      );
    }
    body = raw['body'];
    contentType = 'text/plain; charset=utf-8';
  }
  const method = (optionalText(kind, raw, 'method') ?? (body === undefined ? 'GET' : 'POST')).toUpperCase();
  if (!methodToken.test(method)) {
    invalidParams(
      kind,
      `\`method\` ${JSON.stringify(method)} is not an HTTP method`,
      'write GET, POST, PUT, ...',
    );
  }
  if (body !== undefined && (method === 'GET' || method === 'HEAD')) {
    invalidParams(
      kind,
      `a ${method} request cannot carry a body`,
      'set `method: POST` (or PUT, PATCH), or drop the body.',
    );
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(optionalTextMap(kind, raw, 'headers') ?? {})) {
    if (!headerName.test(name)) {
      invalidParams(
        kind,
        `header name ${JSON.stringify(name)} is not valid`,
        'use letters, digits and dashes.',
      );
    }
    // Rendered values may hold a newline from event data: refuse rather than let it split the header.
    if (/[\r\n\0]/.test(value)) {
      invalidParams(
        kind,
        `header \`${name}\` holds a line break`,
        'remove line breaks from the header value.',
      );
    }
    headers[name.toLowerCase()] = value;
  }
  if (contentType !== undefined && headers['content-type'] === undefined)
    headers['content-type'] = contentType;
  if (url.username !== '' || url.password !== '') {
    // Sent the way curl sends them, and taken out of the URL, which messages and logs show.
    const credentials = `${decodeText(url.username)}:${decodeText(url.password)}`;
    headers['authorization'] ??= `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
    url.username = '';
    url.password = '';
  }
  const parsed: HttpParams = { url: url.href, method, headers, expect: parseExpect(raw['expect']) };
  if (body !== undefined) parsed.body = body;
  if (hosts !== undefined) {
    if (allowedBy(hosts, url) === undefined) {
      throw new ReflexError('REFLEX_ERR_ACTION_HTTP_HOST_NOT_ALLOWED', {
        method,
        url: shownUrl(url.href),
        host: url.host,
        hosts: hosts.map((h) => h.source).join(', '),
      });
    }
    parsed.hosts = hosts;
  }
  return parsed;
}

/**
 * Reads a Retry-After value (delay-seconds or an HTTP date) as milliseconds from `now`; undefined when it
 * is neither. A date in the past gives 0.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** The URL as messages show it: without credentials, which would end up in logs and run records. */
function shownUrl(url: string): string {
  return redactUrlCredentials(url);
}

/** Why the deny list refuses the URL's host as written (a metadata name, a literal address), if it does. */
function deniedHost(deny: HttpDenyList, url: string): string | undefined {
  const { hostname } = new URL(url);
  if (!hostname.startsWith('[') && !/^[\d.]+$/.test(hostname)) return deniedName(deny, hostname);
  const entry = deniedAddress(deny, hostname);
  return entry === undefined ? undefined : `${hostname} is in ${entry}`;
}

function blocked(params: HttpParams, reason: string, cause?: unknown): ReflexError {
  return new ReflexError(
    'REFLEX_ERR_ACTION_HTTP_BLOCKED',
    { method: params.method, url: shownUrl(params.url), reason },
    cause === undefined ? {} : { cause },
  );
}

/** The guard's refusal, where undici put it: the error itself or one of its causes. */
function deniedCause(error: unknown): DeniedAddressError | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof DeniedAddressError) return e;
  }
  return undefined;
}

function flattenHeaders(headers: Dispatcher.ResponseData['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    // Session cookies are credentials: step outputs are stored and shown, so they are not kept.
    if (value === undefined || name === 'set-cookie') continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

async function readCapped(
  body: Dispatcher.ResponseData['body'],
  maxBytes: number,
): Promise<{ bytes: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buffer = chunk as Buffer;
    if (size + buffer.length > maxBytes) {
      chunks.push(buffer.subarray(0, maxBytes - size));
      // Stops the download: the connection is closed rather than drained.
      body.destroy();
      return { bytes: Buffer.concat(chunks), truncated: true };
    }
    chunks.push(buffer);
    size += buffer.length;
  }
  return { bytes: Buffer.concat(chunks), truncated: false };
}

function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const mediaType = contentType.split(';')[0]!.trim().toLowerCase();
  return mediaType === 'application/json' || mediaType.endsWith('+json');
}

function statusError(
  params: HttpParams,
  output: HttpOutput,
  text: string,
  now: number,
): ReflexError | NonRetriableError | RetryAfterError {
  const { status } = output;
  const details: Record<string, unknown> = {
    status,
    body: text.length > excerptChars ? `${text.slice(0, excerptChars)}…` : text,
  };
  const retryAfterMs =
    status === 429 || status === 503 ? parseRetryAfter(output.headers['retry-after'], now) : undefined;
  if (retryAfterMs !== undefined) details['retryAfterMs'] = retryAfterMs;
  const error = new ReflexError(
    'REFLEX_ERR_ACTION_HTTP_STATUS',
    { method: params.method, url: shownUrl(params.url), status, expected: params.expect.text },
    { details },
  );
  // The wrappers carry the same code, message and details, so the stored failure reads the same at the
  // top as in its cause; only the retry decision differs.
  if (retryAfterMs !== undefined) {
    return new RetryAfterError(error.message, retryAfterMs, { code: error.code, cause: error, details });
  }
  // Redirects are not followed, so trying again gets the same answer; so does a client error, except
  // those that say "later" (408, 425, 429).
  if (
    (status >= 300 && status < 400) ||
    (status >= 400 && status < 500 && !retriableClientErrors.has(status))
  ) {
    return new NonRetriableError(error.message, { code: error.code, cause: error, details });
  }
  return error;
}

function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as Error & { code?: unknown }).code;
  // Node's own socket errors put the code in the message already ("connect ECONNREFUSED ...").
  return typeof code === 'string' && !error.message.includes(code)
    ? `${code}: ${error.message}`
    : error.message;
}

/**
 * Creates the `http` action: one request per attempt, with the step's idempotency key sent as
 * `Idempotency-Key` so the target can drop repeats.
 *
 * Parameters: `{ url, method?, headers?, query?, json?, body?, expect?, hosts? }`. `method` is POST when
 * there is a body, else GET. `expect` is a status, a class like `"2xx"` (the default), or a list of them.
 * `hosts` lists the hosts the URL may have (REFLEX_ERR_ACTION_HTTP_HOST_NOT_ALLOWED otherwise).
 *
 * No request goes to an address or name of `options.deny` (REFLEX_ERR_ACTION_HTTP_BLOCKED, not retried):
 * the URL's host is checked, and so is every address a name resolves to when a connection is made.
 * URLs in messages have their credentials replaced by `***`.
 *
 * Failures: an unexpected status is REFLEX_ERR_ACTION_HTTP_STATUS (as a NonRetriableError for 4xx other
 * than 408/425/429; as a RetryAfterError for 429/503 with a Retry-After header); a network failure is
 * REFLEX_ERR_ACTION_HTTP_UNREACHABLE (retried); the step's deadline is REFLEX_ERR_ACTION_TIMEOUT, and the
 * request is cancelled with it.
 *
 * @example
 * const http = createHttpAction({ userAgent: 'my-app/1.0' });
 * await http.run(http.parse({ url: 'https://example.com/hook', json: { ok: true } }), context);
 */
export function createHttpAction(options: HttpActionOptions = {}): Action<HttpParams> {
  const maxBodyBytes = options.maxBodyBytes ?? defaultMaxBodyBytes;
  const userAgent = options.userAgent ?? `reflex/${version}`;
  const now = options.now ?? Date.now;
  const deny = options.deny ?? defaultHttpDenyList;
  let dispatcher = options.dispatcher;

  return {
    kind,
    params: httpParamsSchema,
    templates: { urls: ['url'], hostsParam: 'hosts', secrets: true },
    parse: parseHttpParams,
    async run(params: HttpParams, context: ActionContext): Promise<HttpOutput> {
      if (context.signal.aborted) throw abortedError(kind, context);
      const refused = deniedHost(deny, params.url);
      if (refused !== undefined) throw blocked(params, refused);
      // Made on first use, so importing the built-in actions opens nothing.
      dispatcher ??= new Agent({ connect: { lookup: guardedLookup(deny, options.lookup) } });
      const headers: Record<string, string> = { ...params.headers };
      headers['idempotency-key'] ??= context.idempotencyKey;
      headers['user-agent'] ??= userAgent;
      let response: Dispatcher.ResponseData;
      try {
        response = await request(params.url, {
          dispatcher,
          method: params.method as Dispatcher.HttpMethod,
          headers,
          body: params.body ?? null,
          signal: context.signal,
        });
      } catch (error) {
        if (context.signal.aborted) throw abortedError(kind, context);
        const denied = deniedCause(error);
        if (denied) throw blocked(params, denied.message, error);
        throw new ReflexError(
          'REFLEX_ERR_ACTION_HTTP_UNREACHABLE',
          { method: params.method, url: shownUrl(params.url), reason: describeNetworkError(error) },
          { cause: error },
        );
      }
      let read: { bytes: Buffer; truncated: boolean };
      try {
        read = await readCapped(response.body, maxBodyBytes);
      } catch (error) {
        if (context.signal.aborted) throw abortedError(kind, context);
        throw new ReflexError(
          'REFLEX_ERR_ACTION_HTTP_UNREACHABLE',
          {
            method: params.method,
            url: shownUrl(params.url),
            reason: `the response broke off: ${describeNetworkError(error)}`,
          },
          { cause: error },
        );
      }
      const responseHeaders = flattenHeaders(response.headers);
      const text = read.bytes.toString('utf8');
      let body: unknown = text;
      // The body sits one level inside the output, which may nest `outputLimits.maxDepth` levels. Deeper
      // JSON stays text: 64 KiB of `[[[[…` parses, then breaks whatever walks it (storing, templates,
      // conditions), while the text itself is harmless and shows what the target sent.
      if (
        !read.truncated &&
        text !== '' &&
        isJson(responseHeaders['content-type']) &&
        jsonNestsWithin(text, context.outputLimits.maxDepth - 1)
      ) {
        try {
          // A number beyond a double parses as ±Infinity, which the stored output would turn into null:
          // such an answer stays text too, so the run records what the service sent.
          let beyondDouble = false;
          const parsed: unknown = JSON.parse(text, (_key, value: unknown) => {
            if (typeof value === 'number' && !Number.isFinite(value)) beyondDouble = true;
            return value;
          });
          if (!beyondDouble) body = parsed;
        } catch {
          // A server that labels non-JSON as JSON still gets its text through.
        }
      }
      const output: HttpOutput = { status: response.statusCode, headers: responseHeaders, body };
      if (read.truncated) output.truncated = true;
      if (!isExpected(response.statusCode, params.expect)) throw statusError(params, output, text, now());
      return output;
    },
  };
}

/** The built-in `http` action, with a connection pool of its own. */
export const httpAction: Action<HttpParams> = createHttpAction();
