import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpApi, startHttpApi } from '../helpers/http-api-server.js';
import {
  expectSuccessOrCodedRefusal,
  fuzz,
  fuzzTestTimeoutMs,
  hostileJsonText,
  hostileNumberText,
  hostileString,
  mutated,
  outsideEventsAfter,
  withinTimeBound,
} from './fuzz-helpers.js';

/**
 * `POST /api/v1/events` in its three modes (structured, batch, binary), through Fastify's `inject`:
 * whatever the body and headers, the answer is a 2xx or a coded 4xx within the time bound, and a refused
 * request stores nothing. A rule with a pattern and a condition over `data` sees every accepted event; its
 * condition never holds, so no run appends outcome events and the log grows only by what requests bring.
 */

const rulebook = `
rules:
  - name: fuzz-watch
    when:
      pattern:
        type: [{ prefix: com.example. }]
        data: { level: [{ numeric: [">", 3] }] }
      if: has(event.data.tags) && size(event.data.tags) > 0 && event.data.level > 100
    then:
      - log: "seen \${{ event.id }}"
`;

let api: HttpApi;
beforeAll(async () => {
  api = await startHttpApi({ rulebook, durability: 'normal' });
});
afterAll(async () => {
  await api?.close();
});

/** A valid CloudEvent, written by hand as JSON so that its keys can be anything. */
const validEvent = fc
  .record({
    id: fc.oneof(fc.uuid(), fc.string({ minLength: 1, maxLength: 20 })),
    type: fc.constantFrom('com.example.order', 'com.example.alert', 'org.other.thing'),
    source: fc.constantFrom('/shop', 'https://example.com/x', 'urn:example:1'),
    time: fc.option(
      fc
        .date({
          min: new Date('1970-01-01T00:00:00Z'),
          max: new Date('2100-01-01T00:00:00Z'),
          noInvalidDate: true,
        })
        .map((d) => d.toISOString()),
      { nil: undefined },
    ),
    subject: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
    data: fc.option(
      fc.record({
        level: fc.integer({ min: 0, max: 9 }),
        tags: fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }),
      }),
      { nil: undefined },
    ),
  })
  .map((e) => JSON.stringify({ specversion: '1.0', ...e }));

/** An event whose attributes and data are hostile: keys, values, numbers and nesting. */
const hostileEvent = fc
  .record({
    specversion: fc.oneof(fc.constant('"1.0"'), fc.constantFrom('"0.3"', '"1.0 "', '1', 'null', '""')),
    id: fc.oneof(
      hostileString.map((s) => JSON.stringify(s)),
      hostileNumberText,
    ),
    type: fc.oneof(
      fc.constantFrom('"reflex.run.failed"', '"com.example.order"'),
      hostileString.map((s) => JSON.stringify(s)),
    ),
    source: fc.oneof(
      fc.constantFrom('"reflex"', '"/shop"'),
      hostileString.map((s) => JSON.stringify(s)),
    ),
    time: fc.option(
      fc.constantFrom(
        '"2026-13-01T00:00:00Z"',
        '"2026-02-30T00:00:00Z"',
        '"2026-01-01T25:00:00Z"',
        '"yesterday"',
        '0',
        '"2026-01-01T00:00:00.123456789+14:00"',
      ),
      { nil: undefined },
    ),
    data: fc.option(hostileJsonText(), { nil: undefined }),
    data_base64: fc.option(
      fc.oneof(fc.base64String({ maxLength: 16 }), hostileString).map((s) => JSON.stringify(s)),
      { nil: undefined },
    ),
    datacontenttype: fc.option(
      fc.constantFrom('"application/json"', '"text/plain"', '"application/xml; charset=utf-8"', '7'),
      { nil: undefined },
    ),
    extra: fc.array(fc.tuple(hostileString, hostileJsonText({ depth: 2 })), { maxLength: 3 }),
  })
  .map(({ extra, ...attributes }) => {
    const entries = Object.entries(attributes).filter(([, v]) => v !== undefined) as Array<[string, string]>;
    for (const [k, v] of extra) entries.push([k, v]);
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
  });

const eventText = fc.oneof(validEvent, hostileEvent);

const structuredContentType = fc.constantFrom(
  'application/cloudevents+json',
  'application/cloudevents+json; charset=utf-8',
  'application/json',
  'APPLICATION/CLOUDEVENTS+JSON',
  'application/cloudevents+json; charset=latin1',
);
const batchContentType = fc.constantFrom(
  'application/cloudevents-batch+json',
  'application/cloudevents-batch+json; charset=utf-8',
);

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
    '%E2%82%AC',
    '%ZZ',
    '%',
    '%00',
    '%0a',
    '%C0%80',
    '1.0',
    'reflex',
    'reflex.run.failed',
    '2026-13-01T00:00:00Z',
  ),
);

const binaryRequest = fc
  .record({
    specversion: fc.option(fc.oneof(fc.constant('1.0'), headerValue), { nil: undefined }),
    id: fc.option(headerValue, { nil: undefined }),
    type: fc.option(fc.oneof(fc.constant('com.example.order'), headerValue), { nil: undefined }),
    source: fc.option(fc.oneof(fc.constant('/shop'), headerValue), { nil: undefined }),
    time: fc.option(headerValue, { nil: undefined }),
    extensions: fc.array(
      fc.tuple(
        fc.oneof(
          fc.stringMatching(/^[a-z0-9]{1,12}$/),
          fc.constantFrom(
            '__proto__',
            'constructor',
            'data',
            'data_base64',
            'reflexchain',
            'datacontenttype',
          ),
        ),
        headerValue,
      ),
      { maxLength: 3 },
    ),
    contentType: fc.option(
      fc.constantFrom(
        'application/json',
        'text/plain',
        'application/octet-stream',
        'application/cloudevents+json',
        'x/y; a="b',
      ),
      { nil: undefined },
    ),
    body: fc.oneof(
      hostileJsonText().map((t) => Buffer.from(t)),
      mutated(validEvent),
      fc.uint8Array({ maxLength: 32 }).map((b) => Buffer.from(b)),
    ),
  })
  .map(({ extensions, contentType, body, ...attributes }) => {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(attributes))
      if (value !== undefined) headers[`ce-${name}`] = value;
    for (const [name, value] of extensions) headers[`ce-${name}`] = value;
    if (contentType !== undefined) headers['content-type'] = contentType;
    return { headers, body };
  });

const structuredRequest = fc
  .tuple(
    structuredContentType,
    fc.oneof(
      eventText.map((t) => Buffer.from(t)),
      mutated(validEvent),
      hostileJsonText().map((t) => Buffer.from(t)),
    ),
  )
  .map(([contentType, body]) => ({
    headers: { 'content-type': contentType } as Record<string, string>,
    body,
  }));

const batchRequest = fc
  .tuple(
    batchContentType,
    fc.oneof(
      fc.array(eventText, { maxLength: 4 }).map((items) => Buffer.from(`[${items.join(',')}]`)),
      mutated(fc.array(validEvent, { minLength: 1, maxLength: 3 }).map((items) => `[${items.join(',')}]`)),
      hostileJsonText().map((t) => Buffer.from(t)),
    ),
  )
  .map(([contentType, body]) => ({
    headers: { 'content-type': contentType } as Record<string, string>,
    body,
  }));

/** Sends one request and checks the invariants: coded answer, in time, nothing stored when refused. */
async function check(request: { headers: Record<string, string>; body: Buffer }): Promise<void> {
  const before = await api.store.lastSeq();
  const answer = await withinTimeBound('POST /api/v1/events', () =>
    api.app.inject({
      method: 'POST',
      url: '/api/v1/events',
      headers: { host: '127.0.0.1', ...request.headers },
      payload: request.body,
    }),
  );
  const refused = expectSuccessOrCodedRefusal(answer);
  const stored = await outsideEventsAfter(api.store, before);
  if (refused !== undefined) expect(stored, `${refused} stored events`).toBe(0);
  else {
    const reply = JSON.parse(answer.body) as { items?: Array<{ duplicate?: true }>; duplicate?: true };
    const fresh = (reply.items ?? [reply]).filter((item) => item.duplicate !== true).length;
    expect(stored, answer.body).toBe(fresh);
  }
}

describe('fuzz - CloudEvents over HTTP', () => {
  it(
    'fuzz - structured, batch and binary requests answer 2xx or a coded 4xx in time and store nothing when refused',
    async () => {
      await fuzz(
        fc.asyncProperty(fc.oneof(structuredRequest, batchRequest, binaryRequest), async (request) => {
          await check(request);
        }),
      );
      // The property must have exercised both sides: acceptance and refusal.
      expect(await api.store.lastSeq()).toBeGreaterThan(0);
    },
    fuzzTestTimeoutMs,
  );
});
