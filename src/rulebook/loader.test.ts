import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Type from 'typebox';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { builtinActions, createActionRegistry } from '../actions/registry.js';
import type { Action } from '../core/ports/action.js';
import { RulebookError, type RulebookProblem } from '../core/ports/rulebook-compiler.js';
import { readRulebookFiles } from './discovery.js';
import { compileRulebook } from './rule-compiler.js';

const actions = createActionRegistry();
const compile = (content: string, path = 'rules.yaml') => compileRulebook([{ path, content }], { actions });

function problemsOf(content: string) {
  try {
    compile(content);
  } catch (error) {
    if (error instanceof RulebookError) return error.problems;
    throw error;
  }
  throw new Error('expected the rulebook to be rejected');
}

const valid = `
name: sample
vars: { threshold: 90 }
defaults: { timeout: 5s }
webhooks:
  github:
    type: { header: X-GitHub-Event, prefix: com.github. }
    source: https://github.com/acme
    id: { header: X-GitHub-Delivery }
    auth: { hmac: { secret: { env: GITHUB_SECRET } } }
rules:
  - name: restart-on-critical
    when:
      pattern: { type: [alertmanager.alert], data: { status: [firing] } }
      if: event.data.value > vars.threshold
    then:
      - id: restart
        http: { url: "http://127.0.0.1:9000/restart", method: POST, json: { host: "\${{ event.data.host }}" } }
        retry: { attempts: 5, backoff: 2s, maxDelay: 1m }
      - log: "restart requested for \${{ event.data.host }}"
    stop: true
  - name: only-condition
    enabled: false
    when: { if: 'event.type.startsWith("x.")' }
    then:
      - exec: { command: [echo, hi] }
        timeout: 1s
`;

describe('rulebook loader', () => {
  it('rulebook - compiles rules, steps, defaults and webhooks', () => {
    const rulebook = compile(valid);
    expect(rulebook.rules.map((r) => r.name)).toEqual(['restart-on-critical', 'only-condition']);
    const [first, second] = rulebook.rules;
    expect(first!.stop).toBe(true);
    expect(first!.subs[0]!.pattern).toBeDefined();
    expect(first!.subs[0]!.condition?.source).toBe('event.data.value > vars.threshold');
    expect(first!.vars).toEqual({ threshold: 90 });
    expect(first!.location).toEqual({ file: 'rules.yaml', line: 12, column: 11 });
    expect(first!.then.map((s) => [s.id, s.kind, s.timeoutMs])).toEqual([
      ['restart', 'http', 5000],
      ['1', 'log', 5000],
    ]);
    expect(first!.then[0]!.retry).toEqual({ attempts: 5, backoffMs: 2000, maxDelayMs: 60_000 });
    expect(second!.enabled).toBe(false);
    expect(second!.subs[0]!.pattern).toBeUndefined();
    const hook = rulebook.webhooks.get('github')!;
    expect(hook.type).toEqual({ header: 'X-GitHub-Event', prefix: 'com.github.' });
    expect(hook.auth).toEqual({
      type: 'hmac',
      header: 'X-Hub-Signature-256',
      prefix: 'sha256=',
      secret: { env: 'GITHUB_SECRET' },
    });
    expect(hook.id).toEqual({ header: 'X-GitHub-Delivery' });
  });

  it('rulebook - an unknown key is reported at its line and column with a suggestion', () => {
    const problems = problemsOf(valid.replace('    stop: true', '    stpo: true'));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: 'rules.yaml', line: 21, column: 5 });
    expect(problems[0]!.message).toContain('unknown key `stpo`');
    expect(problems[0]!.message).toContain('Did you mean `stop`?');
    expect(problems[0]!.excerpt).toBe('      stpo: true\n      ^');
  });

  it("rulebook - each action's parameter schema refuses an unknown parameter where it stands, with a suggestion", () => {
    const step = (action: string) =>
      compile(`rules:\n  - name: r\n    when: { pattern: { type: [a] } }\n    then:\n      - ${action}\n`);
    const cases = [
      ['http: { url: "http://127.0.0.1/", heders: {} }', 'heders', 'headers'],
      ['exec: { command: [ls], envv: {} }', 'envv', 'env'],
      ['log: { message: x, levle: warn }', 'levle', 'level'],
      ['emit: { type: a.b, dat: 1 }', 'dat', 'data'],
    ] as const;
    for (const [action, key, meant] of cases) {
      let problems: RulebookProblem[] = [];
      try {
        step(action);
      } catch (error) {
        if (!(error instanceof RulebookError)) throw error;
        problems = error.problems;
      }
      const unknown = problems.find((p) => p.message.startsWith(`unknown key \`${key}\``));
      expect(unknown?.line).toBe(5);
      expect(unknown?.message).toContain(
        `in \`rules[0].then[0].${action.split(':')[0]}\`. Did you mean \`${meant}\`?`,
      );
    }
  });

  it('rulebook - an action of a plugin brings its parameter schema, and its steps are checked with it', () => {
    const pager: Action = {
      kind: 'page',
      params: Type.Object({ to: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
      parse: (params) => params,
      run: async () => null,
    };
    const withPager = createActionRegistry([...builtinActions, pager]);
    const rulebook = (params: string) => [
      {
        path: 'rules.yaml',
        content: `rules:\n  - name: r\n    when: { pattern: { type: [a] } }\n    then:\n      - page: ${params}\n`,
      },
    ];
    expect(compileRulebook(rulebook('{ to: oncall }'), { actions: withPager }).rules[0]!.then[0]!.kind).toBe(
      'page',
    );
    expect(() => compileRulebook(rulebook('{ too: oncall }'), { actions: withPager })).toThrow(
      /rules.yaml:5:\d+: unknown key `too` in `rules\[0\]\.then\[0\]\.page`\. Did you mean `to`\?/,
    );
    // Without the plugin, `page` is no action at all.
    expect(() => compileRulebook(rulebook('{ to: oncall }'), { actions })).toThrow(/unknown key `page`/);
  });

  it('rulebook - a misspelt action names the step and the known actions', () => {
    const problems = problemsOf(valid.replace('      - log: "restart', '      - lgo: "restart'));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ line: 20, column: 9 });
    expect(problems[0]!.message).toMatch(/unknown key `lgo`.*Did you mean `log`\?/);
  });

  it('rulebook - a step with two actions or none is rejected', () => {
    const two = problemsOf(
      valid.replace(
        '      - log: "restart requested for ${{ event.data.host }}"',
        '      - { log: a, emit: { type: b } }',
      ),
    );
    expect(two[0]!.message).toContain('a step needs exactly one action');
    expect(two[0]!.line).toBe(20);
  });

  it('rulebook - an invalid pattern points inside the pattern', () => {
    const problems = problemsOf(valid.replace('status: [firing]', 'status: [{ prefx: fir }]'));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ line: 14, column: 65 });
    expect(problems[0]!.message).toContain('REFLEX_ERR_PATTERN_INVALID');
    expect(problems[0]!.message).toContain('`prefx`');
  });

  it('rulebook - a pattern too complex for the matcher is refused at load time, where it is written', () => {
    // Nested $or lists multiply: 11 levels of two alternatives are 2 048 alternatives, over the limit.
    const nest = (n: number): Record<string, unknown> =>
      n === 0
        ? {}
        : {
            $or: [
              { [`f${n}`]: ['a'], ...nest(n - 1) },
              { [`g${n}`]: ['b'], ...nest(n - 1) },
            ],
          };
    const problems = problemsOf(
      valid.replace('status: [firing]', `status: [firing], x: ${JSON.stringify(nest(11))}`),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]!.line).toBe(14);
    expect(problems[0]!.message).toContain('REFLEX_ERR_PATTERN_TOO_COMPLEX');
  });

  it('rulebook - a CEL syntax error points at the character in the condition', () => {
    const problems = problemsOf(
      valid.replace('if: event.data.value > vars.threshold', 'if: event.data.value > > vars.threshold'),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]!.line).toBe(15);
    expect(problems[0]!.column).toBeGreaterThan(11);
    expect(problems[0]!.message).toContain('REFLEX_ERR_CONDITION_INVALID');
  });

  it('rulebook - an unknown variable in a template is reported at the template', () => {
    const problems = problemsOf(
      valid.replace('"restart requested for ${{ event.data.host }}"', '"restart ${{ evnt.data.host }}"'),
    );
    expect(problems[0]!.line).toBe(20);
    expect(problems[0]!.message).toContain('REFLEX_ERR_TEMPLATE_INVALID');
  });

  it('rulebook - static action parameters are checked at load time', () => {
    const problems = problemsOf(
      valid.replace('exec: { command: [echo, hi] }', 'http: { url: "ftp://example.com/x" }'),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ line: 26, column: 15 });
    expect(problems[0]!.message).toContain('REFLEX_ERR_ACTION_INVALID_PARAMS');
  });

  it('rulebook - wrong types and bad durations are reported where they stand', () => {
    const problems = problemsOf(
      valid.replace('attempts: 5', 'attempts: five').replace('timeout: 5s', 'timeout: 5 seconds'),
    );
    const messages = problems.map((p) => `${p.line}: ${p.message}`);
    expect(messages.some((m) => m.startsWith('4: ') && m.includes('defaults.timeout'))).toBe(true);
    expect(messages.some((m) => m.startsWith('19: ') && m.includes('attempts'))).toBe(true);
  });

  it('rulebook - duplicate rule names across files name both places', () => {
    const a = {
      path: 'a.yaml',
      content: 'rules:\n  - name: x\n    when: { if: "true" }\n    then: [ { log: a } ]\n',
    };
    const b = {
      path: 'b.yaml',
      content:
        'rules:\n  - name: y\n    when: { if: "true" }\n    then: [ { log: b } ]\n  - name: x\n    when: { if: "true" }\n    then: [ { log: c } ]\n',
    };
    try {
      compileRulebook([a, b], { actions });
      expect.unreachable();
    } catch (error) {
      const problems = (error as RulebookError).problems;
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatchObject({ file: 'b.yaml', line: 5 });
      expect(problems[0]!.message).toContain('already used at a.yaml:2:11');
    }
  });

  it('rulebook - invalid YAML is reported with its position, and the error is coded', () => {
    try {
      compile('rules:\n  - name: x\n    when: { if: "true"\n');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(RulebookError);
      const e = error as RulebookError;
      expect(e.code).toBe('REFLEX_ERR_RULEBOOK_INVALID');
      expect(e.statusCode).toBe(400);
      expect(e.problems[0]!.message).toMatch(/^invalid YAML/);
      expect(e.message).toMatch(/^The rulebook has \d+ problem\(s\)/);
      expect(e.message).toContain('rules.yaml:');
    }
  });

  it('rulebook - duplicate keys in a mapping are an error, not a silent overwrite', () => {
    const problems = problemsOf(
      'rules:\n  - name: x\n    name: y\n    when: { if: "true" }\n    then: [ { log: a } ]\n',
    );
    expect(problems[0]!.message).toMatch(/unique/i);
    expect(problems[0]!.line).toBe(3);
  });

  // Found by the fuzzer (test/fuzz/rulebooks.fuzz.test.ts): the schema checked only the webhooks whose
  // names fit the pattern, so another name loaded, and its value went unchecked into the compiler,
  // which threw a TypeError for a value that is not a map.
  it.each([
    ['bad name', '{ type: com.example.x, source: s }'],
    ['bad/name', '{ type: com.example.x, source: s }'],
    ['[ complex, key ]', 'value'],
    ['é', '7'],
  ])('rulebook - a webhook named %j is refused at its name, whatever its value', (name, value) => {
    const problems = problemsOf(`webhooks:\n  ${JSON.stringify(name)}: ${value}\nrules: []\n`);
    expect(problems.map((p) => [p.line, p.column])).toEqual([[2, 3]]);
    expect(problems[0]?.message).toContain('letters, digits');
  });

  // Found by the rulebook fuzzer: YAML allows a list or a mapping as a key (`? [a, b]`); it was turned
  // into text with a raw Node warning on stderr ("Keys with collection values will be stringified").
  it.each([
    ['rules:\n  - ? [complex, key]\n    : value\n', [2, 7]],
    ['vars:\n  ? { a: 1 }\n  : 2\nrules: []\n', [2, 5]],
    ['vars:\n  x: &k [1]\n  *k : 2\nrules: []\n', [3, 3]],
  ])(
    'rulebook - a key that is not text is refused where it stands, without a process warning (%#)',
    (content, at) => {
      const warn = vi.spyOn(process, 'emitWarning');
      try {
        const problems = problemsOf(content);
        expect(problems.map((p) => [p.line, p.column])).toEqual([at]);
        expect(problems[0]?.message).toContain('keys must be text');
        expect(warn).not.toHaveBeenCalled();
      } finally {
        warn.mockRestore();
      }
    },
  );

  it('rulebook - an empty file says what to add', () => {
    const problems = problemsOf('# nothing yet\n');
    expect(problems[0]!.message).toContain('the file is empty');
  });
});

describe('rulebook files', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('rulebook - a folder stands for its YAML files in path order, without rule tests or hidden files', async () => {
    dir = await mkdtemp(join(tmpdir(), 'reflex-rulebooks-'));
    await mkdir(join(dir, 'team-b'));
    await writeFile(join(dir, 'b.yaml'), 'rules: []\n');
    await writeFile(join(dir, 'a.yml'), 'rules: []\n');
    await writeFile(join(dir, 'a.test.yaml'), 'cases: []\n');
    await writeFile(join(dir, '.hidden.yaml'), 'rules: []\n');
    await writeFile(join(dir, 'notes.txt'), 'hello\n');
    await writeFile(join(dir, 'team-b', 'c.yaml'), 'rules: []\n');
    const files = await readRulebookFiles([dir]);
    expect(files.map((f) => f.path.slice(dir!.length + 1))).toEqual(['a.yml', 'b.yaml', 'team-b/c.yaml']);
  });

  it('rulebook - a missing path is a coded error naming it', async () => {
    await expect(readRulebookFiles(['/nonexistent/rules.yaml'])).rejects.toMatchObject({
      code: 'REFLEX_ERR_RULEBOOK_NOT_FOUND',
      message: expect.stringContaining('/nonexistent/rules.yaml'),
    });
  });
});

describe('rulebook correlation checks', () => {
  const rule = (body: string) => `rules:\n  - name: r\n${body}    then: [ { log: x } ]\n`;

  it('rulebook - options that would have no effect are refused where they stand', () => {
    const anyBy = problemsOf(
      rule('    when:\n      any: [ { pattern: { type: [a] } } ]\n      by: event.data.k\n'),
    );
    expect(anyBy[0]!.message).toContain('`by` has no effect on `any`');
    expect(anyBy[0]!.line).toBe(5);
    const ttl = problemsOf(rule('    when: { pattern: { type: [a] } }\n    ttl: 1h\n'));
    expect(ttl[0]!.message).toContain('`ttl` bounds partial matches');
    const twoForms = problemsOf(
      rule(
        '    when:\n      pattern: { type: [a] }\n      count: { pattern: { type: [b] }, atLeast: 2, within: 1m }\n',
      ),
    );
    expect(twoForms[0]!.message).toContain('a rule has one of them');
  });
});

describe('rulebook loader - http URLs and secrets', () => {
  const step = (http: string) => `
rules:
  - name: call
    when: { pattern: { type: [x] } }
    then:
      - http: ${http}
`;

  it('rulebook - a URL whose host event data would give is refused at the `${{`', () => {
    const [problem, ...rest] = problemsOf(step('{ url: "https://api.example.com${{ event.data.path }}" }'));
    expect(rest).toEqual([]);
    expect(problem!.message).toContain('[REFLEX_ERR_TEMPLATE_URL_HOST]');
    expect([problem!.line, problem!.column]).toEqual([6, 46]);
  });

  it('rulebook - `hosts` is written out, valid, and holds the host a URL writes out', () => {
    expect(
      problemsOf(step('{ url: "${{ event.data.u }}", hosts: ["${{ event.data.h }}"] }'))[0]!.message,
    ).toContain('holds a template');
    expect(problemsOf(step('{ url: "${{ event.data.u }}", hosts: ["a/b"] }'))[0]!.message).toContain(
      '`rules[0].then[0].http.hosts[0]` is invalid',
    );
    const [fixed] = problemsOf(
      step('{ url: "https://api.example.com/${{ event.data.p }}", hosts: ["*.svc.example"] }'),
    );
    expect(fixed!.message).toContain('[REFLEX_ERR_ACTION_HTTP_HOST_NOT_ALLOWED]');
    const [literal] = problemsOf(step('{ url: "https://api.example.com/x", hosts: ["other.example"] }'));
    expect(literal!.message).toContain('[REFLEX_ERR_ACTION_HTTP_HOST_NOT_ALLOWED]');
    expect(() =>
      compile(step('{ url: "https://api.example.com/${{ event.data.p }}", hosts: ["api.example.com"] }')),
    ).not.toThrow();
    expect(() =>
      compile(step('{ url: "${{ event.data.callback }}", hosts: ["*.example.com"] }')),
    ).not.toThrow();
  });

  it('rulebook - a step lists the secrets it reads; only http and exec may read them', () => {
    const rulebook = compile(`
rules:
  - name: call
    when: { pattern: { type: [x] } }
    then:
      - http: { url: "https://api.example.com/", headers: { Authorization: "Bearer \${{ secrets.API_TOKEN }}" } }
      - exec: { command: [deploy, "\${{ secrets.DEPLOY_KEY }}"] }
`);
    expect(rulebook.rules[0]!.then.map((s) => s.params.secrets.map((x) => x.name))).toEqual([
      ['API_TOKEN'],
      ['DEPLOY_KEY'],
    ]);
    const [problem] = problemsOf(step('{ url: "https://h/" }\n      - log: "t=${{ secrets.API_TOKEN }}"'));
    expect(problem!.message).toContain('[REFLEX_ERR_TEMPLATE_SECRET_NOT_ALLOWED]');
    expect(problem!.line).toBe(7);
  });
});

describe('rulebook webhooks and Reflex reserved events', () => {
  const hook = (body: string) => `webhooks:\n  ci:\n${body}rules: []\n`;

  it.each([
    ['source `reflex`', '    type: ci.done\n    source: reflex\n', 4, 13, 'the source `reflex` is reserved'],
    [
      'a fixed reflex.* type',
      '    type: reflex.run.failed\n    source: ci\n',
      3,
      11,
      'the type `reflex.run.failed` is reserved',
    ],
    [
      'a header type without prefix',
      '    type: { header: X-Event }\n    source: ci\n',
      3,
      11,
      'without a prefix',
    ],
    [
      'a header type whose prefix lets reflex. through',
      '    type: { header: X-Event, prefix: re }\n    source: ci\n',
      3,
      38,
      'after the prefix `re`',
    ],
    [
      'a prefix inside reflex.',
      '    type: { header: X-Event, prefix: Reflex.Run. }\n    source: ci\n',
      3,
      38,
      'a `reflex.*` type',
    ],
    [
      'a reflex.* default type',
      '    type: { header: X-Event, prefix: ci., default: reflex.timer }\n    source: ci\n',
      3,
      52,
      'default type',
    ],
  ])(
    'rulebook - a webhook with %s is refused at its file:line:column',
    (_what, body, line, column, message) => {
      const problems = problemsOf(hook(body));
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatchObject({ file: 'rules.yaml', line, column });
      expect(problems[0]!.message).toContain(message);
      expect(problems[0]!.message).toContain('To fix');
    },
  );

  it('rulebook - a header type with a prefix of its own is fine', () => {
    const rulebook = compile(hook('    type: { header: X-Event, prefix: com.acme. }\n    source: ci\n'));
    expect(rulebook.webhooks.get('ci')?.type).toEqual({ header: 'X-Event', prefix: 'com.acme.' });
  });

  it('rulebook - stripe, slack and standard auth compile with a replay window of 5m unless given', () => {
    const rulebook = compile(`webhooks:
  stripe:
    type: com.stripe.event
    source: https://stripe.com
    auth: { stripe: { secret: { env: STRIPE_SECRET } } }
  slack:
    type: com.slack.event
    source: https://slack.com
    auth: { slack: { secret: { env: SLACK_SECRET }, replayWindow: 2m } }
  svix:
    type: com.example.event
    source: https://example.com
    auth: { standard: { secret: whsec_c2VjcmV0, replayWindow: 30s } }
rules: []
`);
    expect(rulebook.webhooks.get('stripe')?.auth).toEqual({
      type: 'stripe',
      secret: { env: 'STRIPE_SECRET' },
      replayWindowMs: 300_000,
    });
    expect(rulebook.webhooks.get('slack')?.auth).toMatchObject({ type: 'slack', replayWindowMs: 120_000 });
    expect(rulebook.webhooks.get('svix')?.auth).toEqual({
      type: 'standard',
      secret: { value: 'whsec_c2VjcmV0' },
      replayWindowMs: 30_000,
    });
  });

  it('rulebook - a timestamped webhook auth refuses an id header, a bad window and unknown keys where they stand', () => {
    const withId = problemsOf(
      hook(
        '    type: ci.done\n    source: ci\n    id: { header: X-Id }\n    auth: { stripe: { secret: s } }\n',
      ),
    );
    expect(withId[0]).toMatchObject({ line: 5, column: 5 });
    expect(withId[0]!.message).toContain('remove `id`');
    const badWindow = problemsOf(
      hook('    type: ci.done\n    source: ci\n    auth: { slack: { secret: s, replayWindow: soon } }\n'),
    );
    expect(badWindow[0]!.line).toBe(5);
    const unknown = problemsOf(
      hook('    type: ci.done\n    source: ci\n    auth: { standard: { secret: s, tolerance: 5m } }\n'),
    );
    expect(unknown[0]!.message).toContain('`tolerance`');
  });

  it('rulebook - a static emit step of a reflex.* type, or with an id in source reflex, is refused at load time', () => {
    const rule = (emit: string) =>
      `rules:\n  - name: r\n    when: { pattern: { type: [a] } }\n    then:\n      - emit: ${emit}\n`;
    const reservedType = problemsOf(rule('{ type: reflex.run.failed }'));
    expect(reservedType[0]).toMatchObject({ line: 5, column: 15 });
    expect(reservedType[0]!.message).toContain('reserved');
    const idInReflex = problemsOf(rule('{ type: note.taken, id: fixed }'));
    expect(idInReflex[0]!.message).toContain('set `source` to one of your own');
    expect(compile(rule('{ type: note.taken, id: fixed, source: "urn:notes" }')).rules).toHaveLength(1);
  });
});

describe('rulebook problems', () => {
  it('rulebook - every problem is reported in one round: schema and compile problems, across rules and steps', () => {
    const problems = problemsOf(`name: many
rules:
  - name: a
    when:
      pattern: { type: [x] }
    then:
      - log: "\${{ event.data. }}"
      - http: { url: "not a url", method: GET }
  - name: b
    when:
      pattern: { type: [y] }
      if: "event.data.x >"
    then:
      - exec: { command: [] }
      - log: "\${{ nope( }}"
  - name: c
    when:
      pattern: { type: [z] }
    then:
      - frobnicate: {}
      - log: fine
        timeout: banana
  - name: a
    when:
      pattern: { type: [w] }
      if: "event.data.y <"
    then:
      - log: ok
`);
    // Before, the schema's complaints (an empty command, an unknown key) hid every compile problem, and
    // the schema itself stopped after eight raw errors.
    expect(problems.map((p) => `${p.line}:${p.column}`)).toEqual([
      '7:30',
      '8:15',
      '12:26',
      '14:26',
      '15:24',
      '20:9',
      '22:18',
      '23:11',
      '26:26',
    ]);
    expect(problems[0]!.message).toContain('REFLEX_ERR_TEMPLATE_INVALID');
    expect(problems[1]!.message).toContain('REFLEX_ERR_ACTION_INVALID_PARAMS');
    expect(problems[2]!.message).toContain('REFLEX_ERR_CONDITION_INVALID');
    expect(problems[3]!.message).toContain('must not be empty');
    expect(problems[5]!.message).toContain('unknown key `frobnicate`');
    expect(problems[7]!.message).toContain('the rule name `a` is already used');
    // The duplicate's own condition is still checked.
    expect(problems[8]!.message).toContain('REFLEX_ERR_CONDITION_INVALID');
  });

  it('rulebook - schema problems are all reported, up to 50 in all', () => {
    const rules = (count: number) =>
      Array.from(
        { length: count },
        (_, i) =>
          `  - name: r${i}\n    when: { pattern: { type: [t] } }\n    then: [ { log: x, tmeout: 1s } ]\n`,
      ).join('');
    expect(problemsOf(`rules:\n${rules(20)}`)).toHaveLength(20);
    const capped = problemsOf(`rules:\n${rules(80)}`);
    expect(capped).toHaveLength(50);
    expect(capped.every((p) => p.message.startsWith('unknown key `tmeout`'))).toBe(true);
  });

  it('rulebook - a step refused by the schema does not keep the other steps of its rule from being checked', () => {
    const problems = problemsOf(
      'rules:\n  - name: r\n    when: { pattern: { type: [t] } }\n    then:\n      - log: { message: 5, level: loud }\n      - log: "${{ ) }}"\n',
    );
    expect([...new Set(problems.map((p) => p.line))]).toEqual([5, 6]);
  });
});
