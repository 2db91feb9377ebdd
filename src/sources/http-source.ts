import { decodeCloudEventsRequest } from '../codec/cloudevents-http.js';
import { chainExtension } from '../core/decide.js';
import { ReflexError } from '../core/errors.js';
import { type CloudEvent, checkNotReserved } from '../core/event.js';
import type { SourceDeclaration, SourceKind } from '../core/ports/source.js';
import { createHttpRouteSource } from './http-route-source.js';
import { appendReply, cloudEventsPath, type HttpRoutes } from './http-routes.js';

/** The kind of the CloudEvents HTTP endpoint. */
export const httpSourceKind = 'http';

/** The CloudEvents endpoint every node serves (`POST /api/v1/events`), as a source declaration. */
export const cloudEventsEndpoint: SourceDeclaration = Object.freeze({ kind: httpSourceKind, name: 'events' });

/**
 * The `http` source kind: CloudEvents over HTTP at `POST /api/v1/events` (structured, batched and binary
 * modes; see `decodeCloudEventsRequest`). Events from outside must not pose as Reflex's own. A request
 * is answered once its events are committed: 202 with their positions, 200 when all were duplicates;
 * 503 with Retry-After when ingest is full or Reflex is stopping.
 *
 * @example
 * const kind = createHttpSourceKind({ routes });
 * const source = kind.create('events', undefined);
 */
export function createHttpSourceKind(options: { routes: HttpRoutes }): SourceKind {
  return {
    kind: httpSourceKind,
    create(name) {
      return createHttpRouteSource({
        kind: httpSourceKind,
        name,
        routes: options.routes,
        path: cloudEventsPath,
        async handle(request, context) {
          const { events, batch } = decodeCloudEventsRequest(request.headers, request.body, context.limits);
          rejectReservedExtensions(events);
          // The sender is told to retry (503, Retry-After) rather than kept waiting on its connection.
          const results = await context.emit(events, { whenFull: 'refuse' });
          return appendReply(results, batch);
        },
      });
    },
  };
}

/**
 * Events from outside must not pose as Reflex's own: no source `reflex` or `reflex.*` type (see
 * `checkNotReserved`), and no `reflexchain`, which counts how many rule outcomes led to an event — taken
 * from outside it could make rules skip an event, so it is refused rather than silently dropped.
 */
function rejectReservedExtensions(events: readonly CloudEvent[]): void {
  events.forEach((event, i) => {
    const where = events.length > 1 ? ` (batch item ${i})` : '';
    if (event[chainExtension] !== undefined) {
      throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
        attribute: chainExtension,
        where,
        reason: 'it is reserved for events Reflex derives from rule outcomes',
        fix: `remove the \`${chainExtension}\` attribute.`,
      });
    }
    checkNotReserved(event, where);
  });
}
