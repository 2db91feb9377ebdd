import { readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpAction } from '../../src/actions/http-action.js';
import { builtinActions, createActionRegistry } from '../../src/actions/registry.js';
import type { Logger } from '../../src/core/ports/logger.js';
import { RulebookError } from '../../src/core/ports/rulebook-compiler.js';
import type { Run } from '../../src/core/ports/store.js';
import { createEngineHarness, type EngineHarness, eventually } from '../helpers/engine-harness.js';

/** A real HTTP server on 127.0.0.1 that records what arrived and answers with it (an echo). */
interface EchoServer {
  url: string;
  port: number;
  seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders; body: string }>;
  /** The status of the next answers. @default 200 */
  status: number;
  /** Close every connection after answering, so each request opens a new one. */
  closeConnections: boolean;
  close(): Promise<void>;
}

const servers: EchoServer[] = [];
let harness: EngineHarness | undefined;

afterEach(async () => {
  await harness?.close();
  harness = undefined;
  for (const server of servers.splice(0)) await server.close();
});

async function echoServer(): Promise<EchoServer> {
  const echo: EchoServer = {
    url: '',
    port: 0,
    seen: [],
    status: 200,
    closeConnections: false,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      echo.seen.push(seen);
      res.writeHead(echo.status, {
        'content-type': 'application/json',
        ...(echo.closeConnections ? { connection: 'close' } : {}),
      });
      res.end(JSON.stringify(seen));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  echo.port = (server.address() as AddressInfo).port;
  echo.url = `http://127.0.0.1:${echo.port}`;
  servers.push(echo);
  return echo;
}

/** A logger that keeps every line as JSON text, the way pino would write it. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push(JSON.stringify({ level, ...obj, msg }));
    };
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

async function finishedRun(rule: string): Promise<Run> {
  return eventually(async () =>
    (await harness!.store.listRuns({ limit: 100, rule })).find(
      (r) => r.status === 'succeeded' || r.status === 'failed',
    ),
  );
}

async function attemptsOf(run: Run) {
  return (await harness!.store.getRun(run.id))!.attempts;
}

function loadError(promise: Promise<unknown>): Promise<RulebookError> {
  return promise.then(
    () => {
      throw new Error('expected the rulebook to be refused');
    },
    (error: unknown) => {
      expect(error).toBeInstanceOf(RulebookError);
      return error as RulebookError;
    },
  );
}

/** Every byte Reflex wrote to its data directory (the database, its WAL), as text. */
async function dataDirBytes(dir: string): Promise<string> {
  let all = '';
  for (const name of await readdir(dir)) all += (await readFile(join(dir, name))).toString('latin1');
  return all;
}

describe('http action - templated URLs', () => {
  it('http action - a value in the host part of a URL template is refused when the rulebook loads', async () => {
    const home = await echoServer();
    const error = await loadError(
      createEngineHarness(`
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "${home.url}\${{ event.data.path }}", headers: { Authorization: "Bearer t0ken" } }
`),
    );
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]!.message).toContain('REFLEX_ERR_TEMPLATE_URL_HOST');
    expect(error.problems[0]!.line).toBe(6);
  });

  it('http action - a value cannot move the host after a prefix from vars, so the Authorization header stays home', async () => {
    const home = await echoServer();
    const evil = await echoServer();
    harness = await createEngineHarness(`
vars: { base: "${home.url}" }
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "\${{ vars.base }}\${{ event.data.path }}", headers: { Authorization: "Bearer t0ken" } }
        retry: { attempts: 3, backoff: 1ms }
`);
    await harness.send({ type: 'go', data: { path: `@127.0.0.1:${evil.port}/steal` } });
    const run = await finishedRun('call');
    expect(run.status).toBe('failed');
    const attempts = await attemptsOf(run);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]!.error!.code).toBe('REFLEX_ERR_TEMPLATE_URL_HOST');
    expect(evil.seen).toEqual([]);
    expect(home.seen).toEqual([]);
  });

  it('http action - values in the path, query and fragment cannot add structure', async () => {
    const home = await echoServer();
    harness = await createEngineHarness(`
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "${home.url}/items/\${{ event.data.id }}/x?q=\${{ event.data.q }}&\${{ event.data.name }}=1#\${{ event.data.frag }}" }
`);
    await harness.send({
      type: 'go',
      data: { id: '..%2F../admin?x=1#', q: '1&admin=true#f', name: 'a=b', frag: '@evil/' },
    });
    const run = await finishedRun('call');
    expect(run.status).toBe('succeeded');
    expect(home.seen.map((s) => s.url)).toEqual([
      '/items/..%252F..%2Fadmin%3Fx%3D1%23/x?q=1%26admin%3Dtrue%23f&a%3Db=1',
    ]);
  });

  it('http action - a value that would make a `..` path segment is refused, not normalised away', async () => {
    const home = await echoServer();
    harness = await createEngineHarness(`
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "${home.url}/api/v1/users/\${{ event.data.id }}/profile" }
        retry: { attempts: 3, backoff: 1ms }
`);
    await harness.send({ type: 'go', data: { id: '..' } });
    const run = await finishedRun('call');
    expect(run.status).toBe('failed');
    const attempts = await attemptsOf(run);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]!.error!.code).toBe('REFLEX_ERR_TEMPLATE_FAILED');
    expect(home.seen).toEqual([]);
  });

  it('http action - a URL from event data reaches only the hosts the step allows', async () => {
    const home = await echoServer();
    const evil = await echoServer();
    harness = await createEngineHarness(`
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http:
          url: "\${{ event.data.callback }}"
          hosts: ["127.0.0.1:${home.port}"]
          headers: { Authorization: "Bearer t0ken" }
        retry: { attempts: 3, backoff: 1ms }
`);
    await harness.send({ type: 'go', data: { callback: `${home.url}/done?job=1` } });
    expect((await finishedRun('call')).status).toBe('succeeded');
    expect(home.seen.map((s) => [s.url, s.headers.authorization])).toEqual([['/done?job=1', 'Bearer t0ken']]);

    for (const callback of [
      `${evil.url}/steal`,
      `http://127.0.0.1:${home.port}@127.0.0.1:${evil.port}/steal`,
      `http://127.0.0.1:${evil.port}#@127.0.0.1:${home.port}/`,
    ]) {
      await harness.engine.ingest.append([
        { specversion: '1.0', id: callback, source: 'test', type: 'go', data: { callback } },
      ]);
    }
    await harness.engine.caughtUp();
    const runs = await eventually(async () => {
      const all = await harness!.store.listRuns({ limit: 100, rule: 'call' });
      return all.filter((r) => r.status === 'failed').length === 3 ? all : undefined;
    });
    for (const run of runs.filter((r) => r.status === 'failed')) {
      const attempts = await attemptsOf(run);
      expect(attempts.map((a) => a.error!.code)).toEqual(['REFLEX_ERR_ACTION_HTTP_HOST_NOT_ALLOWED']);
    }
    expect(evil.seen).toEqual([]);
    expect(home.seen).toHaveLength(1);
  });
});

describe('http action - link-local and metadata addresses', () => {
  /** Resolves every name to the address the test gives it, like a DNS server under an attacker's control. */
  function fakeDns(answers: Record<string, string[]>) {
    const asked: string[] = [];
    const lookup = (
      host: string,
      _options: unknown,
      callback: (error: Error | null, addresses: Array<{ address: string; family: number }>) => void,
    ) => {
      asked.push(host);
      const queue = answers[host] ?? [];
      const address = queue.length > 1 ? queue.shift()! : queue[0];
      if (address === undefined) {
        callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }), []);
        return;
      }
      callback(null, [{ address, family: address.includes(':') ? 6 : 4 }]);
    };
    return { lookup, asked };
  }

  async function runOnce(url: string, lookup?: ReturnType<typeof fakeDns>['lookup']) {
    const http = createHttpAction(lookup ? { lookup } : {});
    harness = await createEngineHarness(
      `
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "${url}" }
        retry: { attempts: 3, backoff: 1ms }
`,
      { actions: createActionRegistry([http, ...builtinActions.filter((a) => a.kind !== 'http')]) },
    );
    await harness.send({ type: 'go' });
    const run = await finishedRun('call');
    return { run, attempts: await attemptsOf(run) };
  }

  it.each([
    'http://169.254.169.254/latest/meta-data/',
    'http://2852039166/latest/meta-data/',
    'http://0xA9.0xFE.0xA9.0xFE/latest/meta-data/',
    'http://0251.0376.0251.0376/',
    'http://[::ffff:169.254.169.254]/',
    'http://[fe80::1]/',
    'http://[fd00:ec2::254]/latest/meta-data/',
    'http://100.100.100.200/latest/meta-data/',
    'http://metadata.google.internal/computeMetadata/v1/',
  ])('http action - %s is refused with a coded error and not retried', async (url) => {
    const { run, attempts } = await runOnce(url);
    expect(run.status).toBe('failed');
    expect(attempts.map((a) => a.error!.code)).toEqual(['REFLEX_ERR_ACTION_HTTP_BLOCKED']);
  });

  it('http action - a name that resolves to a metadata address is refused at connect time', async () => {
    const home = await echoServer();
    const dns = fakeDns({ 'meta.attacker.test': ['169.254.169.254'], 'ok.test': ['127.0.0.1'] });
    const { attempts } = await runOnce(`http://meta.attacker.test:${home.port}/`, dns.lookup);
    expect(dns.asked).toContain('meta.attacker.test');
    expect(attempts.map((a) => a.error!.code)).toEqual(['REFLEX_ERR_ACTION_HTTP_BLOCKED']);
    expect(attempts[0]!.error!.message).toContain('169.254.169.254');
    expect(home.seen).toEqual([]);
  });

  it('http action - a name that changes its answer to a link-local address (DNS rebinding) is refused on the new connection', async () => {
    const home = await echoServer();
    home.closeConnections = true;
    const dns = fakeDns({ 'rebind.test': ['127.0.0.1', '169.254.169.254'] });
    const http = createHttpAction({ lookup: dns.lookup });
    harness = await createEngineHarness(
      `
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "http://rebind.test:${home.port}/x" }
        retry: { attempts: 1 }
`,
      { actions: createActionRegistry([http, ...builtinActions.filter((a) => a.kind !== 'http')]) },
    );
    await harness.send({ type: 'go' });
    expect((await finishedRun('call')).status).toBe('succeeded');
    await harness.send({ type: 'go' });
    const failed = await eventually(async () =>
      (await harness!.store.listRuns({ limit: 10, rule: 'call' })).find((r) => r.status === 'failed'),
    );
    expect((await attemptsOf(failed)).map((a) => a.error!.code)).toEqual(['REFLEX_ERR_ACTION_HTTP_BLOCKED']);
    expect(home.seen).toHaveLength(1);
  });

  it('http action - loopback and private addresses stay reachable by default', async () => {
    const home = await echoServer();
    const dns = fakeDns({ 'svc.test': ['127.0.0.1'] });
    const { run } = await runOnce(`http://svc.test:${home.port}/ok`, dns.lookup);
    expect(run.status).toBe('succeeded');
    expect(home.seen.map((s) => s.url)).toEqual(['/ok']);
  });
});

describe('http action - credentials in URLs', () => {
  it('http action - credentials in a URL are redacted in the stored attempt, the outcome event and the log', async () => {
    const home = await echoServer();
    home.status = 500;
    const logger = recordingLogger();
    const credentials = ['hunter2', 'tok3n-value', 'k3y-value', 's1g-value', 'acc3ss-value', 'alice'];
    harness = await createEngineHarness(
      `
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "http://alice:hunter2@127.0.0.1:${home.port}/hook?token=tok3n-value&api_key=k3y-value&sig=s1g-value&access_token=acc3ss-value&page=2" }
        retry: { attempts: 2, backoff: 1ms }
`,
      { logger },
    );
    await harness.send({ type: 'go' });
    // The retry waits on the test clock: let the first attempt be recorded, then move time on.
    await eventually(async () => (await harness!.store.listRuns({ limit: 1 }))[0]?.attempt === 1);
    harness.clock.advance(60_000);
    const run = await finishedRun('call');
    expect(run.status).toBe('failed');
    const attempts = await attemptsOf(run);
    expect(attempts).toHaveLength(2);
    expect(home.seen[0]!.url).toBe(
      '/hook?token=tok3n-value&api_key=k3y-value&sig=s1g-value&access_token=acc3ss-value&page=2',
    );
    const message = attempts[0]!.error!.message;
    expect(message).toContain(`127.0.0.1:${home.port}/hook?`);
    expect(message).toContain('page=2');
    const outcome = (await harness.store.listEvents({ limit: 10, type: 'reflex.run.failed' }))[0]!;
    const stored = JSON.stringify({ attempts, outcome });
    const logged = logger.lines.join('\n');
    expect(logged).toContain('run failed');
    for (const credential of credentials) {
      expect(stored).not.toContain(credential);
      expect(logged).not.toContain(credential);
    }
    await harness.engine.close();
    const bytes = await dataDirBytes(harness.dir);
    for (const credential of ['hunter2', 'tok3n-value', 'k3y-value', 's1g-value', 'acc3ss-value']) {
      // The rulebook is stored as written, so only the run records count here.
      expect(bytes.split(credential).length - 1).toBe(1);
    }
  });
});

describe('secrets for actions', () => {
  const secret = 'S3cr3t-Value-9f2c';
  const secrets = { get: (name: string) => (name === 'API_TOKEN' ? secret : undefined) };

  it('secrets - reach http headers, URL parts, json values and exec args and env, and no stored row or log line', async () => {
    const home = await echoServer();
    const logger = recordingLogger();
    harness = await createEngineHarness(
      `
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - id: call
        http:
          url: "${home.url}/v1/\${{ secrets.API_TOKEN }}/x?key=\${{ secrets.API_TOKEN }}"
          headers: { Authorization: "Bearer \${{ secrets.API_TOKEN }}" }
          json: { token: "\${{ secrets.API_TOKEN }}", host: "\${{ event.data.host }}" }
      - id: run
        exec:
          command: [sh, -c, 'echo "arg=$1 env=$TOKEN"; echo "err=$TOKEN" >&2', sh, "\${{ secrets.API_TOKEN }}"]
          env: { TOKEN: "\${{ secrets.API_TOKEN }}" }
      - id: fail
        exec:
          command: [sh, -c, 'echo "failing with $TOKEN" >&2; exit 3']
          env: { TOKEN: "\${{ secrets.API_TOKEN }}" }
        retry: { attempts: 1 }
`,
      { logger, secrets },
    );
    await harness.send({ type: 'go', data: { host: 'web-1' } });
    const run = await finishedRun('call');
    expect(run.status).toBe('failed');
    const sent = home.seen[0]!;
    expect(sent.url).toBe(`/v1/${secret}/x?key=${secret}`);
    expect(sent.headers.authorization).toBe(`Bearer ${secret}`);
    expect(JSON.parse(sent.body)).toEqual({ token: secret, host: 'web-1' });
    const attempts = await attemptsOf(run);
    expect(attempts.map((a) => a.status)).toEqual(['succeeded', 'succeeded', 'failed']);
    const echoed = attempts[0]!.output as { body: { headers: Record<string, string> } };
    expect(echoed.body.headers.authorization).toBe('Bearer ***');
    expect(attempts[1]!.output).toMatchObject({ stdout: 'arg=*** env=***\n', stderr: 'err=***\n' });
    expect(attempts[2]!.error!.details).toMatchObject({ stderrTail: 'failing with ***\n' });
    const everything = JSON.stringify({
      runs: await harness.store.listRuns({ limit: 10 }),
      attempts,
      events: await harness.store.listEvents({ limit: 100 }),
    });
    expect(everything).not.toContain(secret);
    expect(logger.lines.join('\n')).not.toContain(secret);
    await harness.engine.close();
    expect(await dataDirBytes(harness.dir)).not.toContain(secret);
  });

  it('secrets - a missing secret fails the step at once with a coded error naming it, not its value', async () => {
    const home = await echoServer();
    harness = await createEngineHarness(
      `
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "${home.url}/", headers: { Authorization: "Bearer \${{ secrets.MISSING_TOKEN }}" } }
        retry: { attempts: 3, backoff: 1ms }
`,
      { secrets },
    );
    await harness.send({ type: 'go' });
    const run = await finishedRun('call');
    expect(run.status).toBe('failed');
    const attempts = await attemptsOf(run);
    expect(attempts.map((a) => a.error!.code)).toEqual(['REFLEX_ERR_SECRET_MISSING']);
    expect(attempts[0]!.error!.message).toContain('MISSING_TOKEN');
    expect(home.seen).toEqual([]);
  });

  it('secrets - steps whose parameters are stored (emit, fact, log) cannot read them', async () => {
    for (const step of [
      'emit: { type: x, data: { t: "${{ secrets.API_TOKEN }}" } }',
      'fact: { set: token, value: "${{ secrets.API_TOKEN }}" }',
      'log: "token ${{ secrets.API_TOKEN }}"',
    ]) {
      const error = await loadError(
        createEngineHarness(`
rules:
  - name: leak
    when: { pattern: { type: [go] } }
    then:
      - ${step}
`),
      );
      expect(error.problems).toHaveLength(1);
      expect(error.problems[0]!.message).toContain('REFLEX_ERR_TEMPLATE_SECRET_NOT_ALLOWED');
      expect(error.problems[0]!.message).toContain('cannot read the secret `API_TOKEN`');
    }
  });
});
