import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ApiError,
  type AppendReply,
  allEvents,
  type HttpApi,
  startHttpApi,
} from '../helpers/http-api-server.js';

// Signed webhook deliveries replayed over HTTP: within the window a replay is a duplicate (the event id
// is what the signature covers), outside it the delivery is refused; nothing refused is stored.

let api: HttpApi | undefined;

afterEach(async () => {
  await api?.close();
  api = undefined;
});

const minute = 60_000;
const key = Buffer.from('a 32-byte key for standard hooks');
const rulebook = `
webhooks:
  stripe:
    type: com.stripe.event
    source: https://stripe.com
    auth: { stripe: { secret: { env: STRIPE_SECRET } } }
  svix:
    type: com.example.event
    source: https://svix.example
    auth: { standard: { secret: { env: SVIX_SECRET }, replayWindow: 2m } }
  slack:
    type: com.slack.event
    source: https://slack.com
    auth: { slack: { secret: { env: SLACK_SECRET } } }
rules: []
`;

async function start(clock: { now: number }): Promise<HttpApi> {
  api = await startHttpApi({
    rulebook,
    env: {
      STRIPE_SECRET: 'whsec_stripe',
      SVIX_SECRET: `whsec_${key.toString('base64')}`,
      SLACK_SECRET: 'slack-signing',
    },
    server: { now: () => clock.now },
  });
  return api;
}

const t = (ms: number) => String(Math.floor(ms / 1000));

function stripeHeaders(body: string, at: number): Record<string, string> {
  const v1 = createHmac('sha256', 'whsec_stripe')
    .update(`${t(at)}.${body}`)
    .digest('hex');
  return { 'stripe-signature': `t=${t(at)},v1=${v1}` };
}

function standardHeaders(body: string, at: number, id: string): Record<string, string> {
  const v1 = createHmac('sha256', key)
    .update(`${id}.${t(at)}.${body}`)
    .digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': t(at), 'webhook-signature': `v1,${v1}` };
}

function slackHeaders(body: string, at: number): Record<string, string> {
  const v0 = createHmac('sha256', 'slack-signing')
    .update(`v0:${t(at)}:${body}`)
    .digest('hex');
  return { 'x-slack-request-timestamp': t(at), 'x-slack-signature': `v0=${v0}` };
}

function deliver(server: HttpApi, hook: string, headers: Record<string, string>, body: string) {
  return server.call<AppendReply & ApiError>(`/hooks/${hook}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
}

describe('webhook replay', () => {
  it('webhook replay - a Stripe delivery replayed within the window is a duplicate, and refused once the window has passed', async () => {
    const clock = { now: Date.parse('2026-11-27T10:00:00Z') };
    const server = await start(clock);
    const body = '{"id":"evt_1","type":"invoice.paid"}';
    const headers = stripeHeaders(body, clock.now);
    const first = await deliver(server, 'stripe', headers, body);
    expect([first.status, first.body.id]).toEqual([202, 'evt_1']);
    clock.now += 2 * minute;
    // The same bytes again, with a delivery id of the attacker's own in an unsigned header.
    const replay = await deliver(server, 'stripe', { ...headers, 'x-request-id': 'new-1' }, body);
    expect([replay.status, replay.body.duplicate]).toEqual([200, true]);
    clock.now += 4 * minute;
    const late = await deliver(server, 'stripe', headers, body);
    expect([late.status, late.body.error?.code]).toEqual([401, 'REFLEX_ERR_WEBHOOK_OUTSIDE_REPLAY_WINDOW']);
    expect((await allEvents(server)).map((e) => e.event.id)).toEqual(['evt_1']);
  });

  it('webhook replay - a Standard Webhooks delivery cannot be replayed under a new webhook-id, and a future one is refused', async () => {
    const clock = { now: Date.parse('2026-11-27T10:00:00Z') };
    const server = await start(clock);
    const body = '{"type":"user.created"}';
    const first = await deliver(server, 'svix', standardHeaders(body, clock.now, 'msg_1'), body);
    expect([first.status, first.body.id]).toEqual([202, 'msg_1']);
    const again = await deliver(server, 'svix', standardHeaders(body, clock.now, 'msg_1'), body);
    expect([again.status, again.body.duplicate]).toEqual([200, true]);
    const renamed = await deliver(
      server,
      'svix',
      { ...standardHeaders(body, clock.now, 'msg_1'), 'webhook-id': 'msg_2' },
      body,
    );
    expect([renamed.status, renamed.body.error?.code]).toEqual([401, 'REFLEX_ERR_WEBHOOK_UNAUTHORIZED']);
    const future = await deliver(
      server,
      'svix',
      standardHeaders(body, clock.now + 3 * minute, 'msg_3'),
      body,
    );
    expect([future.status, future.body.error?.code]).toEqual([
      401,
      'REFLEX_ERR_WEBHOOK_OUTSIDE_REPLAY_WINDOW',
    ]);
    const tampered = await deliver(
      server,
      'svix',
      standardHeaders(body, clock.now, 'msg_4'),
      '{"type":"user.deleted"}',
    );
    expect([tampered.status, tampered.body.error?.code]).toEqual([401, 'REFLEX_ERR_WEBHOOK_UNAUTHORIZED']);
    expect((await allEvents(server)).map((e) => e.event.id)).toEqual(['msg_1']);
  });

  it('webhook replay - a Slack delivery without an event id is a duplicate when replayed byte for byte', async () => {
    const clock = { now: Date.parse('2026-11-27T10:00:00Z') };
    const server = await start(clock);
    const body = '{"type":"url_verification","challenge":"abc"}';
    const headers = slackHeaders(body, clock.now);
    const first = await deliver(server, 'slack', headers, body);
    expect(first.status).toBe(202);
    const replay = await deliver(server, 'slack', headers, body);
    expect([replay.status, replay.body.duplicate, replay.body.id]).toEqual([200, true, first.body.id]);
    const stale = await deliver(server, 'slack', slackHeaders(body, clock.now - 10 * minute), body);
    expect([stale.status, stale.body.error?.code]).toEqual([401, 'REFLEX_ERR_WEBHOOK_OUTSIDE_REPLAY_WINDOW']);
    expect(await allEvents(server)).toHaveLength(1);
  });
});
