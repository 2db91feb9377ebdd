import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../../src/store/index.js';
import {
  cleanupReflex,
  getJson,
  jsonLines,
  makeTempDir,
  pollUntil,
  postEvents,
  runReflex,
  spawnReflex,
  startReflex,
} from '../helpers/reflex-process.js';

/** What `runs ls --json` prints per line (the fields these tests read). */
interface RunLine {
  id: string;
  rule: string;
  status: string;
  trigger: { seq: number; id: string; source: string; type: string };
  outputs: Record<string, unknown>;
  error: { code: string; message: string } | null;
}

/** What `events ls --json` prints per line. */
interface EventLine {
  seq: number;
  receivedAt: string;
  event: { id: string; source: string; type: string; data?: unknown };
}

const node = JSON.stringify(process.execPath);

/** A rule that logs, for events of `type`. */
function logRule(name: string, type: string): string {
  return `
  - name: ${name}
    when:
      pattern: { type: [${type}] }
    then:
      - log: "${name} saw \${{ event.data.n }}"
`;
}

/** A rule whose `exec` step runs `node -e <script> <file> <text>`, with file and text taken from the event. */
function execRule(name: string, type: string, script: string): string {
  const command = [
    node,
    '"-e"',
    JSON.stringify(script),
    '"${{ event.data.file }}"',
    '"${{ event.data.text }}"',
  ].join(', ');
  return `
  - name: ${name}
    when:
      pattern: { type: [${type}] }
    then:
      - id: write
        exec:
          command: [${command}]
        timeout: 20s
        retry: { attempts: 1 }
`;
}

/** `text` as a literal inside a regular expression (temp paths hold dots). */
function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function rulebook(...rules: string[]): string {
  return `name: e2e\nrules:${rules.join('')}`;
}

const writeFileScript = "require('fs').writeFileSync(process.argv[1], process.argv[2])";
const slowWriteScript =
  "setTimeout(() => require('fs').writeFileSync(process.argv[1], process.argv[2]), 1500)";

/** A fresh dir with `rules.yaml` holding `content`, and a path for the data dir. */
async function workspace(content: string) {
  const dir = await makeTempDir();
  const rules = join(dir, 'rules.yaml');
  await writeFile(rules, content);
  return { dir, rules, data: join(dir, 'data') };
}

async function runsOf(url: string): Promise<RunLine[]> {
  return (await getJson<{ items: RunLine[] }>(url, '/api/v1/runs?limit=1000')).items;
}

/** Waits (over HTTP, which is cheap) until the run of `rule` for event `eventId` has ended. */
function runEnded(url: string, rule: string, eventId: string, timeoutMs = 10_000): Promise<RunLine> {
  return pollUntil(
    async () =>
      (await runsOf(url)).find(
        (r) =>
          r.rule === rule && r.trigger.id === eventId && (r.status === 'succeeded' || r.status === 'failed'),
      ),
    { timeoutMs, what: `a finished run of ${rule} for ${eventId}` },
  );
}

afterEach(cleanupReflex);

describe('cli', () => {
  it('cli - emit, events ls, runs ls, runs show and explain follow an event through log and exec rules', async () => {
    const { dir, rules, data } = await workspace(
      rulebook(logRule('log-ping', 'demo.ping'), execRule('write-file', 'demo.write', writeFileScript)),
    );
    const reflex = await startReflex(['start', rules, '--port', '0', '--data', data]);
    const url = reflex.url;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const emitted = await runReflex([
      'emit',
      '--type',
      'demo.ping',
      '--source',
      'e2e',
      '--id',
      'ping-1',
      '--data',
      '{"n":7}',
      '--url',
      url,
    ]);
    expect(emitted).toMatchObject({ code: 0, stdout: 'seq 1 (id ping-1)\n' });

    const listed = await runReflex(['events', 'ls', '--json', '--url', url]);
    expect(listed.code).toBe(0);
    const events = jsonLines<EventLine>(listed.stdout);
    expect(events.find((e) => e.event.id === 'ping-1')).toMatchObject({
      seq: 1,
      event: { type: 'demo.ping', source: 'e2e', data: { n: 7 } },
    });

    await runEnded(url, 'log-ping', 'ping-1');
    const runsListed = await runReflex(['runs', 'ls', '--json'], { env: { REFLEX_URL: url } });
    expect(runsListed.code).toBe(0);
    const pingRuns = jsonLines<RunLine>(runsListed.stdout).filter((r) => r.trigger.id === 'ping-1');
    expect(pingRuns).toHaveLength(1);
    expect(pingRuns[0]).toMatchObject({
      rule: 'log-ping',
      status: 'succeeded',
      trigger: { seq: 1, type: 'demo.ping' },
      outputs: { '0': { message: 'log-ping saw 7' } },
    });
    const logged = await reflex.waitForLog((line) => line.msg === 'log-ping saw 7');
    expect(logged).toMatchObject({ rule: 'log-ping', runId: pingRuns[0]!.id });

    // The exec rule: a real child process writes a file, which proves the action ran.
    const target = join(dir, 'written.txt');
    const writeEvent = JSON.stringify({ file: target, text: 'hello from exec' });
    const emittedWrite = await runReflex(
      ['emit', '--type', 'demo.write', '--id', 'write-1', '--data', writeEvent],
      { env: { REFLEX_URL: url } },
    );
    expect(emittedWrite.code).toBe(0);
    const execRun = await runEnded(url, 'write-file', 'write-1');
    expect(await readFile(target, 'utf8')).toBe('hello from exec');
    const execRunsListed = await runReflex(['runs', 'ls', '--json', '--rule', 'write-file', '--url', url]);
    expect(jsonLines<RunLine>(execRunsListed.stdout)).toEqual([
      expect.objectContaining({
        id: execRun.id,
        status: 'succeeded',
        outputs: { write: { exitCode: 0, stdout: '', stderr: '' } },
      }),
    ]);

    const shown = await runReflex(['runs', 'show', execRun.id, '--url', url]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`run      ${execRun.id}`);
    expect(shown.stdout).toMatch(/^rule {5}write-file \(rulebook version 1\)$/m);
    expect(shown.stdout).toMatch(/^status {3}succeeded$/m);
    expect(shown.stdout).toMatch(/^event {4}seq \d+: demo\.write from reflex-cli \(id write-1\)$/m);
    expect(shown.stdout).toMatch(/^ {2}step write \(exec\) try 1: succeeded in \d+ms/m);

    const explained = await runReflex(['explain', 'ping-1', '--url', url]);
    expect(explained.code).toBe(0);
    expect(explained.stdout).toMatch(/^event seq 1: demo\.ping from e2e \(id ping-1\)/);
    expect(explained.stdout).toContain('dispatched with rulebook version 1');
    expect(explained.stdout).toMatch(/^log-ping: FIRED$/m);
    expect(explained.stdout).toMatch(/^write-file: no match$/m);

    const explainedJson = await runReflex(['explain', 'write-1', '--json', '--url', url]);
    expect(explainedJson.code).toBe(0);
    expect(JSON.parse(explainedJson.stdout)).toMatchObject({
      event: { id: 'write-1', type: 'demo.write' },
      dispatched: true,
      rules: [
        { rule: 'log-ping', verdict: 'no-match' },
        { rule: 'write-file', verdict: 'fired', run: { id: execRun.id, status: 'succeeded' } },
      ],
    });
  }, 90_000);

  it('cli - events ls --data reads the data dir while Reflex runs and after it stopped', async () => {
    const { rules, data } = await workspace(rulebook(logRule('log-ping', 'demo.ping')));
    // Port and data dir from the environment this time.
    const reflex = await startReflex(['start', rules], { env: { REFLEX_PORT: '0', REFLEX_DATA: data } });
    for (const id of ['a-1', 'a-2']) {
      const answer = await postEvents(reflex.url, {
        specversion: '1.0',
        id,
        source: 'e2e',
        type: 'demo.ping',
        data: { n: 1 },
      });
      expect(answer.status).toBe(202);
    }

    const ids = (stdout: string) =>
      jsonLines<EventLine>(stdout)
        .filter((e) => e.event.source === 'e2e')
        .map((e) => e.event.id);
    const whileRunning = await runReflex(['events', 'ls', '--json', '--data', data]);
    expect(whileRunning.code).toBe(0);
    expect(ids(whileRunning.stdout)).toEqual(['a-2', 'a-1']);

    reflex.signal('SIGTERM');
    expect(await reflex.waitForExit()).toEqual({ code: 0, signal: null });

    const afterStop = await runReflex(['events', 'ls', '--json', '--data', data]);
    expect(afterStop.code).toBe(0);
    expect(ids(afterStop.stdout)).toEqual(['a-2', 'a-1']);
    const human = await runReflex(['events', 'ls', '--data', data, '--type', 'demo.ping']);
    expect(human.stdout).toMatch(/^SEQ +RECEIVED +TYPE +SOURCE +ID$/m);
    expect(human.stdout).toMatch(/^1 .* demo\.ping +e2e +a-1$/m);
  }, 60_000);

  it('cli - events ls --limit follows the cursor past pages that end at about 1 MiB', async () => {
    const { data } = await workspace(rulebook(logRule('log-ping', 'demo.ping')));
    const store = await createSqliteStore({ dir: data });
    const big = 'x'.repeat(400_000);
    await store.appendEvents(
      Array.from({ length: 6 }, (_, i) => ({
        specversion: '1.0' as const,
        id: `big-${i}`,
        source: 'e2e',
        type: 'demo.big',
        data: { big },
      })),
      Date.now(),
    );
    await store.close();
    const listed = await runReflex(['events', 'ls', '--json', '--data', data, '--limit', '5']);
    expect(listed.code).toBe(0);
    expect(jsonLines<EventLine>(listed.stdout).map((e) => e.event.id)).toEqual([
      'big-5',
      'big-4',
      'big-3',
      'big-2',
      'big-1',
    ]);
  }, 60_000);

  it('cli - validate exits 0 on a good rulebook, and 2 with file:line:column and the offending line on a bad one', async () => {
    const { dir, rules } = await workspace(
      rulebook(logRule('log-ping', 'demo.ping'), logRule('log-pong', 'demo.pong')),
    );
    const good = await runReflex(['validate', rules]);
    expect(good).toMatchObject({ code: 0, stdout: 'ok: 1 file(s), 2 rule(s), 0 webhook(s)\n' });

    const bad = join(dir, 'bad.yaml');
    await writeFile(
      bad,
      [
        'name: bad',
        'rules:',
        '  - name: typo',
        '    when:',
        '      pattern: { type: [demo.ping] }',
        '    then:',
        '      - lgo: "hello"',
        '',
      ].join('\n'),
    );
    const invalid = await runReflex(['validate', bad]);
    expect(invalid.code).toBe(2);
    expect(invalid.stdout).toBe('');
    expect(invalid.stderr).toContain(`${bad}:7:9: unknown key \`lgo\``);
    // The offending line is quoted, with a caret under column 9 (where `lgo` starts).
    const lines = invalid.stderr.split('\n');
    const quoted = lines.findIndex((line) => line.endsWith('      - lgo: "hello"'));
    expect(quoted).toBeGreaterThan(0);
    expect(lines[quoted + 1]?.indexOf('^')).toBe(lines[quoted]!.indexOf('lgo'));

    const broken = join(dir, 'broken.yaml');
    await writeFile(broken, 'name: broken\nrules:\n  - name: [unclosed\n');
    const unparsable = await runReflex(['validate', broken]);
    expect(unparsable.code).toBe(2);
    expect(unparsable.stderr).toMatch(new RegExp(`${escapeRegExp(broken)}:\\d+:\\d+: `));
  }, 60_000);

  it('cli - match exits 0 on a match, 1 on no match and 2 on an invalid pattern', async () => {
    const dir = await makeTempDir();
    const patternFile = join(dir, 'pattern.json');
    const eventFile = join(dir, 'event.json');
    await writeFile(
      patternFile,
      JSON.stringify({ type: ['disk.full'], data: { used: [{ numeric: ['>', 90] }] } }),
    );
    await writeFile(eventFile, JSON.stringify({ type: 'disk.full', data: { used: 95 } }));

    expect(await runReflex(['match', '--pattern', patternFile, '--event', eventFile])).toMatchObject({
      code: 0,
      stdout: 'match\n',
    });
    expect(
      await runReflex([
        'match',
        '--pattern',
        patternFile,
        '--event',
        '{"type":"disk.full","data":{"used":50}}',
        '--json',
      ]),
    ).toMatchObject({ code: 1, stdout: '{"match":false}\n' });
    const invalid = await runReflex(['match', '--pattern', '{"type":"disk.full"}', '--event', eventFile]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain('REFLEX_ERR_PATTERN_INVALID');
  }, 60_000);

  it('cli - SIGHUP reloads the rulebook and a new rule fires', async () => {
    const { rules, data } = await workspace(rulebook(logRule('old-rule', 'demo.old')));
    const reflex = await startReflex(['start', rules, '--port', '0', '--data', data]);
    const event = (id: string) => ({
      specversion: '1.0',
      id,
      source: 'e2e',
      type: 'demo.new',
      data: { n: 1 },
    });

    expect((await postEvents(reflex.url, event('before-reload'))).status).toBe(202);
    const before = await pollUntil(
      async () => {
        const explanation = await getJson<{ dispatched: boolean; rules: Array<{ rule: string }> }>(
          reflex.url,
          '/api/v1/events/before-reload/explain',
        );
        return explanation.dispatched && explanation;
      },
      { what: 'the first event dispatched' },
    );
    expect(before.rules.map((r) => r.rule)).toEqual(['old-rule']);

    await writeFile(rules, rulebook(logRule('old-rule', 'demo.old'), logRule('new-rule', 'demo.new')));
    const mark = reflex.logs().length;
    reflex.signal('SIGHUP');
    const reloaded = await reflex.waitForLog((line) => line.msg === 'rulebook reloaded', { from: mark });
    expect(reloaded).toMatchObject({ why: 'SIGHUP', rules: 2 });

    expect((await postEvents(reflex.url, event('after-reload'))).status).toBe(202);
    const run = await runEnded(reflex.url, 'new-rule', 'after-reload');
    expect(run.status).toBe('succeeded');
    // The event before the reload stays decided by the rules it was dispatched with.
    expect((await runsOf(reflex.url)).filter((r) => r.trigger.id === 'before-reload')).toEqual([]);
  }, 60_000);

  it('cli - --watch keeps the old rules on a bad edit, logs file:line:column, then applies a good edit', async () => {
    const { rules, data } = await workspace(rulebook(logRule('watched-v1', 'demo.watch')));
    const reflex = await startReflex(['start', rules, '--watch', '--port', '0', '--data', data]);
    const event = (id: string) => ({
      specversion: '1.0',
      id,
      source: 'e2e',
      type: 'demo.watch',
      data: { n: 1 },
    });

    // First a harmless edit (a comment) until a reload shows: from then on the watcher is known to work.
    let mark = reflex.logs().length;
    let touches = 0;
    await pollUntil(
      async () => {
        if (
          reflex
            .logs()
            .slice(mark)
            .some((line) => line.msg === 'rulebook reloaded')
        )
          return true;
        await writeFile(rules, `${rulebook(logRule('watched-v1', 'demo.watch'))}# touch ${++touches}\n`);
        return false;
      },
      { intervalMs: 300, what: 'a reload after touching the rulebook' },
    );

    mark = reflex.logs().length;
    await writeFile(
      rules,
      [
        'name: e2e',
        'rules:',
        '  - name: watched-v2',
        '    when:',
        '      pattern: { type: [demo.watch] }',
        '    then:',
        '      - log: "fine"',
        '        retry: { attempts: lots }',
        '',
      ].join('\n'),
    );
    const refused = await reflex.waitForLog((line) => line.msg.startsWith('rulebook not reloaded'), {
      from: mark,
    });
    expect(refused.level).toBe(50);
    expect(refused.msg).toMatch(new RegExp(`${escapeRegExp(rules)}:8:\\d+: `));
    expect(refused.msg).toContain('retry: { attempts: lots }');

    expect((await postEvents(reflex.url, event('during-bad-edit'))).status).toBe(202);
    expect((await runEnded(reflex.url, 'watched-v1', 'during-bad-edit')).status).toBe('succeeded');

    mark = reflex.logs().length;
    await writeFile(rules, rulebook(logRule('watched-v2', 'demo.watch')));
    await reflex.waitForLog((line) => line.msg === 'rulebook reloaded', { from: mark });
    expect((await postEvents(reflex.url, event('after-good-edit'))).status).toBe(202);
    expect((await runEnded(reflex.url, 'watched-v2', 'after-good-edit')).status).toBe('succeeded');
    const forLastEvent = (await runsOf(reflex.url)).filter((r) => r.trigger.id === 'after-good-edit');
    expect(forLastEvent.map((r) => r.rule)).toEqual(['watched-v2']);
  }, 60_000);

  it('cli - --watch sees an edit made right after the listening line', async () => {
    const { rules, data } = await workspace(rulebook(logRule('watched-v1', 'demo.watch')));
    const reflex = await startReflex(['start', rules, '--watch', '--port', '0', '--data', data]);
    const event = (id: string) => ({
      specversion: '1.0',
      id,
      source: 'e2e',
      type: 'demo.watch',
      data: { n: 1 },
    });
    // A user (or a script) that edits the rulebook once Reflex says it is up expects the edit to count.
    await writeFile(rules, rulebook(logRule('watched-v2', 'demo.watch')));
    await reflex.waitForLog((line) => line.msg === 'rulebook reloaded', { timeoutMs: 5000 });
    expect((await postEvents(reflex.url, event('after-early-edit'))).status).toBe(202);
    expect((await runEnded(reflex.url, 'watched-v2', 'after-early-edit')).status).toBe('succeeded');
  }, 30_000);

  it('cli - SIGTERM waits for an exec action in flight, exits 0 and records the run as succeeded', async () => {
    const { dir, rules, data } = await workspace(
      rulebook(execRule('slow-write', 'demo.slow', slowWriteScript)),
    );
    const reflex = await startReflex(['start', rules, '--port', '0', '--data', data, '--grace', '10s']);
    const target = join(dir, 'slow.txt');
    const answer = await postEvents(reflex.url, {
      specversion: '1.0',
      id: 'slow-1',
      source: 'e2e',
      type: 'demo.slow',
      data: { file: target, text: 'done' },
    });
    expect(answer.status).toBe(202);
    await pollUntil(
      async () => (await runsOf(reflex.url)).find((r) => r.trigger.id === 'slow-1' && r.status === 'running'),
      { what: 'the exec run running' },
    );
    expect(existsSync(target)).toBe(false);

    reflex.signal('SIGTERM');
    const exit = await reflex.waitForExit(20_000);
    // Checked the moment the process is gone: it waited for the action, it did not leave it behind.
    expect(existsSync(target)).toBe(true);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(await readFile(target, 'utf8')).toBe('done');
    expect(reflex.logs().map((line) => line.msg)).toEqual(
      expect.arrayContaining(['stopping: no new events; finishing work in hand', 'stopped']),
    );

    const listed = await runReflex(['runs', 'ls', '--data', data, '--json']);
    expect(listed.code).toBe(0);
    expect(jsonLines<RunLine>(listed.stdout)).toEqual([
      expect.objectContaining({
        rule: 'slow-write',
        status: 'succeeded',
        trigger: expect.objectContaining({ id: 'slow-1' }),
      }),
    ]);
  }, 60_000);

  it('cli - a second start on the same data dir fails with REFLEX_ERR_STORE_LOCKED', async () => {
    const { rules, data } = await workspace(rulebook(logRule('log-ping', 'demo.ping')));
    const first = await startReflex(['start', rules, '--port', '0', '--data', data]);

    const second = spawnReflex(['start', rules, '--port', '0', '--data', data]);
    const exit = await second.waitForExit();
    expect(exit.code).not.toBe(0);
    expect(exit.code).not.toBeNull();
    expect(second.stderr).toContain('REFLEX_ERR_STORE_LOCKED');
    expect(second.stderr).toContain(`pid ${first.pid}`);
    expect(second.stdout).not.toContain('reflex listening on');

    // The first one is unharmed.
    expect(await getJson(first.url, '/api/v1/health')).toMatchObject({ status: 'ok', rules: 1 });
  }, 60_000);

  it('cli - start with a missing rulebook fails clearly without listening', async () => {
    const dir = await makeTempDir();
    const missing = join(dir, 'missing.yaml');
    const started = await runReflex(['start', missing, '--port', '0', '--data', join(dir, 'data')]);
    expect(started.code).toBe(2);
    expect(started.stdout).not.toContain('reflex listening on');
    expect(started.stderr).toContain('REFLEX_ERR_RULEBOOK_NOT_FOUND');
    expect(started.stderr).toContain(missing);
  }, 30_000);
});
