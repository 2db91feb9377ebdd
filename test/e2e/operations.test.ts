import { spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { chmod, mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupReflex,
  getAllItems,
  jsonLines,
  makeTempDir,
  reflexBin,
  runReflex,
  startReflex,
} from '../helpers/reflex-process.js';
import { smallDiskPerTest } from '../helpers/tmpfs.js';

/**
 * What an operator meets when the machine misbehaves: a full disk, a damaged database, a lock left by a
 * process that is gone, a `--data` that cannot be used. Each must be a coded error with the documented
 * exit code (0 ok, 1 runtime failure, 2 invalid input) and nothing that hangs.
 */

const rulebook = `name: ops
webhooks:
  inbox:
    type: ops.hook
    source: ops
rules:
  - name: note
    when:
      pattern: { type: [ops.note] }
    then:
      - log: "noted \${{ event.id }}"
`;

const pad = 'x'.repeat(8_000);

async function workspace() {
  const dir = await makeTempDir('reflex-ops-');
  const rules = join(dir, 'rules.yaml');
  await writeFile(rules, rulebook);
  return { dir, rules };
}

async function post(url: string, path: string, body: unknown, method = 'POST') {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      'content-type': path === '/api/v1/events' ? 'application/cloudevents+json' : 'application/json',
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    body: (text === '' ? undefined : JSON.parse(text)) as { error?: { code: string } } | undefined,
  };
}

let sent = 0;
const bigEvent = (type = 'ops.fill') => ({
  specversion: '1.0',
  id: `big-${++sent}`,
  source: 'ops-test',
  type,
  data: { pad },
});

/** Posts large events until the disk refuses one; returns the ids that were acknowledged. */
async function fillThroughApi(url: string): Promise<string[]> {
  const acknowledged: string[] = [];
  for (let i = 0; i < 2_000; i++) {
    const event = bigEvent();
    const answer = await post(url, '/api/v1/events', event);
    if (answer.status === 202) {
      acknowledged.push(event.id);
      continue;
    }
    expect(answer).toMatchObject({ status: 503, body: { error: { code: 'REFLEX_ERR_STORE_DISK_FULL' } } });
    return acknowledged;
  }
  throw new Error('the disk never filled up');
}

const noStackTrace = (text: string) => expect(text).not.toMatch(/^\s+at /m);

afterEach(cleanupReflex);

describe('operations - full disk', () => {
  const disk = smallDiskPerTest('3m');

  it('operations - a full disk answers 503 REFLEX_ERR_STORE_DISK_FULL with Retry-After, logs once, and takes writes again once there is room', async () => {
    const { rules } = await workspace();
    const data = join(disk().dir, 'data');
    const reflex = await startReflex(['start', rules, '--port', '0', '--data', data]);
    const acknowledged = await fillThroughApi(reflex.url);
    expect(acknowledged.length).toBeGreaterThan(10);
    await disk().fill();

    // Every way in is refused the same way: events, webhooks, fact changes.
    for (let i = 0; i < 30; i++) {
      const answer = await post(reflex.url, '/api/v1/events', bigEvent());
      expect(answer).toMatchObject({
        status: 503,
        retryAfter: '10',
        body: { error: { code: 'REFLEX_ERR_STORE_DISK_FULL' } },
      });
    }
    expect(await post(reflex.url, '/hooks/inbox', { pad })).toMatchObject({
      status: 503,
      retryAfter: '10',
      body: { error: { code: 'REFLEX_ERR_STORE_DISK_FULL' } },
    });
    expect(await post(reflex.url, '/api/v1/facts/big', pad, 'PUT')).toMatchObject({
      status: 503,
      body: { error: { code: 'REFLEX_ERR_STORE_DISK_FULL' } },
    });

    // One line for the whole episode, not one per request.
    const loud = reflex.logs().filter((line) => line.level >= 40);
    expect(loud.map((line) => line.msg)).toEqual([
      'disk full: writes are refused (503 REFLEX_ERR_STORE_DISK_FULL) until there is room again; logged once until then',
    ]);

    // Room comes back (an operator freed space): writes go through at once; the summary follows.
    disk().resize('64m');
    const after = bigEvent('ops.note');
    expect((await post(reflex.url, '/api/v1/events', after)).status).toBe(202);
    const resumed = await reflex.waitForLog((line) => line.msg === 'disk has room again: writes resumed', {
      timeoutMs: 20_000,
    });
    expect(resumed).toMatchObject({ refused: { appends: 32, events: 32, factChanges: 1 } });
    await reflex.waitForLog((line) => line.msg === `noted ${after.id}`);

    reflex.signal('SIGTERM');
    expect(await reflex.waitForExit()).toEqual({ code: 0, signal: null });
    expect(existsSync(join(data, 'reflex.lock'))).toBe(false);
    // Nothing acknowledged was lost.
    const listed = await runReflex([
      'events',
      'ls',
      '--data',
      data,
      '--type',
      'ops.fill',
      '--limit',
      '1000',
      '--json',
    ]);
    const ids = new Set(jsonLines<{ event: { id: string } }>(listed.stdout).map((line) => line.event.id));
    for (const id of acknowledged) expect(ids.has(id)).toBe(true);
  }, 90_000);

  it('operations - SIGTERM while the disk is full exits 0 and releases the lock; the next start takes the directory', async () => {
    const { rules } = await workspace();
    const data = join(disk().dir, 'data');
    const reflex = await startReflex(['start', rules, '--port', '0', '--data', data]);
    const acknowledged = await fillThroughApi(reflex.url);
    await disk().fill();
    await reflex.waitForLog((line) => line.msg.startsWith('disk full'));

    reflex.signal('SIGTERM');
    // Exit 13 was Node's "unsettled top-level await": stopping waited for a worker that had died.
    expect(await reflex.waitForExit()).toEqual({ code: 0, signal: null });
    expect(reflex.logs().at(-1)?.msg).toBe('stopped');
    expect(existsSync(join(data, 'reflex.lock'))).toBe(false);

    disk().resize('64m');
    const again = await startReflex(['start', rules, '--port', '0', '--data', data]);
    const items = await getAllItems<unknown>(again.url, '/api/v1/events?type=ops.fill&limit=1000');
    expect(items).toHaveLength(acknowledged.length);
  }, 90_000);

  it('operations - starting on a full disk fails with REFLEX_ERR_STORE_DISK_FULL and exit 1, leaving nothing behind', async () => {
    const { rules } = await workspace();
    // A data directory used before, on a disk that has filled up since.
    const used = join(disk().dir, 'used');
    const first = await startReflex(['start', rules, '--port', '0', '--data', used]);
    first.signal('SIGTERM');
    await first.waitForExit();
    const before = readdirSync(used).sort();
    await disk().fill();

    for (const data of [used, join(disk().dir, 'fresh')]) {
      const result = await runReflex(['start', rules, '--port', '0', '--data', data]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^error REFLEX_ERR_STORE_DISK_FULL: The disk that holds .* is full/m);
      noStackTrace(result.stderr);
    }
    expect(readdirSync(used).sort()).toEqual(before);
    expect(existsSync(join(disk().dir, 'fresh', 'reflex.lock'))).toBe(false);
    expect(existsSync(join(disk().dir, 'fresh', 'reflex.db'))).toBe(false);
  }, 90_000);
});

describe('operations - damaged database', () => {
  /** A data directory with a few hundred events, made once by a real Reflex and copied for each case. */
  let base: string;
  let keep: string;
  beforeAll(async () => {
    keep = await mkdtemp(join(tmpdir(), 'reflex-ops-base-'));
    const rules = join(keep, 'rules.yaml');
    await writeFile(rules, rulebook);
    base = join(keep, 'base');
    const reflex = await startReflex(['start', rules, '--port', '0', '--data', base]);
    for (let i = 0; i < 300; i++)
      expect((await post(reflex.url, '/api/v1/events', bigEvent())).status).toBe(202);
    reflex.signal('SIGTERM');
    expect(await reflex.waitForExit()).toEqual({ code: 0, signal: null });
    // A clean stop folds the WAL back into reflex.db.
    expect(readdirSync(base)).toEqual(['reflex.db']);
  }, 60_000);
  afterAll(() => rm(keep, { recursive: true, force: true }));

  const copy = async () => {
    const data = join(await makeTempDir('reflex-damaged-'), 'data');
    cpSync(base, data, { recursive: true });
    return { data, db: join(data, 'reflex.db') };
  };

  const overwrite = async (path: string, offset: number, bytes: number) => {
    const file = await open(path, 'r+');
    let seed = 12345;
    const garbage = Buffer.alloc(bytes);
    for (let i = 0; i < bytes; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      garbage[i] = seed & 0xff;
    }
    await file.write(garbage, 0, bytes, offset);
    await file.close();
  };

  const damages: Array<[string, (db: string) => Promise<void> | void, RegExp]> = [
    ['an empty file', (db) => truncateSync(db, 0), /the file is empty \(0 bytes\)/],
    [
      'a file cut in half',
      (db) => truncateSync(db, Math.floor(statSync(db).size / 2 / 4096) * 4096),
      /truncated/,
    ],
    ['a file cut inside a page', (db) => truncateSync(db, 50_000), /not a whole number of 4096-byte pages/],
    ['a garbage header', (db) => overwrite(db, 0, 100), /not a SQLite database/],
    ['garbage pages in the middle', (db) => overwrite(db, 4096 * 40, 4096 * 3), /quick_check/],
    [
      'a garbage write-ahead log',
      (db) => overwrite(`${db}-wal`, 0, 64 * 1024),
      /not a SQLite write-ahead log/,
    ],
  ];

  for (const [what, damage, reason] of damages) {
    it(`operations - ${what} is refused at start with REFLEX_ERR_STORE_CORRUPT and exit 1, and left as it was`, async () => {
      const { rules } = await workspace();
      const { data, db } = await copy();
      if (what.includes('write-ahead')) writeFileSync(`${db}-wal`, '');
      await damage(db);
      const damaged = readFileSync(db);

      const result = await runReflex(['start', rules, '--port', '0', '--data', data]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^error REFLEX_ERR_STORE_CORRUPT: The database `[^`]+` is damaged: /m);
      expect(result.stderr).toMatch(reason);
      expect(result.stderr).toContain('restore the data directory from a backup');
      noStackTrace(result.stderr);
      // Nothing was written over it, and the lock is gone.
      expect(readFileSync(db).equals(damaged)).toBe(true);
      expect(existsSync(join(data, 'reflex.lock'))).toBe(false);
    }, 30_000);
  }

  it('operations - reading a damaged data directory with --data is a coded error, exit 1', async () => {
    const { data, db } = await copy();
    truncateSync(db, 0);
    const result = await runReflex(['events', 'ls', '--data', data]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error REFLEX_ERR_STORE_CORRUPT: .*the file is empty/m);
    noStackTrace(result.stderr);
  });
});

describe('operations - data directory', () => {
  it('operations - a --data that cannot be used is REFLEX_ERR_STORE_DATA_DIR_INVALID, exit 2, at once', async () => {
    const { dir, rules } = await workspace();
    const file = join(dir, 'a-file');
    await writeFile(file, 'not a directory');
    const readOnly = join(dir, 'read-only');
    await mkdir(readOnly);
    spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', readOnly]);
    try {
      // Each kind of path is covered in test/store/sqlite-store.test.ts; these check what the CLI makes
      // of them.
      const cases: Array<[string, RegExp]> = [
        [join(file, 'below'), /is a file/],
        [join(readOnly, 'below'), /read-only file system/],
        // Node's recursive mkdir loops forever on this one: 100% CPU and no output.
        ['/proc/1/fd/x', /takes no new directories/],
      ];
      for (const [data, reason] of cases) {
        const result = await runReflex(['start', rules, '--port', '0', '--data', data], {
          timeoutMs: 10_000,
        });
        expect({ data, code: result.code }).toEqual({ data, code: 2 });
        expect(result.stderr).toMatch(/^error REFLEX_ERR_STORE_DATA_DIR_INVALID: The data directory `/m);
        expect(result.stderr).toMatch(reason);
        noStackTrace(result.stderr);
      }
    } finally {
      spawnSync('umount', [readOnly]);
    }
  }, 120_000);

  it('operations - a directory this user may not enter or write is refused with a coded error, exit 2', async () => {
    const { dir, rules } = await workspace();
    const closed = join(dir, 'closed');
    await mkdir(closed, { mode: 0o700 });
    // The checkout and the workspace must be readable by the unprivileged user; the closed dir is not.
    await chmod(dir, 0o755);
    for (const [data, reason] of [
      [closed, /may not write in/],
      [join(closed, 'below'), /may not look in/],
    ] as const) {
      const result = spawnSync(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          reflexBin,
          'start',
          rules,
          '--port',
          '0',
          '--data',
          data,
        ],
        { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH ?? '', HOME: '/tmp' } },
      );
      expect(result.status).toBe(2);
      expect(result.stderr).toMatch(/^error REFLEX_ERR_STORE_DATA_DIR_INVALID: /m);
      expect(result.stderr).toMatch(reason);
      noStackTrace(result.stderr);
    }
  }, 60_000);

  it('operations - an invalid rulebook at start creates no data directory', async () => {
    const { dir } = await workspace();
    const bad = join(dir, 'bad.yaml');
    await writeFile(
      bad,
      'rules:\n  - name: x\n    when: { pattern: { type: [a] } }\n    then: [{ frobnicate: {} }]\n',
    );
    const data = join(dir, 'never');
    const result = await runReflex(['start', bad, '--port', '0', '--data', data]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown key `frobnicate`');
    expect(existsSync(data)).toBe(false);
  });

  it('operations - a lock whose pid now belongs to another process is stale: start takes the directory over', async () => {
    const { dir, rules } = await workspace();
    const data = join(dir, 'data');
    const first = await startReflex(['start', rules, '--port', '0', '--data', data]);
    const lock = readFileSync(join(data, 'reflex.lock'), 'utf8');
    // The lock names the process by pid and start time, so that a reused pid is told apart.
    expect(lock).toMatch(new RegExp(`^${first.pid}\\n\\S+ \\d+\\n$`));
    await first.kill();

    // The dead Reflex's pid now belongs to a live process that is not Reflex (here: a sleeping child).
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const [, boot] = /^\d+\n(\S+) \d+\n$/.exec(lock)!;
      writeFileSync(join(data, 'reflex.lock'), `${other.pid}\n${boot} 1\n`);
      const second = await startReflex(['start', rules, '--port', '0', '--data', data]);
      expect(readFileSync(join(data, 'reflex.lock'), 'utf8').split('\n')[0]).toBe(String(second.pid));

      // A live Reflex still keeps a second one out.
      const third = await runReflex(['start', rules, '--port', '0', '--data', data]);
      expect(third.code).toBe(1);
      expect(third.stderr).toMatch(
        new RegExp(`^error REFLEX_ERR_STORE_LOCKED: .*\\(pid ${second.pid}\\)`, 'm'),
      );
    } finally {
      other.kill('SIGKILL');
    }
  }, 60_000);
});

describe('operations - output', () => {
  it('operations - a command piped into a reader that goes away (| head) ends quietly', async () => {
    for (const args of [['test', 'examples/quickstart', '--json'], ['--help']]) {
      const child = spawn(reflexBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
      });
      // Like `head -1`: read the first chunk, then close the pipe.
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      child.stdout.destroy();
      const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
      expect({ args, stderr }).toEqual({ args, stderr: '' });
      expect(code).toBe(0);
    }
  }, 60_000);
});

describe('operations - validate and runs show', () => {
  it('operations - pathological YAML makes validate exit 2 with file:line:column, never a stack trace', async () => {
    const { dir } = await workspace();
    const files: Array<[string, string, RegExp]> = [
      [
        'bomb.yaml',
        `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
rules: []
`,
        /bomb\.yaml:2:8: invalid YAML: aliases/,
      ],
      [
        'deep.yaml',
        `rules: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`,
        /deep\.yaml:1:72: invalid YAML: .*nested deeper/,
      ],
      [
        'docs.yaml',
        `rules: []\n${'---\na: 1\n'.repeat(1000)}`,
        /docs\.yaml:2:1: invalid YAML: .*more than one YAML document/,
      ],
    ];
    for (const [name, content, expected] of files) {
      await writeFile(join(dir, name), content);
      const result = await runReflex(['validate', join(dir, name)]);
      expect({ name, code: result.code }).toEqual({ name, code: 2 });
      expect(result.stderr).toMatch(expected);
      noStackTrace(result.stderr);
    }
    // The same file as a rule test: the same limits, the documented exit code for an invalid test file.
    await writeFile(join(dir, 'bomb.test.yaml'), files[0]![1]);
    const tested = await runReflex(['test', join(dir, 'bomb.test.yaml')]);
    expect(tested.code).toBe(2);
    expect(tested.stderr).toMatch(/bomb\.test\.yaml:2:8: invalid YAML: aliases/);
    noStackTrace(tested.stderr);
  }, 60_000);

  it('operations - runs show prints the end of a failed command, where the failure says to look', async () => {
    const dir = await makeTempDir('reflex-ops-');
    const rules = join(dir, 'rules.yaml');
    await writeFile(
      rules,
      `rules:
  - name: fails
    when:
      pattern: { type: [ops.fail] }
    then:
      - id: run
        exec: { command: [sh, -c, "echo progress; echo 'it broke' >&2; exit 3"] }
        retry: { attempts: 1 }
`,
    );
    const reflex = await startReflex(['start', rules, '--port', '0', '--data', join(dir, 'data')]);
    await post(reflex.url, '/api/v1/events', {
      specversion: '1.0',
      id: 'f1',
      source: 'ops',
      type: 'ops.fail',
    });
    const run = await reflex.waitForLog((line) => line.msg === 'run failed');
    const shown = await runReflex(['runs', 'show', String(run.runId), '--url', reflex.url]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('To fix: see the captured output in `reflex runs show`.');
    expect(shown.stdout).toContain('    stdout (end):\n      progress\n    stderr (end):\n      it broke\n');
  }, 60_000);
});
