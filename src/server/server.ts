import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { chainExtension } from '../core/decide.js';
import { type ErrorCode, ReflexError, toErrorInfo } from '../core/errors.js';
import { type AppendResult, type CloudEvent, checkDepth } from '../core/event.js';
import { factNameRule, isFactName } from '../core/fact-name.js';
import { parsePattern } from '../core/pattern/pattern.js';
import { matchPattern } from '../core/pattern/reference-matcher.js';
import type { Logger } from '../core/ports/logger.js';
import { RunStatus } from '../core/ports/store.js';
import type { Engine } from '../engine/engine.js';
import { decodeCloudEventsRequest, parseJsonBody } from './cloudevents-http.js';
import { verifyWebhookRequest, webhookRequestToEvent } from './webhook-request.js';

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
  /** When set, `/api/v1/*` requires `Authorization: Bearer <apiToken>`. Webhooks use their own auth. */
  apiToken?: string;
  /** Environment read for webhook secrets given as `{ env: NAME }`. @default process.env */
  env?: Record<string, string | undefined>;
  /** Makes event ids for webhook requests that carry none. */
  newEventId: () => string;
}

/**
 * The HTTP face of Reflex: CloudEvents in, webhooks in, and the read API over events, runs and
 * explanations. Every error is answered as `{ error: { code, message, details? } }` with the code's status.
 */
export async function createServer(options: ServerOptions): Promise<FastifyInstance> {
  const { engine } = options;
  const bodyLimit = options.bodyLimit ?? defaultBodyLimit;
  const env = options.env ?? process.env;
  const app = Fastify({ bodyLimit, logger: false, return503OnClosing: true });

  // Every body is read raw: CloudEvents binary mode takes any content type, and webhook signatures are
  // computed over the exact bytes received.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_request, body, done) => done(null, body));

  app.setErrorHandler((error: Error & { code?: string; statusCode?: number }, request, reply) => {
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
    const error = new ReflexError('REFLEX_ERR_API_NOT_FOUND', {
      method: request.method,
      url: request.url.split('?')[0] ?? '',
    });
    void reply.status(404).send({ error: errorBody(error) });
  });

  if (options.apiToken) {
    const expected = Buffer.from(`Bearer ${options.apiToken}`);
    app.addHook('onRequest', async (request) => {
      // Judge the path the router matched, not the raw URL: `/%61pi/v1/events` routes to /api/v1/events.
      const route = request.routeOptions.url ?? request.url;
      // Health says nothing about the data, and probes (load balancers, Kubernetes) carry no token.
      if (!apiPath(route) || route === '/api/v1/health') return;
      const given = Buffer.from(request.headers.authorization ?? '');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        throw new ReflexError('REFLEX_ERR_API_UNAUTHORIZED');
      }
    });
  }

  const answerAppend = (reply: FastifyReply, results: AppendResult[], batch: boolean) => {
    const allDuplicates = results.every((r) => r.duplicate);
    void reply.status(allDuplicates ? 200 : 202);
    const item = (r: AppendResult) =>
      r.duplicate
        ? { seq: r.seq, id: r.id, source: r.source, duplicate: true }
        : { seq: r.seq, id: r.id, source: r.source };
    return batch ? { items: results.map(item) } : item(results[0]!);
  };

  app.post('/api/v1/events', async (request, reply) => {
    const { events, batch } = decodeCloudEventsRequest(request.headers, bodyOf(request), engine.limits);
    rejectReservedExtensions(events);
    const results = await engine.ingest.append(events);
    return answerAppend(reply, results, batch);
  });

  app.post<{ Params: { name: string } }>('/hooks/:name', async (request, reply) => {
    const webhook = engine.rulebook?.rulebook.webhooks.get(request.params.name);
    if (!webhook) throw new ReflexError('REFLEX_ERR_WEBHOOK_NOT_FOUND', { name: request.params.name });
    const body = bodyOf(request);
    verifyWebhookRequest(webhook, request.headers, body, env);
    const event = webhookRequestToEvent(webhook, request.headers, body, {
      now: Date.now(),
      newId: options.newEventId,
      limits: engine.limits,
    });
    const results = await engine.ingest.append([event]);
    return answerAppend(reply, results, false);
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
    return { match: matchPattern(parsePattern(pattern), event) };
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

/**
 * `reflexchain` counts how many rule outcomes led to an event; only Reflex may set it. Taken from outside
 * it could make rules skip an event, so it is refused rather than silently dropped.
 */
function rejectReservedExtensions(events: readonly CloudEvent[]): void {
  events.forEach((event, i) => {
    if (event[chainExtension] !== undefined) {
      throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
        attribute: chainExtension,
        where: events.length > 1 ? ` (batch item ${i})` : '',
        reason: 'it is reserved for events Reflex derives from rule outcomes',
        fix: `remove the \`${chainExtension}\` attribute.`,
      });
    }
  });
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
    default:
      return new ReflexError('REFLEX_ERR_INTERNAL_UNEXPECTED', { reason: error.message }, { cause: error });
  }
}
