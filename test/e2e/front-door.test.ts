import { afterEach, describe, expect, it } from 'vitest';
import { errorRegistry } from '../../src/core/errors.js';
import type { Logger } from '../../src/core/ports/logger.js';
import { eventually } from '../helpers/engine-harness.js';
import { allEvents, type HttpApi, type HttpApiOptions, startHttpApi } from '../helpers/http-api-server.js';
import { type RawResponse, rawExchange } from '../helpers/raw-http.js';

// The front door over real sockets: which names and origins are answered, how long a client may take,
// and that every refusal — Reflex's own or the HTTP layer's — comes in the one coded shape.

let api: HttpApi | undefined;

afterEach(async () => {
  await api?.close();
  api = undefined;
});

async function start(options: HttpApiOptions = {}): Promise<HttpApi> {
  api = await startHttpApi(options);
  return api;
}

const portOf = (server: HttpApi) => Number(new URL(server.url).port);

const event = JSON.stringify({ specversion: '1.0', id: 'e-1', source: 'shop', type: 'order.created' });

/** A request as written on the wire; `Content-Length` is added for a body. */
function request(method: string, path: string, headers: Record<string, string>, body?: string): string {
  const lines = [`${method} ${path} HTTP/1.1`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${lines.join('\r\n')}\r\n\r\n${body ?? ''}`;
}

/** Asserts the coded shape: the code's own status, a JSON body `{ error: { code, message } }`. */
function expectCoded(response: RawResponse | undefined, code: keyof typeof errorRegistry): void {
  expect(response, 'an HTTP response').toBeDefined();
  const body = JSON.parse(response!.body) as { error?: { code?: string; message?: string } };
  expect({ status: response!.status, code: body.error?.code }).toEqual({
    status: errorRegistry[code].status,
    code,
  });
  expect(response!.headers['content-type']).toMatch(/^application\/json/);
  expect(body.error?.message).toContain('To fix');
}

/** A logger that keeps every line, to show what a request did or did not log. */
function recordingLogger() {
  const lines: Array<{ level: string; msg: string | undefined; obj: object }> = [];
  const at = (level: string) => (obj: object, msg?: string) => lines.push({ level, obj, msg });
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { logger, lines };
}

describe('front door - Host and Origin', () => {
  it('front door - a request addressed to another name (DNS rebinding) is refused 403, and nothing is stored', async () => {
    const server = await start();
    const port = portOf(server);
    for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.evil.example:${port}`]) {
      const post = await rawExchange(port, [
        request(
          'POST',
          '/api/v1/events',
          { Host: host, 'Content-Type': 'application/cloudevents+json', Connection: 'close' },
          event,
        ),
      ]);
      expectCoded(post.response, 'REFLEX_ERR_API_HOST_NOT_ALLOWED');
      const read = await rawExchange(port, [
        request('GET', '/api/v1/events', { Host: host, Connection: 'close' }),
      ]);
      expectCoded(read.response, 'REFLEX_ERR_API_HOST_NOT_ALLOWED');
    }
    expect(await allEvents(server)).toEqual([]);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST']) {
      const ok = await rawExchange(port, [
        request('GET', '/api/v1/health', { Host: host, Connection: 'close' }),
      ]);
      expect(ok.response?.status).toBe(200);
    }
  });

  it('front door - --allowed-hosts lets a name through', async () => {
    const server = await start({ server: { allowedHosts: ['reflex.internal'] } });
    const ok = await rawExchange(portOf(server), [
      request('GET', '/api/v1/health', { Host: 'reflex.internal:7070', Connection: 'close' }),
    ]);
    expect(ok.response?.status).toBe(200);
  });

  it('front door - a browser POST, PUT or DELETE from another origin is refused 403 and changes nothing', async () => {
    const server = await start({
      rulebook: 'webhooks:\n  alerts: { type: ops.alert, source: alerts }\nrules: []\n',
    });
    const port = portOf(server);
    const host = `127.0.0.1:${port}`;
    const cases: Array<[string, string, Record<string, string>, string | undefined]> = [
      ['POST', '/api/v1/events', { 'Content-Type': 'application/cloudevents+json' }, event],
      // A form post: the content type a cross-site <form> can send without a preflight.
      ['POST', '/api/v1/events', { 'Content-Type': 'text/plain', 'ce-specversion': '1.0' }, event],
      ['POST', '/hooks/alerts', { 'Content-Type': 'text/plain' }, '{}'],
      ['PUT', '/api/v1/facts/maintenance', { 'Content-Type': 'application/json' }, '["web-1"]'],
      ['DELETE', '/api/v1/facts/maintenance', {}, undefined],
    ];
    for (const origin of ['https://evil.example', 'null', `http://localhost:${port + 1}`]) {
      for (const [method, path, headers, body] of cases) {
        const answer = await rawExchange(port, [
          request(method, path, { Host: host, Origin: origin, Connection: 'close', ...headers }, body),
        ]);
        expectCoded(answer.response, 'REFLEX_ERR_API_ORIGIN_NOT_ALLOWED');
      }
    }
    const fetchMetadata = await rawExchange(port, [
      request(
        'POST',
        '/api/v1/events',
        {
          Host: host,
          'Sec-Fetch-Site': 'cross-site',
          'Content-Type': 'application/cloudevents+json',
          Connection: 'close',
        },
        event,
      ),
    ]);
    expectCoded(fetchMetadata.response, 'REFLEX_ERR_API_ORIGIN_NOT_ALLOWED');
    expect(await allEvents(server)).toEqual([]);
    expect((await server.call('/api/v1/facts')).body).toEqual({ facts: {} });

    // The same requests from this server's own origin, or from a program (no Origin), pass.
    const own = await rawExchange(port, [
      request(
        'POST',
        '/api/v1/events',
        {
          Host: host,
          Origin: `http://${host}`,
          'Content-Type': 'application/cloudevents+json',
          Connection: 'close',
        },
        event,
      ),
    ]);
    expect(own.response?.status).toBe(202);
    const program = await server.call('/api/v1/facts/maintenance', { method: 'PUT', json: ['web-1'] });
    expect(program.status).toBe(200);
    // Reads are not refused: without CORS headers a foreign page cannot read the answer anyway.
    const read = await rawExchange(port, [
      request('GET', '/api/v1/health', { Host: host, Origin: 'https://evil.example', Connection: 'close' }),
    ]);
    expect(read.response?.status).toBe(200);
    expect(read.response?.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('front door - timeouts', () => {
  it('front door - a client sending its body a byte a second is cut off with 408 after the request timeout, and nothing is stored', async () => {
    const { logger, lines } = recordingLogger();
    const server = await start({ logger, server: { timeouts: { headersMs: 1000, requestMs: 2000 } } });
    const head = request('POST', '/api/v1/events', {
      Host: '127.0.0.1',
      'Content-Type': 'application/cloudevents+json',
      'Content-Length': String(event.length),
    }).replace(/\r\n\r\n$/, '\r\n\r\n');
    const bytes = [...event].map((c) => c);
    const exchange = await rawExchange(portOf(server), [head, ...bytes], { delayMs: 1000, timeoutMs: 8000 });
    expect(exchange.closed, 'the server closed the connection').toBe(true);
    expect(exchange.closedAfterMs).toBeGreaterThanOrEqual(1900);
    expect(exchange.closedAfterMs).toBeLessThan(5000);
    expectCoded(exchange.response, 'REFLEX_ERR_API_REQUEST_TIMEOUT');
    expect(await allEvents(server)).toEqual([]);
    // Being cut off is the client's doing, not a failure of Reflex.
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('front door - a client sending its headers slowly is cut off with 408 after the headers timeout', async () => {
    const server = await start({ server: { timeouts: { headersMs: 1000, requestMs: 5000 } } });
    const parts = [
      'GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ',
      ...'abcdefghijklmnopqrstuvwxyz',
    ];
    const exchange = await rawExchange(portOf(server), parts, { delayMs: 250, timeoutMs: 6000 });
    expect(exchange.closed).toBe(true);
    expect(exchange.closedAfterMs).toBeLessThan(4000);
    expectCoded(exchange.response, 'REFLEX_ERR_API_REQUEST_TIMEOUT');
  });
});

describe('front door - one error shape', () => {
  const longSegment = 'a'.repeat(1500);
  const malformed: Array<[string, string, keyof typeof errorRegistry]> = [
    [
      'a malformed percent-escape',
      'GET /api/v1/events/%E0%A4%A HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
      'REFLEX_ERR_API_MALFORMED_REQUEST',
    ],
    [
      'a Content-Length that is not a number',
      'POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}',
      'REFLEX_ERR_API_MALFORMED_REQUEST',
    ],
    [
      'both Content-Length and chunked',
      'POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
      'REFLEX_ERR_API_MALFORMED_REQUEST',
    ],
    [
      'a bad chunk size',
      'POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n',
      'REFLEX_ERR_API_MALFORMED_REQUEST',
    ],
    [
      'an unknown method',
      'FOO /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
      'REFLEX_ERR_API_MALFORMED_REQUEST',
    ],
    [
      'a method the route does not take',
      'PATCH /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
      'REFLEX_ERR_API_METHOD_NOT_ALLOWED',
    ],
    [
      'CONNECT',
      'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n',
      'REFLEX_ERR_API_METHOD_NOT_ALLOWED',
    ],
    [
      'headers over the size limit',
      `GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      'REFLEX_ERR_API_HEADERS_TOO_LARGE',
    ],
    [
      'a header name with a control character',
      'GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-\u0001: b\r\n\r\n',
      'REFLEX_ERR_API_MALFORMED_REQUEST',
    ],
    ['a garbage request line', 'hello there\r\n\r\n', 'REFLEX_ERR_API_MALFORMED_REQUEST'],
    [
      'HTTP/1.1 without Host',
      'GET /api/v1/health HTTP/1.1\r\nConnection: close\r\n\r\n',
      'REFLEX_ERR_API_MALFORMED_REQUEST',
    ],
    [
      'an absolute URL naming another host',
      'GET http://evil.example/api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
      'REFLEX_ERR_API_HOST_NOT_ALLOWED',
    ],
    [
      'an over-long path segment',
      `GET /api/v1/events/${longSegment} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
      'REFLEX_ERR_API_URL_TOO_LONG',
    ],
    [
      'an Expect Reflex does not support',
      'POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}',
      'REFLEX_ERR_API_EXPECTATION_FAILED',
    ],
    [
      'a body shorter than its Content-Length, then end of stream',
      'POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/cloudevents+json\r\nContent-Length: 100\r\n\r\n{"a":',
      'REFLEX_ERR_API_MALFORMED_REQUEST',
    ],
    [
      'a body over the limit by its Content-Length',
      'POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/cloudevents+json\r\nContent-Length: 99999999\r\n\r\n',
      'REFLEX_ERR_EVENT_TOO_LARGE',
    ],
    [
      'an unknown route',
      'GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
      'REFLEX_ERR_API_NOT_FOUND',
    ],
  ];

  it('front door - every malformed request sent on a raw socket is answered in the coded shape', async () => {
    const server = await start();
    const port = portOf(server);
    const wrong: string[] = [];
    for (const [what, text, code] of malformed) {
      const exchange = await rawExchange(port, [text], {
        timeoutMs: 3000,
        closeAfterWrite: what.includes('end of stream'),
      });
      try {
        expectCoded(exchange.response, code);
      } catch (error) {
        wrong.push(
          `${what}: ${JSON.stringify(exchange.text.slice(0, 300))} (${(error as Error).message.split('\n')[0]})`,
        );
      }
    }
    expect(wrong).toEqual([]);
    expect(await allEvents(server)).toEqual([]);
  });

  it('front door - HEAD of an unknown route answers 404 with the JSON content type and no body', async () => {
    const server = await start();
    const exchange = await rawExchange(portOf(server), [
      'HEAD /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
    ]);
    expect(exchange.response?.status).toBe(404);
    expect(exchange.response?.headers['content-type']).toMatch(/^application\/json/);
    expect(exchange.response?.body).toBe('');
  });
});

describe('front door - logging', () => {
  it('front door - a client that hangs up in the middle of its body logs nothing at error level', async () => {
    const { logger, lines } = recordingLogger();
    const server = await start({ logger });
    const port = portOf(server);
    for (let i = 0; i < 5; i++) {
      await rawExchange(
        port,
        [
          'POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/cloudevents+json\r\nContent-Length: 1000\r\n\r\n{"specversion":',
        ],
        { timeoutMs: 100 },
      );
    }
    // Each abandoned request is noticed (at debug level); wait for all five, then look at the levels.
    await eventually(
      async () => (lines.filter((l) => l.msg?.includes('went away')).length >= 5 ? true : undefined),
      5000,
    ).catch(() => undefined);
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
    expect(lines.filter((l) => l.msg?.includes('went away'))).toHaveLength(5);
  });
});

describe('front door - unexpected failures', () => {
  it('front door - a failure of Reflex after the body is read still answers 500 in the coded shape and logs an error', async () => {
    const { logger, lines } = recordingLogger();
    const server = await start({ logger });
    // With the store closed under it, setting a fact fails in a way no route expects.
    await server.engine.close();
    const answer = await server.call<{ error: { code: string } }>('/api/v1/facts/maintenance', {
      method: 'PUT',
      json: ['web-1'],
    });
    expect([answer.status, answer.body.error.code]).toEqual([500, 'REFLEX_ERR_INTERNAL_UNEXPECTED']);
    expect(lines.filter((l) => l.level === 'error' && l.msg === 'request failed')).toHaveLength(1);
  });
});

describe('front door - query parameters', () => {
  it('api - an unknown query parameter is refused naming it and the ones the route takes, and changes nothing', async () => {
    const server = await start();
    const misspelt = await server.call('/api/v1/events?limt=10');
    expect(misspelt.status).toBe(400);
    const error = (misspelt.body as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('REFLEX_ERR_API_INVALID_QUERY');
    expect(error.message).toContain('`limt`');
    expect(error.message).toContain('`limit`');
    expect(error.message).toContain('`cursor`');
    for (const path of ['/api/v1/runs?state=failed', '/api/v1/health?verbose=1', '/api/v1/facts?all=1']) {
      const answer = await server.call(path);
      expect([path, answer.status]).toEqual([path, 400]);
    }
    const post = await server.call('/api/v1/events?dryRun=1', {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: event,
    });
    expect(post.status).toBe(400);
    expect(await allEvents(server)).toEqual([]);
    // Known parameters still work.
    expect((await server.call('/api/v1/events?limit=5&type=x')).status).toBe(200);
  });
});
