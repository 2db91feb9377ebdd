import type { HttpHeaders } from '../codec/cloudevents-http.js';
import type { AppendResult } from '../core/event.js';

/** A request to a source's route, as the HTTP server hands it over. */
export interface HttpSourceRequest {
  /** Lower-case names, as Node gives them. */
  headers: HttpHeaders;
  /** The body exactly as received (signatures are computed over these bytes). */
  body: Buffer;
}

/** What the server answers: the status, and the body sent as JSON. Errors are thrown as coded errors. */
export interface HttpSourceReply {
  status: number;
  body: unknown;
}

/** Serves one request to a source's route: resolves with the answer once its events are committed. */
export type HttpSourceHandler = (request: HttpSourceRequest) => Promise<HttpSourceReply>;

/**
 * The table of the routes HTTP sources serve on the shared HTTP server. The server owns the port, the
 * API and the front-door checks, and hands each request to a source's route to the handler mounted
 * for its path; sources mount and unmount their handlers as they start and close, which the server
 * cannot do with its own routes once it listens.
 */
export interface HttpRoutes {
  /**
   * Serves `POST path` with `handler` until the returned function is called. Mounting a path already
   * served takes it over (a changed source's replacement starts before the old one closes); the old
   * handler's unmount then leaves the new one in place.
   */
  mount(path: string, handler: HttpSourceHandler): () => void;
  /** The handler serving `path`, if any. */
  find(path: string): HttpSourceHandler | undefined;
}

/** The path of the CloudEvents endpoint (the `http` source). */
export const cloudEventsPath = '/api/v1/events';

/** The path of a webhook (a `webhook` source). */
export function webhookPath(name: string): string {
  return `/hooks/${name}`;
}

/**
 * Makes an empty table of routes.
 *
 * @example
 * const routes = createHttpRoutes();
 * const unmount = routes.mount('/hooks/github', handler);
 */
export function createHttpRoutes(): HttpRoutes {
  const handlers = new Map<string, HttpSourceHandler>();
  return {
    mount(path, handler) {
      handlers.set(path, handler);
      return () => {
        if (handlers.get(path) === handler) handlers.delete(path);
      };
    },
    find: (path) => handlers.get(path),
  };
}

/**
 * The answer to events taken in: 202 with each one's position, or 200 when every event was already in
 * the log (each then says `duplicate: true`). A batch is answered with `items`, one per event in order.
 */
export function appendReply(results: readonly AppendResult[], batch: boolean): HttpSourceReply {
  return {
    status: results.every((r) => r.duplicate) ? 200 : 202,
    body: batch ? { items: results.map(replyItem) } : replyItem(results[0]!),
  };
}

/** One event's part of the answer. At module level: a closure made per request costs every request. */
function replyItem(r: AppendResult) {
  return r.duplicate
    ? { seq: r.seq, id: r.id, source: r.source, duplicate: true }
    : { seq: r.seq, id: r.id, source: r.source };
}
