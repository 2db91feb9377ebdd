import { createHmac } from 'node:crypto';
import { CloudEvent, HTTP } from 'cloudevents';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ApiError,
  type ApiEvent,
  type ApiExplanation,
  type ApiPage,
  type ApiResponse,
  type ApiRun,
  type ApiRunDetail,
  type AppendReply,
  allEvents,
  type BatchReply,
  fetchHeaders,
  type HttpApi,
  type HttpApiOptions,
  startHttpApi,
  waitForRuns,
} from '../helpers/http-api-server.js';

// The HTTP contract other tools rely on, checked over a real socket against a real engine and SQLite store.

let api: HttpApi | undefined;

afterEach(async () => {
  await api?.close();
  api = undefined;
});

async function start(options: HttpApiOptions = {}): Promise<HttpApi> {
  api = await startHttpApi(options);
  return api;
}

/** Sends a cloudevents SDK message (structured or binary) to `POST /api/v1/events`. */
function sendMessage<T = AppendReply>(
  server: HttpApi,
  message: { headers: Record<string, string | string[] | undefined>; body: unknown },
  extraHeaders: Record<string, string> = {},
): Promise<ApiResponse<T>> {
  return server.call<T>('/api/v1/events', {
    method: 'POST',
    headers: { ...fetchHeaders(message.headers), ...extraHeaders },
    body: message.body as string,
  });
}

/** Posts a JSON body with a given content type. */
function postRaw<T>(server: HttpApi, path: string, contentType: string, body: string | Uint8Array) {
  return server.call<T>(path, { method: 'POST', headers: { 'content-type': contentType }, body });
}

/** Asserts the coded error shape and returns the error for further checks. */
function expectError(response: ApiResponse<unknown>, status: number, code: string): ApiError['error'] {
  expect({ status: response.status, code: (response.body as ApiError | undefined)?.error?.code }).toEqual({
    status,
    code,
  });
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  const error = (response.body as ApiError).error;
  expect(typeof error.message).toBe('string');
  expect(error.message).toContain('To fix');
  return error;
}

function event(id: string, extra: Record<string, unknown> = {}) {
  return { specversion: '1.0', id, source: 'https://shop.example/orders', type: 'order.created', ...extra };
}

function sign(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

const githubRulebook = `
webhooks:
  github:
    type: { header: X-GitHub-Event, prefix: com.github. }
    source: https://github.com/acme/shop
    id: { header: X-GitHub-Delivery }
    auth:
      hmac: { secret: { env: GITHUB_WEBHOOK_SECRET } }
rules: []
`;
const githubSecret = 'It is a secret to everybody';

/**
 * Posts `payload` to `/hooks/github` as GitHub does: X-GitHub-Event, X-GitHub-Delivery, and
 * X-Hub-Signature-256 over the exact body (signed with `secret`, or replaced by `signature`; null sends none).
 */
function githubDelivery(
  server: HttpApi,
  payload: unknown,
  options: { delivery: string; event?: string; secret?: string; signature?: string | null },
) {
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-github-event': options.event ?? 'push',
    'x-github-delivery': options.delivery,
  };
  const signature =
    options.signature === undefined ? sign(options.secret ?? githubSecret, body) : options.signature;
  if (signature !== null) headers['x-hub-signature-256'] = signature;
  return server.call<AppendReply>('/hooks/github', { method: 'POST', headers, body });
}

describe('http api - ingest', () => {
  it('http api - a structured CloudEvent from the SDK is acked 202 after commit and is readable at its seq', async () => {
    const server = await start();
    const ce = new CloudEvent({
      id: 'order-1',
      source: 'https://shop.example/orders',
      type: 'order.created',
      subject: 'A-1',
      data: { orderId: 'A-1', total: 42.5 },
    });
    const res = await sendMessage(server, HTTP.structured(ce));
    expect(res.status).toBe(202);
    expect(res.body).toEqual({
      seq: expect.any(Number),
      id: 'order-1',
      source: 'https://shop.example/orders',
    });

    const read = await server.call<ApiEvent>(`/api/v1/events/${res.body.seq}`);
    expect(read.status).toBe(200);
    expect(read.body.seq).toBe(res.body.seq);
    expect(new Date(read.body.receivedAt).toISOString()).toBe(read.body.receivedAt);
    expect(read.body.event).toMatchObject({
      specversion: '1.0',
      id: 'order-1',
      source: 'https://shop.example/orders',
      type: 'order.created',
      subject: 'A-1',
      time: ce.time,
      data: { orderId: 'A-1', total: 42.5 },
    });
    // What the API gives back is a CloudEvent the SDK itself accepts.
    expect(new CloudEvent(read.body.event).validate()).toBe(true);
  });

  it('http api - a binary-mode CloudEvent from the SDK is acked 202 and stored with its JSON data', async () => {
    const server = await start();
    const ce = new CloudEvent({
      id: 'alert-7',
      source: 'alertmanager',
      type: 'alert.firing',
      data: { labels: { severity: 'critical' } },
    });
    const res = await sendMessage(server, HTTP.binary(ce));
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ seq: expect.any(Number), id: 'alert-7', source: 'alertmanager' });

    const read = await server.call<ApiEvent>(`/api/v1/events/${res.body.seq}`);
    expect(read.status).toBe(200);
    expect(read.body.event).toMatchObject({
      id: 'alert-7',
      source: 'alertmanager',
      type: 'alert.firing',
      time: ce.time,
      data: { labels: { severity: 'critical' } },
    });
    expect(read.body.event.datacontenttype).toMatch(/^application\/json/);
  });

  it('http api - a batch is acked 202 with one item per event, in order, each readable at its seq', async () => {
    const server = await start();
    const batch = [
      new CloudEvent({ id: 'b-1', source: 'batcher', type: 'tick', data: { n: 1 } }),
      new CloudEvent({ id: 'b-2', source: 'batcher', type: 'tick', data: { n: 2 } }),
      new CloudEvent({ id: 'b-3', source: 'batcher', type: 'tock', data: { n: 3 } }),
    ];
    const res = await postRaw<BatchReply>(
      server,
      '/api/v1/events',
      'application/cloudevents-batch+json',
      JSON.stringify(batch),
    );
    expect(res.status).toBe(202);
    expect(res.body.items.map((i) => i.id)).toEqual(['b-1', 'b-2', 'b-3']);
    expect(res.body.items.every((i) => i.source === 'batcher' && i.duplicate === undefined)).toBe(true);
    const seqs = res.body.items.map((i) => i.seq);
    expect(seqs[1]).toBe(seqs[0]! + 1);
    expect(seqs[2]).toBe(seqs[0]! + 2);
    for (const [i, item] of res.body.items.entries()) {
      const read = await server.call<ApiEvent>(`/api/v1/events/${item.seq}`);
      expect(read.body.event).toMatchObject({ id: `b-${i + 1}`, data: { n: i + 1 } });
    }
  });

  it('http api - a repeated event answers 200 duplicate with the original seq and is stored once', async () => {
    const server = await start();
    const first = await server.call<AppendReply>('/api/v1/events', {
      json: event('dup-1', { data: { v: 1 } }),
    });
    expect(first.status).toBe(202);

    const again = await server.call<AppendReply>('/api/v1/events', {
      json: event('dup-1', { data: { v: 2 } }),
    });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({
      seq: first.body.seq,
      id: 'dup-1',
      source: 'https://shop.example/orders',
      duplicate: true,
    });

    // Binary mode is the same event for dedup purposes.
    const ce = new CloudEvent({ id: 'dup-1', source: 'https://shop.example/orders', type: 'order.created' });
    const binary = await sendMessage(server, HTTP.binary(ce));
    expect(binary.status).toBe(200);
    expect(binary.body).toMatchObject({ seq: first.body.seq, duplicate: true });

    // Identity is (source, id): the same id from another source is another event.
    const otherSource = await server.call<AppendReply>('/api/v1/events', {
      json: event('dup-1', { source: 'https://other.example' }),
    });
    expect(otherSource.status).toBe(202);
    expect(otherSource.body.seq).not.toBe(first.body.seq);

    const listed = await server.call<ApiPage<ApiEvent>>('/api/v1/events?limit=100');
    const copies = listed.body.items.filter(
      (e) => e.event.id === 'dup-1' && e.event.source === 'https://shop.example/orders',
    );
    expect(copies).toHaveLength(1);
    expect(copies[0]!.event.data).toEqual({ v: 1 });
    expect(listed.body.items).toHaveLength(2);
  });

  it('http api - a batch with some repeats answers 202 and marks only the repeats as duplicates', async () => {
    const server = await start();
    const first = await server.call<AppendReply>('/api/v1/events', { json: event('seen') });
    const res = await postRaw<BatchReply>(
      server,
      '/api/v1/events',
      'application/cloudevents-batch+json',
      JSON.stringify([event('seen'), event('fresh')]),
    );
    expect(res.status).toBe(202);
    expect(res.body.items).toEqual([
      { seq: first.body.seq, id: 'seen', source: 'https://shop.example/orders', duplicate: true },
      { seq: expect.any(Number), id: 'fresh', source: 'https://shop.example/orders' },
    ]);

    const allRepeats = await postRaw<BatchReply>(
      server,
      '/api/v1/events',
      'application/cloudevents-batch+json',
      JSON.stringify([event('seen'), event('fresh')]),
    );
    expect(allRepeats.status).toBe(200);
    expect(allRepeats.body.items.every((i) => i.duplicate === true)).toBe(true);
    expect(await allEvents(server)).toHaveLength(2);
  });

  it('http api - a batch that holds one event twice stores it once', async () => {
    const server = await start();
    const res = await postRaw<BatchReply>(
      server,
      '/api/v1/events',
      'application/cloudevents-batch+json',
      JSON.stringify([event('twice', { data: { n: 1 } }), event('twice', { data: { n: 2 } })]),
    );
    expect(res.status).toBe(202);
    expect(res.body.items[1]).toEqual({ ...res.body.items[0], duplicate: true });
    const stored = await allEvents(server);
    expect(stored.map((e) => e.event.data)).toEqual([{ n: 1 }]);
  });
});

describe('http api - webhooks', () => {
  it('http api - a GitHub-signed webhook is accepted; its event takes the type and id from the headers', async () => {
    const server = await start({ rulebook: githubRulebook, env: { GITHUB_WEBHOOK_SECRET: githubSecret } });
    const payload = { ref: 'refs/heads/main', repository: { full_name: 'acme/shop' } };
    const delivery = '72d3162e-cc78-11e3-81ab-4c9367dc0958';
    const res = await githubDelivery(server, payload, { delivery, event: 'push' });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({
      seq: expect.any(Number),
      id: delivery,
      source: 'https://github.com/acme/shop',
    });

    const read = await server.call<ApiEvent>(`/api/v1/events/${res.body.seq}`);
    expect(read.status).toBe(200);
    expect(read.body.event).toMatchObject({
      specversion: '1.0',
      id: delivery,
      source: 'https://github.com/acme/shop',
      type: 'com.github.push',
      datacontenttype: 'application/json',
      data: payload,
    });
    expect(new CloudEvent(read.body.event).validate()).toBe(true);

    // GitHub redelivers with the same delivery id: the repeat is acknowledged and not stored again.
    const redelivery = await githubDelivery(server, payload, { delivery, event: 'push' });
    expect(redelivery.status).toBe(200);
    expect(redelivery.body).toMatchObject({ seq: res.body.seq, id: delivery, duplicate: true });
    expect(await allEvents(server)).toHaveLength(1);
  });

  it.each([
    { name: 'signed with another secret', options: { secret: 'not the secret' } },
    { name: 'with a tampered signature', options: { signature: `sha256=${'0'.repeat(64)}` } },
    { name: 'with the signature in the wrong form', options: { signature: 'md5=abc' } },
    { name: 'without a signature', options: { signature: null } },
  ])('http api - a webhook request $name answers 401 and stores nothing', async ({ options }) => {
    const server = await start({ rulebook: githubRulebook, env: { GITHUB_WEBHOOK_SECRET: githubSecret } });
    const accepted = await githubDelivery(server, { n: 1 }, { delivery: 'before' });
    expect(accepted.status).toBe(202);
    const before = await allEvents(server);

    const res = await githubDelivery(server, { n: 2 }, { delivery: 'forged', ...options });
    const error = expectError(res, 401, 'REFLEX_ERR_WEBHOOK_UNAUTHORIZED');
    expect(error.message).toContain('github');
    expect(error.message).not.toContain(githubSecret);
    expect(await allEvents(server)).toEqual(before);

    // Had the refused request been stored, the same delivery id would now be a duplicate.
    const genuine = await githubDelivery(server, { n: 2 }, { delivery: 'forged' });
    expect(genuine.status).toBe(202);
    expect(await allEvents(server)).toHaveLength(before.length + 1);
  });

  it('http api - a webhook whose secret variable is unset answers 500 naming the variable, and stores nothing', async () => {
    const server = await start({ rulebook: githubRulebook, env: {} });
    const res = await githubDelivery(server, { n: 1 }, { delivery: 'd-1' });
    const error = expectError(res, 500, 'REFLEX_ERR_WEBHOOK_SECRET_MISSING');
    expect(error.message).toContain('GITHUB_WEBHOOK_SECRET');
    expect(await allEvents(server)).toEqual([]);
  });

  it('http api - an unknown webhook answers 404 with its name', async () => {
    const server = await start({ rulebook: githubRulebook, env: { GITHUB_WEBHOOK_SECRET: githubSecret } });
    const res = await server.call('/hooks/gitlab', { json: { n: 1 } });
    const error = expectError(res, 404, 'REFLEX_ERR_WEBHOOK_NOT_FOUND');
    expect(error.message).toContain('gitlab');
    expect(await allEvents(server)).toEqual([]);
  });
});

describe('http api - bad input', () => {
  it.each([
    { name: 'structured', contentType: 'application/cloudevents+json' },
    { name: 'plain JSON', contentType: 'application/json' },
    { name: 'batch', contentType: 'application/cloudevents-batch+json' },
  ])('http api - malformed JSON ($name) answers 400 and stores nothing', async ({ contentType }) => {
    const server = await start();
    const res = await postRaw(server, '/api/v1/events', contentType, '{"specversion": "1.0", "id": ');
    expectError(res, 400, 'REFLEX_ERR_EVENT_INVALID_JSON');
    const empty = await postRaw(server, '/api/v1/events', contentType, '');
    expectError(empty, 400, 'REFLEX_ERR_EVENT_INVALID_JSON');
    expect(await allEvents(server)).toEqual([]);
  });

  it('http api - malformed JSON to a webhook answers 400 and stores nothing', async () => {
    const server = await start({ rulebook: githubRulebook, env: { GITHUB_WEBHOOK_SECRET: githubSecret } });
    const body = '{"ref": ';
    const res = await server.call('/hooks/github', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'push',
        'x-github-delivery': 'd-1',
        'x-hub-signature-256': sign(githubSecret, body),
      },
      body,
    });
    expectError(res, 400, 'REFLEX_ERR_EVENT_INVALID_JSON');
    expect(await allEvents(server)).toEqual([]);
  });

  it.each(['id', 'source', 'type', 'specversion'])(
    'http api - a structured event without `%s` answers 400 naming the attribute',
    async (attribute) => {
      const server = await start();
      const body: Record<string, unknown> = event('e-1');
      delete body[attribute];
      const res = await postRaw(
        server,
        '/api/v1/events',
        'application/cloudevents+json',
        JSON.stringify(body),
      );
      const error = expectError(res, 400, 'REFLEX_ERR_EVENT_MISSING_ATTRIBUTE');
      expect(error.message).toContain(`\`${attribute}\``);
      expect(await allEvents(server)).toEqual([]);
    },
  );

  it('http api - the reflexchain extension is reserved to Reflex and refused from outside', async () => {
    const server = await start();
    const res = await postRaw(
      server,
      '/api/v1/events',
      'application/cloudevents+json',
      JSON.stringify({ ...event('e-1'), reflexchain: 99 }),
    );
    const error = expectError(res, 400, 'REFLEX_ERR_EVENT_INVALID_ATTRIBUTE');
    expect(error.message).toContain('`reflexchain`');
    expect(await allEvents(server)).toEqual([]);
  });

  it('http api - a binary-mode event without the ce-source header answers 400 naming `source`', async () => {
    const server = await start();
    const message = HTTP.binary(new CloudEvent({ id: 'b-1', source: 'x', type: 't', data: { a: 1 } }));
    const headers = fetchHeaders(message.headers);
    delete headers['ce-source'];
    const res = await server.call('/api/v1/events', {
      method: 'POST',
      headers,
      body: message.body as string,
    });
    const error = expectError(res, 400, 'REFLEX_ERR_EVENT_MISSING_ATTRIBUTE');
    expect(error.message).toContain('`source`');
    expect(await allEvents(server)).toEqual([]);
  });

  it('http api - a batch with one bad item answers 400 naming the item, and stores none of the batch', async () => {
    const server = await start();
    const bad: Record<string, unknown> = event('b-2');
    delete bad.type;
    const res = await postRaw(
      server,
      '/api/v1/events',
      'application/cloudevents-batch+json',
      JSON.stringify([event('b-1'), bad, event('b-3')]),
    );
    const error = expectError(res, 400, 'REFLEX_ERR_EVENT_MISSING_ATTRIBUTE');
    expect(error.message).toContain('`type`');
    expect(error.message).toContain('batch item 1');
    expect(await allEvents(server)).toEqual([]);
  });

  it('http api - a body over the limit answers 413, for events and webhooks, and stores nothing', async () => {
    const server = await start({
      bodyLimit: 1024,
      rulebook: githubRulebook,
      env: { GITHUB_WEBHOOK_SECRET: githubSecret },
    });
    const small = await server.call<AppendReply>('/api/v1/events', { json: event('small', { data: 'x' }) });
    expect(small.status).toBe(202);

    const big = event('big', { data: 'x'.repeat(4096) });
    const res = await postRaw(server, '/api/v1/events', 'application/cloudevents+json', JSON.stringify(big));
    const error = expectError(res, 413, 'REFLEX_ERR_EVENT_TOO_LARGE');
    expect(error.message).toContain('1024');

    const hook = await githubDelivery(server, { blob: 'x'.repeat(4096) }, { delivery: 'big' });
    expectError(hook, 413, 'REFLEX_ERR_EVENT_TOO_LARGE');

    expect((await allEvents(server)).map((e) => e.event.id)).toEqual(['small']);
  });

  it('http api - a body over the limit sent without Content-Length (chunked) answers 413', async () => {
    const server = await start({ bodyLimit: 1024 });
    const bytes = new TextEncoder().encode(JSON.stringify(event('chunked', { data: 'x'.repeat(4096) })));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 512) controller.enqueue(bytes.slice(i, i + 512));
        controller.close();
      },
    });
    const res = await server.call('/api/v1/events', {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: stream,
      // Node's fetch needs this for a streamed body.
      duplex: 'half',
    } as RequestInit);
    expectError(res, 413, 'REFLEX_ERR_EVENT_TOO_LARGE');
    expect(await allEvents(server)).toEqual([]);
  });

  it('http api - data nested deeper than the limit answers 400 and stores nothing', async () => {
    const server = await start({ limits: { maxDepth: 8 } });
    let deep: unknown = 'bottom';
    for (let i = 0; i < 9; i++) deep = { next: deep };
    const res = await postRaw(
      server,
      '/api/v1/events',
      'application/cloudevents+json',
      JSON.stringify(event('deep', { data: deep })),
    );
    const error = expectError(res, 400, 'REFLEX_ERR_EVENT_TOO_DEEP');
    expect(error.message).toContain('8');

    // One level less is fine: the limit is not off by one.
    const ok = await postRaw(
      server,
      '/api/v1/events',
      'application/cloudevents+json',
      JSON.stringify(event('shallow', { data: (deep as { next: unknown }).next })),
    );
    expect(ok.status).toBe(202);
    expect((await allEvents(server)).map((e) => e.event.id)).toEqual(['shallow']);
  });

  it('http api - a webhook payload nested deeper than the default limit answers 400', async () => {
    const server = await start({ rulebook: githubRulebook, env: { GITHUB_WEBHOOK_SECRET: githubSecret } });
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    const res = await githubDelivery(server, deep, { delivery: 'deep' });
    expectError(res, 400, 'REFLEX_ERR_EVENT_TOO_DEEP');
    expect(await allEvents(server)).toEqual([]);
  });

  it('http api - a cursor that holds no position of the listing answers 400 instead of restarting the listing', async () => {
    const server = await start({
      rulebook: `
rules:
  - name: note
    when: { pattern: { type: [order.created] } }
    then: [{ log: noted }]
`,
    });
    await postRaw(
      server,
      '/api/v1/events',
      'application/cloudevents-batch+json',
      JSON.stringify([event('c-1'), event('c-2')]),
    );
    await waitForRuns(server, 'note', { count: 2 });
    const eventsNext = (await server.call<ApiPage<ApiEvent>>('/api/v1/events?limit=1')).body.next;
    const runsNext = (await server.call<ApiPage<ApiRun>>('/api/v1/runs?limit=1')).body.next;
    expect(eventsNext).toEqual(expect.any(String));
    expect(runsNext).toEqual(expect.any(String));

    const paths = [
      `/api/v1/events?limit=1&cursor=${Buffer.from('{}').toString('base64url')}`,
      `/api/v1/events?limit=1&cursor=${Buffer.from('[1,2]').toString('base64url')}`,
      // A client that mixes up its listings' cursors.
      `/api/v1/events?limit=1&cursor=${encodeURIComponent(runsNext!)}`,
      `/api/v1/runs?limit=1&cursor=${encodeURIComponent(eventsNext!)}`,
    ];
    const answers = [];
    for (const path of paths) {
      const res = await server.call<ApiError>(path);
      answers.push({ path, status: res.status, code: res.body.error?.code });
    }
    expect(answers).toEqual(
      paths.map((path) => ({ path, status: 400, code: 'REFLEX_ERR_API_INVALID_QUERY' })),
    );
  });

  it('http api - an event without a CloudEvents content type or ce-* headers answers 415', async () => {
    const server = await start();
    const res = await postRaw(server, '/api/v1/events', 'text/plain', 'disk full on web-1');
    const error = expectError(res, 415, 'REFLEX_ERR_EVENT_UNSUPPORTED_MEDIA_TYPE');
    expect(error.message).toContain('text/plain');
    expect(await allEvents(server)).toEqual([]);
  });

  it.each([
    ['GET', '/api/v1/nothing-here'],
    ['GET', '/'],
    ['DELETE', '/api/v1/nothing-here'],
  ])('http api - an unknown route (%s %s) answers 404 naming it', async (method, path) => {
    const server = await start({ rulebook: githubRulebook, env: { GITHUB_WEBHOOK_SECRET: githubSecret } });
    const res = await server.call(path, { method });
    const error = expectError(res, 404, 'REFLEX_ERR_API_NOT_FOUND');
    expect(error.message).toContain(`${method} ${path}`);
  });

  it.each([
    ['DELETE', '/api/v1/events', 'GET, HEAD, POST'],
    ['GET', '/hooks/github', 'POST'],
    ['POST', '/api/v1/facts/maintenance', 'GET, HEAD, PUT, DELETE'],
  ])(
    'http api - a route that does not take the method (%s %s) answers 405 with Allow',
    async (method, path, allow) => {
      const server = await start({ rulebook: githubRulebook, env: { GITHUB_WEBHOOK_SECRET: githubSecret } });
      const res = await server.call(path, { method });
      const error = expectError(res, 405, 'REFLEX_ERR_API_METHOD_NOT_ALLOWED');
      expect(res.headers.get('allow')).toBe(allow);
      expect(error.message).toContain(method);
    },
  );

  it('http api - an unknown event seq or run id answers 404', async () => {
    const server = await start();
    expectError(await server.call('/api/v1/events/999'), 404, 'REFLEX_ERR_EVENT_NOT_FOUND');
    expectError(await server.call('/api/v1/events/999/explain'), 404, 'REFLEX_ERR_EVENT_NOT_FOUND');
    expectError(await server.call('/api/v1/runs/01NOSUCHRUN'), 404, 'REFLEX_ERR_RUN_NOT_FOUND');
  });

  it.each([
    ['/api/v1/events?limit=abc', 'limit'],
    ['/api/v1/events?limit=0', 'limit'],
    ['/api/v1/events?limit=1001', 'limit'],
    ['/api/v1/events?limit=-5', 'limit'],
    ['/api/v1/events?after=-1', 'after'],
    ['/api/v1/events?after=1.5', 'after'],
    ['/api/v1/events?after=', 'after'],
    ['/api/v1/runs?limit=ten', 'limit'],
    ['/api/v1/runs?status=done', 'status'],
    // A parameter given twice reaches the server as a list, which is not a value any of them takes.
    ['/api/v1/events?limit=1&limit=2', 'limit'],
    ['/api/v1/events?type=a&type=b', 'type'],
    ['/api/v1/events?source=a&source=b', 'source'],
    ['/api/v1/runs?rule=a&rule=b', 'rule'],
  ])('http api - a bad query parameter (%s) answers 400 naming `%s`', async (path, param) => {
    const server = await start();
    const error = expectError(await server.call(path), 400, 'REFLEX_ERR_API_INVALID_QUERY');
    expect(error.message).toContain(`\`${param}\``);
  });

  it.each([
    ['/api/v1/events?cursor=not-a-cursor'],
    [`/api/v1/events?cursor=${Buffer.from('{"after":"ten"}').toString('base64url')}`],
    ['/api/v1/runs?cursor=%25%25%25'],
    [`/api/v1/runs?cursor=${Buffer.from('{"run":5}').toString('base64url')}`],
  ])('http api - a bad cursor (%s) answers 400', async (path) => {
    const server = await start();
    const error = expectError(await server.call(path), 400, 'REFLEX_ERR_API_INVALID_QUERY');
    expect(error.message).toContain('`cursor`');
  });
});

describe('http api - listing and paging', () => {
  async function send25(server: HttpApi): Promise<number[]> {
    const batch = Array.from({ length: 25 }, (_, i) => event(`p-${i + 1}`, { data: { n: i + 1 } }));
    const res = await postRaw<BatchReply>(
      server,
      '/api/v1/events',
      'application/cloudevents-batch+json',
      JSON.stringify(batch),
    );
    expect(res.status).toBe(202);
    return res.body.items.map((i) => i.seq);
  }

  /** Follows `next` from `first`, passing it back as `cursor=` with `limit=10`; returns every page. */
  async function pages(server: HttpApi, first: string): Promise<Array<ApiPage<ApiEvent>>> {
    const out: Array<ApiPage<ApiEvent>> = [];
    let path: string | null = first;
    while (path !== null) {
      const res: ApiResponse<ApiPage<ApiEvent>> = await server.call<ApiPage<ApiEvent>>(path);
      expect(res.status).toBe(200);
      out.push(res.body);
      if (out.length > 10) throw new Error('paging does not end');
      path =
        res.body.next === null ? null : `/api/v1/events?limit=10&cursor=${encodeURIComponent(res.body.next)}`;
    }
    return out;
  }

  it('http api - paging 25 events newest first with limit=10 visits each exactly once', async () => {
    const server = await start();
    const seqs = await send25(server);
    const visited = await pages(server, '/api/v1/events?limit=10');
    expect(visited.map((p) => p.items.length)).toEqual([10, 10, 5]);
    expect(visited.map((p) => p.next === null)).toEqual([false, false, true]);
    const order = visited.flatMap((p) => p.items.map((e) => e.seq));
    expect(order).toEqual([...seqs].reverse());
    expect(visited.flatMap((p) => p.items.map((e) => e.event.id))).toEqual(
      Array.from({ length: 25 }, (_, i) => `p-${25 - i}`),
    );
  });

  it('http api - paging 25 events oldest first from after=0 with limit=10 visits each exactly once', async () => {
    const server = await start();
    const seqs = await send25(server);
    const visited = await pages(server, '/api/v1/events?after=0&limit=10');
    expect(visited.map((p) => p.items.length)).toEqual([10, 10, 5]);
    expect(visited.map((p) => p.next === null)).toEqual([false, false, true]);
    expect(visited.flatMap((p) => p.items.map((e) => e.seq))).toEqual(seqs);
  });

  it('http api - after=<seq> tails the log from just after that seq, with no empty last page', async () => {
    const server = await start();
    const seqs = await send25(server);
    const tail = await server.call<ApiPage<ApiEvent>>(`/api/v1/events?after=${seqs[14]}&limit=10`);
    expect(tail.status).toBe(200);
    expect(tail.body.items.map((e) => e.seq)).toEqual(seqs.slice(15));
    expect(tail.body.next).toBeNull();

    const end = await server.call<ApiPage<ApiEvent>>(`/api/v1/events?after=${seqs[24]}`);
    expect(end.body).toEqual({ items: [], next: null });
  });

  it('http api - events filter by type and by source, and paging keeps to the filter', async () => {
    const server = await start();
    const events = [
      event('f-1', { type: 'order.created', source: 'shop' }),
      event('f-2', { type: 'order.paid', source: 'shop' }),
      event('f-3', { type: 'order.created', source: 'pos' }),
      event('f-4', { type: 'order.created', source: 'shop' }),
      event('f-5', { type: 'order.created', source: 'shop' }),
    ];
    await postRaw(server, '/api/v1/events', 'application/cloudevents-batch+json', JSON.stringify(events));
    const ids = async (path: string) =>
      (await server.call<ApiPage<ApiEvent>>(path)).body.items.map((e) => e.event.id);

    expect(await ids('/api/v1/events?type=order.created')).toEqual(['f-5', 'f-4', 'f-3', 'f-1']);
    expect(await ids('/api/v1/events?source=pos')).toEqual(['f-3']);
    expect(await ids('/api/v1/events?type=order.created&source=shop&after=0')).toEqual(['f-1', 'f-4', 'f-5']);
    expect(await ids('/api/v1/events?type=nothing.like.it')).toEqual([]);

    const first = await server.call<ApiPage<ApiEvent>>(
      '/api/v1/events?type=order.created&source=shop&limit=2',
    );
    expect(first.body.items.map((e) => e.event.id)).toEqual(['f-5', 'f-4']);
    const second = await server.call<ApiPage<ApiEvent>>(
      `/api/v1/events?type=order.created&source=shop&limit=2&cursor=${encodeURIComponent(first.body.next!)}`,
    );
    expect(second.body.items.map((e) => e.event.id)).toEqual(['f-1']);
    expect(second.body.next).toBeNull();
  });

  it('http api - an event is also found by its id', async () => {
    const server = await start();
    const res = await server.call<AppendReply>('/api/v1/events', { json: event('by-id-1') });
    const read = await server.call<ApiEvent>('/api/v1/events/by-id-1');
    expect(read.status).toBe(200);
    expect(read.body.seq).toBe(res.body.seq);
  });
});

describe('http api - runs and explain', () => {
  const rulebook = `
rules:
  - name: note-order
    when:
      pattern: { type: [order.created] }
    then:
      - id: note
        log: "order \${{ event.data.orderId }}"
  - name: page-on-high-priority
    when:
      pattern: { type: [order.created], data: { priority: [high] } }
    then:
      - log: { message: "high priority order", level: warn }
`;

  it('http api - a rule that fires shows up as a succeeded run with its trigger and attempts', async () => {
    const server = await start({ rulebook });
    const sent = await server.call<AppendReply>('/api/v1/events', {
      json: event('o-1', { data: { orderId: 'A-1', priority: 'low' } }),
    });
    expect(sent.status).toBe(202);

    const [run] = await waitForRuns(server, 'note-order');
    expect(run).toMatchObject({
      rule: 'note-order',
      status: 'succeeded',
      trigger: {
        seq: sent.body.seq,
        id: 'o-1',
        source: 'https://shop.example/orders',
        type: 'order.created',
      },
      outputs: { note: { message: 'order A-1' } },
    });
    expect(new Date(run!.createdAt).toISOString()).toBe(run!.createdAt);
    expect(run!.finishedAt).not.toBeNull();

    const detail = await server.call<ApiRunDetail>(`/api/v1/runs/${run!.id}`);
    expect(detail.status).toBe(200);
    expect(detail.body.id).toBe(run!.id);
    expect(detail.body.attempts).toEqual([
      expect.objectContaining({
        stepId: 'note',
        action: 'log',
        attempt: 1,
        status: 'succeeded',
        output: { message: 'order A-1' },
      }),
    ]);
    expect(new Date(detail.body.attempts[0]!.startedAt).toISOString()).toBe(
      detail.body.attempts[0]!.startedAt,
    );

    // The other rule did not fire on a low-priority order.
    const other = await server.call<ApiPage<ApiRun>>('/api/v1/runs?rule=page-on-high-priority');
    expect(other.body).toEqual({ items: [], next: null });
  });

  it('http api - runs page newest first with limit and cursor, and filter by rule and status', async () => {
    const server = await start({ rulebook });
    for (const [i, priority] of ['low', 'high', 'low'].entries()) {
      await server.call('/api/v1/events', {
        json: event(`r-${i}`, { data: { orderId: `A-${i}`, priority } }),
      });
    }
    const notes = await waitForRuns(server, 'note-order', { count: 3 });
    await waitForRuns(server, 'page-on-high-priority', { count: 1 });

    const first = await server.call<ApiPage<ApiRun>>('/api/v1/runs?rule=note-order&limit=2');
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(2);
    expect(first.body.next).not.toBeNull();
    const second = await server.call<ApiPage<ApiRun>>(
      `/api/v1/runs?rule=note-order&limit=2&cursor=${encodeURIComponent(first.body.next!)}`,
    );
    expect(second.body.items).toHaveLength(1);
    expect(second.body.next).toBeNull();
    const paged = [...first.body.items, ...second.body.items];
    expect(paged.map((r) => r.id)).toEqual(notes.map((r) => r.id));
    expect(paged.map((r) => r.trigger.id)).toEqual(['r-2', 'r-1', 'r-0']);

    const all = await server.call<ApiPage<ApiRun>>('/api/v1/runs');
    expect(all.body.items.map((r) => r.rule).sort()).toEqual([
      'note-order',
      'note-order',
      'note-order',
      'page-on-high-priority',
    ]);
    const failed = await server.call<ApiPage<ApiRun>>('/api/v1/runs?status=failed');
    expect(failed.body).toEqual({ items: [], next: null });
  });

  it('http api - explain says `fired` for the rule that ran and `no-match` with the failing field for the other', async () => {
    const server = await start({ rulebook });
    const sent = await server.call<AppendReply>('/api/v1/events', {
      json: event('x-1', { data: { orderId: 'A-9', priority: 'low' } }),
    });
    const [run] = await waitForRuns(server, 'note-order');

    const explained = await server.call<ApiExplanation>(`/api/v1/events/${sent.body.seq}/explain`);
    expect(explained.status).toBe(200);
    expect(explained.body.dispatched).toBe(true);
    expect(explained.body.event).toMatchObject({ seq: sent.body.seq, id: 'x-1', type: 'order.created' });
    expect(explained.body.rules.map((r) => r.rule)).toEqual(['note-order', 'page-on-high-priority']);

    const [fired, missed] = explained.body.rules;
    expect(fired).toMatchObject({
      verdict: 'fired',
      pattern: { matched: true },
      run: { id: run!.id, status: 'succeeded' },
    });
    expect(missed).toMatchObject({
      verdict: 'no-match',
      pattern: { matched: false, path: 'data.priority', actual: 'low', present: true },
    });
    expect(missed!.run).toBeUndefined();
    expect(missed!.reason).toContain('data.priority');
    expect((missed!.pattern as { expected: string }).expected).toContain('high');

    // The same explanation is reachable by the event's id.
    const byId = await server.call<ApiExplanation>('/api/v1/events/x-1/explain');
    expect(byId.body.rules).toEqual(explained.body.rules);
  });
});

describe('http api - pattern tester', () => {
  it.each([
    [{ type: ['order.created'] }, { type: 'order.created' }, true],
    [{ type: ['order.created'] }, { type: 'order.paid' }, false],
    [{ data: { host: [{ prefix: 'web-' }] } }, { data: { host: 'web-1' } }, true],
    [{ data: { value: [{ numeric: ['>', 90] }] } }, { data: { value: 50 } }, false],
    [{ data: { region: [{ 'anything-but': ['eu'] }] } }, { data: { region: 'us' } }, true],
  ])(
    'http api - POST /api/v1/patterns/test answers the match (%j on %j → %s)',
    async (pattern, ev, match) => {
      const server = await start();
      const res = await server.call<{ match: boolean }>('/api/v1/patterns/test', {
        json: { pattern, event: ev },
      });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ match });
    },
  );

  it.each([
    [{ type: 'order.created' }],
    [{ type: [{ bogus: 1 }] }],
    [{ data: { value: [{ numeric: ['>'] }] } }],
  ])('http api - an invalid pattern (%j) answers 400 REFLEX_ERR_PATTERN_INVALID', async (pattern) => {
    const server = await start();
    const res = await server.call('/api/v1/patterns/test', { json: { pattern, event: { type: 'x' } } });
    expectError(res, 400, 'REFLEX_ERR_PATTERN_INVALID');
  });

  it('http api - a pattern test without `event`, or with malformed JSON, answers 400', async () => {
    const server = await start();
    const missing = await server.call('/api/v1/patterns/test', { json: { pattern: { type: ['x'] } } });
    expectError(missing, 400, 'REFLEX_ERR_API_INVALID_BODY');
    const malformed = await postRaw(server, '/api/v1/patterns/test', 'application/json', '{"pattern":');
    expectError(malformed, 400, 'REFLEX_ERR_EVENT_INVALID_JSON');
  });
});

describe('http api - api token', () => {
  const token = 'reflex-test-token-0123456789';

  it('http api - with apiToken set, /api/v1/* needs the bearer token while webhooks keep their own auth', async () => {
    const server = await start({
      apiToken: token,
      rulebook: githubRulebook,
      env: { GITHUB_WEBHOOK_SECRET: githubSecret },
    });
    const auth = { authorization: `Bearer ${token}` };

    const badHeaders: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: token },
    ];
    for (const headers of badHeaders) {
      expectError(await server.call('/api/v1/events', { headers }), 401, 'REFLEX_ERR_API_UNAUTHORIZED');
      expectError(await server.call('/api/v1/runs', { headers }), 401, 'REFLEX_ERR_API_UNAUTHORIZED');
      // Health is open: probes carry no token, and it tells nothing about the data.
      expect((await server.call('/api/v1/health', { headers })).status).toBe(200);
    }

    const refused = await server.call('/api/v1/events', { json: event('no-token') });
    expectError(refused, 401, 'REFLEX_ERR_API_UNAUTHORIZED');
    const testRefused = await server.call('/api/v1/patterns/test', {
      json: { pattern: { type: ['x'] }, event: { type: 'x' } },
    });
    expectError(testRefused, 401, 'REFLEX_ERR_API_UNAUTHORIZED');
    expect(await allEvents(server, token)).toEqual([]);

    const accepted = await server.call<AppendReply>('/api/v1/events', {
      json: event('with-token'),
      headers: auth,
    });
    expect(accepted.status).toBe(202);
    const read = await server.call<ApiEvent>(`/api/v1/events/${accepted.body.seq}`, { headers: auth });
    expect(read.status).toBe(200);
    expect(read.body.event.id).toBe('with-token');

    // The webhook needs no API token: its HMAC signature is its credential.
    const hook = await githubDelivery(server, { ref: 'refs/heads/main' }, { delivery: 'hook-1' });
    expect(hook.status).toBe(202);
    const forged = await githubDelivery(
      server,
      { ref: 'refs/heads/main' },
      { delivery: 'hook-2', secret: token },
    );
    expectError(forged, 401, 'REFLEX_ERR_WEBHOOK_UNAUTHORIZED');

    expect((await allEvents(server, token)).map((e) => e.event.id)).toEqual(['with-token', 'hook-1']);
  });

  it('http api - with apiToken set, a percent-encoded path does not reach /api/v1/* without the token', async () => {
    const server = await start({ apiToken: token });
    const auth = { authorization: `Bearer ${token}` };
    const stored = await server.call('/api/v1/events', { json: event('private'), headers: auth });
    expect(stored.status).toBe(202);

    // `%61` is `a`: the router decodes it to /api/v1/events, so the token check must see the same path.
    const read = await server.call('/%61pi/v1/events');
    const write = await server.call('/%61pi/v1/events', { json: event('sneaked-in') });
    expect({ read: read.status, write: write.status }).toEqual({ read: 401, write: 401 });
    expect(read.body).not.toHaveProperty('items');
    expect((await allEvents(server, token)).map((e) => e.event.id)).toEqual(['private']);
  });
});

describe('http api - facts', () => {
  it('http api - facts are set, read and removed, and each change is an event in the log', async () => {
    const server = await start();
    expect((await server.call('/api/v1/facts')).body).toEqual({ facts: {} });
    const put = await server.call('/api/v1/facts/maintenance', { method: 'PUT', json: ['web-2'] });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ name: 'maintenance', value: ['web-2'] });
    expect((await server.call('/api/v1/facts/maintenance')).body).toEqual({
      name: 'maintenance',
      value: ['web-2'],
    });
    expect((await server.call('/api/v1/facts')).body).toEqual({ facts: { maintenance: ['web-2'] } });
    // The same value again is no change: no second event.
    await server.call('/api/v1/facts/maintenance', { method: 'PUT', json: ['web-2'] });
    const removed = await server.call('/api/v1/facts/maintenance', { method: 'DELETE' });
    expect(removed.body).toEqual({ name: 'maintenance', deleted: true });
    expectError(await server.call('/api/v1/facts/maintenance'), 404, 'REFLEX_ERR_FACT_NOT_FOUND');
    expectError(
      await server.call('/api/v1/facts/maintenance', { method: 'DELETE' }),
      404,
      'REFLEX_ERR_FACT_NOT_FOUND',
    );
    const changes = (await allEvents(server)).filter((e) => e.event.type === 'reflex.fact.changed');
    expect(changes.map((e) => e.event.data)).toEqual(
      expect.arrayContaining([
        { name: 'maintenance', value: ['web-2'], previous: null, added: true, removed: false },
        { name: 'maintenance', value: null, previous: ['web-2'], added: false, removed: true },
      ]),
    );
    expect(changes).toHaveLength(2);
  });

  it('http api - a bad fact name or body is refused and changes nothing', async () => {
    const server = await start();
    expectError(
      await server.call('/api/v1/facts/9lives', { method: 'PUT', json: 1 }),
      400,
      'REFLEX_ERR_API_INVALID_QUERY',
    );
    expectError(
      await server.call('/api/v1/facts/in', { method: 'PUT', json: 1 }),
      400,
      'REFLEX_ERR_API_INVALID_QUERY',
    );
    const empty = await server.call('/api/v1/facts/x', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
    });
    expectError(empty, 400, 'REFLEX_ERR_API_INVALID_BODY');
    const malformed = await server.call('/api/v1/facts/x', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '{nope',
    });
    expectError(malformed, 400, 'REFLEX_ERR_EVENT_INVALID_JSON');
    expect((await server.call('/api/v1/facts')).body).toEqual({ facts: {} });
    expect(await allEvents(server)).toEqual([]);
  });
});
