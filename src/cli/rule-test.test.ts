import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpTarget, type HttpTarget } from '../../test/helpers/http-target.js';
import { type CaseResult, differences, findRuleTestFiles } from '../testing/rule-test.js';
import { main } from './main.js';
import { runRuleTests } from './rule-test.js';

let dir = '';
let target: HttpTarget | undefined;

afterEach(async () => {
  await target?.close();
  target = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = '';
});

/** Writes files into a fresh temp folder and returns its path. */
async function project(files: Record<string, string>): Promise<string> {
  dir = await mkdtemp(join(tmpdir(), 'reflex-rule-test-'));
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  return dir;
}

/** Runs `reflex test` in-process and captures what it prints. */
async function reflexTest(paths: string[], options: { json?: boolean } = {}) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await runRuleTests({
    paths,
    json: options.json ?? false,
    stdout: (line) => stdout.push(line),
    stderr: (line) => stderr.push(line),
  });
  return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n'), lines: stdout };
}

/** The `--json` line of one case. */
function jsonCases(lines: string[]): CaseResult[] {
  return lines.map((line) => JSON.parse(line)).filter((o) => 'case' in o);
}

const bruteForce = `
rules:
  - name: block-brute-force
    when:
      count: { pattern: { type: [auth.failed] }, atLeast: 3, within: 1m }
      by: event.data.ip
    then:
      - id: block
        http: { url: "https://firewall.example/blocks", json: { ip: "\${{ event.data.ip }}", n: "\${{ size(batch) }}" } }
      - fact: { set: blocked, value: "\${{ event.data.ip }}" }
  - name: page-oncall
    when: { pattern: { type: [auth.succeeded] }, if: has(facts.blocked) && event.data.ip == facts.blocked }
    then:
      - log: "login from blocked \${{ event.data.ip }}"
`;

const bruteForceTest = `
rulebook: ./rulebook.yaml
cases:
  - name: three failures block the address
    events:
      - { at: 0s, type: auth.failed, data: { ip: 10.0.0.7 } }
      - { at: 10s, type: auth.failed, data: { ip: 10.0.0.7 } }
      - { at: 20s, type: auth.failed, data: { ip: 10.0.0.7 } }
      - { at: 30s, type: auth.succeeded, data: { ip: 10.0.0.7 } }
    expect:
      runs:
        - rule: block-brute-force
          at: 20s
          actions: [http, fact]
          params: { block: { json: { ip: 10.0.0.7, n: 3 } } }
          event: { type: auth.failed, data: { ip: 10.0.0.7 } }
        - { rule: page-oncall, at: 30s, params: { 0: login from blocked 10.0.0.7 } }
      facts: { blocked: 10.0.0.7 }
  - name: two failures are not enough
    events:
      - { at: 0s, type: auth.failed, data: { ip: 10.0.0.7 } }
      - { at: 10s, type: auth.failed, data: { ip: 10.0.0.7 } }
    expect:
      runs: []
      not: [block-brute-force]
      facts: { blocked: null }
`;

describe('reflex test', () => {
  it('rule test - passing cases print ✓ per case and the summary, and exit 0', async () => {
    const root = await project({ 'rulebook.yaml': bruteForce, 'rulebook.test.yaml': bruteForceTest });
    const out = await reflexTest([root]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.lines[0]).toBe(join(root, 'rulebook.test.yaml'));
    expect(out.stdout).toMatch(/ {2}✓ three failures block the address \(\d+ms\)/);
    expect(out.stdout).toMatch(/ {2}✓ two failures are not enough/);
    expect(out.lines.at(-1)).toMatch(/^2 passed, 0 failed \(1 file\(s\), \d+ms\)$/);
  });

  it('rule test - a wrong expectation fails with a diff naming the run, the step, the field and its place', async () => {
    const wrong = bruteForceTest
      .replace(
        'params: { block: { json: { ip: 10.0.0.7, n: 3 } } }',
        'params: { block: { json: { ip: 10.0.0.8, n: 3 } } }',
      )
      .replace('          at: 20s', '          at: 25s');
    const root = await project({ 'rulebook.yaml': bruteForce, 'rulebook.test.yaml': wrong });
    const out = await reflexTest([root]);
    expect(out.code).toBe(1);
    expect(out.stdout).toContain('✗ three failures block the address');
    expect(out.stdout).toContain('✓ two failures are not enough');
    const file = join(root, 'rulebook.test.yaml');
    expect(out.stdout).toContain(
      [
        `      run 1 (block-brute-force), step block (http): params.block.json.ip  [${file}:15:28]`,
        '        expected: "10.0.0.8"',
        '        got:      "10.0.0.7"',
      ].join('\n'),
    );
    expect(out.stdout).toContain(
      [
        `      run 1 (block-brute-force): at  [${file}:13:15]`,
        '        expected: "25s"',
        '        got:      "20s"',
      ].join('\n'),
    );
    // What did happen is listed, to compare with.
    expect(out.stdout).toContain(
      '        1. block-brute-force at 20s on auth.failed: succeeded [http, fact]',
    );
    expect(out.lines.at(-1)).toMatch(/^1 passed, 1 failed/);
  });

  it('rule test - runs must be exactly the runs of the case unless `only: false`', async () => {
    const strict = `
rulebook: ./rulebook.yaml
cases:
  - name: strict
    events:
      - { at: 0s, type: auth.failed, data: { ip: 10.0.0.7 } }
      - { at: 1s, type: auth.failed, data: { ip: 10.0.0.7 } }
      - { at: 2s, type: auth.failed, data: { ip: 10.0.0.7 } }
      - { at: 3s, type: auth.succeeded, data: { ip: 10.0.0.7 } }
    expect:
      runs: [{ rule: page-oncall }]
  - name: loose
    events:
      - { at: 0s, type: auth.failed, data: { ip: 10.0.0.7 } }
      - { at: 1s, type: auth.failed, data: { ip: 10.0.0.7 } }
      - { at: 2s, type: auth.failed, data: { ip: 10.0.0.7 } }
      - { at: 3s, type: auth.succeeded, data: { ip: 10.0.0.7 } }
    expect:
      only: false
      runs: [{ rule: page-oncall }]
`;
    const root = await project({ 'rulebook.yaml': bruteForce, 'rulebook.test.yaml': strict });
    const out = await reflexTest([root], { json: true });
    expect(out.code).toBe(1);
    const [strictCase, looseCase] = jsonCases(out.lines);
    expect(strictCase!.ok).toBe(false);
    expect(strictCase!.failures).toEqual([
      expect.objectContaining({
        message: 'the runs differ',
        field: 'runs',
        expected: ['page-oncall'],
        got: ['block-brute-force', 'page-oncall'],
      }),
    ]);
    expect(looseCase!.ok).toBe(true);
  });

  it('rule test - `count` stands for consecutive runs, `not` fails when the rule ran', async () => {
    const test = `
rulebook: ./rulebook.yaml
cases:
  - name: twice
    events:
      - { at: 0s, type: auth.failed, data: { ip: a } }
      - { at: 0s, type: auth.failed, data: { ip: a } }
      - { at: 0s, type: auth.failed, data: { ip: a } }
      - { at: 1s, type: auth.failed, data: { ip: b } }
      - { at: 1s, type: auth.failed, data: { ip: b } }
      - { at: 1s, type: auth.failed, data: { ip: b } }
    expect:
      runs: [{ rule: block-brute-force, count: 2 }]
  - name: not
    events:
      - { at: 0s, type: auth.failed, data: { ip: a } }
      - { at: 0s, type: auth.failed, data: { ip: a } }
      - { at: 0s, type: auth.failed, data: { ip: a } }
    expect:
      not: [{ rule: block-brute-force }]
`;
    const root = await project({ 'rulebook.yaml': bruteForce, 'rulebook.test.yaml': test });
    const out = await reflexTest([root], { json: true });
    const [twice, not] = jsonCases(out.lines);
    expect(twice!.ok).toBe(true);
    expect(twice!.runs.map((r) => r.event?.data)).toEqual([{ ip: 'a' }, { ip: 'b' }]);
    expect(not!.failures).toEqual([
      expect.objectContaining({
        message: '`block-brute-force` ran once, but must not',
        field: 'not',
        got: ['block-brute-force at 0s on auth.failed: succeeded [http, fact]'],
      }),
    ]);
  });

  it('rule test - no real action runs: http and exec are recorded, never sent or spawned', async () => {
    target = await createHttpTarget();
    const marker = join(tmpdir(), `reflex-rule-test-marker-${process.pid}-${Date.now()}`);
    const rulebook = `
rules:
  - name: act
    when: { pattern: { type: [go] } }
    then:
      - id: call
        http: { url: "${target.url}/hook", json: { n: 1 } }
      - id: run
        exec: { command: ["${process.execPath}", "-e", "require('fs').writeFileSync('${marker}', 'x')"] }
      - log: "status \${{ steps.call.output.status }}, exit \${{ steps.run.output.exitCode }}"
`;
    const test = `
rulebook: ./rulebook.yaml
cases:
  - name: recorded
    events: [{ type: go }]
    expect:
      runs:
        - rule: act
          actions: [http, exec, log]
          params:
            call: { url: "${target.url}/hook", json: { n: 1 } }
            2: status 200, exit 0
`;
    const root = await project({ 'rulebook.yaml': rulebook, 'rulebook.test.yaml': test });
    const out = await reflexTest([root], { json: true });
    expect(out.code).toBe(0);
    const [result] = jsonCases(out.lines);
    expect(result!.runs[0]!.steps.map((s) => s.output)).toEqual([
      { status: 200, headers: {}, body: null },
      { exitCode: 0, stdout: '', stderr: '' },
      { message: 'status 200, exit 0' },
    ]);
    expect(target.requests).toEqual([]);
    expect(existsSync(marker)).toBe(false);
  });

  it('rule test - emit and fact act for real, and rules react to them', async () => {
    const rulebook = `
rules:
  - name: first
    when: { pattern: { type: [start] } }
    then:
      - fact: { set: seen, value: "\${{ event.data.n }}" }
      - emit: { type: next, data: { n: "\${{ event.data.n + 1 }}" } }
  - name: second
    when: { pattern: { type: [next] }, if: has(facts.seen) }
    then:
      - log: "next \${{ event.data.n }} after \${{ facts.seen }}"
`;
    const test = `
rulebook: ./rulebook.yaml
cases:
  - name: chained
    events: [{ type: start, data: { n: 1 } }]
    expect:
      runs:
        - { rule: first, actions: [fact, emit] }
        - { rule: second, event: { type: next, source: reflex, data: { n: 2 } }, params: { 0: next 2 after 1 } }
      facts: { seen: 1 }
`;
    const root = await project({ 'rulebook.yaml': rulebook, 'rulebook.test.yaml': test });
    const out = await reflexTest([root]);
    expect(out.stdout).toContain('✓ chained');
    expect(out.code).toBe(0);
  });

  it('rule test - no real time passes: timers fire at their own time within days of test time', async () => {
    const rulebook = `
rules:
  - name: silent
    when:
      absence:
        after: { pattern: { type: [beat] } }
        expect: { pattern: { type: [beat] } }
        within: 1d
      by: event.data.host
    then:
      - log: "\${{ event.data.host }} silent since \${{ event.time }}"
  - name: gathered
    when: { pattern: { type: [alert] } }
    debounce: { quiet: 2h, pass: all }
    then:
      - log: "\${{ size(batch) }} alerts, at \${{ now }}"
`;
    const test = `
rulebook: ./rulebook.yaml
start: 2030-06-01T12:00:00Z
cases:
  - name: a day of silence, and a quiet debounce
    events:
      - { at: 0s, type: beat, data: { host: a } }
      - { at: 1h, type: alert }
      - { at: 2h, type: alert }
      - { at: 3d, type: beat, data: { host: a } }
    until: 7d
    expect:
      runs:
        - { rule: gathered, at: 4h, params: { 0: "2 alerts, at 2030-06-01T16:00:00.000Z" } }
        - { rule: silent, at: 1d, params: { 0: a silent since 2030-06-01T12:00:00.000Z } }
        - { rule: silent, at: 4d }
`;
    const root = await project({ 'rulebook.yaml': rulebook, 'rulebook.test.yaml': test });
    const began = Date.now();
    const out = await reflexTest([root]);
    expect(out.stdout).toContain('✓ a day of silence');
    expect(out.code).toBe(0);
    // A week of test time; well under a minute of real time even on a loaded machine.
    expect(Date.now() - began).toBeLessThan(30_000);
  });

  it('rule test - facts given before a case are in place, and no rule reacts to them being set', async () => {
    const rulebook = `
rules:
  - name: on-change
    when: { pattern: { type: [reflex.fact.changed] } }
    then: [{ log: "changed \${{ event.data.name }}" }]
  - name: guarded
    when: { pattern: { type: [alert] }, if: "!(has(facts.muted) && facts.muted)" }
    then: [{ log: alert }]
`;
    const test = `
rulebook: ./rulebook.yaml
facts: { muted: true }
cases:
  - name: muted by the file
    events: [{ type: alert }]
    expect: { runs: [] }
  - name: unmuted by the case
    facts: { muted: false }
    events: [{ type: alert }]
    expect: { runs: [{ rule: guarded }], facts: { muted: false } }
`;
    const root = await project({ 'rulebook.yaml': rulebook, 'rulebook.test.yaml': test });
    const out = await reflexTest([root]);
    expect(out.stdout).toContain('✓ muted by the file');
    expect(out.stdout).toContain('✓ unmuted by the case');
    expect(out.code).toBe(0);
  });

  it("rule test - secrets take the file's stand-ins, else render as <secret:NAME>, so cases need no real secret", async () => {
    const rulebook = `
rules:
  - name: notify
    when: { pattern: { type: [x] } }
    then:
      - id: call
        http:
          url: "https://api.example.com/hooks/\${{ secrets.HOOK_PATH }}"
          headers: { Authorization: "Bearer \${{ secrets.API_TOKEN }}" }
`;
    const test = `
rulebook: ./rulebook.yaml
cases:
  - name: sends the token
    events: [{ type: x }]
    expect:
      runs:
        - rule: notify
          params:
            call:
              url: "https://api.example.com/hooks/<secret:HOOK_PATH>"
              headers: { Authorization: "Bearer <secret:API_TOKEN>" }
`;
    // A secret that is a whole URL needs a stand-in that is one: the file's \`secrets\` give it.
    const whole = `
rules:
  - name: slack
    when: { pattern: { type: [x] } }
    then:
      - id: post
        http: { url: "\${{ secrets.SLACK_WEBHOOK }}", json: { text: hi } }
`;
    const wholeTest = `
rulebook: ./whole.yaml
secrets: { SLACK_WEBHOOK: "https://hooks.slack.example/T0/B0/x" }
cases:
  - name: posts to the webhook
    events: [{ type: x }]
    expect:
      runs: [{ rule: slack, params: { post: { url: "https://hooks.slack.example/T0/B0/x" } } }]
`;
    const root = await project({
      'rulebook.yaml': rulebook,
      'rulebook.test.yaml': test,
      'whole.yaml': whole,
      'whole.test.yaml': wholeTest,
    });
    const out = await reflexTest([root]);
    expect(out.stdout).toContain('✓ sends the token');
    expect(out.stdout).toContain('✓ posts to the webhook');
    expect(out.code).toBe(0);
  });

  it('rule test - a run whose step fails shows its error; `status: failed` expects it', async () => {
    const rulebook = `
rules:
  - name: broken
    when: { pattern: { type: [x] } }
    then:
      - http: { url: "https://x.example/\${{ event.data.missing }}" }
`;
    const test = `
rulebook: ./rulebook.yaml
cases:
  - name: expects success
    events: [{ type: x, data: {} }]
    expect: { runs: [{ rule: broken }] }
  - name: expects the failure
    events: [{ type: x, data: {} }]
    expect: { runs: [{ rule: broken, status: failed, actions: [http] }] }
`;
    const root = await project({ 'rulebook.yaml': rulebook, 'rulebook.test.yaml': test });
    const out = await reflexTest([root]);
    expect(out.code).toBe(1);
    expect(out.stdout).toContain('✗ expects success');
    expect(out.stdout).toContain('        expected: "succeeded"\n        got:      "failed"');
    expect(out.stdout).toContain('        step 0 (http): REFLEX_ERR_TEMPLATE_FAILED:');
    expect(out.stdout).toContain('✓ expects the failure');
  });

  it('rule test - `outcomes` make attempts fail or answer, so retries and dead ends can be tested', async () => {
    const rulebook = `
rules:
  - name: restart
    when: { pattern: { type: [alert] } }
    then:
      - id: call
        http: { url: "https://restart.example/api", json: { host: "\${{ event.data.host }}" } }
        retry: { attempts: 3, backoff: 10s }
      - id: report
        log: "restarted \${{ event.data.host }}: job \${{ steps.call.output.body.id }}"
`;
    const test = `
rulebook: ./rulebook.yaml
cases:
  - name: fails twice, then answers
    events: [{ type: alert, data: { host: web-1 } }]
    outcomes:
      - { rule: restart, step: call, fail: connection refused, times: 2 }
      - { rule: restart, step: call, output: { status: 200, headers: {}, body: { id: 7 } } }
    until: 1m
    expect:
      runs: [{ rule: restart, attempts: { call: 3, report: 1 }, params: { report: "restarted web-1: job 7" } }]
  - name: not retried when retry is false
    events: [{ type: alert, data: { host: web-2 } }]
    outcomes: [{ rule: restart, step: 0, fail: forbidden, retry: false }]
    until: 1m
    expect: { runs: [{ rule: restart, status: failed, actions: [http], attempts: { call: 1 } }] }
  - name: gives up after its three attempts
    events: [{ type: alert, data: { host: web-3 } }]
    outcomes: [{ rule: restart, step: call, fail: timeout, times: 10 }]
    until: 10m
    expect: { runs: [{ rule: restart, status: failed, attempts: { call: 3 } }] }
  - name: wrong count of attempts
    events: [{ type: alert, data: { host: web-4 } }]
    outcomes: [{ rule: restart, step: call, fail: busy }, { rule: restart, step: call, output: { body: { id: 8 } } }]
    until: 1m
    expect: { runs: [{ rule: restart, attempts: { call: 1 } }] }
`;
    const root = await project({ 'rulebook.yaml': rulebook, 'rulebook.test.yaml': test });
    const out = await reflexTest([root], { json: true });
    const results = jsonCases(out.lines);
    expect(results.map((r) => [r.case, r.ok])).toEqual([
      ['fails twice, then answers', true],
      ['not retried when retry is false', true],
      ['gives up after its three attempts', true],
      ['wrong count of attempts', false],
    ]);
    expect(results[1]!.runs[0]!.steps[0]!.error).toMatchObject({
      code: 'REFLEX_ERR_RULETEST_SIMULATED_FAILURE',
      message: expect.stringContaining('forbidden'),
    });
    expect(results[3]!.failures).toEqual([
      expect.objectContaining({ field: 'attempts.call', expected: 1, got: 2, step: 'call (http)' }),
    ]);
    expect(out.code).toBe(1);
  });

  it('rule test - an outcome must name a rule and a step that exist, and say either fail or output', async () => {
    const rulebook = `
rules:
  - name: restart
    when: { pattern: { type: [alert] } }
    then: [{ id: call, http: { url: "https://restart.example/api" } }]
`;
    const test = `
rulebook: ./rulebook.yaml
cases:
  - name: invalid
    outcomes:
      - { rule: restart, step: nope, fail: x }
      - { rule: restart, step: call, fail: x, output: 1 }
      - { rule: restart, step: call, output: 1, retry: false }
      - { rule: restrat, step: call, fail: x }
    expect: { runs: [] }
`;
    const root = await project({ 'rulebook.yaml': rulebook, 'rulebook.test.yaml': test });
    const out = await reflexTest([root]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('rulebook.test.yaml:6:32: the rule `restart` has no step `nope`');
    expect(out.stderr).toContain('rulebook.test.yaml:7:9: an outcome needs exactly one of `fail`');
    expect(out.stderr).toContain('rulebook.test.yaml:8:56: `retry` only goes with `fail`');
    expect(out.stderr).toContain('rulebook.test.yaml:9:17: the rulebook has no rule named `restrat`');
  });

  it('rule test - --json prints one object per case, then a summary', async () => {
    const root = await project({ 'rulebook.yaml': bruteForce, 'rulebook.test.yaml': bruteForceTest });
    const out = await reflexTest([root], { json: true });
    expect(out.code).toBe(0);
    const objects = out.lines.map((line) => JSON.parse(line));
    expect(objects).toHaveLength(3);
    expect(objects[0]).toMatchObject({
      file: join(root, 'rulebook.test.yaml'),
      case: 'three failures block the address',
      ok: true,
      failures: [],
    });
    expect(objects[0].runs[0]).toMatchObject({
      rule: 'block-brute-force',
      status: 'succeeded',
      at: 20_000,
      actions: ['http', 'fact'],
      trigger: { type: 'auth.failed', source: 'reflex-test', id: 'event-3' },
      steps: [
        {
          id: 'block',
          kind: 'http',
          status: 'succeeded',
          params: { url: 'https://firewall.example/blocks', json: { ip: '10.0.0.7', n: 3 } },
        },
        { id: '1', kind: 'fact', status: 'succeeded', params: { set: 'blocked', value: '10.0.0.7' } },
      ],
    });
    expect(objects[2]).toEqual({ summary: { passed: 2, failed: 0, files: 1, ms: expect.any(Number) } });
  });

  it('rule test - an invalid test file exits 2 with file:line:column and runs nothing', async () => {
    const root = await project({
      'rulebook.yaml': bruteForce,
      'rulebook.test.yaml': `rulebook: ./rulebook.yaml
cases:
  - name: typo
    events:
      - { at: 0s, tpye: auth.failed }
    expect: { runs: [] }
`,
      'other.test.yaml': `rulebook: ./rulebook.yaml
cases:
  - name: ok
    events: [{ at: 5m, type: auth.failed }]
    expect:
      runs: [{ rule: block-brute-forse }]
      not: [page-on-call]
`,
    });
    const out = await reflexTest([root]);
    expect(out.code).toBe(2);
    expect(out.stdout).toBe('');
    const other = join(root, 'other.test.yaml');
    const file = join(root, 'rulebook.test.yaml');
    expect(out.stderr).toContain('error REFLEX_ERR_RULETEST_INVALID: The rule tests have 4 problem(s)');
    expect(out.stderr).toContain(`${file}:5:9: \`cases[0].events[0]\` needs \`type\`.`);
    expect(out.stderr).toContain(
      `${other}:6:22: the rulebook has no rule named \`block-brute-forse\`. To fix: use one of \`block-brute-force\`, \`page-oncall\`.`,
    );
    expect(out.stderr).toContain(`${other}:7:13: the rulebook has no rule named \`page-on-call\`.`);
    expect(out.stderr).toContain(
      `${file}:5:19: unknown key \`tpye\` in \`cases[0].events[0]\`. Did you mean \`type\`?`,
    );
    // The offending text, with a caret under the column.
    expect(out.stderr).toContain('        - { at: 0s, tpye: auth.failed }\n                    ^');
  });

  it('rule test - expectations are checked against the rulebook: step kinds and step ids must exist', async () => {
    const root = await project({
      'rulebook.yaml': bruteForce,
      'rulebook.test.yaml': `rulebook: ./rulebook.yaml
cases:
  - name: wrong steps
    until: 1m
    expect:
      runs: [{ rule: block-brute-force, actions: [http, exec], params: { blok: {} } }]
`,
    });
    const out = await reflexTest([root], { json: true });
    expect(out.code).toBe(2);
    const error = JSON.parse(out.lines[0]!).error;
    expect(error.code).toBe('REFLEX_ERR_RULETEST_INVALID');
    expect(error.details.problems.map((p: { message: string }) => p.message)).toEqual([
      'step 1 of the rule `block-brute-force` is `fact`, not `exec`. To fix: list the kinds of its steps in order (http, fact).',
      'the rule `block-brute-force` has no step `blok`. To fix: name a step by its id or index (block or 0, 1).',
    ]);
  });

  it('rule test - a rulebook problem is reported at the rulebook file:line:column (exit 2)', async () => {
    const root = await project({
      'rulebook.yaml':
        'rules:\n  - name: x\n    when: { pattern: { type: alert } }\n    then: [{ log: hi }]\n',
      'rulebook.test.yaml': 'rulebook: ./rulebook.yaml\ncases:\n  - name: c\n    expect: { runs: [] }\n',
      'missing.test.yaml': 'rulebook: ./nowhere.yaml\ncases:\n  - name: c\n    expect: { runs: [] }\n',
    });
    const out = await reflexTest([root]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain(`${join(root, 'rulebook.yaml')}:3:24: `);
    expect(out.stderr).toContain('REFLEX_ERR_PATTERN_INVALID');
    expect(out.stderr).toContain(
      `${join(root, 'missing.test.yaml')}:1:11: No rulebook at \`${join(root, 'nowhere.yaml')}\`.`,
    );
  });

  it('rule test - a path without tests exits 2 with REFLEX_ERR_RULETEST_NOT_FOUND', async () => {
    const root = await project({ 'rulebook.yaml': bruteForce });
    const out = await reflexTest([root]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain(`error REFLEX_ERR_RULETEST_NOT_FOUND: No rule tests at \`${root}\`.`);
    const missing = await reflexTest([join(root, 'nope')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('REFLEX_ERR_RULETEST_NOT_FOUND');
  });

  it('rule test - folders are searched recursively for *.test.yaml/yml, leaving out hidden folders and node_modules', async () => {
    const root = await project({
      'a/rulebook.test.yaml': '',
      'a/b/more.test.yml': '',
      'a/rulebook.yaml': '',
      '.hidden/x.test.yaml': '',
      'node_modules/pkg/x.test.yaml': '',
      'z.test.YAML': '',
    });
    expect(await findRuleTestFiles([root])).toEqual([
      join(root, 'a/b/more.test.yml'),
      join(root, 'a/rulebook.test.yaml'),
      join(root, 'z.test.YAML'),
    ]);
    // A file named on the command line is taken whatever its name.
    expect(await findRuleTestFiles([join(root, 'a/rulebook.yaml')])).toEqual([join(root, 'a/rulebook.yaml')]);
  });

  it('rule test - `reflex test` is a command of the CLI, defaulting to the current directory', async () => {
    const root = await project({ 'rulebook.yaml': bruteForce, 'rulebook.test.yaml': bruteForceTest });
    const stdout: string[] = [];
    const stderr: string[] = [];
    const io = { stdout: (t: string) => stdout.push(t), stderr: (t: string) => stderr.push(t), env: {} };
    const cwd = process.cwd();
    process.chdir(root);
    try {
      expect(await main(['test'], io)).toBe(0);
    } finally {
      process.chdir(cwd);
    }
    expect(stdout[0]).toBe('rulebook.test.yaml');
    expect(stdout.at(-1)).toMatch(/^2 passed, 0 failed/);
  });
});

describe('differences', () => {
  it('differences - objects match partially, lists fully, values by type', () => {
    const got = { a: 1, b: { c: 'x', d: [1, { e: 2, f: 3 }] }, g: '1' };
    expect(differences({ b: { d: [1, { e: 2 }] } }, got, 'v')).toEqual([]);
    expect(differences({ g: 1 }, got, 'v')).toEqual([{ field: 'v.g', expected: 1, got: '1' }]);
    expect(differences({ b: { d: [1] } }, got, 'v')).toEqual([
      { field: 'v.b.d', expected: [1], got: [1, { e: 2, f: 3 }] },
    ]);
    expect(differences({ b: { x: null } }, got, 'v')).toEqual([{ field: 'v.b.x', expected: null }]);
    expect(differences({ 'my-key': 1 }, { 'my-key': 2 }, 'v')).toEqual([
      { field: 'v["my-key"]', expected: 1, got: 2 },
    ]);
    expect(differences({ a: { b: 1 } }, { a: [1] }, 'v')).toEqual([
      { field: 'v.a', expected: { b: 1 }, got: [1] },
    ]);
  });
});
