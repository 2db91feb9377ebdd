import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpApi, startHttpApi } from '../helpers/http-api-server.js';
import {
  expectSuccessOrCodedRefusal,
  fuzz,
  fuzzTestTimeoutMs,
  hostileJsonText,
  hostileKeys,
  hostileString,
  mutated,
  outsideEventsAfter,
  withinTimeBound,
} from './fuzz-helpers.js';

/**
 * The HTTP API's routes with generated methods, paths, query strings and bodies, through Fastify's
 * `inject`: listings and lookups of events and runs, explain, pattern tests, facts (read, write,
 * delete), health, and paths that are no route. Whatever the request: a 2xx or a coded 4xx within the
 * time bound, and a refused request changes neither the log nor the facts.
 */

const rulebook = `
rules:
  - name: watch-orders
    when:
      pattern:
        type: [com.example.order]
        data: { items: { sku: [{ prefix: "A" }] }, tags: [{ exists: true }] }
      if: size(event.data.items) > 100
    then:
      - log: "big order \${{ event.id }}"
`;

let api: HttpApi;
beforeAll(async () => {
  api = await startHttpApi({ rulebook, durability: 'normal' });
  // Something to find: events (one with arrays for explain to work through) and a fact.
  for (const [i, data] of [
    { items: [{ sku: 'A1' }, { sku: 'B2' }], tags: ['x'] },
    { n: 1 },
    null,
  ].entries()) {
    const answer = await api.app.inject({
      method: 'POST',
      url: '/api/v1/events',
      headers: { host: '127.0.0.1', 'content-type': 'application/cloudevents+json' },
      payload: JSON.stringify({
        specversion: '1.0',
        id: `seed-${i}`,
        source: 'fuzz',
        type: 'com.example.order',
        data,
      }),
    });
    expect(answer.statusCode).toBe(202);
  }
  await api.engine.facts.set('hosts', ['web-1']);
});
afterAll(async () => {
  await api?.close();
});

/** `encodeURIComponent`, with a lone surrogate (which it refuses) written as its invalid UTF-8 bytes. */
function encode(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return '%ED%A0%80';
  }
}

/** Text for a URL: percent-encoded, or raw with what a URL should not hold. */
const urlText = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .oneof(
        hostileString,
        fc.constantFrom(
          '1',
          '0',
          '-1',
          '1e3',
          '99999999999999999999',
          'seed-0',
          'fuzz/seed-0',
          '1.5',
          '',
          'hosts',
        ),
      )
      .map(encode),
  },
  fc.constantFrom(
    '%',
    '%zz',
    '%C0%80',
    '%00',
    '%FF',
    '..',
    '%2e%2e',
    '//',
    '?',
    '#',
    'a%2Fb',
    '%u0041',
    ' ',
    '\u00e9',
    '\ud83d\ude00',
  ),
);

const queryParameter = fc.tuple(
  fc.oneof(
    {
      weight: 4,
      arbitrary: fc.constantFrom('limit', 'after', 'cursor', 'type', 'source', 'rule', 'status', 'before'),
    },
    fc.constantFrom(...hostileKeys).map(encode),
    urlText,
  ),
  fc.oneof(
    fc.constantFrom(
      '1',
      '0',
      '-1',
      '1000',
      '1001',
      '1e3',
      '2.5',
      'NaN',
      '',
      'succeeded',
      'pending',
      'bogus',
      'com.example.order',
    ),
    urlText,
  ),
);

const query = fc
  .array(queryParameter, { maxLength: 4 })
  .map((parameters) =>
    parameters.length === 0 ? '' : `?${parameters.map(([k, v]) => `${k}=${v}`).join('&')}`,
  );

const path = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom('/api/v1/events', '/api/v1/runs', '/api/v1/facts', '/api/v1/health'),
  },
  urlText.map((ref) => `/api/v1/events/${ref}`),
  urlText.map((ref) => `/api/v1/events/${ref}/explain`),
  fc.constantFrom(
    '/api/v1/events/1/explain',
    '/api/v1/events/fuzz%2Fseed-0/explain',
    '/api/v1/events/seed-0',
  ),
  urlText.map((id) => `/api/v1/runs/${id}`),
  urlText.map((name) => `/api/v1/facts/${name}`),
  fc.constantFrom(
    '/api/v1/patterns/test',
    '/api/v1/',
    '/api',
    '/',
    '/hooks/',
    '/hooks/none',
    '/API/V1/EVENTS',
    '/api/v1/events/',
    '/%61pi/v1/events',
  ),
  fc.string({ maxLength: 20 }).map((s) => `/${encode(s)}`),
);

const patternTestBody = fc
  .record({ pattern: hostileJsonText({ depth: 3 }), event: hostileJsonText({ depth: 3 }) })
  .map(({ pattern, event }) => `{"pattern":${pattern},"event":${event}}`);
const validPatternTest = fc.constant(
  '{"pattern":{"data":{"a":{"b":["x"]},"c":[{"numeric":[">",1]}]}},"event":{"data":{"a":[{"b":"x"},{"b":"y"}],"c":[1,2,3]}}}',
);

const body = fc.oneof(
  fc.constant(undefined),
  hostileJsonText().map((t) => Buffer.from(t)),
  patternTestBody.map((t) => Buffer.from(t)),
  mutated(validPatternTest),
  fc.uint8Array({ maxLength: 32 }).map((b) => Buffer.from(b)),
);

const request = fc.record({
  method: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE') },
    fc.constantFrom('HEAD', 'OPTIONS', 'PATCH'),
  ),
  path,
  query,
  body,
  contentType: fc.constantFrom(
    undefined,
    'application/json',
    'text/plain',
    'application/x-www-form-urlencoded',
  ),
});

describe('fuzz - HTTP API', () => {
  it(
    'fuzz - every route answers 2xx or a coded 4xx in time, and a refusal changes neither the log nor the facts',
    async () => {
      const statuses = new Map<number, number>();
      await fuzz(
        fc.asyncProperty(request, async ({ method, path, query, body, contentType }) => {
          const before = {
            seq: await api.store.lastSeq(),
            facts: JSON.stringify(api.engine.facts.snapshot()),
          };
          const answer = await withinTimeBound(`${method} ${path}${query}`, () =>
            api.app.inject({
              method: method as 'GET',
              url: `${path}${query}`,
              headers: {
                host: '127.0.0.1',
                ...(contentType === undefined ? {} : { 'content-type': contentType }),
              },
              ...(body === undefined ? {} : { payload: body }),
            }),
          );
          statuses.set(answer.statusCode, (statuses.get(answer.statusCode) ?? 0) + 1);
          if (method === 'HEAD') {
            expect(answer.statusCode, `${method} ${path}${query}`).toBeLessThan(500);
            return;
          }
          const refused = expectSuccessOrCodedRefusal(answer);
          if (refused !== undefined) {
            expect(await outsideEventsAfter(api.store, before.seq), `${refused} appended to the log`).toBe(0);
            expect(JSON.stringify(api.engine.facts.snapshot()), `${refused} changed the facts`).toBe(
              before.facts,
            );
          }
        }),
      );
      // Both sides were reached: answers and refusals.
      expect([...statuses.keys()].some((s) => s < 300)).toBe(true);
      expect([...statuses.keys()].some((s) => s >= 400)).toBe(true);
    },
    fuzzTestTimeoutMs,
  );
});
