import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { ReflexError } from '../core/errors.js';
import { type CloudEvent, type EventLimits, validateCloudEvent } from '../core/event.js';
import type { AttributeSource, SecretRef, Webhook } from '../core/rule.js';
import { type HttpHeaders, headerValue, parseJsonBody } from './cloudevents-http.js';

/** What `webhookRequestToEvent` needs besides the request. */
export interface WebhookEventOptions {
  /** The time the request arrived, in milliseconds since the epoch; it becomes the event's `time`. */
  now: number;
  /** Makes an event id when the webhook takes none from a header, or the header is absent. */
  newId: () => string;
  limits: EventLimits;
}

/**
 * Checks the request's credentials against the webhook's `auth`, in constant time.
 *
 * - `none`: every request passes.
 * - `token`: the header must equal `prefix + secret` (e.g. `Authorization: Bearer <secret>`).
 * - `hmac`: the header must be `prefix + hex(HMAC-SHA256(secret, rawBody))`, as GitHub sends in
 *   `X-Hub-Signature-256: sha256=...`. `rawBody` must be the exact bytes received; the hex may be in
 *   either case.
 *
 * Both sides are hashed with SHA-256 before `timingSafeEqual`, so neither the content nor the length of
 * the secret shows in the timing. A secret given as `{ env: NAME }` is read from `env` on each call;
 * unset or empty gives REFLEX_ERR_WEBHOOK_SECRET_MISSING. A request that fails gives
 * REFLEX_ERR_WEBHOOK_UNAUTHORIZED, whose reason never includes the secret or the expected value.
 *
 * @example
 * verifyWebhookRequest(webhook, request.headers, rawBody, process.env);
 */
export function verifyWebhookRequest(
  webhook: Webhook,
  headers: HttpHeaders,
  rawBody: Buffer,
  env: Record<string, string | undefined>,
): void {
  const auth = webhook.auth;
  if (auth.type === 'none') return;
  // The secret first: without it no request can be checked, and that is the operator's problem to fix.
  const secret = resolveSecret(webhook, auth.secret, env);
  const sent = headerValue(headers, auth.header.toLowerCase());
  if (auth.type === 'token') {
    const fix = `send the header \`${auth.header}: ${auth.prefix}<token>\` with the token configured for this webhook.`;
    if (sent === undefined) throw unauthorized(webhook, `missing header ${auth.header}`, fix);
    if (!sameBytes(headerBytes(sent), Buffer.from(auth.prefix + secret, 'utf8'))) {
      throw unauthorized(webhook, `the token in header ${auth.header} does not match`, fix);
    }
    return;
  }
  const fix = `sign the exact request body with HMAC-SHA256 and the webhook's secret, and send \`${auth.header}: ${auth.prefix}<hex digest>\`.`;
  if (sent === undefined) throw unauthorized(webhook, `missing header ${auth.header}`, fix);
  if (!sent.startsWith(auth.prefix)) {
    throw unauthorized(
      webhook,
      `header ${auth.header} does not start with ${JSON.stringify(auth.prefix)}`,
      fix,
    );
  }
  const expected = createHmac('sha256', secret).update(rawBody).digest('hex');
  const signature = sent.slice(auth.prefix.length).toLowerCase();
  if (!sameBytes(headerBytes(signature), Buffer.from(expected, 'latin1'))) {
    throw unauthorized(webhook, 'signature does not match', fix);
  }
}

/**
 * Builds the CloudEvent of a webhook request.
 *
 * - `data`: the body parsed as JSON (REFLEX_ERR_EVENT_INVALID_JSON when it is not), with
 *   `datacontenttype: application/json`; an empty body gives an event without data or content type.
 * - `type` and `subject`: the configured value, or `prefix + <header value>`; when the header is absent
 *   or empty, the configured fallback. A `type` with neither gives REFLEX_ERR_WEBHOOK_MISSING_HEADER; a
 *   `subject` with neither is left out.
 * - `id`: the configured header (e.g. `X-GitHub-Delivery`, so redeliveries are dropped as duplicates),
 *   else `newId()`.
 * - `source`: the webhook's; `time`: `new Date(now).toISOString()`.
 *
 * The result is checked with `validateCloudEvent` (attributes, depth limit). Call
 * `verifyWebhookRequest` first.
 *
 * @example
 * const event = webhookRequestToEvent(webhook, request.headers, rawBody, {
 *   now: clock.now(),
 *   newId: () => randomUUID(),
 *   limits: defaultEventLimits,
 * });
 */
export function webhookRequestToEvent(
  webhook: Webhook,
  headers: HttpHeaders,
  rawBody: Buffer,
  options: WebhookEventOptions,
): CloudEvent {
  const type = readAttribute(headers, webhook.type);
  if (type === undefined) {
    // Only a header-sourced type without a fallback can be missing.
    const from = webhook.type as { header: string };
    throw new ReflexError('REFLEX_ERR_WEBHOOK_MISSING_HEADER', {
      name: webhook.name,
      header: from.header,
      attribute: 'type',
    });
  }
  const idHeader =
    webhook.id === undefined ? undefined : headerValue(headers, webhook.id.header.toLowerCase());
  const event: CloudEvent = {
    specversion: '1.0',
    id: idHeader === undefined || idHeader === '' ? options.newId() : idHeader,
    source: webhook.source,
    type,
  };
  const subject = webhook.subject === undefined ? undefined : readAttribute(headers, webhook.subject);
  if (subject !== undefined) event.subject = subject;
  event.time = new Date(options.now).toISOString();
  if (rawBody.length > 0) {
    event.datacontenttype = 'application/json';
    event.data = parseJsonBody(rawBody);
  }
  return validateCloudEvent(event, options.limits, ` (webhook \`${webhook.name}\`)`);
}

/** The configured value, else `prefix + header`, else the fallback (taken as is, without the prefix). */
function readAttribute(headers: HttpHeaders, from: AttributeSource): string | undefined {
  if ('value' in from) return from.value;
  const value = headerValue(headers, from.header.toLowerCase());
  if (value === undefined || value === '') return from.fallback;
  return from.prefix + value;
}

function resolveSecret(webhook: Webhook, secret: SecretRef, env: Record<string, string | undefined>): string {
  if ('value' in secret) return secret.value;
  const value = env[secret.env];
  // An empty secret would let anyone sign requests, so it counts as unset.
  if (value === undefined || value === '') {
    throw new ReflexError('REFLEX_ERR_WEBHOOK_SECRET_MISSING', { name: webhook.name, env: secret.env });
  }
  return value;
}

function unauthorized(webhook: Webhook, reason: string, fix: string): ReflexError {
  return new ReflexError('REFLEX_ERR_WEBHOOK_UNAUTHORIZED', { name: webhook.name, reason, fix });
}

/** The bytes of a header value as sent: Node reads header bytes as latin1, one char per byte. */
function headerBytes(value: string): Buffer {
  return Buffer.from(value, /[\u0100-\uffff]/.test(value) ? 'utf8' : 'latin1');
}

/** Constant-time equality for inputs of any length: compares their SHA-256 digests. */
function sameBytes(a: Buffer, b: Buffer): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}
