import { maxHeaderSize, STATUS_CODES } from 'node:http';
import { isIP, type Socket } from 'node:net';
import { hostname } from 'node:os';
import type { HttpHeaders } from '../codec/cloudevents-http.js';
import { headerValue } from '../codec/cloudevents-http.js';
import { formatDuration } from '../core/duration.js';
import { ReflexError } from '../core/errors.js';

/**
 * How long the server waits for a client. Without them, a client that sends its body a byte at a time
 * holds a connection (and the memory of the body so far) for as long as it likes.
 */
export interface ServerTimeouts {
  /**
   * The request line and headers must arrive within this time of the connection's first byte.
   * @default 10000 (10s)
   */
  headersMs: number;
  /**
   * The whole request, body included, must arrive within this time; the client then gets 408
   * REFLEX_ERR_API_REQUEST_TIMEOUT and the connection is closed. At least `headersMs`.
   * @default 30000 (30s)
   */
  requestMs: number;
  /**
   * An idle keep-alive connection is closed after this time. Above the idle timeout of a load balancer in
   * front of Reflex (60s for most), so the balancer never reuses a connection Reflex is closing.
   * @default 72000 (72s)
   */
  keepAliveMs: number;
  /**
   * A connection on which nothing moves in either direction (a client that stops reading an answer, say)
   * is closed after this time.
   * @default 60000 (60s)
   */
  idleMs: number;
}

/** The defaults of `ServerTimeouts`. */
export const defaultServerTimeouts: Readonly<ServerTimeouts> = Object.freeze({
  headersMs: 10_000,
  requestMs: 30_000,
  keepAliveMs: 72_000,
  idleMs: 60_000,
});

/**
 * Fills in and checks timeouts. Throws REFLEX_ERR_CONFIG_INVALID for a value that is not a positive
 * whole number of milliseconds, or a header timeout longer than the request timeout (Node refuses it).
 */
export function compileServerTimeouts(given: Partial<ServerTimeouts> = {}): Readonly<ServerTimeouts> {
  const timeouts = { ...defaultServerTimeouts, ...given };
  const flags: Record<keyof ServerTimeouts, string> = {
    headersMs: '--headers-timeout',
    requestMs: '--request-timeout',
    keepAliveMs: '--keep-alive-timeout',
    idleMs: 'idle timeout',
  };
  for (const [name, value] of Object.entries(timeouts) as Array<[keyof ServerTimeouts, number]>) {
    if (!Number.isInteger(value) || value <= 0) {
      throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
        option: flags[name],
        reason: `${value} is not a positive duration`,
        fix: 'give a duration like 10s or 500ms.',
      });
    }
  }
  if (timeouts.headersMs > timeouts.requestMs) {
    throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
      option: '--headers-timeout',
      reason: `${formatDuration(timeouts.headersMs)} is longer than --request-timeout (${formatDuration(timeouts.requestMs)}), which includes the headers`,
      fix: 'make --headers-timeout at most --request-timeout.',
    });
  }
  return Object.freeze(timeouts);
}

/**
 * Which names the server answers to in the `Host` header. A web page can point a DNS name it controls at
 * 127.0.0.1 (DNS rebinding) and then talk to Reflex as if it were its own site; the browser still sends
 * that name in `Host`, so checking it stops the attack.
 */
export interface HostPolicy {
  /** Whether a request addressed to `name` (lower case, without port or brackets) is answered. */
  allows(name: string): boolean;
  /** The accepted names, for messages. */
  readonly description: string;
}

/**
 * The names a server listening on `listenHost` answers to:
 *
 * - `localhost`, and IP addresses written as such (`127.0.0.1`, `[::1]`, `10.0.0.5`): a page cannot
 *   rebind an address, only a name;
 * - the listen address itself when it is a name (`--host reflex.internal`);
 * - when listening on every interface (`0.0.0.0`, `::`), this machine's host name;
 * - every name in `allowedHosts`; `*.example.com` stands for the names below `example.com`, and `*`
 *   alone turns the check off (for a proxy in front that checks `Host` itself).
 */
export function compileHostPolicy(
  listenHost: string,
  allowedHosts: readonly string[] = [],
  machineName: string = hostname(),
): HostPolicy {
  const exact = new Set<string>(['localhost']);
  const suffixes: string[] = [];
  const listen = normaliseName(listenHost);
  if (listen !== undefined && isIP(listen) === 0) exact.add(listen);
  if (listen === '0.0.0.0' || listen === '::' || listen === '') {
    const machine = normaliseName(machineName);
    if (machine !== undefined && machine !== '') exact.add(machine);
  }
  let any = false;
  for (const entry of allowedHosts) {
    const name = entry.trim().toLowerCase();
    if (name === '') continue;
    if (name === '*') any = true;
    else if (name.startsWith('*.')) suffixes.push(name.slice(1));
    else exact.add(normaliseName(name) ?? name);
  }
  const description = any
    ? 'any name'
    : `${[...exact, ...suffixes.map((s) => `*${s}`)].map((n) => `\`${n}\``).join(', ')} and IP addresses`;
  return {
    description,
    allows(name) {
      if (any || exact.has(name) || isIP(name) !== 0) return true;
      return suffixes.some((suffix) => name.endsWith(suffix) && name.length > suffix.length);
    },
  };
}

/** A host name in lower case without one trailing dot, or undefined when it holds what no name holds. */
function normaliseName(name: string): string | undefined {
  let out = name.trim().toLowerCase();
  if (out.startsWith('[') && out.endsWith(']')) out = out.slice(1, -1);
  if (out.endsWith('.')) out = out.slice(0, -1);
  return /^[a-z0-9._:-]*$/.test(out) ? out : undefined;
}

/**
 * The host name a `Host` header (or the authority of an absolute URL) names: lower case, without the
 * port and without the brackets of an IPv6 address. Undefined when it is not a valid `host[:port]`.
 */
export function hostOf(authority: string): string | undefined {
  const value = authority.trim().toLowerCase();
  let name: string;
  let port: string;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end === -1) return undefined;
    name = value.slice(1, end);
    port = value.slice(end + 1);
    if (isIP(name) !== 6) return undefined;
  } else {
    const colon = value.indexOf(':');
    name = colon === -1 ? value : value.slice(0, colon);
    port = colon === -1 ? '' : value.slice(colon);
    if (!/^[a-z0-9._-]+$/.test(name)) return undefined;
  }
  if (port !== '' && !/^:\d{1,5}$/.test(port)) return undefined;
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/**
 * Refuses a request addressed to a name the server does not answer to (REFLEX_ERR_API_HOST_NOT_ALLOWED),
 * or that names none where HTTP/1.1 requires one (REFLEX_ERR_API_MALFORMED_REQUEST). A request in
 * absolute form (`GET http://name/...`) is judged by the name in its URL too.
 */
export function checkHost(
  policy: HostPolicy,
  headers: HttpHeaders,
  rawUrl: string,
  httpVersion: string,
): void {
  const header = headerValue(headers, 'host');
  if (header === undefined || header.trim() === '') {
    // A browser always sends Host, so a request without one (HTTP/1.0) cannot come from a rebound page.
    if (httpVersion === '1.0') return;
    throw new ReflexError('REFLEX_ERR_API_MALFORMED_REQUEST', {
      reason: 'it has no `Host` header, which HTTP/1.1 requires',
      fix: 'send `Host: <name>:<port>` with the name you reach Reflex by.',
    });
  }
  const names = [header];
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(rawUrl);
  if (absolute !== null) names.push(absolute[1]!.replace(/^.*@/, ''));
  for (const authority of names) {
    const name = hostOf(authority);
    if (name === undefined || !policy.allows(name)) {
      throw new ReflexError('REFLEX_ERR_API_HOST_NOT_ALLOWED', {
        host: JSON.stringify(authority.slice(0, 200)),
        allowed: policy.description,
      });
    }
  }
}

/** Methods that change nothing, which a cross-site page may send without harm (CORS keeps the answer). */
const safeMethods = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Refuses a state-changing request (anything but GET, HEAD and OPTIONS) that a browser sent for a page
 * of another origin: an `Origin` header that is not this server's own (same scheme-less host and port as
 * `Host`), `Origin: null` (sandboxed frames, local files), or, without `Origin`, `Sec-Fetch-Site:
 * cross-site`/`same-site`. Programs (curl, SDKs, webhook senders) send no `Origin` and pass. Throws
 * REFLEX_ERR_API_ORIGIN_NOT_ALLOWED.
 */
export function checkOrigin(method: string, headers: HttpHeaders): void {
  if (safeMethods.has(method)) return;
  const origin = headerValue(headers, 'origin');
  if (origin === undefined) {
    const site = headerValue(headers, 'sec-fetch-site');
    if (site === 'cross-site' || site === 'same-site') {
      throw originRefused(method, `of another site (Sec-Fetch-Site: ${site})`);
    }
    return;
  }
  const from = parseUrl(origin);
  const host = headerValue(headers, 'host');
  // Read with the origin's scheme, so a default port (80, 443) written in `Host` compares equal.
  const own =
    from === undefined || host === undefined || (from.protocol !== 'http:' && from.protocol !== 'https:')
      ? undefined
      : parseUrl(`${from.protocol}//${host}`);
  if (from === undefined || own === undefined || from.host !== own.host) {
    throw originRefused(method, JSON.stringify(origin.slice(0, 200)));
  }
}

function originRefused(method: string, origin: string): ReflexError {
  return new ReflexError('REFLEX_ERR_API_ORIGIN_NOT_ALLOWED', { method, origin });
}

function parseUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/** The parts of the Node error a `clientError` event carries that decide the answer. */
interface ClientError extends Error {
  code?: string;
}

/**
 * The coded error for a request Node's HTTP parser refused before any route saw it (a `clientError`),
 * or undefined when there is nobody to answer (the client already hung up).
 */
export function clientErrorToReflexError(
  error: ClientError,
  timeouts: Readonly<ServerTimeouts>,
): ReflexError | undefined {
  const code = error.code ?? '';
  if (code === 'ECONNRESET' || code === 'EPIPE') return undefined;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new ReflexError('REFLEX_ERR_API_REQUEST_TIMEOUT', {
      headersTimeout: formatDuration(timeouts.headersMs),
      requestTimeout: formatDuration(timeouts.requestMs),
    });
  }
  if (code === 'HPE_HEADER_OVERFLOW') {
    return new ReflexError('REFLEX_ERR_API_HEADERS_TOO_LARGE', { limit: maxHeaderSize });
  }
  const reasons: Record<string, [string, string]> = {
    HPE_INVALID_METHOD: ['its method is not an HTTP method', 'use GET, POST, PUT or DELETE.'],
    HPE_INVALID_CONTENT_LENGTH: [
      'its `Content-Length` is not a number, or is given twice with different values',
      'send one `Content-Length` with the size of the body in bytes.',
    ],
    HPE_UNEXPECTED_CONTENT_LENGTH: [
      'it has both `Content-Length` and `Transfer-Encoding: chunked`',
      'send one of the two.',
    ],
    HPE_INVALID_TRANSFER_ENCODING: [
      'its `Transfer-Encoding` is not one Reflex reads',
      'send `Transfer-Encoding: chunked`, or a `Content-Length`.',
    ],
    HPE_INVALID_CHUNK_SIZE: [
      'a chunk of its chunked body has no valid size',
      'send a well-formed chunked body, or use `Content-Length`.',
    ],
    HPE_INVALID_EOF_STATE: [
      'the connection ended in the middle of the request',
      'send the whole request before closing the connection.',
    ],
  };
  const [reason, fix] = reasons[code] ?? [
    `it cannot be parsed as HTTP/1.1 (${code || error.message})`,
    'send a well-formed HTTP/1.1 request.',
  ];
  return new ReflexError('REFLEX_ERR_API_MALFORMED_REQUEST', { reason, fix });
}

/** Writes a coded error answer on a bare socket and closes the connection. */
export function answerOnSocket(socket: Socket, error: ReflexError): void {
  const body = JSON.stringify({ error: { code: error.code, message: error.message } });
  const head = [
    `HTTP/1.1 ${error.statusCode} ${STATUS_CODES[error.statusCode] ?? ''}`,
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
  ];
  // end() sends the answer before the FIN; the client may still be sending, so the socket is destroyed
  // once the answer is out (or soon, if the client does not read it).
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  const timer = setTimeout(() => socket.destroy(), 1000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('finish', () => socket.destroy());
}

/**
 * Query parameters each API route takes, by method and route. A parameter a route does not know is
 * refused rather than ignored: a misspelt `?limt=10` would otherwise silently give the default page.
 */
export const knownQueryParameters: Readonly<Record<string, readonly string[]>> = Object.freeze({
  'GET /api/v1/events': ['type', 'source', 'after', 'cursor', 'limit'],
  'GET /api/v1/runs': ['rule', 'status', 'cursor', 'limit'],
});

/**
 * Throws REFLEX_ERR_API_INVALID_QUERY for the first query parameter that the API route `route` (its
 * pattern, e.g. `/api/v1/runs/:id`) does not take. HEAD is judged as GET. Routes outside `/api/` are
 * not judged: webhook senders may add parameters of their own.
 */
export function checkQueryParameters(method: string, route: string, query: unknown): void {
  if (!route.startsWith('/api/') || query === null || typeof query !== 'object') return;
  for (const name in query) {
    if (!Object.hasOwn(query, name)) continue;
    // Looked up only when there is a parameter: most requests (every event sent) have none.
    const known = knownQueryParameters[`${method === 'HEAD' ? 'GET' : method} ${route}`] ?? [];
    if (known.includes(name)) continue;
    throw new ReflexError('REFLEX_ERR_API_INVALID_QUERY', {
      param: name.slice(0, 100),
      reason: `${method} ${route} does not take it`,
      fix:
        known.length === 0
          ? 'leave the query string out: this route takes no parameters.'
          : `use only ${known.map((k) => `\`${k}\``).join(', ')}.`,
    });
  }
}
