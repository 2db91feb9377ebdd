import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../core/errors.js';
import { defaultEventLimits } from '../core/event.js';
import type { Webhook, WebhookAuth } from '../core/rule.js';
import { verifyWebhookRequest, webhookRequestToEvent } from './webhook-request.js';

// Requests go through a real HTTP server on loopback, so signatures are checked over the raw bytes as
// Node receives them, and headers arrive as Node presents them.
interface Received {
  headers: IncomingHttpHeaders;
  body: Buffer;
}

let server: Server;
let port: number;
let waiting: ((received: Received) => void) | undefined;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      waiting?.({ headers: req.headers, body: Buffer.concat(chunks) });
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.close();
  await once(server, 'close');
});

async function post(headers: Record<string, string>, body?: string | Buffer): Promise<Received> {
  const received = new Promise<Received>((resolve) => {
    waiting = resolve;
  });
  const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/hooks/github', headers });
  const answered = once(req, 'response');
  req.end(body);
  const [res] = (await answered) as [NodeJS.ReadableStream];
  res.resume();
  return received;
}

const location = { file: 'rulebook.yaml', line: 3, column: 5 };
const secret = 'It5-a-s3cret!';
const env = { GITHUB_WEBHOOK_SECRET: secret };

function githubWebhook(auth?: WebhookAuth): Webhook {
  return {
    name: 'github',
    type: { header: 'X-GitHub-Event', prefix: 'com.github.' },
    source: 'https://github.com/acme/shop',
    id: { header: 'X-GitHub-Delivery' },
    subject: { header: 'X-GitHub-Hook-Installation-Target-Type', prefix: 'target/' },
    auth: auth ?? {
      type: 'hmac',
      header: 'X-Hub-Signature-256',
      prefix: 'sha256=',
      secret: { env: 'GITHUB_WEBHOOK_SECRET' },
    },
    location,
  };
}

function sign(body: string | Buffer, key = secret): string {
  return 'sha256=' + createHmac('sha256', key).update(body).digest('hex');
}

// Formatted as GitHub sends it: whitespace and non-ASCII bytes are part of what is signed.
const pushBody = '{\n  "ref": "refs/heads/main",\n  "pusher": { "name": "Zoë" },\n  "commits": [1, 2]\n}\n';

function refusal(run: () => unknown): ReflexError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ReflexError);
    return error as ReflexError;
  }
  throw new Error('expected a refusal');
}

describe('webhook-request hmac auth', () => {
  it('hmac - accepts a GitHub signature over the exact raw body', async () => {
    const got = await post(
      { 'X-Hub-Signature-256': sign(pushBody), 'Content-Type': 'application/json' },
      pushBody,
    );
    expect(() => verifyWebhookRequest(githubWebhook(), got.headers, got.body, env)).not.toThrow();
  });

  it('hmac - accepts the hex digest in upper case', async () => {
    const signature = 'sha256=' + createHmac('sha256', secret).update(pushBody).digest('hex').toUpperCase();
    const got = await post({ 'X-Hub-Signature-256': signature }, pushBody);
    expect(() => verifyWebhookRequest(githubWebhook(), got.headers, got.body, env)).not.toThrow();
  });

  it('hmac - refuses a signature over re-serialized JSON: the raw bytes count', async () => {
    const reserialized = JSON.stringify(JSON.parse(pushBody));
    const got = await post({ 'X-Hub-Signature-256': sign(reserialized) }, pushBody);
    const error = refusal(() => verifyWebhookRequest(githubWebhook(), got.headers, got.body, env));
    expect(error.code).toBe('REFLEX_ERR_WEBHOOK_UNAUTHORIZED');
    expect(error.message).toContain('signature does not match');
  });

  it('hmac - refuses a signature made with another secret, without leaking either', async () => {
    const got = await post({ 'X-Hub-Signature-256': sign(pushBody, 'guess') }, pushBody);
    const error = refusal(() => verifyWebhookRequest(githubWebhook(), got.headers, got.body, env));
    expect(error.code).toBe('REFLEX_ERR_WEBHOOK_UNAUTHORIZED');
    expect(error.statusCode).toBe(401);
    expect(error.message).toContain('webhook `github`');
    expect(error.message).toContain('signature does not match');
    const expected = sign(pushBody).slice('sha256='.length);
    for (const text of [error.message, JSON.stringify(error.toJSON()), JSON.stringify(error.params)]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(expected);
    }
  });

  it('hmac - refuses a body changed after signing', async () => {
    const got = await post({ 'X-Hub-Signature-256': sign(pushBody) }, pushBody.replace('main', 'prod'));
    const error = refusal(() => verifyWebhookRequest(githubWebhook(), got.headers, got.body, env));
    expect(error.message).toContain('signature does not match');
  });

  it('hmac - refuses a request without the signature header', async () => {
    const got = await post({}, pushBody);
    const error = refusal(() => verifyWebhookRequest(githubWebhook(), got.headers, got.body, env));
    expect(error.code).toBe('REFLEX_ERR_WEBHOOK_UNAUTHORIZED');
    expect(error.message).toContain('missing header X-Hub-Signature-256');
  });

  it('hmac - refuses a signature with the wrong prefix', async () => {
    const sha1 = 'sha1=' + createHmac('sha1', secret).update(pushBody).digest('hex');
    const got = await post({ 'X-Hub-Signature-256': sha1 }, pushBody);
    const error = refusal(() => verifyWebhookRequest(githubWebhook(), got.headers, got.body, env));
    expect(error.code).toBe('REFLEX_ERR_WEBHOOK_UNAUTHORIZED');
    expect(error.message).toContain('does not start with "sha256="');
  });

  it('hmac - refuses a right digest sent without its prefix', async () => {
    const got = await post({ 'X-Hub-Signature-256': sign(pushBody).slice('sha256='.length) }, pushBody);
    const error = refusal(() => verifyWebhookRequest(githubWebhook(), got.headers, got.body, env));
    expect(error.code).toBe('REFLEX_ERR_WEBHOOK_UNAUTHORIZED');
  });

  it('hmac - refuses a truncated signature (lengths differ) with a coded error', async () => {
    const got = await post({ 'X-Hub-Signature-256': sign(pushBody).slice(0, 20) }, pushBody);
    const error = refusal(() => verifyWebhookRequest(githubWebhook(), got.headers, got.body, env));
    expect(error.message).toContain('signature does not match');
  });

  it('hmac - signs an empty body too', async () => {
    const got = await post({ 'X-Hub-Signature-256': sign('') });
    expect(() => verifyWebhookRequest(githubWebhook(), got.headers, got.body, env)).not.toThrow();
  });
});

describe('webhook-request secrets', () => {
  it('secrets - reads the secret from env at call time', async () => {
    const got = await post({ 'X-Hub-Signature-256': sign(pushBody, 'rotated') }, pushBody);
    expect(() => verifyWebhookRequest(githubWebhook(), got.headers, got.body, env)).toThrow(ReflexError);
    expect(() =>
      verifyWebhookRequest(githubWebhook(), got.headers, got.body, { GITHUB_WEBHOOK_SECRET: 'rotated' }),
    ).not.toThrow();
  });

  it.each([
    ['unset', {}],
    ['empty', { GITHUB_WEBHOOK_SECRET: '' }],
  ])('secrets - an %s env secret gives REFLEX_ERR_WEBHOOK_SECRET_MISSING', async (_, environment) => {
    const got = await post({ 'X-Hub-Signature-256': sign(pushBody) }, pushBody);
    const error = refusal(() => verifyWebhookRequest(githubWebhook(), got.headers, got.body, environment));
    expect(error.code).toBe('REFLEX_ERR_WEBHOOK_SECRET_MISSING');
    expect(error.statusCode).toBe(500);
    expect(error.message).toContain('GITHUB_WEBHOOK_SECRET');
    expect(error.message).toContain('`github`');
  });

  it('secrets - takes an inline secret as is', async () => {
    const webhook = githubWebhook({
      type: 'hmac',
      header: 'X-Hub-Signature-256',
      prefix: 'sha256=',
      secret: { value: 'inline' },
    });
    const got = await post({ 'X-Hub-Signature-256': sign(pushBody, 'inline') }, pushBody);
    expect(() => verifyWebhookRequest(webhook, got.headers, got.body, {})).not.toThrow();
  });
});

describe('webhook-request token auth', () => {
  const bearer = githubWebhook({
    type: 'token',
    header: 'Authorization',
    prefix: 'Bearer ',
    secret: { env: 'HOOK_TOKEN' },
  });
  const tokenEnv = { HOOK_TOKEN: 'tok-123456' };

  it('token - accepts the right token after the prefix', async () => {
    const got = await post({ Authorization: 'Bearer tok-123456' }, '{}');
    expect(() => verifyWebhookRequest(bearer, got.headers, got.body, tokenEnv)).not.toThrow();
  });

  it.each([
    ['a wrong token', 'Bearer tok-654321'],
    ['a shorter token', 'Bearer tok'],
    ['a longer token', 'Bearer tok-1234567'],
    ['the token without its prefix', 'tok-123456'],
    ['another scheme', 'Basic tok-123456'],
  ])('token - refuses %s', async (_, value) => {
    const got = await post({ Authorization: value }, '{}');
    const error = refusal(() => verifyWebhookRequest(bearer, got.headers, got.body, tokenEnv));
    expect(error.code).toBe('REFLEX_ERR_WEBHOOK_UNAUTHORIZED');
    expect(error.message).toContain('does not match');
    expect(error.message).not.toContain('tok-123456');
  });

  it('token - refuses a request without the header', async () => {
    const got = await post({}, '{}');
    const error = refusal(() => verifyWebhookRequest(bearer, got.headers, got.body, tokenEnv));
    expect(error.message).toContain('missing header Authorization');
  });

  it('token - reads a custom header with no prefix (GitLab style)', async () => {
    const gitlab = githubWebhook({
      type: 'token',
      header: 'X-Gitlab-Token',
      prefix: '',
      secret: { value: 'glt-s3cret' },
    });
    const good = await post({ 'X-Gitlab-Token': 'glt-s3cret' });
    expect(() => verifyWebhookRequest(gitlab, good.headers, good.body, {})).not.toThrow();
    const bad = await post({ 'X-Gitlab-Token': 'glt-s3cre' });
    expect(() => verifyWebhookRequest(gitlab, bad.headers, bad.body, {})).toThrow(/does not match/);
  });

  it('token - compares a non-ASCII token by its UTF-8 bytes', async () => {
    const webhook = githubWebhook({ type: 'token', header: 'X-Token', prefix: '', secret: { value: 'clé' } });
    // Sent as UTF-8 bytes on the wire; Node reads header bytes as latin1.
    const got = await post({ 'X-Token': Buffer.from('clé', 'utf8').toString('latin1') });
    expect(() => verifyWebhookRequest(webhook, got.headers, got.body, {})).not.toThrow();
  });

  it('none - lets every request through', async () => {
    const got = await post({}, 'anything');
    expect(() =>
      verifyWebhookRequest(githubWebhook({ type: 'none' }), got.headers, got.body, {}),
    ).not.toThrow();
  });
});

describe('webhook-request event', () => {
  const now = Date.parse('2026-11-27T10:00:00.000Z');
  let counter = 0;
  const options = { now, newId: () => `generated-${++counter}`, limits: defaultEventLimits };

  it('event - builds a CloudEvent from a GitHub push', async () => {
    const got = await post(
      {
        'Content-Type': 'application/json',
        'X-GitHub-Event': 'push',
        'X-GitHub-Delivery': '72d3162e-cc78-11e3-81ab-4c9367dc0958',
        'X-GitHub-Hook-Installation-Target-Type': 'repository',
      },
      pushBody,
    );
    const event = webhookRequestToEvent(githubWebhook(), got.headers, got.body, options);
    expect(event).toEqual({
      specversion: '1.0',
      id: '72d3162e-cc78-11e3-81ab-4c9367dc0958',
      source: 'https://github.com/acme/shop',
      type: 'com.github.push',
      subject: 'target/repository',
      time: '2026-11-27T10:00:00.000Z',
      datacontenttype: 'application/json',
      data: { ref: 'refs/heads/main', pusher: { name: 'Zoë' }, commits: [1, 2] },
    });
  });

  it('event - makes an id when the id header is absent', async () => {
    const got = await post({ 'X-GitHub-Event': 'ping' }, '{}');
    const first = webhookRequestToEvent(githubWebhook(), got.headers, got.body, options);
    const second = webhookRequestToEvent(githubWebhook(), got.headers, got.body, options);
    expect(first.id).toMatch(/^generated-\d+$/);
    expect(second.id).not.toBe(first.id);
  });

  it('event - makes an id when the webhook names no id header', async () => {
    const webhook = { ...githubWebhook(), id: undefined };
    const got = await post({ 'X-GitHub-Event': 'ping', 'X-GitHub-Delivery': 'ignored' }, '{}');
    expect(webhookRequestToEvent(webhook, got.headers, got.body, options).id).toMatch(/^generated-/);
  });

  it('event - uses the type fallback, without the prefix, when the header is absent', async () => {
    const webhook: Webhook = {
      ...githubWebhook(),
      type: { header: 'X-GitHub-Event', prefix: 'com.github.', fallback: 'com.github.unknown' },
    };
    const absent = await post({}, '{}');
    expect(webhookRequestToEvent(webhook, absent.headers, absent.body, options).type).toBe(
      'com.github.unknown',
    );
    const present = await post({ 'X-GitHub-Event': 'issues' }, '{}');
    expect(webhookRequestToEvent(webhook, present.headers, present.body, options).type).toBe(
      'com.github.issues',
    );
  });

  it('event - refuses a request without the type header when there is no fallback', async () => {
    const got = await post({}, '{}');
    const error = refusal(() => webhookRequestToEvent(githubWebhook(), got.headers, got.body, options));
    expect(error.code).toBe('REFLEX_ERR_WEBHOOK_MISSING_HEADER');
    expect(error.statusCode).toBe(400);
    expect(error.message).toContain('`X-GitHub-Event`');
    expect(error.message).toContain('`type`');
  });

  it('event - takes a fixed type and subject as configured', async () => {
    const webhook: Webhook = {
      ...githubWebhook({ type: 'none' }),
      type: { value: 'com.example.alert' },
      subject: { value: 'alertmanager' },
    };
    const got = await post({ 'X-GitHub-Event': 'push' }, '{"alerts":[]}');
    const event = webhookRequestToEvent(webhook, got.headers, got.body, options);
    expect(event.type).toBe('com.example.alert');
    expect(event.subject).toBe('alertmanager');
  });

  it('event - leaves the subject out when its header is absent and has no fallback', async () => {
    const got = await post({ 'X-GitHub-Event': 'push' }, '{}');
    const event = webhookRequestToEvent(githubWebhook(), got.headers, got.body, options);
    expect(event).not.toHaveProperty('subject');
  });

  it('event - an empty body gives no data and no content type', async () => {
    const got = await post({ 'X-GitHub-Event': 'ping' });
    const event = webhookRequestToEvent(githubWebhook(), got.headers, got.body, options);
    expect(event).not.toHaveProperty('data');
    expect(event).not.toHaveProperty('datacontenttype');
  });

  it('event - keeps any JSON value as data', async () => {
    const got = await post({ 'X-GitHub-Event': 'list' }, '[1, "two", null]');
    expect(webhookRequestToEvent(githubWebhook(), got.headers, got.body, options).data).toEqual([
      1,
      'two',
      null,
    ]);
  });

  it('event - refuses a body that is not JSON', async () => {
    const got = await post({ 'X-GitHub-Event': 'push' }, 'payload=%7B%7D');
    const error = refusal(() => webhookRequestToEvent(githubWebhook(), got.headers, got.body, options));
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_JSON');
  });

  it('event - refuses data nested deeper than the limit', async () => {
    const got = await post({ 'X-GitHub-Event': 'push' }, '{"a":{"b":{"c":{}}}}');
    const tight = { ...options, limits: { maxDepth: 3 } };
    const error = refusal(() => webhookRequestToEvent(githubWebhook(), got.headers, got.body, tight));
    expect(error.code).toBe('REFLEX_ERR_EVENT_TOO_DEEP');
    expect(() =>
      webhookRequestToEvent(githubWebhook(), got.headers, got.body, { ...options, limits: { maxDepth: 4 } }),
    ).not.toThrow();
  });

  it('event - refuses a __proto__ key in the body', async () => {
    const got = await post({ 'X-GitHub-Event': 'push' }, '{"user": {"__proto__": {"admin": true}}}');
    const error = refusal(() => webhookRequestToEvent(githubWebhook(), got.headers, got.body, options));
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_JSON');
    expect(error.message).toContain('$.user.__proto__');
  });
});

describe('webhook-request timestamped schemes', () => {
  const now = Date.parse('2026-11-27T10:00:00Z');
  const seconds = (ms: number) => String(Math.floor(ms / 1000));
  const minute = 60_000;
  const body = '{"id":"evt_1NXz","type":"invoice.paid","data":{"amount":1200}}';
  const key = Buffer.from('a 32-byte key for standard hooks');
  const standardSecret = `whsec_${key.toString('base64')}`;

  /** Signs `payload` at `at` as each provider documents it; returns the request headers. */
  const signers: Record<
    'stripe' | 'slack' | 'standard',
    (payload: string, at: number, id?: string) => Record<string, string>
  > = {
    stripe: (payload, at) => {
      const t = seconds(at);
      const v1 = createHmac('sha256', 'whsec_stripe').update(`${t}.${payload}`).digest('hex');
      return { 'Stripe-Signature': `t=${t},v1=${v1},v0=ignored` };
    },
    slack: (payload, at) => {
      const t = seconds(at);
      const v0 = createHmac('sha256', 'slack-signing').update(`v0:${t}:${payload}`).digest('hex');
      return { 'X-Slack-Request-Timestamp': t, 'X-Slack-Signature': `v0=${v0}` };
    },
    standard: (payload, at, id = 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W') => {
      const t = seconds(at);
      const v1 = createHmac('sha256', key).update(`${id}.${t}.${payload}`).digest('base64');
      return { 'webhook-id': id, 'webhook-timestamp': t, 'webhook-signature': `v1,${v1}` };
    },
  };
  const secrets = { stripe: 'whsec_stripe', slack: 'slack-signing', standard: standardSecret };
  const hookFor = (scheme: 'stripe' | 'slack' | 'standard', replayWindowMs = 5 * minute): Webhook => ({
    name: scheme,
    type: { value: `com.example.${scheme}` },
    source: `https://${scheme}.example`,
    auth: { type: scheme, secret: { value: secrets[scheme] }, replayWindowMs },
    location,
  });
  const schemes = ['stripe', 'slack', 'standard'] as const;

  it.each(schemes)(
    '%s - accepts a delivery signed now, and one signed 4 minutes either way',
    async (scheme) => {
      for (const at of [now, now - 4 * minute, now + 4 * minute]) {
        const got = await post(signers[scheme](body, at), body);
        expect(() => verifyWebhookRequest(hookFor(scheme), got.headers, got.body, {}, now)).not.toThrow();
      }
    },
  );

  it.each(schemes)(
    '%s - refuses a stale delivery and one from the future, outside the replay window',
    async (scheme) => {
      for (const [at, when] of [
        [now - 6 * minute, 'earlier'],
        [now + 6 * minute, 'later'],
        [now - 30 * 24 * 60 * minute, 'earlier'],
      ] as const) {
        const got = await post(signers[scheme](body, at), body);
        const error = refusal(() => verifyWebhookRequest(hookFor(scheme), got.headers, got.body, {}, now));
        expect(error.code).toBe('REFLEX_ERR_WEBHOOK_OUTSIDE_REPLAY_WINDOW');
        expect(error.statusCode).toBe(401);
        expect(error.message).toContain(when);
        expect(error.message).toContain('replay window of 5m');
      }
      // A wider window, set on the webhook, takes the 6-minute-old one.
      const got = await post(signers[scheme](body, now - 6 * minute), body);
      expect(() =>
        verifyWebhookRequest(hookFor(scheme, 10 * minute), got.headers, got.body, {}, now),
      ).not.toThrow();
    },
  );

  it.each(schemes)(
    '%s - refuses a tampered body, a shifted timestamp, another secret and missing headers',
    async (scheme) => {
      const headers = signers[scheme](body, now);
      const tampered = await post(headers, body.replace('1200', '9900'));
      expect(
        refusal(() => verifyWebhookRequest(hookFor(scheme), tampered.headers, tampered.body, {}, now)).code,
      ).toBe('REFLEX_ERR_WEBHOOK_UNAUTHORIZED');
      // Moving the timestamp into the window without re-signing breaks the signature.
      const stale = signers[scheme](body, now - 10 * minute);
      const shifted = Object.fromEntries(
        Object.entries(stale).map(([name, value]) => [
          name,
          value.replace(seconds(now - 10 * minute), seconds(now)),
        ]),
      );
      const moved = await post(shifted, body);
      expect(
        refusal(() => verifyWebhookRequest(hookFor(scheme), moved.headers, moved.body, {}, now)).code,
      ).toBe('REFLEX_ERR_WEBHOOK_UNAUTHORIZED');
      const other: Webhook = {
        ...hookFor(scheme),
        auth: { type: scheme, secret: { value: 'whsec_b3RoZXI=' }, replayWindowMs: 5 * minute },
      };
      const good = await post(headers, body);
      const wrongSecret = refusal(() => verifyWebhookRequest(other, good.headers, good.body, {}, now));
      expect(wrongSecret.code).toBe('REFLEX_ERR_WEBHOOK_UNAUTHORIZED');
      expect(wrongSecret.message).not.toContain(secrets[scheme]);
      const bare = await post({}, body);
      const missing = refusal(() => verifyWebhookRequest(hookFor(scheme), bare.headers, bare.body, {}, now));
      expect(missing.message).toContain('headers are missing');
      expect(missing.message).toContain('To fix');
    },
  );

  it('stripe - accepts when any one of several v1 signatures matches (secret rotation)', async () => {
    const t = seconds(now);
    const good = createHmac('sha256', 'whsec_stripe').update(`${t}.${body}`).digest('hex');
    const got = await post({ 'Stripe-Signature': `t=${t},v1=${'0'.repeat(64)},v1=${good}` }, body);
    expect(() => verifyWebhookRequest(hookFor('stripe'), got.headers, got.body, {}, now)).not.toThrow();
  });

  it('standard - a changed webhook-id breaks the signature: the id is signed', async () => {
    const headers = { ...signers.standard(body, now), 'webhook-id': 'msg_new' };
    const got = await post(headers, body);
    expect(
      refusal(() => verifyWebhookRequest(hookFor('standard'), got.headers, got.body, {}, now)).code,
    ).toBe('REFLEX_ERR_WEBHOOK_UNAUTHORIZED');
  });

  it('timestamped - the event id is what the signature covers: the body id, the webhook-id, or a hash of the signed bytes', async () => {
    const options = { now, newId: () => 'fresh', limits: defaultEventLimits };
    for (const scheme of schemes) {
      const got = await post(signers[scheme](body, now), body);
      const verified = verifyWebhookRequest(hookFor(scheme), got.headers, got.body, {}, now);
      const event = webhookRequestToEvent(hookFor(scheme), got.headers, got.body, {
        ...options,
        ...verified,
      });
      expect([scheme, event.id]).toEqual([
        scheme,
        scheme === 'standard'
          ? 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W'
          : scheme === 'stripe'
            ? 'evt_1NXz'
            : expect.stringMatching(/^sha256:[0-9a-f]{32}$/),
      ]);
    }
    // Slack's Events API puts its id in `event_id`.
    const slackBody = '{"type":"event_callback","event_id":"Ev0PV52K21"}';
    const got = await post(signers.slack(slackBody, now), slackBody);
    const verified = verifyWebhookRequest(hookFor('slack'), got.headers, got.body, {}, now);
    expect(
      webhookRequestToEvent(hookFor('slack'), got.headers, got.body, { ...options, ...verified }).id,
    ).toBe('Ev0PV52K21');
  });
});

describe('webhook-request fuzzing', () => {
  const schemes = ['stripe', 'slack', 'standard'] as const;
  const headerNames = [
    'stripe-signature',
    'x-slack-request-timestamp',
    'x-slack-signature',
    'webhook-id',
    'webhook-timestamp',
    'webhook-signature',
    'x-hub-signature-256',
    'x-github-event',
    'x-github-delivery',
  ];
  const text = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.constantFrom('t=1,v1=', 'v0=', 'v1,', 't=99999999999999,v1=00', '1e400', '-1', ' '),
    fc.string({ unit: fc.nat(255).map((code) => String.fromCharCode(code)), maxLength: 30 }),
  );

  it('webhook-request - random headers and bodies give a coded error or an event, never anything else', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...schemes, 'hmac' as const, 'token' as const),
        fc.dictionary(fc.constantFrom(...headerNames), fc.oneof(text, fc.array(text, { maxLength: 3 }))),
        fc.oneof(fc.string({ maxLength: 60 }), fc.json()),
        fc.integer({ min: -1e13, max: 1e13 }),
        (scheme, headers, body, now) => {
          const auth: WebhookAuth =
            scheme === 'hmac' || scheme === 'token'
              ? {
                  type: scheme,
                  header: scheme === 'hmac' ? 'X-Hub-Signature-256' : 'Authorization',
                  prefix: '',
                  secret: { value: 's' },
                }
              : { type: scheme, secret: { value: 'whsec_c2VjcmV0' }, replayWindowMs: 300_000 };
          const webhook = githubWebhook(auth);
          try {
            const verified = verifyWebhookRequest(webhook, headers, Buffer.from(body), {}, now);
            webhookRequestToEvent(webhook, headers, Buffer.from(body), {
              now: Math.abs(now) % 8.64e15,
              newId: () => 'id',
              limits: defaultEventLimits,
              ...verified,
            });
          } catch (error) {
            if (!(error instanceof ReflexError)) throw error;
            expect(error.statusCode).toBeGreaterThanOrEqual(400);
            expect(error.statusCode).toBeLessThan(500);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});
