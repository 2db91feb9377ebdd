import type { SourceKind } from '../core/ports/source.js';
import { webhookSourceKind } from '../core/ports/source.js';
import { createHttpRouteSource } from './http-route-source.js';
import { appendReply, type HttpRoutes, webhookPath } from './http-routes.js';
import { verifyWebhookRequest, type WebhookSpec, webhookRequestToEvent } from './webhook-request.js';

/** What webhook sources need besides their webhook. */
export interface WebhookSourceOptions {
  routes: HttpRoutes;
  /** Makes event ids for requests that carry none. */
  newEventId: () => string;
  /**
   * Environment read for webhook secrets given as `{ env: NAME }`, on every request.
   * @default process.env
   */
  env?: Record<string, string | undefined>;
  /** The clock replay windows are judged by, in milliseconds since the epoch. @default Date.now */
  now?: () => number;
}

/**
 * The `webhook` source kind: one source per webhook a rulebook declares, serving `POST /hooks/<name>`.
 * A request is verified (`verifyWebhookRequest`), turned into an event (`webhookRequestToEvent`) and
 * answered once the event is committed: 202, or 200 for a delivery already in the log; 503 with
 * Retry-After when ingest is full or Reflex is stopping.
 *
 * @example
 * const kind = createWebhookSourceKind({ routes, newEventId: () => randomUUID() });
 * const source = kind.create('github', webhook);
 */
export function createWebhookSourceKind(options: WebhookSourceOptions): SourceKind<WebhookSpec> {
  const env = options.env ?? process.env;
  const now = options.now ?? Date.now;
  return {
    kind: webhookSourceKind,
    create(name, webhook) {
      return createHttpRouteSource({
        kind: webhookSourceKind,
        name,
        routes: options.routes,
        path: webhookPath(name),
        async handle(request, context) {
          const at = now();
          const verified = verifyWebhookRequest(webhook, request.headers, request.body, env, at);
          const event = webhookRequestToEvent(webhook, request.headers, request.body, {
            now: at,
            newId: options.newEventId,
            limits: context.limits,
            ...(verified.deliveryId === undefined ? {} : { deliveryId: verified.deliveryId }),
          });
          const results = await context.emit([event], { whenFull: 'refuse' });
          return appendReply(results, false);
        },
      });
    },
  };
}
