import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpApi, startHttpApi } from '../helpers/http-api-server.js';
import {
  expectSuccessOrCodedRefusal,
  fuzz,
  fuzzTestTimeoutMs,
  hostileJsonText,
  mutated,
  outsideEventsAfter,
  withinTimeBound,
} from './fuzz-helpers.js';

/**
 * `POST /hooks/<name>` for every auth scheme (none, token, hmac, stripe, slack, standard), through
 * Fastify's `inject`. Requests start as correctly signed deliveries (signed now, or outside the replay
 * window) and are then tampered with: body, headers, signature or timestamp. Whatever arrives, the
 * answer is a 2xx or a coded 4xx within the time bound, a refusal stores nothing, and a delivery that
 * was tampered with after signing, or signed outside the window, is never accepted.
 */

const now = Date.parse('2026-12-06T08:00:00Z');
const secrets = {
  TOKEN_SECRET: 'tok-3f9a',
  HMAC_SECRET: 'hmac-secret',
  STRIPE_SECRET: 'whsec_stripe',
  SLACK_SECRET: 'slack-signing',
  STANDARD_SECRET: `whsec_${Buffer.from('standard-key-bytes').toString('base64')}`,
};

const rulebook = `
webhooks:
  open:
    type: { header: X-Event, prefix: com.example., default: com.example.none }
    source: open
    subject: { header: X-Subject }
    id: { header: X-Delivery }
  token:
    type: com.example.token
    source: token
    auth: { token: { secret: { env: TOKEN_SECRET } } }
  hmac:
    type: com.example.hmac
    source: hmac
    auth: { hmac: { secret: { env: HMAC_SECRET } } }
  stripe:
    type: com.example.stripe
    source: stripe
    auth: { stripe: { secret: { env: STRIPE_SECRET } } }
  slack:
    type: com.example.slack
    source: slack
    auth: { slack: { secret: { env: SLACK_SECRET }, replayWindow: 2m } }
  standard:
    type: { header: webhook-type, prefix: com.example. }
    source: standard
    auth: { standard: { secret: { env: STANDARD_SECRET } } }
rules: []
`;

let api: HttpApi;
beforeAll(async () => {
  api = await startHttpApi({ rulebook, env: secrets, durability: 'normal', server: { now: () => now } });
});
afterAll(async () => {
  await api?.close();
});

const hmacHex = (key: string | Buffer, content: string | Buffer) =>
  createHmac('sha256', key).update(content).digest('hex');

type Hook = 'open' | 'token' | 'hmac' | 'stripe' | 'slack' | 'standard';

/** Headers that sign `body` for `hook` at `seconds` (unix time) with delivery id `id`. */
function sign(hook: Hook, body: Buffer, seconds: number, id: string): Record<string, string> {
  const t = String(seconds);
  switch (hook) {
    case 'open':
      return { 'x-event': 'push', 'x-delivery': id };
    case 'token':
      return { authorization: `Bearer ${secrets.TOKEN_SECRET}` };
    case 'hmac':
      return { 'x-hub-signature-256': `sha256=${hmacHex(secrets.HMAC_SECRET, body)}` };
    case 'stripe':
      return {
        'stripe-signature': `t=${t},v1=${hmacHex(secrets.STRIPE_SECRET, Buffer.concat([Buffer.from(`${t}.`), body]))}`,
      };
    case 'slack':
      return {
        'x-slack-request-timestamp': t,
        'x-slack-signature': `v0=${hmacHex(secrets.SLACK_SECRET, Buffer.concat([Buffer.from(`v0:${t}:`), body]))}`,
      };
    case 'standard': {
      const key = Buffer.from(secrets.STANDARD_SECRET.slice(6), 'base64');
      const signature = createHmac('sha256', key)
        .update(Buffer.concat([Buffer.from(`${id}.${t}.`), body]))
        .digest('base64');
      return {
        'webhook-id': id,
        'webhook-timestamp': t,
        'webhook-signature': `v1,${signature}`,
        'webhook-type': 'order',
      };
    }
  }
}

/** A header value as HTTP can carry it: latin1 text without CR, LF or NUL. */
const headerValue = fc.oneof(
  fc.string({
    unit: fc
      .integer({ min: 0x20, max: 0xff })
      .filter((c) => c !== 0x7f)
      .map((c) => String.fromCharCode(c)),
    maxLength: 40,
  }),
  fc.constantFrom(
    '',
    ' ',
    'reflex.run.failed',
    'v1,',
    't=,v1=',
    'v0=',
    'sha256=',
    'Bearer ',
    '99999999999999',
    '-1',
    '1e3',
  ),
);

const validBody = fc
  .record({
    id: fc.string({ maxLength: 8 }),
    event_id: fc.string({ maxLength: 8 }),
    amount: fc.integer(),
    note: fc.string({ maxLength: 8 }),
  })
  .map((b) => JSON.stringify(b));

const body = fc.oneof(
  { weight: 3, arbitrary: validBody.map((b) => Buffer.from(b)) },
  mutated(validBody),
  hostileJsonText().map((t) => Buffer.from(t)),
  fc.constant(Buffer.alloc(0)),
);

/** What is done to a signed request after signing; `none` leaves it valid. */
const tamper = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'none' as const }) },
  fc.record({ kind: fc.constant('body' as const), byte: fc.integer({ min: 0, max: 255 }), at: fc.nat() }),
  fc.record({ kind: fc.constant('header' as const), which: fc.nat(), value: headerValue }),
  fc.record({ kind: fc.constant('drop' as const), which: fc.nat() }),
  fc.record({
    kind: fc.constant('extra' as const),
    name: fc.constantFrom('x-event', 'x-subject', 'content-type', 'webhook-type', 'x-delivery'),
    value: headerValue,
  }),
);

const request = fc.record({
  hook: fc.constantFrom<Hook>('open', 'token', 'hmac', 'stripe', 'slack', 'standard'),
  body,
  // Seconds from Reflex's clock to the signing time: mostly within the windows (2 and 5 minutes).
  skew: fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: -100, max: 100 }) },
    fc.integer({ min: -1e6, max: 1e6 }),
  ),
  id: fc.oneof(fc.stringMatching(/^msg_[a-z0-9]{1,10}$/), headerValue),
  tamper,
});

describe('fuzz - webhooks', () => {
  it(
    'fuzz - every auth scheme answers 2xx or a coded 4xx in time, stores nothing when refused, and never takes a tampered or stale delivery',
    async () => {
      let accepted = 0;
      await fuzz(
        fc.asyncProperty(request, async ({ hook, body, skew, id, tamper }) => {
          const seconds = Math.floor(now / 1000) + skew;
          const signed = sign(hook, body, seconds, id);
          const headers: Record<string, string> = { host: '127.0.0.1', ...signed };
          let sent = body;
          // Whether what the signature covers was changed: the body (not for a token, which covers only
          // itself) or a signed header (the type header of 'standard' is not signed; 'open' signs nothing).
          let changed = false;
          if (tamper.kind === 'body' && body.length > 0) {
            sent = Buffer.from(body);
            const at = tamper.at % body.length;
            changed = sent[at] !== tamper.byte && hook !== 'token';
            sent[at] = tamper.byte;
          } else if (tamper.kind === 'header' || tamper.kind === 'drop') {
            const names = Object.keys(signed);
            const name = names[tamper.which % names.length] as string;
            if (tamper.kind === 'drop') delete headers[name];
            else headers[name] = tamper.value;
            changed = name !== 'webhook-type' && headers[name] !== signed[name];
          } else if (tamper.kind === 'extra') headers[tamper.name] = tamper.value;
          changed &&= hook !== 'open';

          const before = await api.store.lastSeq();
          const answer = await withinTimeBound(`POST /hooks/${hook}`, () =>
            api.app.inject({ method: 'POST', url: `/hooks/${hook}`, headers, payload: sent }),
          );
          const refused = expectSuccessOrCodedRefusal(answer);
          const stored = await outsideEventsAfter(api.store, before);
          if (refused !== undefined) expect(stored, `${refused} stored an event`).toBe(0);
          else accepted += 1;
          if (changed) expect(answer.statusCode, `a tampered ${hook} delivery: ${answer.body}`).toBe(401);
          if (
            ['stripe', 'slack', 'standard'].includes(hook) &&
            Math.abs(skew) > (hook === 'slack' ? 120 : 300)
          ) {
            expect(answer.statusCode, `a stale ${hook} delivery: ${answer.body}`).toBe(401);
          }
        }),
      );
      expect(accepted, 'no delivery was accepted: the generator is off').toBeGreaterThan(0);
    },
    fuzzTestTimeoutMs,
  );
});
