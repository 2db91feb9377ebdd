import { ReflexError } from '../core/errors.js';
import type { AppendResult, CloudEvent } from '../core/event.js';
import type { Store } from '../core/ports/store.js';
import type { EventListQuery, Explanation, Page, Queries, RunListQuery } from '../engine/queries.js';
import { presentEvent, presentRun } from '../server/server.js';

export type ApiEvent = ReturnType<typeof presentEvent>;
export type ApiRun = ReturnType<typeof presentRun<import('../core/ports/store.js').Run>>;
export type ApiRunDetail = ApiRun & {
  attempts: Array<
    Omit<import('../core/ports/store.js').Attempt, 'startedAt' | 'finishedAt'> & {
      startedAt: string;
      finishedAt: string;
    }
  >;
};

/**
 * What the CLI asks of Reflex. Two ways to answer: over HTTP from a running instance (the default), or
 * straight from a data directory (`--data`), which also works while Reflex is stopped.
 */
export interface ReflexClient {
  listEvents(query: EventListQuery): Promise<Page<ApiEvent>>;
  getEvent(ref: string): Promise<ApiEvent>;
  explain(ref: string): Promise<Explanation>;
  listRuns(query: RunListQuery): Promise<Page<ApiRun>>;
  getRun(id: string): Promise<ApiRunDetail>;
  emit(event: CloudEvent): Promise<AppendResult>;
  close(): Promise<void>;
}

/** A client for a running Reflex at `baseUrl`. */
export function createHttpClient(baseUrl: string, token?: string): ReflexClient {
  const base = baseUrl.replace(/\/+$/, '');
  const call = async <T>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> => {
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': contentType ?? 'application/json' }),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      const cause = (error as Error & { cause?: Error }).cause;
      throw new ReflexError('REFLEX_ERR_API_UNREACHABLE', {
        url: base,
        reason: cause?.message ?? (error as Error).message,
      });
    }
    const text = await response.text();
    let payload: unknown;
    try {
      payload = text === '' ? undefined : JSON.parse(text);
    } catch {
      payload = undefined;
    }
    if (!response.ok) throw remoteError(response.status, payload, text);
    return payload as T;
  };
  const query = (params: Record<string, string | number | undefined>) => {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(params))
      if (value !== undefined) search.set(key, String(value));
    const text = search.toString();
    return text ? `?${text}` : '';
  };
  return {
    listEvents: (q) =>
      call(
        'GET',
        `/api/v1/events${query({ type: q.type, source: q.source, after: q.after, cursor: q.cursor, limit: q.limit })}`,
      ),
    getEvent: (ref) => call('GET', `/api/v1/events/${encodeURIComponent(ref)}`),
    explain: (ref) => call('GET', `/api/v1/events/${encodeURIComponent(ref)}/explain`),
    listRuns: (q) =>
      call(
        'GET',
        `/api/v1/runs${query({ rule: q.rule, status: q.status, cursor: q.cursor, limit: q.limit })}`,
      ),
    getRun: (id) => call('GET', `/api/v1/runs/${encodeURIComponent(id)}`),
    async emit(event) {
      const answer = await call<{
        seq: number;
        partition?: number;
        id: string;
        source: string;
        duplicate?: boolean;
      }>('POST', '/api/v1/events', event, 'application/cloudevents+json');
      return {
        seq: answer.seq,
        partition: answer.partition ?? 0,
        id: answer.id,
        source: answer.source,
        duplicate: answer.duplicate === true,
      };
    },
    close: async () => undefined,
  };
}

/** A client that reads a data directory directly (read-only). */
export function createLocalClient(store: Store, queries: Queries): ReflexClient {
  return {
    async listEvents(q) {
      const page = await queries.listEvents(q);
      return { items: page.items.map(presentEvent), next: page.next };
    },
    getEvent: async (ref) => presentEvent(await queries.resolveEvent(ref)),
    explain: (ref) => queries.explain(ref),
    async listRuns(q) {
      const page = await queries.listRuns(q);
      return { items: page.items.map(presentRun), next: page.next };
    },
    async getRun(id) {
      const run = await queries.getRun(id);
      return {
        ...presentRun(run),
        attempts: run.attempts.map((a) => ({
          ...a,
          startedAt: new Date(a.startedAt).toISOString(),
          finishedAt: new Date(a.finishedAt).toISOString(),
        })),
      };
    },
    emit() {
      return Promise.reject(
        new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
          option: '--data',
          reason: 'events are sent to a running Reflex, not written into its data directory',
          fix: 'leave out --data and give --url (REFLEX_URL) of the running instance.',
        }),
      );
    },
    close: () => store.close(),
  };
}

/** An error answered by a remote Reflex, rebuilt with its code so the CLI can show it and pick an exit code. */
export class RemoteError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'RemoteError';
  }
}

function remoteError(status: number, payload: unknown, text: string): RemoteError {
  const error = (
    payload as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined
  )?.error;
  if (error?.code && error.message) return new RemoteError(error.code, error.message, status, error.details);
  return new RemoteError('REFLEX_ERR_INTERNAL_UNEXPECTED', `HTTP ${status}: ${text.slice(0, 200)}`, status);
}
