import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isRetriable, NonRetriableError, ReflexError, RetryAfterError, toErrorInfo } from '../core/errors.js';
import { createHttpAction, httpAction, parseRetryAfter } from './http-action.js';
import { defaultHttpDeny, deniedAddress, deniedName, parseHttpDeny } from './http-deny.js';
import { createRecordingContext } from './test-context.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

let server: Server;
let base: string;
let seen: Seen[] = [];
let handle: (req: IncomingMessage, res: ServerResponse, body: string) => void;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handle(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  seen = [];
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  };
});

async function call(params: unknown, context = createRecordingContext()): Promise<unknown> {
  return httpAction.run(httpAction.parse(params), context);
}

async function failure(params: unknown, context = createRecordingContext()): Promise<unknown> {
  try {
    await call(params, context);
  } catch (error) {
    return error;
  }
  throw new Error('expected the action to fail');
}

describe('http action - requests', () => {
  it('http - sends json with POST and parses a JSON answer', async () => {
    handle = (_req, res, body) => {
      res.writeHead(201, { 'content-type': 'application/json; charset=utf-8', 'x-request-id': 'abc' });
      res.end(JSON.stringify({ got: JSON.parse(body) }));
    };
    const output = await call({ url: `${base}/hooks?x=1`, json: { name: 'disk', level: 3 } });
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/hooks?x=1', body: '{"name":"disk","level":3}' });
    expect(seen[0]!.headers['content-type']).toBe('application/json');
    expect(output).toEqual({
      status: 201,
      headers: expect.objectContaining({ 'x-request-id': 'abc' }),
      body: { got: { name: 'disk', level: 3 } },
    });
  });

  it('http - uses GET without a body and the given method otherwise', async () => {
    await call({ url: base });
    await call({ url: base, method: 'put', body: 'plain words' });
    await call({ url: base, method: 'DELETE' });
    expect(seen.map((s) => [s.method, s.body])).toEqual([
      ['GET', ''],
      ['PUT', 'plain words'],
      ['DELETE', ''],
    ]);
    expect(seen[1]!.headers['content-type']).toBe('text/plain; charset=utf-8');
  });

  it('http - sends the headers given, a stable Idempotency-Key and a User-Agent', async () => {
    const first = createRecordingContext({ idempotencyKey: 'run-9:notify', attempt: 1 });
    const second = createRecordingContext({ idempotencyKey: 'run-9:notify', attempt: 2 });
    const params = { url: base, headers: { Authorization: 'Bearer t0k', 'X-Count': 3 } };
    await call(params, first);
    await call(params, second);
    for (const request of seen) {
      expect(request.headers['authorization']).toBe('Bearer t0k');
      expect(request.headers['x-count']).toBe('3');
      expect(request.headers['idempotency-key']).toBe('run-9:notify');
      expect(request.headers['user-agent']).toMatch(/^reflex\/\d+\.\d+\.\d+/);
    }
  });

  it('http - keeps an Idempotency-Key and User-Agent the step sets itself', async () => {
    await call({ url: base, headers: { 'idempotency-key': 'mine', 'User-Agent': 'ops-bot' } });
    expect(seen[0]!.headers['idempotency-key']).toBe('mine');
    expect(seen[0]!.headers['user-agent']).toBe('ops-bot');
  });

  it('http - returns text for non-JSON answers, with lower-case headers and no cookies', async () => {
    handle = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Thing': 'yes', 'Set-Cookie': 'session=secret' });
      res.end('hello');
    };
    const output = (await call({ url: base })) as { headers: Record<string, string>; body: unknown };
    expect(output.body).toBe('hello');
    expect(output.headers['x-thing']).toBe('yes');
    expect(output.headers['set-cookie']).toBeUndefined();
  });

  it('http - keeps the text of a body labelled JSON that does not parse', async () => {
    handle = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('not json');
    };
    expect(await call({ url: base })).toMatchObject({ body: 'not json' });
  });

  it('http - keeps as text a JSON answer nested deeper than the output may be, and parses one just within', async () => {
    const nested = (levels: number) => `${'{"a":'.repeat(levels - 1)}[]${'}'.repeat(levels - 1)}`;
    let answer = '';
    handle = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(answer);
    };
    // The body sits one level inside the output: with outputs of at most 4 levels, it may have 3.
    const context = () => createRecordingContext({ outputLimits: { maxDepth: 4, maxBytes: 1_048_576 } });
    answer = nested(3);
    expect(await call({ url: base }, context())).toMatchObject({ body: { a: { a: [] } } });
    answer = nested(4);
    expect(await call({ url: base }, context())).toMatchObject({ body: nested(4) });
    // Brackets inside strings are text, not nesting.
    answer = '{"a":"[[[[[[[[{{{{{{\\"]]]]"}';
    expect(await call({ url: base }, context())).toMatchObject({ body: { a: '[[[[[[[[{{{{{{"]]]]' } });
    answer = `${'['.repeat(32_000)}${']'.repeat(32_000)}`;
    expect(await call({ url: base })).toMatchObject({ body: answer });
  });

  // Found by the fuzzer (test/fuzz/action-answers.fuzz.test.ts): JSON.parse reads 1e400 as Infinity,
  // which the stored output turns into null, so the run recorded a number the service never sent.
  it('http - keeps as text a JSON answer holding a number beyond a double, instead of a changed number', async () => {
    let answer = '';
    handle = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(answer);
    };
    for (const text of ['[1e400]', '{"a":{"b":-1e400}}', '1E+999']) {
      answer = text;
      expect(await call({ url: base })).toMatchObject({ body: text });
    }
    answer = '{"a":1e308,"b":5e-324,"c":1e-400}';
    expect(await call({ url: base })).toMatchObject({ body: { a: 1e308, b: 5e-324, c: 0 } });
  });

  it('http - cuts a large answer at 64 KiB and says so', async () => {
    handle = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`[${'"abcdefgh",'.repeat(30_000)}"end"]`);
    };
    const output = (await call({ url: base })) as { body: unknown; truncated?: boolean };
    expect(output.truncated).toBe(true);
    expect(typeof output.body).toBe('string');
    expect(Buffer.byteLength(output.body as string)).toBe(65_536);
  });

  it('http - headers of an answer are bounded too: past 16 KiB the answer is refused, not stored', async () => {
    handle = (_req, res) => {
      for (let i = 0; i < 100; i++) res.setHeader(`x-filler-${i}`, 'y'.repeat(1000));
      res.end('ok');
    };
    const error = await failure({ url: base });
    expect((error as ReflexError).code).toBe('REFLEX_ERR_ACTION_HTTP_UNREACHABLE');
    expect(JSON.stringify(toErrorInfo(error)).length).toBeLessThan(2000);
  });

  it('http - honours a smaller maxBodyBytes option', async () => {
    handle = (_req, res) => res.end('0123456789');
    const small = createHttpAction({ maxBodyBytes: 4 });
    const output = await small.run(small.parse({ url: base }), createRecordingContext());
    expect(output).toMatchObject({ body: '0123', truncated: true });
  });
});

describe('http action - expected statuses', () => {
  it('http - accepts any 2xx by default', async () => {
    handle = (_req, res) => {
      res.writeHead(204);
      res.end();
    };
    expect(await call({ url: base })).toMatchObject({ status: 204, body: '' });
  });

  it('http - accepts a status, a list and classes given in `expect`', async () => {
    handle = (_req, res) => {
      res.writeHead(404);
      res.end('none');
    };
    expect(await call({ url: base, expect: 404 })).toMatchObject({ status: 404 });
    expect(await call({ url: base, expect: '404' })).toMatchObject({ status: 404 });
    expect(await call({ url: base, expect: ['2xx', 404] })).toMatchObject({ status: 404 });
    expect(await call({ url: base, expect: '4XX' })).toMatchObject({ status: 404 });
  });

  it('http - fails with REFLEX_ERR_ACTION_HTTP_STATUS when the status is not the one expected', async () => {
    const error = await failure({ url: base, expect: 201 });
    expect(error).toBeInstanceOf(ReflexError);
    expect((error as ReflexError).code).toBe('REFLEX_ERR_ACTION_HTTP_STATUS');
    expect((error as ReflexError).message).toContain('answered 200, expected 201');
  });

  it('http - a 500 is retriable and carries the status and an excerpt of the body', async () => {
    handle = (_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`database down ${'x'.repeat(5000)}`);
    };
    const error = (await failure({ url: base })) as ReflexError;
    expect(error.code).toBe('REFLEX_ERR_ACTION_HTTP_STATUS');
    expect(isRetriable(error)).toBe(true);
    expect(error.details?.['status']).toBe(500);
    expect(String(error.details?.['body'])).toMatch(/^database down x+…$/);
    expect(String(error.details?.['body']).length).toBeLessThan(2100);
  });

  it('http - a 404 is not retriable and keeps the HTTP error as its cause', async () => {
    handle = (_req, res) => {
      res.writeHead(404);
      res.end('no such hook');
    };
    const error = await failure({ url: `${base}/missing` });
    expect(error).toBeInstanceOf(NonRetriableError);
    expect(isRetriable(error)).toBe(false);
    const info = toErrorInfo(error);
    expect(info.code).toBe('REFLEX_ERR_ACTION_HTTP_STATUS');
    expect(info.details).toMatchObject({ status: 404, body: 'no such hook' });
    expect(info.cause?.code).toBe('REFLEX_ERR_ACTION_HTTP_STATUS');
    expect(info.message).toContain(`GET ${base}/missing answered 404`);
  });

  it('http - a redirect is not followed and not retried: the URL needs fixing', async () => {
    handle = (_req, res) => {
      res.writeHead(301, { location: '/elsewhere' });
      res.end();
    };
    const error = await failure({ url: `${base}/moved` });
    expect(error).toBeInstanceOf(NonRetriableError);
    expect(toErrorInfo(error).details).toMatchObject({ status: 301 });
  });

  it('http - 408, 425 and 429 without Retry-After stay retriable', async () => {
    for (const status of [408, 425, 429]) {
      handle = (_req, res) => {
        res.writeHead(status);
        res.end();
      };
      const error = await failure({ url: base });
      expect(error).toBeInstanceOf(ReflexError);
      expect(isRetriable(error)).toBe(true);
    }
  });

  it('http - a 429 with Retry-After in seconds asks to retry after that delay', async () => {
    handle = (_req, res) => {
      res.writeHead(429, { 'retry-after': '7' });
      res.end('slow down');
    };
    const error = await failure({ url: base });
    expect(error).toBeInstanceOf(RetryAfterError);
    expect((error as RetryAfterError).retryAfterMs).toBe(7000);
    expect(toErrorInfo(error)).toMatchObject({
      code: 'REFLEX_ERR_ACTION_HTTP_STATUS',
      details: { status: 429, retryAfterMs: 7000 },
      cause: { code: 'REFLEX_ERR_ACTION_HTTP_STATUS' },
    });
  });

  it('http - a 503 with a Retry-After date asks to retry at that date', async () => {
    const now = Date.parse('2026-03-01T10:00:00Z');
    handle = (_req, res) => {
      res.writeHead(503, { 'retry-after': 'Sun, 01 Mar 2026 10:01:30 GMT' });
      res.end();
    };
    const action = createHttpAction({ now: () => now });
    const error = await action
      .run(action.parse({ url: base }), createRecordingContext())
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryAfterError);
    expect((error as RetryAfterError).retryAfterMs).toBe(90_000);
  });

  it('http - reads Retry-After values', () => {
    expect(parseRetryAfter('120', 0)).toBe(120_000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:10 GMT', 4000)).toBe(6000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:10 GMT', 20_000)).toBe(0);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
    expect(parseRetryAfter(undefined, 0)).toBeUndefined();
  });
});

describe('http action - failures on the wire', () => {
  it('http - a server that never answers times out and the request is cancelled', async () => {
    let closed!: () => void;
    const socketClosed = new Promise<void>((resolve) => {
      closed = resolve;
    });
    handle = (req) => {
      req.socket.on('close', closed);
    };
    const started = Date.now();
    const error = await failure(
      { url: `${base}/slow`, json: {} },
      createRecordingContext({ signal: AbortSignal.timeout(200), timeoutMs: 200 }),
    );
    expect(Date.now() - started).toBeLessThan(2000);
    expect(error).toBeInstanceOf(ReflexError);
    expect((error as ReflexError).code).toBe('REFLEX_ERR_ACTION_TIMEOUT');
    expect((error as ReflexError).message).toContain('`http` action did not finish within 200ms');
    await socketClosed;
  });

  it('http - a body that stalls after the headers times out too', async () => {
    let closed!: () => void;
    const socketClosed = new Promise<void>((resolve) => {
      closed = resolve;
    });
    handle = (req, res) => {
      req.socket.on('close', closed);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
    };
    const error = await failure(
      { url: base },
      createRecordingContext({ signal: AbortSignal.timeout(200), timeoutMs: 200 }),
    );
    expect((error as ReflexError).code).toBe('REFLEX_ERR_ACTION_TIMEOUT');
    await socketClosed;
  });

  it('http - a signal aborted before the start sends nothing', async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await failure(
      { url: base },
      createRecordingContext({ signal: controller.signal, timeoutMs: 5 }),
    );
    expect((error as ReflexError).code).toBe('REFLEX_ERR_ACTION_TIMEOUT');
    expect(seen).toEqual([]);
  });

  it('http - a refused connection is REFLEX_ERR_ACTION_HTTP_UNREACHABLE and retriable', async () => {
    const closedServer = createServer();
    await new Promise<void>((resolve) => closedServer.listen(0, '127.0.0.1', resolve));
    const port = (closedServer.address() as AddressInfo).port;
    await new Promise((resolve) => closedServer.close(resolve));
    const error = (await failure({ url: `http://127.0.0.1:${port}/` })) as ReflexError;
    expect(error.code).toBe('REFLEX_ERR_ACTION_HTTP_UNREACHABLE');
    expect(error.message).toContain('ECONNREFUSED');
    expect(isRetriable(error)).toBe(true);
  });
});

describe('http action - parameters', () => {
  const invalid = (params: unknown): string => {
    try {
      httpAction.parse(params);
    } catch (error) {
      expect((error as ReflexError).code).toBe('REFLEX_ERR_ACTION_INVALID_PARAMS');
      expect(isRetriable(error)).toBe(false);
      return (error as ReflexError).message;
    }
    throw new Error('expected invalid parameters');
  };

  it('http - refuses URLs that are missing, malformed or not http(s)', () => {
    expect(invalid({})).toContain('`url` is missing');
    expect(invalid({ url: 'not a url' })).toContain('is not a URL');
    expect(invalid({ url: 'file:///etc/passwd' })).toContain('uses file:');
    expect(invalid('https://example.com')).toContain('expected an object, got a string');
  });

  it('http - refuses bodies that cannot be sent as given', () => {
    expect(invalid({ url: base, json: {}, body: 'x' })).toContain('both `json` and `body`');
    expect(invalid({ url: base, body: { a: 1 } })).toContain('`body` is an object');
    expect(invalid({ url: base, method: 'GET', json: {} })).toContain('GET request cannot carry a body');
  });

  it('http - refuses bad methods, headers, expectations and unknown keys', () => {
    expect(invalid({ url: base, method: 'GE T' })).toContain('not an HTTP method');
    expect(invalid({ url: base, headers: { 'bad name': 'x' } })).toContain('header name');
    expect(invalid({ url: base, headers: { 'x-a': 'one\r\nx-b: two' } })).toContain('line break');
    expect(invalid({ url: base, headers: { 'x-a': { nested: true } } })).toContain(
      '`headers.x-a` is an object',
    );
    expect(invalid({ url: base, expect: 'ok' })).toContain('`expect` holds "ok"');
    expect(invalid({ url: base, expect: [] })).toContain('empty list');
  });

  it('http - normalises what it accepts', () => {
    expect(httpAction.parse({ url: 'https://example.com/a b', headers: { 'X-A': 1 }, json: [1] })).toEqual({
      url: 'https://example.com/a%20b',
      method: 'POST',
      headers: { 'x-a': '1', 'content-type': 'application/json' },
      body: '[1]',
      expect: { statuses: [], classes: [2], text: '2xx' },
    });
  });
});

describe('http action - where requests may go', () => {
  it('http - `query` adds encoded parameters to the URL, keeping what it already has', () => {
    expect(
      httpAction.parse({
        url: 'https://example.com/a?x=%2B1',
        query: { q: 'a&b=c d', n: 2, on: true, tag: ['x', 'y'], skip: null },
      }).url,
    ).toBe('https://example.com/a?x=%2B1&q=a%26b%3Dc%20d&n=2&on=true&tag=x&tag=y');
    expect(httpAction.parse({ url: 'https://example.com', query: { 'a b': '#' } }).url).toBe(
      'https://example.com/?a%20b=%23',
    );
    expect(() => httpAction.parse({ url: base, query: 'a=1' })).toThrow(/`query` is a string/);
    expect(() => httpAction.parse({ url: base, query: { a: { b: 1 } } })).toThrow(/`query.a` is an object/);
  });

  it('http - with `hosts`, a URL whose host is not listed is refused, not retried, and nothing is sent', async () => {
    const error = await failure({ url: `${base}/x`, hosts: ['api.example.com', '127.0.0.1:1'] });
    expect((error as ReflexError).code).toBe('REFLEX_ERR_ACTION_HTTP_HOST_NOT_ALLOWED');
    expect((error as ReflexError).message).toContain('(api.example.com, 127.0.0.1:1)');
    expect(isRetriable(error)).toBe(false);
    expect(seen).toEqual([]);
    await call({ url: `${base}/ok`, hosts: [new URL(base).host] });
    expect(seen.map((s) => s.url)).toEqual(['/ok']);
    expect(() => httpAction.parse({ url: base, hosts: [] })).toThrow(/`hosts` is an empty list/);
    expect(() => httpAction.parse({ url: base, hosts: ['a/b'] })).toThrow(/`hosts\[0\]`/);
  });

  it('http - a refused address is REFLEX_ERR_ACTION_HTTP_BLOCKED, not retried, and says which rule refused it', async () => {
    const error = await failure({ url: 'http://169.254.169.254/latest/meta-data/iam/' });
    expect((error as ReflexError).code).toBe('REFLEX_ERR_ACTION_HTTP_BLOCKED');
    expect((error as ReflexError).message).toContain('169.254.169.254 is in 169.254.0.0/16');
    expect(isRetriable(error)).toBe(false);
  });

  it('http - an operator list can refuse loopback too, and `none` refuses nothing', async () => {
    const strict = createHttpAction({ deny: parseHttpDeny('default,127.0.0.0/8') });
    const error = await strict
      .run(strict.parse({ url: `${base}/x` }), createRecordingContext())
      .catch((e) => e);
    expect((error as ReflexError).code).toBe('REFLEX_ERR_ACTION_HTTP_BLOCKED');
    const open = createHttpAction({ deny: parseHttpDeny('none') });
    const answer = await open
      .run(
        open.parse({ url: 'http://169.254.169.254:1/' }),
        createRecordingContext({ signal: AbortSignal.timeout(300) }),
      )
      .catch((e) => e);
    expect((answer as ReflexError).code).not.toBe('REFLEX_ERR_ACTION_HTTP_BLOCKED');
    expect(seen).toEqual([]);
  });

  it('http - credentials in the URL stay out of error messages, the request still carries them', async () => {
    handle = (_req, res) => {
      res.writeHead(500);
      res.end('no');
    };
    const url = `http://bob:pw-9@${new URL(base).host}/x?token=tk-9&page=1`;
    const error = await failure({ url });
    expect(toErrorInfo(error).message).toContain(
      `GET http://${new URL(base).host}/x?token=***&page=1 answered`,
    );
    expect(JSON.stringify(toErrorInfo(error))).not.toMatch(/pw-9|tk-9/);
    expect(seen[0]!.url).toBe('/x?token=tk-9&page=1');
    expect(seen[0]!.headers.authorization).toBe(`Basic ${Buffer.from('bob:pw-9').toString('base64')}`);
    const unreachable = await failure({ url: 'http://bob:pw-9@127.0.0.1:1/?sig=s-9' });
    expect(JSON.stringify(toErrorInfo(unreachable))).not.toMatch(/pw-9|s-9/);
    const invalid = (() => {
      try {
        httpAction.parse({ url: 'http://bob:pw-9@[zz/?key=k-9' });
      } catch (e) {
        return e as ReflexError;
      }
    })();
    expect(invalid?.message).not.toMatch(/pw-9|k-9/);
    // Userinfo that is not valid percent-encoding is sent as written.
    expect(httpAction.parse({ url: 'http://b%zz:p@h/' }).headers.authorization).toBe(
      `Basic ${Buffer.from('b%zz:p').toString('base64')}`,
    );
  });
});

describe('http action - deny lists', () => {
  it('http deny - the default refuses link-local, metadata and unspecified addresses, in every spelling', () => {
    const list = parseHttpDeny('default');
    for (const address of [
      '169.254.169.254',
      '169.254.170.2',
      'fe80::1',
      '[fe80::abcd]',
      'fd00:ec2::254',
      'fd20:ce::254',
      '100.100.100.200',
      '168.63.129.16',
      '0.0.0.0',
      '::',
      '::ffff:169.254.169.254',
      '::ffff:a9fe:a9fe',
      '64:ff9b::a9fe:a9fe',
      '::169.254.169.254',
    ]) {
      expect(deniedAddress(list, address), address).toBeDefined();
    }
    for (const address of [
      '127.0.0.1',
      '::1',
      '10.0.0.1',
      '192.168.1.1',
      '8.8.8.8',
      '2001:db8::1',
      'fd00::1',
    ]) {
      expect(deniedAddress(list, address), address).toBeUndefined();
    }
    expect(deniedName(list, 'Metadata.Google.Internal.')).toBeDefined();
    expect(deniedName(list, 'metadata.google.internal.evil.io')).toBeUndefined();
  });

  it('http deny - an operator list widens or narrows the default; a bad entry is a coded error', () => {
    const list = parseHttpDeny('default, 10.0.0.0/8 [fd12::1] internal.example');
    expect(deniedAddress(list, '10.1.2.3')).toBe('10.0.0.0/8');
    expect(deniedAddress(list, 'fd12::1')).toBe('fd12::1/128');
    expect(deniedName(list, 'internal.example')).toBeDefined();
    expect(deniedAddress(parseHttpDeny('none'), '169.254.169.254')).toBeUndefined();
    expect(deniedAddress(parseHttpDeny('169.254.169.254'), '169.254.169.253')).toBeUndefined();
    for (const bad of ['10.0.0.0/33', 'a_b.example', '*.x', 'http://x']) {
      expect(() => parseHttpDeny(bad)).toThrow(/REFLEX_ERR_CONFIG_INVALID|--http-deny/);
    }
    expect(defaultHttpDeny).toContain('169.254.0.0/16');
  });
});
