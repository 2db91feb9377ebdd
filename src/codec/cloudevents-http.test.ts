import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HTTP, CloudEvent as SdkEvent } from 'cloudevents';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../core/errors.js';
import { defaultEventLimits, type EventLimits } from '../core/event.js';
import { cloudEventsContentTypes } from './cloudevents-binding.js';
import { decodeCloudEventsRequest } from './cloudevents-http.js';
import { parseJsonBody } from './json-body.js';

// Requests go through a real HTTP server on loopback, so the decoder sees headers and bodies exactly as
// Node hands them over (lower-cased names, latin1 header values, joined repeats, raw body bytes).
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

/** POSTs a request and returns what the server received. Header values may be numbers (the SDK's extensions). */
async function post(headers: Record<string, unknown>, body?: string | Uint8Array): Promise<Received> {
  const received = new Promise<Received>((resolve) => {
    waiting = resolve;
  });
  const outgoing: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) outgoing[name] = String(value);
  }
  const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/api/v1/events', headers: outgoing });
  const answered = once(req, 'response');
  req.end(body);
  const [res] = (await answered) as [NodeJS.ReadableStream];
  res.resume();
  return received;
}

async function decode(message: { headers: Record<string, unknown>; body?: unknown }, limits?: EventLimits) {
  const got = await post(message.headers, message.body as string | Uint8Array | undefined);
  return decodeCloudEventsRequest(got.headers, got.body, limits ?? defaultEventLimits);
}

async function decodeError(
  message: { headers: Record<string, unknown>; body?: unknown },
  limits?: EventLimits,
): Promise<ReflexError> {
  const got = await post(message.headers, message.body as string | Uint8Array | undefined);
  try {
    decodeCloudEventsRequest(got.headers, got.body, limits ?? defaultEventLimits);
  } catch (error) {
    expect(error).toBeInstanceOf(ReflexError);
    return error as ReflexError;
  }
  throw new Error('expected the request to be refused');
}

const structuredHeaders = { 'content-type': 'application/cloudevents+json; charset=utf-8' };
const batchHeaders = { 'content-type': 'application/cloudevents-batch+json' };
const json = (value: unknown) => JSON.stringify(value);
const minimal = { specversion: '1.0', id: 'e-1', source: '/test', type: 'com.example.test' };

function nested(depth: number): unknown {
  let value: unknown = 'leaf';
  for (let i = 0; i < depth; i++) value = { next: value };
  return value;
}

const fullEvent = () =>
  new SdkEvent({
    id: 'order-42',
    source: 'https://shop.example.com/orders',
    type: 'com.example.order.created',
    subject: 'orders/42',
    time: '2026-11-27T10:00:00.000Z',
    dataschema: 'https://shop.example.com/schemas/order.json',
    datacontenttype: 'application/json',
    data: { order: 42, items: [{ sku: 'A-1', qty: 2 }], note: 'café ☕', paid: true, coupon: null },
    tenant: 'acme',
    priority: 5,
    urgent: true,
  });

describe('cloudevents-http structured mode', () => {
  it('structured - reads every attribute, extension and JSON data of an SDK event', async () => {
    const { events, batch } = await decode(HTTP.structured(fullEvent()));
    expect(batch).toBe(false);
    expect(events).toEqual([
      {
        specversion: '1.0',
        id: 'order-42',
        source: 'https://shop.example.com/orders',
        type: 'com.example.order.created',
        subject: 'orders/42',
        time: '2026-11-27T10:00:00.000Z',
        dataschema: 'https://shop.example.com/schemas/order.json',
        datacontenttype: 'application/json',
        data: { order: 42, items: [{ sku: 'A-1', qty: 2 }], note: 'café ☕', paid: true, coupon: null },
        // The JSON format keeps extension types.
        tenant: 'acme',
        priority: 5,
        urgent: true,
      },
    ]);
  });

  it('structured - keeps data_base64 as data_base64', async () => {
    const bytes = Uint8Array.from([0, 1, 2, 250, 255]);
    const event = new SdkEvent({
      id: 'b-1',
      source: '/camera',
      type: 'com.example.snapshot',
      datacontenttype: 'image/png',
      data: bytes,
    });
    const [decoded] = (await decode(HTTP.structured(event))).events;
    expect(decoded?.data).toBeUndefined();
    expect(decoded?.datacontenttype).toBe('image/png');
    expect(Buffer.from(decoded?.data_base64 ?? '', 'base64')).toEqual(Buffer.from(bytes));
  });

  it('structured - keeps data as given, whatever the datacontenttype says', async () => {
    const event = new SdkEvent({
      id: 't-1',
      source: '/log',
      type: 'com.example.line',
      datacontenttype: 'text/plain',
      data: 'disk almost full',
    });
    const [decoded] = (await decode(HTTP.structured(event))).events;
    expect(decoded?.data).toBe('disk almost full');
    expect(decoded?.datacontenttype).toBe('text/plain');
  });

  it('structured - reads the media type case-insensitively, with parameters', async () => {
    const { events } = await decode({
      headers: { 'content-type': 'Application/CloudEvents+JSON ; charset="UTF-8"' },
      body: json(minimal),
    });
    expect(events).toEqual([minimal]);
  });

  it('structured - takes application/json without ce- headers as a structured event', async () => {
    const { events, batch } = await decode({
      headers: { 'content-type': 'application/json' },
      body: json({ ...minimal, data: { ok: true } }),
    });
    expect(batch).toBe(false);
    expect(events).toEqual([{ ...minimal, data: { ok: true } }]);
  });

  it('structured - wins over ce- headers sent alongside', async () => {
    const { events } = await decode({
      headers: { ...structuredHeaders, 'ce-id': 'from-header', 'ce-specversion': '1.0' },
      body: json(minimal),
    });
    expect(events[0]?.id).toBe('e-1');
  });

  it('structured - skips a UTF-8 byte order mark', async () => {
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json(minimal))]);
    expect((await decode({ headers: structuredHeaders, body })).events).toEqual([minimal]);
  });
});

describe('cloudevents-http binary mode', () => {
  it('binary - reads attributes from ce- headers and parses JSON data', async () => {
    const message = HTTP.binary(fullEvent());
    const { events, batch } = await decode(message);
    expect(batch).toBe(false);
    expect(events).toEqual([
      {
        specversion: '1.0',
        id: 'order-42',
        source: 'https://shop.example.com/orders',
        type: 'com.example.order.created',
        subject: 'orders/42',
        time: '2026-11-27T10:00:00.000Z',
        dataschema: 'https://shop.example.com/schemas/order.json',
        datacontenttype: 'application/json',
        data: { order: 42, items: [{ sku: 'A-1', qty: 2 }], note: 'café ☕', paid: true, coupon: null },
        // Header values are strings: binary mode does not carry extension types.
        tenant: 'acme',
        priority: '5',
        urgent: 'true',
      },
    ]);
  });

  it('binary - keeps the Content-Type with its parameters as datacontenttype', async () => {
    const event = new SdkEvent({ id: 'j-1', source: '/s', type: 't', data: { a: 1 } });
    const [decoded] = (await decode(HTTP.binary(event))).events;
    // The SDK's default content type.
    expect(decoded?.datacontenttype).toBe('application/json; charset=utf-8');
    expect(decoded?.data).toEqual({ a: 1 });
  });

  it('binary - parses data of a +json media type', async () => {
    const event = new SdkEvent({
      id: 'j-2',
      source: '/s',
      type: 't',
      datacontenttype: 'application/vnd.acme.alert+json',
      data: { severity: 'critical' },
    });
    const [decoded] = (await decode(HTTP.binary(event))).events;
    expect(decoded?.data).toEqual({ severity: 'critical' });
  });

  it('binary - gives text/* data as a string', async () => {
    const event = new SdkEvent({
      id: 'x-1',
      source: '/syslog',
      type: 'com.example.line',
      datacontenttype: 'text/plain; charset=utf-8',
      data: 'überhitzt: 92 °C',
    });
    const [decoded] = (await decode(HTTP.binary(event))).events;
    expect(decoded?.data).toBe('überhitzt: 92 °C');
    expect(decoded?.data_base64).toBeUndefined();
  });

  it('binary - decodes text in the charset it declares', async () => {
    const { events } = await decode({
      headers: { ...minimalHeaders(), 'content-type': 'text/plain; charset=ISO-8859-1' },
      body: Buffer.from([0x63, 0x61, 0x66, 0xe9]),
    });
    expect(events[0]?.data).toBe('café');
  });

  it('binary - gives other data as data_base64', async () => {
    const bytes = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0, 255]);
    const event = new SdkEvent({
      id: 'p-1',
      source: '/camera',
      type: 'com.example.snapshot',
      datacontenttype: 'application/octet-stream',
      data: bytes,
    });
    const [decoded] = (await decode(HTTP.binary(event))).events;
    expect(decoded?.data).toBeUndefined();
    expect(decoded?.datacontenttype).toBe('application/octet-stream');
    expect(Buffer.from(decoded?.data_base64 ?? '', 'base64')).toEqual(Buffer.from(bytes));
  });

  it('binary - gives data_base64 when there is no Content-Type', async () => {
    const { events } = await decode({ headers: minimalHeaders(), body: Buffer.from('raw') });
    expect(events).toEqual([{ ...minimal, data_base64: Buffer.from('raw').toString('base64') }]);
  });

  it('binary - an empty body gives no data', async () => {
    const event = new SdkEvent({ id: 'n-1', source: '/s', type: 't' });
    const [decoded] = (await decode(HTTP.binary(event))).events;
    expect(decoded).not.toHaveProperty('data');
    expect(decoded).not.toHaveProperty('data_base64');
    expect(decoded?.id).toBe('n-1');
  });

  it('binary - application/json with ce- headers is binary: the body is the data', async () => {
    const { events } = await decode({
      headers: { ...minimalHeaders(), 'content-type': 'application/json' },
      body: json({ specversion: '1.0', id: 'not-this-one' }),
    });
    expect(events[0]?.id).toBe('e-1');
    expect(events[0]?.data).toEqual({ specversion: '1.0', id: 'not-this-one' });
  });

  it('binary - takes an unreadable CloudEvents format with ce- headers as binary data', async () => {
    const { events } = await decode({
      headers: { ...minimalHeaders(), 'content-type': 'application/cloudevents+avro' },
      body: Buffer.from([1, 2, 3]),
    });
    expect(events[0]?.datacontenttype).toBe('application/cloudevents+avro');
    expect(events[0]?.data_base64).toBe('AQID');
  });

  it('binary - percent-decodes header values as UTF-8', async () => {
    const { events } = await decode({
      headers: {
        ...minimalHeaders(),
        'ce-subject': 'Euro%20%E2%82%AC%20%F0%9F%98%80',
        'ce-source': '%2fneedlessly%2Fencoded%41',
        'ce-note': '100%25 done',
      },
    });
    expect(events[0]?.subject).toBe('Euro € 😀');
    expect(events[0]?.source).toBe('/needlessly/encodedA');
    expect(events[0]?.['note']).toBe('100% done');
  });

  it('binary - unquotes double-quoted values before percent-decoding', async () => {
    const { events } = await decode({
      headers: { ...minimalHeaders(), 'ce-subject': '"say \\"hi\\" 50%25"' },
    });
    expect(events[0]?.subject).toBe('say "hi" 50%');
  });

  it('binary - reads raw UTF-8 bytes in a header value', async () => {
    // What a lax client sends: UTF-8 bytes on the wire, which Node reads as latin1.
    const raw = Buffer.from('Zürich', 'utf8').toString('latin1');
    const { events } = await decode({ headers: { ...minimalHeaders(), 'ce-subject': raw } });
    expect(events[0]?.subject).toBe('Zürich');
  });

  it('binary - refuses percent-encoded bytes that are not UTF-8', async () => {
    const error = await decodeError({ headers: { ...minimalHeaders(), 'ce-subject': 'a%C0%A0b' } });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE');
    expect(error.message).toContain('`subject`');
    expect(error.message).toContain('not valid UTF-8');
  });

  it('binary - refuses a % not followed by two hex digits', async () => {
    const error = await decodeError({ headers: { ...minimalHeaders(), 'ce-subject': '50%' } });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE');
    expect(error.message).toContain('`subject`');
    expect(error.message).toContain('%25');
  });

  it('binary - refuses a ce-datacontenttype header, which the binding forbids', async () => {
    const error = await decodeError({
      headers: { ...minimalHeaders(), 'content-type': 'text/plain', 'ce-datacontenttype': 'text/plain' },
      body: 'x',
    });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE');
    expect(error.message).toContain('Content-Type');
  });

  it('binary - refuses data in a header', async () => {
    const error = await decodeError({ headers: { ...minimalHeaders(), 'ce-data': 'x' } });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE');
    expect(error.message).toContain('`data`');
  });

  it.each(['specversion', 'id', 'source', 'type'])('binary - names a missing ce-%s header', async (name) => {
    const headers: Record<string, string> = { ...minimalHeaders(), 'content-type': 'application/json' };
    delete headers[`ce-${name}`];
    const error = await decodeError({ headers, body: '{}' });
    expect(error.code).toBe('REFLEX_ERR_EVENT_MISSING_ATTRIBUTE');
    expect(error.message).toContain(`\`${name}\``);
  });

  it('binary - refuses an unknown text charset', async () => {
    const error = await decodeError({
      headers: { ...minimalHeaders(), 'content-type': 'text/plain; charset=klingon' },
      body: 'x',
    });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE');
    expect(error.message).toContain('`datacontenttype`');
  });

  it('binary - refuses text that is not valid in its charset', async () => {
    const error = await decodeError({
      headers: { ...minimalHeaders(), 'content-type': 'text/plain' },
      body: Buffer.from([0x61, 0xff, 0x62]),
    });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE');
    expect(error.message).toContain('utf-8');
  });

  it('binary - refuses malformed JSON data', async () => {
    const error = await decodeError({
      headers: { ...minimalHeaders(), 'content-type': 'application/json' },
      body: '{"a":',
    });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_JSON');
  });
});

function minimalHeaders(): Record<string, string> {
  return { 'ce-specversion': '1.0', 'ce-id': 'e-1', 'ce-source': '/test', 'ce-type': 'com.example.test' };
}

describe('cloudevents-http batch mode', () => {
  it('batch - reads SDK events of every data kind, in order', async () => {
    const sdkEvents = [
      fullEvent(),
      new SdkEvent({ id: 'b-2', source: '/log', type: 'line', datacontenttype: 'text/plain', data: 'hello' }),
      new SdkEvent({
        id: 'b-3',
        source: '/cam',
        type: 'snap',
        datacontenttype: 'image/png',
        data: Uint8Array.from([1, 2, 3]),
      }),
      new SdkEvent({ id: 'b-4', source: '/s', type: 'empty' }),
    ];
    const { events, batch } = await decode({
      headers: batchHeaders,
      body: JSON.stringify(sdkEvents.map((event) => event.toJSON())),
    });
    expect(batch).toBe(true);
    expect(events.map((event) => event.id)).toEqual(['order-42', 'b-2', 'b-3', 'b-4']);
    expect(events[0]?.data).toEqual(fullEvent().data);
    expect(events[0]?.['priority']).toBe(5);
    expect(events[1]?.data).toBe('hello');
    expect(events[2]?.data_base64).toBe('AQID');
    expect(events[3]?.data).toBeUndefined();
    for (const event of events) expect(event.specversion).toBe('1.0');
  });

  it('batch - a batch of one is still a batch', async () => {
    const { events, batch } = await decode({ headers: batchHeaders, body: json([minimal]) });
    expect(batch).toBe(true);
    expect(events).toEqual([minimal]);
  });

  it('batch - refuses an empty batch', async () => {
    const error = await decodeError({ headers: batchHeaders, body: '[]' });
    expect(error.code).toBe('REFLEX_ERR_EVENT_EMPTY_BATCH');
    expect(error.statusCode).toBe(400);
  });

  it('batch - refuses a body that is not an array', async () => {
    const error = await decodeError({ headers: batchHeaders, body: json(minimal) });
    expect(error.code).toBe('REFLEX_ERR_EVENT_NOT_OBJECT');
    expect(error.message).toContain('JSON array');
    expect(error.message).toContain('an object');
  });

  it('batch - one bad item refuses the whole batch and names the item', async () => {
    const items = [
      minimal,
      { ...minimal, id: 'e-2' },
      { ...minimal, id: undefined },
      { ...minimal, id: 'e-4' },
    ];
    const error = await decodeError({ headers: batchHeaders, body: json(items) });
    expect(error.code).toBe('REFLEX_ERR_EVENT_MISSING_ATTRIBUTE');
    expect(error.message).toContain('`id`');
    expect(error.message).toContain('(batch item 2)');
  });

  it('batch - names an item that is not an object', async () => {
    const error = await decodeError({ headers: batchHeaders, body: json([minimal, 'oops']) });
    expect(error.code).toBe('REFLEX_ERR_EVENT_NOT_OBJECT');
    expect(error.message).toContain('(batch item 1)');
  });
});

describe('cloudevents-http errors', () => {
  it('errors - malformed JSON gives the parser reason', async () => {
    const error = await decodeError({ headers: structuredHeaders, body: '{"specversion": "1.0",' });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_JSON');
    expect(error.statusCode).toBe(400);
    let reason = '';
    try {
      JSON.parse('{"specversion": "1.0",');
    } catch (parseError) {
      reason = (parseError as Error).message;
    }
    expect(error.message).toContain(reason);
  });

  it('errors - an empty structured body is malformed JSON', async () => {
    const error = await decodeError({ headers: structuredHeaders });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_JSON');
  });

  it('errors - a body that is not UTF-8 is refused', async () => {
    const body = Buffer.concat([
      Buffer.from('{"specversion":"1.0","id":"'),
      Buffer.from([0xff]),
      Buffer.from('"}'),
    ]);
    const error = await decodeError({ headers: structuredHeaders, body });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_JSON');
    expect(error.message).toContain('UTF-8');
  });

  it.each(['specversion', 'id', 'source', 'type'])('errors - names a missing `%s`', async (name) => {
    const event: Record<string, unknown> = { ...minimal };
    delete event[name];
    const error = await decodeError({ headers: structuredHeaders, body: json(event) });
    expect(error.code).toBe('REFLEX_ERR_EVENT_MISSING_ATTRIBUTE');
    expect(error.message).toContain(`\`${name}\``);
  });

  it('errors - refuses another specversion', async () => {
    const error = await decodeError({
      headers: structuredHeaders,
      body: json({ ...minimal, specversion: '0.3' }),
    });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE');
    expect(error.message).toContain('`specversion`');
    expect(error.message).toContain('"0.3"');
  });

  it.each([
    ['an array', json([minimal])],
    ['a string', json('event')],
    ['null', 'null'],
  ])('errors - refuses %s where an event object is expected', async (got, body) => {
    const error = await decodeError({ headers: structuredHeaders, body });
    expect(error.code).toBe('REFLEX_ERR_EVENT_NOT_OBJECT');
    expect(error.message).toContain(`got ${got}`);
  });

  it.each([
    ['text/plain', 'text/plain'],
    ['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded'],
    [undefined, '(none)'],
  ])('errors - refuses content type %s without ce- headers', async (contentType, shown) => {
    const error = await decodeError({ headers: { 'content-type': contentType }, body: json(minimal) });
    expect(error.code).toBe('REFLEX_ERR_EVENT_UNSUPPORTED_MEDIA_TYPE');
    expect(error.statusCode).toBe(415);
    expect(error.message).toContain(`\`${shown}\``);
  });

  it('errors - refuses data nested deeper than the limit', async () => {
    const body = json({ ...minimal, data: nested(40) });
    const error = await decodeError({ headers: structuredHeaders, body });
    expect(error.code).toBe('REFLEX_ERR_EVENT_TOO_DEEP');
    expect(error.message).toContain('32');
    // Just within a tighter limit passes, one more level fails.
    const ok = await decode(
      { headers: structuredHeaders, body: json({ ...minimal, data: nested(3) }) },
      { maxDepth: 3 },
    );
    expect(ok.events).toHaveLength(1);
    const deep = await decodeError(
      { headers: structuredHeaders, body: json({ ...minimal, data: nested(4) }) },
      { maxDepth: 3 },
    );
    expect(deep.code).toBe('REFLEX_ERR_EVENT_TOO_DEEP');
  });

  it('errors - refuses binary JSON data nested deeper than the limit', async () => {
    const error = await decodeError(
      { headers: { ...minimalHeaders(), 'content-type': 'application/json' }, body: json(nested(5)) },
      { maxDepth: 4 },
    );
    expect(error.code).toBe('REFLEX_ERR_EVENT_TOO_DEEP');
  });

  it('errors - a hostile, very deep body fails cleanly', async () => {
    const depth = 200_000;
    const body = `{"specversion":"1.0","id":"d","source":"/s","type":"t","data":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    const error = await decodeError({ headers: structuredHeaders, body });
    expect(error.code).toBe('REFLEX_ERR_EVENT_TOO_DEEP');
  });
});

describe('cloudevents-http prototype pollution', () => {
  it.each([
    ['a __proto__ key', '{"__proto__": {"polluted": true}}', '$.data.__proto__'],
    ['an escaped __proto__ key', '{"a": [{"\\u005f_proto__": {"polluted": true}}]}', '$.data.a[0].__proto__'],
    [
      'a constructor.prototype path',
      '{"constructor": {"prototype": {"polluted": true}}}',
      '$.data.constructor.prototype',
    ],
  ])('prototype pollution - refuses %s', async (_, data, path) => {
    const body = `{"specversion":"1.0","id":"p","source":"/s","type":"t","data":${data}}`;
    const error = await decodeError({ headers: structuredHeaders, body });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_JSON');
    expect(error.message).toContain(path);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('prototype pollution - refuses a top-level __proto__ in a batch item', async () => {
    const body = `[{"specversion":"1.0","id":"p","source":"/s","type":"t","__proto__":{"polluted":true}}]`;
    const error = await decodeError({ headers: batchHeaders, body });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_JSON');
    expect(error.message).toContain('$[0].__proto__');
  });

  it('prototype pollution - a plain `constructor` value is ordinary data', async () => {
    const { events } = await decode({
      headers: structuredHeaders,
      body: json({ ...minimal, data: { constructor: 'Ada', note: 'caf\u00e9' } }),
    });
    expect(events[0]?.data).toEqual({ constructor: 'Ada', note: 'café' });
  });

  it('prototype pollution - a ce-__proto__ header does not reach the prototype', async () => {
    const error = await decodeError({ headers: { ...minimalHeaders(), 'ce-__proto__': 'x' } });
    expect(error.code).toBe('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE');
    expect(error.message).toContain('`__proto__`');
  });

  it('prototype pollution - parseJsonBody output is safe to Object.assign', () => {
    const value = parseJsonBody(Buffer.from('{"safe": {"x": 1}}')) as object;
    const target = Object.assign({}, value);
    expect(Object.getPrototypeOf(target)).toBe(Object.prototype);
    expect(() => parseJsonBody(Buffer.from('{"__proto__": {"x": 1}}'))).toThrow(/__proto__/);
  });
});

describe('cloudevents-http content types', () => {
  it('content types - exports the two JSON formats', () => {
    expect(cloudEventsContentTypes).toEqual({
      structured: 'application/cloudevents+json',
      batch: 'application/cloudevents-batch+json',
    });
  });
});
