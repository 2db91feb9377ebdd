import { isUtf8 } from 'node:buffer';
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { type HttpHeaders, headerValue } from '../codec/cloudevents-http.js';
import { parseJsonBody } from '../codec/json-body.js';
import { formatDuration } from '../core/duration.js';
import { ReflexError } from '../core/errors.js';
import { type CloudEvent, checkNotReserved, type EventLimits, validateCloudEvent } from '../core/event.js';
import type { AttributeSource, SecretRef, TimestampedScheme, Webhook, WebhookAuth } from '../core/rule.js';

/** A declared webhook as its source runs it: everything but where it was written. */
export type WebhookSpec = Omit<Webhook, 'location'>;

/** What `webhookRequestToEvent` needs besides the request. */
export interface WebhookEventOptions {
  /** The time the request arrived, in milliseconds since the epoch; it becomes the event's `time`. */
  now: number;
  /** Makes an event id when the webhook takes none from a header, or the header is absent. */
  newId: () => string;
  limits: EventLimits;
  /**
   * The id `verifyWebhookRequest` read from what the signature covers (timestamped schemes): it becomes
   * the event id, so a delivery replayed within the window is dropped as a duplicate.
   */
  deliveryId?: string;
}

/** What a verified request told about itself. */
export interface VerifiedWebhookRequest {
  /** For timestamped schemes: an id the signature covers (see `WebhookEventOptions.deliveryId`). */
  deliveryId?: string;
}

/**
 * How each provider signs a delivery together with its time (see their documentation):
 *
 * - `stripe`: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, the HMAC-SHA256 of
 *   `<t>.<raw body>` keyed with the endpoint secret (`whsec_…`, used as is); any one `v1` may match
 *   (several during a secret rotation). The event id is the body's `id`.
 * - `slack`: `X-Slack-Request-Timestamp: <unix seconds>` and `X-Slack-Signature: v0=<hex>`, the
 *   HMAC-SHA256 of `v0:<timestamp>:<raw body>` keyed with the signing secret. The event id is the body's
 *   `event_id` (Events API).
 * - `standard` (Standard Webhooks, used by Svix and others): `webhook-id`, `webhook-timestamp: <unix
 *   seconds>` and `webhook-signature: v1,<base64> [v1,<base64>…]`, the HMAC-SHA256 of
 *   `<webhook-id>.<timestamp>.<raw body>` keyed with the base64-decoded secret (after its `whsec_`
 *   prefix). The event id is `webhook-id`.
 *
 * Without such an id in the body, the event id is a hash of what was signed, which a replay repeats.
 */
const timestampedSchemes: Readonly<
  Record<
    TimestampedScheme,
    {
      /** What to send, for messages. */
      expects: string;
      /** Reads the parts of the signature from the headers; undefined when a header is missing. */
      read(headers: HttpHeaders): { timestamp: string; signatures: string[]; id?: string } | undefined;
      /** The bytes signed. */
      content(parts: { timestamp: string; id?: string }, body: Buffer): Buffer;
      key(secret: string): Buffer;
      encoding: 'hex' | 'base64';
      /** A field of the JSON body that holds the provider's event id, covered by the signature. */
      idField?: string;
    }
  >
> = {
  stripe: {
    expects: '`Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`',
    read(headers) {
      const value = headerValue(headers, 'stripe-signature');
      if (value === undefined) return undefined;
      let timestamp = '';
      const signatures: string[] = [];
      for (const item of value.split(',')) {
        const eq = item.indexOf('=');
        const name = item.slice(0, eq).trim();
        const part = item.slice(eq + 1).trim();
        if (name === 't') timestamp = part;
        else if (name === 'v1') signatures.push(part.toLowerCase());
      }
      return { timestamp, signatures };
    },
    content: ({ timestamp }, body) => Buffer.concat([Buffer.from(`${timestamp}.`), body]),
    key: (secret) => Buffer.from(secret, 'utf8'),
    encoding: 'hex',
    idField: 'id',
  },
  slack: {
    expects:
      '`X-Slack-Request-Timestamp: <unix seconds>` and `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:<body>">`',
    read(headers) {
      const timestamp = headerValue(headers, 'x-slack-request-timestamp');
      const signature = headerValue(headers, 'x-slack-signature');
      if (timestamp === undefined || signature === undefined) return undefined;
      const signatures = signature.startsWith('v0=') ? [signature.slice(3).toLowerCase()] : [];
      return { timestamp: timestamp.trim(), signatures };
    },
    content: ({ timestamp }, body) => Buffer.concat([Buffer.from(`v0:${timestamp}:`), body]),
    key: (secret) => Buffer.from(secret, 'utf8'),
    encoding: 'hex',
    idField: 'event_id',
  },
  standard: {
    expects:
      '`webhook-id`, `webhook-timestamp: <unix seconds>` and `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`',
    read(headers) {
      const id = headerValue(headers, 'webhook-id');
      const timestamp = headerValue(headers, 'webhook-timestamp');
      const signature = headerValue(headers, 'webhook-signature');
      if (id === undefined || timestamp === undefined || signature === undefined) return undefined;
      const signatures = signature
        .split(' ')
        .filter((s) => s.startsWith('v1,'))
        .map((s) => s.slice(3));
      return { id, timestamp: timestamp.trim(), signatures };
    },
    content: ({ id, timestamp }, body) => Buffer.concat([Buffer.from(`${id}.${timestamp}.`), body]),
    key: (secret) => Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64'),
    encoding: 'base64',
  },
};

/**
 * Checks the request's credentials against the webhook's `auth`, in constant time.
 *
 * - `none`: every request passes.
 * - `token`: the header must equal `prefix + secret` (e.g. `Authorization: Bearer <secret>`).
 * - `hmac`: the header must be `prefix + hex(HMAC-SHA256(secret, rawBody))`, as GitHub sends in
 *   `X-Hub-Signature-256: sha256=...`. `rawBody` must be the exact bytes received; the hex may be in
 *   either case.
 *
 * - `stripe`, `slack`, `standard`: the provider's timestamped signature (see `timestampedSchemes`),
 *   and the time it was signed must be within the webhook's replay window of `now` (either way);
 *   outside it gives REFLEX_ERR_WEBHOOK_OUTSIDE_REPLAY_WINDOW. Returns the delivery id the signature
 *   covers, for `webhookRequestToEvent`.
 *
 * Both sides are hashed with SHA-256 before `timingSafeEqual`, so neither the content nor the length of
 * the secret shows in the timing. A secret given as `{ env: NAME }` is read from `env` on each call;
 * unset or empty gives REFLEX_ERR_WEBHOOK_SECRET_MISSING. A request that fails gives
 * REFLEX_ERR_WEBHOOK_UNAUTHORIZED, whose reason never includes the secret or the expected value.
 *
 * @example
 * verifyWebhookRequest(webhook, request.headers, rawBody, process.env, Date.now());
 */
export function verifyWebhookRequest(
  webhook: WebhookSpec,
  headers: HttpHeaders,
  rawBody: Buffer,
  env: Record<string, string | undefined>,
  now: number = Date.now(),
): VerifiedWebhookRequest {
  const auth = webhook.auth;
  if (auth.type === 'none') return {};
  // The secret first: without it no request can be checked, and that is the operator's problem to fix.
  const secret = resolveSecret(webhook, auth.secret, env);
  if (isTimestamped(auth)) {
    return verifyTimestamped(webhook, auth.type, auth.replayWindowMs, secret, headers, rawBody, now);
  }
  const sent = headerValue(headers, auth.header.toLowerCase());
  if (auth.type === 'token') {
    const fix = `send the header \`${auth.header}: ${auth.prefix}<token>\` with the token configured for this webhook.`;
    if (sent === undefined) throw unauthorized(webhook, `missing header ${auth.header}`, fix);
    if (!sameBytes(headerBytes(sent), Buffer.from(auth.prefix + secret, 'utf8'))) {
      throw unauthorized(webhook, `the token in header ${auth.header} does not match`, fix);
    }
    return {};
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
  return {};
}

type TimestampedAuth = Extract<WebhookAuth, { replayWindowMs: number }>;

/** Whether a webhook's auth is one of the providers' timestamped schemes. */
export function isTimestamped(auth: WebhookAuth): auth is TimestampedAuth {
  return Object.hasOwn(timestampedSchemes, auth.type);
}

function verifyTimestamped(
  webhook: WebhookSpec,
  scheme: TimestampedScheme,
  replayWindowMs: number,
  secret: string,
  headers: HttpHeaders,
  rawBody: Buffer,
  now: number,
): VerifiedWebhookRequest {
  const spec = timestampedSchemes[scheme];
  const fix = `send ${spec.expects}, signed with the webhook's secret over the exact request body.`;
  const parts = spec.read(headers);
  if (parts === undefined) throw unauthorized(webhook, `the ${scheme} signature headers are missing`, fix);
  if (!/^\d{1,12}$/.test(parts.timestamp)) {
    throw unauthorized(webhook, 'the signature has no timestamp in whole seconds', fix);
  }
  if (parts.signatures.length === 0) throw unauthorized(webhook, 'the request carries no signature', fix);
  const content = spec.content(parts, rawBody);
  const expected = Buffer.from(
    createHmac('sha256', spec.key(secret)).update(content).digest(spec.encoding),
    'latin1',
  );
  // Every signature is compared, so the time taken does not tell which one matched.
  let matched = false;
  for (const signature of parts.signatures) {
    if (sameBytes(headerBytes(signature), expected)) matched = true;
  }
  if (!matched) throw unauthorized(webhook, 'signature does not match', fix);
  const offset = now - Number(parts.timestamp) * 1000;
  if (Math.abs(offset) > replayWindowMs) {
    throw new ReflexError('REFLEX_ERR_WEBHOOK_OUTSIDE_REPLAY_WINDOW', {
      name: webhook.name,
      age: formatDuration(Math.abs(offset)),
      when: offset > 0 ? 'earlier' : 'later',
      window: formatDuration(replayWindowMs),
    });
  }
  if (parts.id !== undefined) return { deliveryId: parts.id };
  return { deliveryId: `sha256:${createHash('sha256').update(content).digest('hex').slice(0, 32)}` };
}

/**
 * Builds the CloudEvent of a webhook request.
 *
 * - `data`: the body parsed as JSON (REFLEX_ERR_EVENT_INVALID_JSON when it is not), with
 *   `datacontenttype: application/json`; an empty body gives an event without data or content type.
 * - `type` and `subject`: the configured value, or `prefix + <header value>`; when the header is absent
 *   or empty, the configured fallback. A `type` with neither gives REFLEX_ERR_WEBHOOK_MISSING_HEADER; a
 *   `subject` with neither is left out.
 * - `id`: for timestamped schemes, the provider's event id when the signed body holds one (`id` for
 *   Stripe, `event_id` for Slack), else `options.deliveryId`; otherwise the configured header (e.g.
 *   `X-GitHub-Delivery`, so redeliveries are dropped as duplicates), else `newId()`.
 * - `source`: the webhook's; `time`: `new Date(now).toISOString()`.
 *
 * The result is checked with `validateCloudEvent` (attributes, depth limit) and must not pose as one
 * of Reflex's own events (REFLEX_ERR_EVENT_RESERVED). Header values are read as UTF-8 when their bytes
 * are UTF-8. Call `verifyWebhookRequest` first.
 *
 * @example
 * const event = webhookRequestToEvent(webhook, request.headers, rawBody, {
 *   now: clock.now(),
 *   newId: () => randomUUID(),
 *   limits: defaultEventLimits,
 * });
 */
export function webhookRequestToEvent(
  webhook: WebhookSpec,
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
    webhook.id === undefined ? undefined : headerText(headers, webhook.id.header.toLowerCase());
  const data = rawBody.length > 0 ? parseJsonBody(rawBody) : undefined;
  const event: CloudEvent = {
    specversion: '1.0',
    id:
      signedBodyId(webhook, data) ??
      options.deliveryId ??
      (idHeader === undefined || idHeader === '' ? options.newId() : idHeader),
    source: webhook.source,
    type,
  };
  const subject = webhook.subject === undefined ? undefined : readAttribute(headers, webhook.subject);
  if (subject !== undefined) event.subject = subject;
  event.time = new Date(options.now).toISOString();
  if (data !== undefined) {
    event.datacontenttype = 'application/json';
    event.data = data;
  }
  const where = ` (webhook \`${webhook.name}\`)`;
  const valid = validateCloudEvent(event, options.limits, where);
  checkNotReserved(valid, where);
  return valid;
}

/** The provider's event id in a signed body (timestamped schemes), when it is a non-empty string. */
function signedBodyId(webhook: WebhookSpec, data: unknown): string | undefined {
  const auth = webhook.auth;
  if (!isTimestamped(auth)) return undefined;
  const field = timestampedSchemes[auth.type].idField;
  if (field === undefined || data === null || typeof data !== 'object' || Array.isArray(data))
    return undefined;
  const id = Object.hasOwn(data, field) ? (data as Record<string, unknown>)[field] : undefined;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

/** The configured value, else `prefix + header`, else the fallback (taken as is, without the prefix). */
function readAttribute(headers: HttpHeaders, from: AttributeSource): string | undefined {
  if ('value' in from) return from.value;
  const value = headerText(headers, from.header.toLowerCase());
  if (value === undefined || value === '') return from.fallback;
  return from.prefix + value;
}

/**
 * A header's value as text: Node reads header bytes as latin1, so a value sent as UTF-8 (`é` as C3 A9)
 * is decoded as UTF-8; other bytes stay as they are (and are refused if they are control characters).
 */
function headerText(headers: HttpHeaders, name: string): string | undefined {
  const value = headerValue(headers, name);
  if (value === undefined || !/[\u0080-\u00ff]/.test(value) || /[\u0100-\uffff]/.test(value)) return value;
  const bytes = Buffer.from(value, 'latin1');
  return isUtf8(bytes) ? bytes.toString('utf8') : value;
}

function resolveSecret(
  webhook: WebhookSpec,
  secret: SecretRef,
  env: Record<string, string | undefined>,
): string {
  if ('value' in secret) return secret.value;
  const value = env[secret.env];
  // An empty secret would let anyone sign requests, so it counts as unset.
  if (value === undefined || value === '') {
    throw new ReflexError('REFLEX_ERR_WEBHOOK_SECRET_MISSING', { name: webhook.name, env: secret.env });
  }
  return value;
}

function unauthorized(webhook: WebhookSpec, reason: string, fix: string): ReflexError {
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
