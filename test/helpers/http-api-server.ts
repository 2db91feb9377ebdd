import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createActionRegistry } from '../../src/actions/registry.js';
import type { CloudEvent, EventLimits } from '../../src/core/event.js';
import { type Logger, silentLogger } from '../../src/core/ports/logger.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { newSortableId } from '../../src/engine/ids.js';
import { yamlRulebookCompiler } from '../../src/rulebook/yaml-rulebook-compiler.js';
import { createServer, type ServerOptions } from '../../src/server/server.js';
import { createHttpRoutes } from '../../src/sources/http-routes.js';
import { cloudEventsEndpoint } from '../../src/sources/http-source.js';
import { createSourceRegistry, httpSourceKinds } from '../../src/sources/registry.js';
import { createSqliteStore, type SqliteStore, type SqliteStoreOptions } from '../../src/store/index.js';
import { eventually } from './engine-harness.js';

// The shapes below are the HTTP contract as a client sees it: written out here, not imported from src/,
// so that a change to the server's shapes shows up as a failing e2e test instead of a silent type change.

/** The answer to an accepted event: 202 when new, 200 with `duplicate: true` for a repeat. */
export interface AppendReply {
  seq: number;
  id: string;
  source: string;
  duplicate?: true;
}

/** The answer to a batch: one item per event, in the order sent. */
export interface BatchReply {
  items: AppendReply[];
}

/** An event as the API shows it. */
export interface ApiEvent {
  seq: number;
  /** ISO 8601. */
  receivedAt: string;
  event: CloudEvent;
}

/** One page of a listing; `next` goes back as `cursor=` for the following page. */
export interface ApiPage<T> {
  items: T[];
  next: string | null;
}

/** A run as the API shows it: timestamps as ISO strings. */
export interface ApiRun {
  id: string;
  rule: string;
  rulebookVersion: number;
  trigger: { seq: number; id: string; source: string; type: string };
  status: 'pending' | 'running' | 'succeeded' | 'failed';
  step: number;
  attempt: number;
  outputs: Record<string, unknown>;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  nextAttemptAt: string | null;
  error: unknown;
}

/** `GET /api/v1/runs/<id>`: the run with its attempts. */
export interface ApiRunDetail extends ApiRun {
  attempts: Array<{
    stepId: string;
    action: string;
    attempt: number;
    status: 'succeeded' | 'failed';
    startedAt: string;
    finishedAt: string;
    output?: unknown;
    error?: unknown;
  }>;
}

/** `GET /api/v1/events/<ref>/explain`. */
export interface ApiExplanation {
  event: { seq: number; id: string; source: string; type: string; receivedAt: string };
  dispatched: boolean;
  rulebookVersion: number | null;
  rules: Array<{
    rule: string;
    verdict: string;
    reason: string;
    pattern:
      | { matched: true }
      | { matched: false; path: string; expected: string; actual?: unknown; present: boolean }
      | null;
    run?: { id: string; status: string };
  }>;
}

/** Every error answer. */
export interface ApiError {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

/** A response read in full: status, headers, and the body parsed as JSON (undefined when empty). */
export interface ApiResponse<T> {
  status: number;
  headers: Headers;
  body: T;
}

export interface HttpApiOptions {
  /** The rulebook YAML to load. @default no rules */
  rulebook?: string;
  /** Passed to createServer. */
  apiToken?: string;
  /** Passed to createServer. @default the server's default (1 MiB) */
  bodyLimit?: number;
  /** Environment webhooks read their secrets from. @default {} (never process.env) */
  env?: Record<string, string | undefined>;
  /** How commits wait for the disk (see SqliteStoreOptions). @default the store's default ('full') */
  durability?: SqliteStoreOptions['durability'];
  /** Passed to createEngine. */
  limits?: Partial<EventLimits>;
  /** Given to the engine and the server. @default silentLogger */
  logger?: Logger;
  /** More options for createServer (timeouts, allowed hosts), and the clock webhooks judge replay windows by. */
  server?: Pick<ServerOptions, 'timeouts' | 'allowedHosts' | 'listenHost'> & { now?: () => number };
}

/** A real Reflex (SQLite store in a temp dir, engine, HTTP server) listening on 127.0.0.1. */
export interface HttpApi {
  /** `http://127.0.0.1:<port>` */
  url: string;
  engine: Engine;
  /** The engine's store, to check what a request stored (or did not). */
  store: SqliteStore;
  app: FastifyInstance;
  /**
   * Sends a request over the socket and reads the whole answer. `json` is sent as `application/json`
   * unless `headers` says otherwise; `body` is sent as is.
   */
  call<T = unknown>(path: string, init?: RequestInit & { json?: unknown }): Promise<ApiResponse<T>>;
  /** Closes the server, the engine and the store, and removes the temp dir. */
  close(): Promise<void>;
}

/**
 * Starts the real thing in-process, wired as `reflex start` wires it: `createSqliteStore` in a fresh
 * temp dir, `createEngine` with the built-in actions, the system clock and the HTTP sources (the
 * CloudEvents endpoint and one source per webhook), the rulebook loaded, the engine started, and
 * `createServer` serving the sources' routes on an ephemeral port of 127.0.0.1.
 *
 * @example
 * const api = await startHttpApi({ rulebook: 'rules: []' });
 * const res = await api.call<ApiPage<ApiEvent>>('/api/v1/events');
 * await api.close();
 */
export async function startHttpApi(options: HttpApiOptions = {}): Promise<HttpApi> {
  const dir = await mkdtemp(join(tmpdir(), 'reflex-http-api-'));
  let engine: Engine | undefined;
  let app: FastifyInstance | undefined;
  try {
    const store = await createSqliteStore({
      dir,
      ...(options.durability === undefined ? {} : { durability: options.durability }),
    });
    const routes = createHttpRoutes();
    const { now, ...serverOptions } = options.server ?? {};
    engine = await createEngine({
      store,
      actions: createActionRegistry(),
      compilers: [yamlRulebookCompiler],
      sourceKinds: createSourceRegistry(
        httpSourceKinds({
          routes,
          newEventId: () => newSortableId(Date.now()),
          env: options.env ?? {},
          ...(now === undefined ? {} : { now }),
        }),
      ),
      sources: [cloudEventsEndpoint],
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      ...(options.limits === undefined ? {} : { limits: options.limits }),
    });
    await engine.loadRulebook([{ path: 'rules.yaml', content: options.rulebook ?? 'rules: []\n' }]);
    await engine.start();
    app = await createServer({
      ...serverOptions,
      engine,
      routes,
      logger: options.logger ?? silentLogger,
      ...(options.apiToken === undefined ? {} : { apiToken: options.apiToken }),
      ...(options.bodyLimit === undefined ? {} : { bodyLimit: options.bodyLimit }),
    });
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const liveApp = app;
    const liveEngine = engine;
    return {
      url: address,
      engine: liveEngine,
      store,
      app: liveApp,
      async call<T>(path: string, init: RequestInit & { json?: unknown } = {}) {
        const { json, ...rest } = init;
        const request: RequestInit = { ...rest };
        if (json !== undefined) {
          const headers = new Headers(rest.headers);
          if (!headers.has('content-type')) headers.set('content-type', 'application/json');
          request.headers = headers;
          request.body = JSON.stringify(json);
          request.method ??= 'POST';
        }
        const response = await fetch(`${address}${path}`, request);
        const text = await response.text();
        return {
          status: response.status,
          headers: response.headers,
          body: (text === '' ? undefined : JSON.parse(text)) as T,
        };
      },
      async close() {
        await liveApp.close();
        await liveEngine.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await app?.close();
    await engine?.close();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Headers of a cloudevents SDK message, as `fetch` takes them (the SDK types allow arrays and undefined).
 */
export function fetchHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/**
 * Polls `GET /api/v1/runs?rule=<rule>&status=<status>` until it lists at least `count` runs, and returns
 * them (newest first). Fails with the last page seen after `timeoutMs`.
 */
export async function waitForRuns(
  api: HttpApi,
  rule: string,
  options: { count?: number; status?: ApiRun['status']; timeoutMs?: number } = {},
): Promise<ApiRun[]> {
  const count = options.count ?? 1;
  const status = options.status ?? 'succeeded';
  return eventually(async () => {
    const page = await api.call<ApiPage<ApiRun>>(
      `/api/v1/runs?rule=${encodeURIComponent(rule)}&status=${status}&limit=1000`,
    );
    if (page.status !== 200) throw new Error(`GET /api/v1/runs answered ${page.status}`);
    return page.body.items.length >= count ? page.body.items : undefined;
  }, options.timeoutMs ?? 10_000);
}

/**
 * Every event in the log, oldest first, read through the API by following `next` (`token` is the API
 * bearer token, when the server has one). Used to show that a refused request stored nothing.
 */
export async function allEvents(api: HttpApi, token?: string): Promise<ApiEvent[]> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const out: ApiEvent[] = [];
  let path: string | null = '/api/v1/events?after=0&limit=1000';
  while (path !== null) {
    const page: ApiResponse<ApiPage<ApiEvent>> = await api.call<ApiPage<ApiEvent>>(path, { headers });
    if (page.status !== 200) throw new Error(`GET ${path} answered ${page.status}`);
    out.push(...page.body.items);
    path =
      page.body.next === null
        ? null
        : `/api/v1/events?limit=1000&cursor=${encodeURIComponent(page.body.next)}`;
  }
  return out;
}
