import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { parseJsonBody } from '../codec/json-body.js';
import { type ErrorCode, ReflexError, toErrorInfo } from '../core/errors.js';
import { checkDepth } from '../core/event.js';
import { factNameRule, isFactName } from '../core/fact-name.js';
import { testPattern } from '../core/pattern/pattern-test.js';
import type { Logger } from '../core/ports/logger.js';
import { RunStatus } from '../core/ports/store.js';
import type { Engine } from '../engine/engine.js';
import type { SourceInfo } from '../engine/source-manager.js';
import {
  cloudEventsPath,
  type HttpRoutes,
  type HttpSourceHandler,
  webhookPath,
} from '../sources/http-routes.js';
import {
  answerOnSocket,
  checkHost,
  checkOrigin,
  checkQueryParameters,
  clientErrorToReflexError,
  compileHostPolicy,
  compileServerTimeouts,
  type ServerTimeouts,
} from './front-door.js';

/** The largest request body accepted, unless told otherwise (`reflex start --body-limit`). */
export const defaultBodyLimit = 1_048_576;

export interface ServerOptions {
  engine: Engine;
  logger: Logger;
  /**
   * Largest request body accepted, in bytes.
   * @default {@link defaultBodyLimit} (1 MiB)
   */
  bodyLimit?: number;
  /**
   * The routes the HTTP sources mount (the CloudEvents endpoint, one per webhook): the server hands
   * `POST /api/v1/events` and `POST /hooks/<name>` to the handler mounted for the path.
   */
  routes: HttpRoutes;
  /** When set, `/api/v1/*` requires `Authorization: Bearer <apiToken>`. Webhooks use their own auth. */
  apiToken?: string;
  /**
   * The address the server listens on. The names it answers to in `Host` follow from it (see
   * `compileHostPolicy`).
   * @default '127.0.0.1'
   */
  listenHost?: string;
  /**
   * More names the server answers to in `Host` (`--allowed-hosts`); `*.example.com` for the names below
   * a domain, `*` for any.
   * @default []
   */
  allowedHosts?: readonly string[];
  /** How long clients get to send a request; see `ServerTimeouts`. @default defaultServerTimeouts */
  timeouts?: Partial<ServerTimeouts>;
}

/**
 * The longest path segment (an event id in `/api/v1/events/<id>`) the router takes.
 * @default 1000 characters
 */
const maxParamLength = 1000;

/** The Content-Type header of requests whose media type Fastify cannot read, while their body is read. */
const unreadableContentTypes = new WeakMap<FastifyRequest, string>();

/**
 * The HTTP face of Reflex: the routes of the HTTP sources (CloudEvents in, webhooks in), and the read
 * API over events, runs and explanations. Every error is answered as `{ error: { code, message,
 * details? } }` with the code's status.
 */
export async function createServer(options: ServerOptions): Promise<FastifyInstance> {
  const { engine } = options;
  const bodyLimit = options.bodyLimit ?? defaultBodyLimit;
  const timeouts = compileServerTimeouts(options.timeouts);
  const hosts = compileHostPolicy(options.listenHost ?? '127.0.0.1', options.allowedHosts);
  const app = Fastify({
    bodyLimit,
    logger: false,
    return503OnClosing: true,
    routerOptions: { maxParamLength },
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    connectionTimeout: timeouts.idleMs,
    http: {
      // Node checks the request and header deadlines on this beat; its default (30s) would let a
      // deadline of 10s run to 40s.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(timeouts.headersMs / 4))),
      // A request without Host is refused by the Host check below, in the coded shape.
      requireHostHeader: false,
    },
    // Errors of the router (a malformed percent-escape, an over-long segment) in the coded shape too.
    frameworkErrors: (error, _request, reply) => {
      const coded = toReflexError(error, bodyLimit);
      void (reply as FastifyReply).status(coded.statusCode).send({ error: errorBody(coded) });
    },
    // Requests Node's parser refuses (bad framing, headers too large, too slow) never reach a route.
    clientErrorHandler: (error, socket) => {
      const coded = clientErrorToReflexError(error, timeouts);
      const response = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
      if (coded === undefined || socket.destroyed || response?.headersSent === true) {
        socket.destroy();
        return;
      }
      options.logger.debug({ code: coded.code, reason: error.message }, 'refused a malformed request');
      answerOnSocket(socket, coded);
    },
  });
  app.server.headersTimeout = timeouts.headersMs;
  // CONNECT is the proxy method; without a listener Node drops the connection without a word.
  app.server.on('connect', (_request, socket: import('node:net').Socket) => {
    answerOnSocket(
      socket,
      new ReflexError('REFLEX_ERR_API_METHOD_NOT_ALLOWED', {
        url: 'Reflex',
        method: 'CONNECT',
        allowed: 'GET, HEAD, POST, PUT or DELETE',
      }),
    );
  });
  // Node answers an `Expect` other than 100-continue with a bare 417 unless someone listens.
  app.server.on('checkExpectation', (request, response) => {
    const error = new ReflexError('REFLEX_ERR_API_EXPECTATION_FAILED', {
      expect: String(request.headers.expect).slice(0, 100),
    });
    const body = JSON.stringify({ error: errorBody(error) });
    response.writeHead(error.statusCode, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    response.end(body);
  });

  // The methods each route pattern takes, to answer 405 with `Allow` instead of 404.
  const routeMethods = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const methods = routeMethods.get(route.url) ?? new Set<string>();
    for (const method of [route.method].flat()) methods.add(method);
    routeMethods.set(route.url, methods);
  });

  // Every body is read raw: CloudEvents binary mode takes any content type, and webhook signatures are
  // computed over the exact bytes received.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_request, body, done) => done(null, body));
  // Fastify refuses a Content-Type that is not `type/subtype` before any parser runs, even the one above
  // that takes every body. Webhooks do not look at the content type, and the CloudEvents source refuses
  // one it cannot read in its own words (415 naming it), so the header is kept from Fastify while the
  // body is read and put back for the handler (found by test/fuzz/webhooks.fuzz.test.ts).
  app.addHook('preParsing', async (request) => {
    const contentType = request.headers['content-type'];
    if (contentType !== undefined && request.mediaType === undefined) {
      unreadableContentTypes.set(request, contentType);
      delete request.headers['content-type'];
    }
  });
  app.addHook('preValidation', async (request) => {
    const contentType = unreadableContentTypes.get(request);
    if (contentType !== undefined) request.headers['content-type'] = contentType;
  });

  app.setErrorHandler((error: Error & { code?: string; statusCode?: number }, request, reply) => {
    if (clientGone(request, error)) {
      // The client hung up (or was cut off by a timeout): nobody reads an answer, and it is no failure
      // of Reflex, so it is no error line either.
      options.logger.debug({ method: request.method, url: request.url }, 'client went away');
      return;
    }
    const coded = toReflexError(error, bodyLimit);
    const retryAfter = retryAfterSeconds[coded.code];
    // Refusals that say "later" are not failures of the request; a full disk is logged once per episode
    // by the engine, not once per request.
    if (coded.statusCode >= 500 && retryAfter === undefined) {
      options.logger.error(
        { error: toErrorInfo(error), method: request.method, url: request.url },
        'request failed',
      );
    }
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
    void reply.status(coded.statusCode).send({ error: errorBody(coded) });
  });
  app.setNotFoundHandler((request, reply) => {
    const url = request.url.split('?')[0] ?? '';
    const allowed = methodsFor(routeMethods, url);
    if (allowed.length > 0) {
      const error = new ReflexError('REFLEX_ERR_API_METHOD_NOT_ALLOWED', {
        url,
        method: request.method,
        allowed: allowed.join(', '),
      });
      void reply
        .status(405)
        .header('allow', allowed.join(', '))
        .send({ error: errorBody(error) });
      return;
    }
    const error = new ReflexError('REFLEX_ERR_API_NOT_FOUND', { method: request.method, url });
    void reply.status(404).send({ error: errorBody(error) });
  });

  // The front door, before anything else looks at a request: the name it is addressed to (DNS
  // rebinding), then where a browser sent it from (cross-site form posts and fetches), then the API
  // token, then the query parameters (after the token, so a caller without it learns nothing about a
  // route's parameters). One hook in the callback style: it runs for every request, and each async
  // hook would cost a promise and a turn of the hook runner per request.
  const expectedAuthorization = options.apiToken ? Buffer.from(`Bearer ${options.apiToken}`) : undefined;
  app.addHook('onRequest', (request, _reply, done) => {
    try {
      checkHost(hosts, request.headers, request.raw.url ?? '', request.raw.httpVersion);
      checkOrigin(request.method, request.headers);
      // Judge the path the router matched, not the raw URL: `/%61pi/v1/events` routes to /api/v1/events.
      const route = request.routeOptions.url;
      if (expectedAuthorization !== undefined)
        checkToken(route ?? request.url, request, expectedAuthorization);
      checkQueryParameters(request.method, route ?? '', request.query);
    } catch (error) {
      done(error as Error);
      return;
    }
    done();
  });

  // Requests to sources go to the handler their source mounted; the source answers once its events
  // are committed.
  const serve = async (handler: HttpSourceHandler, request: FastifyRequest, reply: FastifyReply) => {
    const answer = await handler({ headers: request.headers, body: bodyOf(request) });
    void reply.status(answer.status);
    return answer.body;
  };

  app.post('/api/v1/events', async (request, reply) => {
    // Without its source (Reflex is stopping, or was started without it) nobody takes events here.
    const handler = options.routes.find(cloudEventsPath);
    if (handler === undefined) throw new ReflexError('REFLEX_ERR_INGEST_STOPPED');
    return serve(handler, request, reply);
  });

  app.post<{ Params: { name: string } }>('/hooks/:name', async (request, reply) => {
    const handler = options.routes.find(webhookPath(request.params.name));
    if (handler === undefined)
      throw new ReflexError('REFLEX_ERR_WEBHOOK_NOT_FOUND', { name: request.params.name });
    return serve(handler, request, reply);
  });

  app.get<{ Querystring: Record<string, unknown> }>('/api/v1/events', async (request) => {
    const q = singleValues(request.query);
    const page = await engine.queries.listEvents({
      ...(q.type ? { type: q.type } : {}),
      ...(q.source ? { source: q.source } : {}),
      ...(q.after !== undefined ? { after: wholeNumber('after', q.after) } : {}),
      ...(q.cursor ? { cursor: q.cursor } : {}),
      ...(q.limit !== undefined ? { limit: wholeNumber('limit', q.limit) } : {}),
    });
    return { items: page.items.map(presentEvent), next: page.next };
  });

  app.get<{ Params: { ref: string } }>('/api/v1/events/:ref', async (request) =>
    presentEvent(await engine.queries.resolveEvent(request.params.ref)),
  );

  app.get<{ Params: { ref: string } }>('/api/v1/events/:ref/explain', async (request) =>
    engine.queries.explain(request.params.ref),
  );

  app.get<{ Querystring: Record<string, unknown> }>('/api/v1/runs', async (request) => {
    const q = singleValues(request.query);
    if (q.status !== undefined && !Object.values(RunStatus).includes(q.status as RunStatus)) {
      throw new ReflexError('REFLEX_ERR_API_INVALID_QUERY', {
        param: 'status',
        reason: `${JSON.stringify(q.status)} is not a run status`,
        fix: `use one of ${Object.values(RunStatus).join(', ')}.`,
      });
    }
    const page = await engine.queries.listRuns({
      ...(q.rule ? { rule: q.rule } : {}),
      ...(q.status ? { status: q.status as RunStatus } : {}),
      ...(q.cursor ? { cursor: q.cursor } : {}),
      ...(q.limit !== undefined ? { limit: wholeNumber('limit', q.limit) } : {}),
    });
    return { items: page.items.map(presentRun), next: page.next };
  });

  app.get<{ Params: { id: string } }>('/api/v1/runs/:id', async (request) => {
    const run = await engine.queries.getRun(request.params.id);
    return {
      ...presentRun(run),
      attempts: run.attempts.map((a) => ({
        ...a,
        startedAt: iso(a.startedAt),
        finishedAt: iso(a.finishedAt),
      })),
    };
  });

  app.post('/api/v1/patterns/test', async (request) => {
    const body = parseJsonBody(bodyOf(request));
    if (body === null || typeof body !== 'object' || !('pattern' in body) || !('event' in body)) {
      throw new ReflexError('REFLEX_ERR_API_INVALID_BODY', {
        reason: 'it needs `pattern` and `event`',
        fix: 'send { "pattern": { ... }, "event": { ... } }.',
      });
    }
    const { pattern, event } = body as { pattern: unknown; event: unknown };
    return { match: testPattern(pattern, event, engine.limits) };
  });

  app.get('/api/v1/facts', async () => ({ facts: engine.facts.snapshot() }));

  app.get<{ Params: { name: string } }>('/api/v1/facts/:name', async (request) => {
    const name = factName(request.params.name);
    const facts = engine.facts.snapshot();
    if (!Object.hasOwn(facts, name)) throw new ReflexError('REFLEX_ERR_FACT_NOT_FOUND', { name });
    return { name, value: facts[name] };
  });

  app.put<{ Params: { name: string } }>('/api/v1/facts/:name', async (request) => {
    const name = factName(request.params.name);
    const body = bodyOf(request);
    if (body.length === 0) {
      throw new ReflexError('REFLEX_ERR_API_INVALID_BODY', {
        reason: 'it is empty',
        fix: 'send the fact\'s value as JSON, e.g. ["web-2"]; remove a fact with DELETE.',
      });
    }
    const value = parseJsonBody(body);
    checkDepth(value, engine.limits.maxDepth);
    await engine.facts.set(name, value);
    return { name, value };
  });

  app.delete<{ Params: { name: string } }>('/api/v1/facts/:name', async (request) => {
    const name = factName(request.params.name);
    if (!Object.hasOwn(engine.facts.snapshot(), name))
      throw new ReflexError('REFLEX_ERR_FACT_NOT_FOUND', { name });
    await engine.facts.set(name, undefined);
    return { name, deleted: true };
  });

  app.get('/api/v1/health', async () => ({
    status: 'ok',
    rulebookVersion: engine.rulebook?.id ?? null,
    rules: engine.rulebook?.rulebook.rules.length ?? 0,
    runsInFlight: engine.runsInFlight,
    pendingEvents: engine.ingest.pending,
    sources: engine.sources.list().map(presentSource),
  }));

  return app;
}

/**
 * The 503s that ask the sender to come back, with the Retry-After they carry: a queue that drains within
 * a second, and a full disk, which takes someone to free space (retrying every second would only add load).
 */
const retryAfterSeconds: Partial<Record<ErrorCode, number>> = {
  REFLEX_ERR_INGEST_OVERLOADED: 1,
  REFLEX_ERR_INGEST_STOPPED: 1,
  REFLEX_ERR_STORE_DISK_FULL: 10,
};

/** Throws REFLEX_ERR_API_UNAUTHORIZED when a request to the API does not carry the token. */
function checkToken(route: string, request: FastifyRequest, expected: Buffer): void {
  // Health says nothing about the data, and probes (load balancers, Kubernetes) carry no token.
  if (!apiPath(route) || route === '/api/v1/health') return;
  const given = Buffer.from(request.headers.authorization ?? '');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new ReflexError('REFLEX_ERR_API_UNAUTHORIZED');
  }
}

function bodyOf(request: FastifyRequest): Buffer {
  return Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
}

function factName(name: string): string {
  if (!isFactName(name)) {
    throw new ReflexError('REFLEX_ERR_API_INVALID_QUERY', {
      param: 'name',
      reason: `${JSON.stringify(name)} is not a usable fact name`,
      fix: factNameRule,
    });
  }
  return name;
}

/** Whether a path (raw or decoded) is under /api/, however its letters are percent-encoded. */
function apiPath(url: string): boolean {
  const path = url.split('?')[0] ?? '';
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // A malformed escape cannot name a route; judge the raw text.
  }
  return path.startsWith('/api/') || decoded.startsWith('/api/');
}

/** Query parameters as single strings; a parameter given twice is refused rather than guessed at. */
function singleValues(query: Record<string, unknown>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(query)) {
    if (typeof value !== 'string') {
      throw new ReflexError('REFLEX_ERR_API_INVALID_QUERY', {
        param: name,
        reason: 'it is given more than once',
        fix: `give \`${name}\` once.`,
      });
    }
    out[name] = value;
  }
  return out;
}

function wholeNumber(param: string, text: string): number {
  if (!/^\d+$/.test(text)) {
    throw new ReflexError('REFLEX_ERR_API_INVALID_QUERY', {
      param,
      reason: `${JSON.stringify(text)} is not a whole number`,
      fix: `give \`${param}\` as a whole number.`,
    });
  }
  return Number(text);
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** The API's shape of a logged event. */
export function presentEvent(logged: { seq: number; receivedAt: number; event: unknown }) {
  return { seq: logged.seq, receivedAt: new Date(logged.receivedAt).toISOString(), event: logged.event };
}

/** The API's shape of a source in health: its status, since when, and what it holds or refused. */
export function presentSource(info: SourceInfo) {
  return {
    kind: info.kind,
    name: info.name,
    status: info.status.type,
    since: iso(info.since),
    ...('reason' in info.status ? { reason: info.status.reason } : {}),
    inFlight: info.inFlight,
    rejected: info.rejected,
  };
}

/** The API's shape of a run: timestamps as ISO strings. */
export function presentRun<
  T extends {
    createdAt: number;
    startedAt: number | null;
    finishedAt: number | null;
    nextAttemptAt: number | null;
  },
>(run: T) {
  return {
    ...run,
    createdAt: iso(run.createdAt),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    nextAttemptAt: iso(run.nextAttemptAt),
  };
}

function errorBody(error: ReflexError) {
  return { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) };
}

/** The methods routes take at `url` (a concrete path), in a fixed order; none when no route has the path. */
function methodsFor(routes: ReadonlyMap<string, ReadonlySet<string>>, url: string): string[] {
  const segments = url.split('/');
  const found = new Set<string>();
  for (const [pattern, methods] of routes) {
    const parts = pattern.split('/');
    if (parts.length !== segments.length) continue;
    if (parts.every((part, i) => (part.startsWith(':') ? segments[i] !== '' : part === segments[i]))) {
      for (const method of methods) found.add(method);
    }
  }
  const order = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'];
  return [...found].sort((a, b) => order.indexOf(a) - order.indexOf(b));
}

/**
 * Whether the error only says that the client is gone: it hung up while sending the body, or a timeout
 * cut it off. Such a request has nobody to answer.
 */
function clientGone(request: FastifyRequest, error: Error & { code?: string }): boolean {
  if (error instanceof ReflexError) return false;
  // Not `request.raw.destroyed`: Node destroys a request once its body has been read, client or not.
  const socket = request.raw.socket as { destroyed?: boolean } | null | undefined;
  return (
    error.code === 'ECONNRESET' ||
    error.code === 'ECONNABORTED' ||
    error.code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    socket === null ||
    socket?.destroyed === true
  );
}

function toReflexError(
  error: Error & { code?: string; statusCode?: number },
  bodyLimit: number,
): ReflexError {
  if (error instanceof ReflexError) return error;
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ReflexError('REFLEX_ERR_EVENT_TOO_LARGE', { limit: bodyLimit });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ReflexError('REFLEX_ERR_EVENT_INVALID_JSON', { reason: error.message });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ReflexError('REFLEX_ERR_API_MALFORMED_REQUEST', {
        reason: 'its body is not as long as its `Content-Length` says',
        fix: 'send a `Content-Length` equal to the size of the body in bytes.',
      });
    case 'FST_ERR_BAD_URL':
      return new ReflexError('REFLEX_ERR_API_MALFORMED_REQUEST', {
        reason: 'its URL holds a `%` that does not start a valid UTF-8 percent-escape',
        fix: 'percent-encode each byte of the URL (`%` itself as %25).',
      });
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new ReflexError('REFLEX_ERR_API_URL_TOO_LONG', {
        url: 'the URL',
        limit: maxParamLength,
      });
    default:
      // Any other refusal of Fastify's own (a 4xx) is the client's to fix: say so in the one shape.
      if (error.code?.startsWith('FST_') && (error.statusCode ?? 500) < 500) {
        return new ReflexError('REFLEX_ERR_API_MALFORMED_REQUEST', {
          reason: `${error.message.replace(/\.$/, '')} (${error.code})`,
          fix: 'send a well-formed request (see docs/api.md).',
        });
      }
      return new ReflexError('REFLEX_ERR_INTERNAL_UNEXPECTED', { reason: error.message }, { cause: error });
  }
}
