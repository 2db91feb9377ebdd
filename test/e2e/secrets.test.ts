import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpTarget, type HttpTarget } from '../helpers/http-target.js';
import {
  cleanupReflex,
  jsonLines,
  makeTempDir,
  pollUntil,
  runReflex,
  startReflex,
} from '../helpers/reflex-process.js';

interface RunLine {
  id: string;
  rule: string;
  status: string;
  outputs: Record<string, { stdout?: string }>;
  error: { code: string; message: string } | null;
}

let target: HttpTarget | undefined;

afterEach(async () => {
  await cleanupReflex();
  await target?.close();
  target = undefined;
});

const envSecret = 'e2e-env-s3cret-4f1a';
const fileSecret = 'e2e-file-s3cret-9b2c';
const apiToken = 'e2e-api-t0ken-77d3';

/** Lists the finished runs of `rule`, read from the data directory (works while Reflex runs). */
async function finishedRuns(data: string, rule: string, count = 1): Promise<RunLine[]> {
  return pollUntil(
    async () => {
      const { stdout } = await runReflex(['runs', 'ls', '--json', '--rule', rule, '--data', data]);
      const runs = jsonLines<RunLine>(stdout).filter(
        (r) => r.status === 'succeeded' || r.status === 'failed',
      );
      return runs.length >= count ? runs : undefined;
    },
    { timeoutMs: 20_000, what: `${count} finished run(s) of ${rule}` },
  );
}

async function emit(url: string, type: string): Promise<void> {
  const { code, stderr } = await runReflex(['emit', '--type', type, '--url', url], {
    env: { REFLEX_API_TOKEN: apiToken },
  });
  expect(code, stderr).toBe(0);
}

describe('exec isolation and secrets, through bin/reflex', () => {
  it("exec - a command cannot read the secrets Reflex holds from Reflex's /proc/<pid>/environ, nor from any process", async () => {
    target = await createHttpTarget();
    const dir = await makeTempDir();
    const data = join(dir, 'data');
    const secretsFile = join(dir, 'secrets.env');
    await writeFile(secretsFile, `# for the e2e test\nFILE_TOKEN=${fileSecret}\n`);
    await chmod(secretsFile, 0o600);
    const rules = join(dir, 'rules.yaml');
    // The probe step reads no secret, so nothing masks what it prints: it shows exactly what a command sees.
    const probe = [
      'echo "ppid=$PPID"',
      'tr "\\0" "\\n" < /proc/$PPID/environ',
      'echo "--- holders"',
      'for f in /proc/[0-9]*/environ; do for s in "$@"; do grep -qaF -- "$s" "$f" 2>/dev/null && echo "$f"; done; done',
      'true',
    ].join('; ');
    await writeFile(
      rules,
      `
rules:
  - name: probe
    when: { pattern: { type: [go] } }
    then:
      - id: call
        http:
          url: ${target.url}/x
          headers: { Authorization: "Bearer \${{ secrets.ENV_TOKEN }}", X-File: "\${{ secrets.FILE_TOKEN }}" }
      - id: probe
        exec:
          command: [sh, -c, ${JSON.stringify(probe)}, sh, ${envSecret}, ${fileSecret}, ${apiToken}]
          maxOutput: 1000000
`,
    );
    const reflex = await startReflex(
      ['start', rules, '--port', '0', '--data', data, '--secrets', secretsFile],
      { env: { ENV_TOKEN: envSecret, REFLEX_API_TOKEN: apiToken } },
    );
    await emit(reflex.url, 'go');
    const [run] = await finishedRuns(data, 'probe');
    expect(run!.status, JSON.stringify(run)).toBe('succeeded');

    // Reflex holds all three: the target got both secrets, and the API wanted the token.
    expect(target.requests[0]!.headers.authorization).toBe(`Bearer ${envSecret}`);
    expect(target.requests[0]!.headers['x-file']).toBe(fileSecret);

    const stdout = run!.outputs.probe!.stdout!;
    const [seen, holders] = stdout.split('--- holders\n');
    expect(seen).toContain(`ppid=${reflex.pid}\n`);
    for (const secret of [envSecret, fileSecret, apiToken, 'ENV_TOKEN', 'REFLEX_API_TOKEN']) {
      expect(seen).not.toContain(secret);
    }
    expect(holders).toBe('');
    expect(seen).toContain('REFLEX_ENV_FD=3');
    expect(seen).toContain('PATH=');
    // Reflex knows it is safe, so it does not warn.
    expect(reflex.logs().filter((l) => /environ/.test(l.msg))).toEqual([]);
  });

  it('exec - Reflex started without bin/reflex warns, by name only, that commands can read its environment', async () => {
    const dir = await makeTempDir();
    const reflexMjs = fileURLToPath(new URL('../../bin/reflex.mjs', import.meta.url));
    const reflex = await startReflex(['start', '--port', '0', '--data', join(dir, 'data')], {
      env: { ENV_TOKEN: envSecret },
      launcher: [process.execPath, reflexMjs],
    });
    const warning = await reflex.waitForLog((l) => /environ/.test(l.msg));
    expect(warning.level).toBe(40);
    expect(warning.variables).toContain('ENV_TOKEN');
    expect(reflex.stderr).not.toContain(envSecret);
  });
});

describe('http egress options, through bin/reflex', () => {
  it('http - --http-deny widens the built-in list, and a refused request is a coded failure without retries', async () => {
    target = await createHttpTarget();
    const dir = await makeTempDir();
    const data = join(dir, 'data');
    const rules = join(dir, 'rules.yaml');
    await writeFile(
      rules,
      `
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "${target.url}/x?token=t0k-e2e" }
        retry: { attempts: 3, backoff: 10ms }
`,
    );
    const reflex = await startReflex(['start', rules, '--port', '0', '--data', data], {
      env: { REFLEX_HTTP_DENY: 'default,127.0.0.0/8', REFLEX_API_TOKEN: apiToken },
    });
    await emit(reflex.url, 'go');
    const [run] = await finishedRuns(data, 'call');
    expect(run!.status).toBe('failed');
    expect(run!.error!.code).toBe('REFLEX_ERR_ACTION_HTTP_BLOCKED');
    expect(run!.error!.message).toContain('is in 127.0.0.0/8');
    expect(target.requests).toEqual([]);
    const failure = await reflex.waitForLog((l) => l.msg === 'run failed');
    expect(JSON.stringify(failure)).toContain('token=***');
    expect(reflex.stderr).not.toContain('t0k-e2e');
  });

  it('http - a --http-deny that is not a list of blocks, addresses and names stops the start with exit 2', async () => {
    const dir = await makeTempDir();
    const result = await runReflex([
      'start',
      '--port',
      '0',
      '--data',
      join(dir, 'data'),
      '--http-deny',
      '10.0.0.0/99',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--http-deny');
  });

  it('validate - says which secrets the steps read', async () => {
    const dir = await makeTempDir();
    const rules = join(dir, 'rules.yaml');
    await writeFile(
      rules,
      `
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "https://api.example.com/x", headers: { Authorization: "Bearer \${{ secrets.API_TOKEN }}" } }
      - exec: { command: [deploy, "\${{ secrets.DEPLOY_KEY }}", "\${{ secrets.API_TOKEN }}"] }
`,
    );
    const result = await runReflex(['validate', rules]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(
      'ok: 1 file(s), 1 rule(s), 0 webhook(s)\nsecrets the steps read: API_TOKEN, DEPLOY_KEY\n',
    );
  });
});
