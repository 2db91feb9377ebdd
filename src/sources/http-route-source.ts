import { ReflexError } from '../core/errors.js';
import type { Source, SourceContext } from '../core/ports/source.js';
import type { HttpRoutes, HttpSourceReply, HttpSourceRequest } from './http-routes.js';
import { createSourceStatus } from './source-status.js';

/** What one source served on an HTTP route needs. */
export interface HttpRouteSourceOptions {
  kind: string;
  name: string;
  routes: HttpRoutes;
  /** The path it serves (`POST`). */
  path: string;
  /**
   * Turns one request into events, emits them, and says what to answer: called only while the source
   * takes requests. Throws a coded error to refuse the request (the server answers it in the one error
   * shape).
   */
  handle(request: HttpSourceRequest, context: SourceContext): Promise<HttpSourceReply>;
}

/**
 * A source whose deliveries are HTTP requests to one route of the shared server. Started, it mounts its
 * route; a request is answered only after its events are committed, which is the HTTP form of "ack
 * after commit", and a full ingest is answered 503 with Retry-After (the sender retries) rather than
 * waited for. Draining, it answers new requests 503 REFLEX_ERR_INGEST_STOPPED and waits for those in
 * hand; closed, it unmounts the route.
 */
export function createHttpRouteSource(options: HttpRouteSourceOptions): Source {
  const { routes, path } = options;
  const status = createSourceStatus();
  let accepting = false;
  let inHand = 0;
  let idle: Array<() => void> = [];
  let unmount: (() => void) | undefined;
  let closed = false;

  const source: Source = {
    kind: options.kind,
    name: options.name,
    get status() {
      return status.current;
    },
    onStatus: status.onStatus,
    async start(context) {
      if (closed) throw new ReflexError('REFLEX_ERR_INGEST_STOPPED');
      accepting = true;
      unmount = routes.mount(path, async (request) => {
        if (!accepting) throw new ReflexError('REFLEX_ERR_INGEST_STOPPED');
        inHand++;
        try {
          return await options.handle(request, context);
        } finally {
          inHand--;
          if (inHand === 0) for (const wake of idle.splice(0)) wake();
        }
      });
      status.set({ type: 'up' });
    },
    async drain() {
      accepting = false;
      if (inHand > 0) await new Promise<void>((resolve) => idle.push(resolve));
    },
    async close() {
      closed = true;
      await source.drain();
      unmount?.();
      idle = [];
      status.set({ type: 'stopped' });
    },
    [Symbol.asyncDispose]() {
      return source.close();
    },
  };
  return source;
}
