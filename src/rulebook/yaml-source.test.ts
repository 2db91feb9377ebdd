import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDirPerTest } from '../../test/helpers/temp-dir.js';
import { createActionRegistry } from '../actions/registry.js';
import { RulebookError, type RulebookProblem } from '../core/ports/rulebook-compiler.js';
import { readRulebookFiles } from './discovery.js';
import { compileRulebook } from './rule-compiler.js';
import { parseRuleTest, RuleTestError } from './rule-test-schema.js';
import { yamlLimits } from './yaml-source.js';

const actions = createActionRegistry();

/** Compiles `content` as a rulebook and returns its problems, with how long that took. */
function problemsOf(content: string): { problems: RulebookProblem[]; ms: number } {
  const started = performance.now();
  try {
    compileRulebook([{ path: 'rules.yaml', content }], { actions });
  } catch (error) {
    if (error instanceof RulebookError) return { problems: error.problems, ms: performance.now() - started };
    throw error;
  }
  throw new Error('expected the rulebook to be refused');
}

const bomb = `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
rules: []
`;

/**
 * Pathological YAML must cost bounded work and end in a problem at a place in the file. The bound is
 * generous for a loaded machine; before the limits, the worst of these took minutes or aborted the
 * process (V8 runs out of stack inside the YAML composer and kills the process, uncatchably).
 */
const boundMs = 3_000;

describe('yaml limits', () => {
  it('yaml limits - an alias bomb is a problem at its first alias, not a stack trace', () => {
    const { problems, ms } = problemsOf(bomb);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: 'rules.yaml', line: 2, column: 8 });
    expect(problems[0]!.message).toMatch(/^invalid YAML: aliases .* multiply the document past the limit/);
    expect(ms).toBeLessThan(boundMs);
  });

  it('yaml limits - an alias used before its anchor is a problem too', () => {
    const { problems } = problemsOf('vars: { a: *nowhere }\nrules: []\n');
    expect(problems[0]!.message).toMatch(/^invalid YAML: .*nowhere/i);
  });

  it('yaml limits - deep nesting in any form is refused where it goes too deep, in bounded time', () => {
    const half = 100_000;
    const cases: Array<[string, string, { line: number; column: number }]> = [
      ['flow brackets', `rules: ${'['.repeat(half)}${']'.repeat(half)}\n`, { line: 1, column: 72 }],
      [
        'flow mappings',
        `rules: []\nvars: ${'{a: '.repeat(20_000)}1${'}'.repeat(20_000)}\n`,
        { line: 2, column: 263 },
      ],
      ['compact sequences', `rules:\n${'- '.repeat(half)}x\n`, { line: 2, column: 129 }],
      [
        'indentation',
        `rules:\n${Array.from({ length: 700 }, (_, i) => `${' '.repeat(i)}- \n`).join('')}`,
        { line: 65, column: 64 },
      ],
    ];
    for (const [what, content, place] of cases) {
      expect(content.length).toBeLessThanOrEqual(yamlLimits.maxBytes);
      const { problems, ms } = problemsOf(content);
      expect({ what, problems: problems.length }).toEqual({ what, problems: 1 });
      expect({ what, message: problems[0]!.message }).toEqual({
        what,
        message: 'invalid YAML: the document is nested deeper than 64 levels here. To fix: flatten it.',
      });
      expect({ what, line: problems[0]!.line, column: problems[0]!.column }).toEqual({ what, ...place });
      expect({ what, fast: ms < boundMs }).toEqual({ what, fast: true });
      // The offending line is quoted around the place, not whole.
      expect(problems[0]!.excerpt.length).toBeLessThan(400);
    }
  });

  it('yaml limits - a file over the size limit, or holding several documents, is refused unparsed', () => {
    const big = problemsOf(`rules: []\nvars:\n${'  k: 1\n'.repeat(200_000)}`);
    expect(big.problems[0]!.message).toMatch(/the file is \d+ bytes, more than the limit of 262144/);
    const several = problemsOf(`rules: []\n${'---\na: 1\n'.repeat(25_000)}`);
    expect(several.problems[0]!.message).toContain('more than one YAML document');
    expect(several.problems[0]).toMatchObject({ line: 2, column: 1 });
    expect(several.ms).toBeLessThan(boundMs);
  });

  it('yaml limits - many keys in one mapping are read in time, and a duplicate among them is found', () => {
    // 20 000 keys: the yaml package's own duplicate check compared every pair (10 s); one set suffices.
    const keys = Array.from({ length: 20_000 }, (_, i) => `  k${i}: 1\n`).join('');
    const { problems, ms } = problemsOf(`rules: []\nvars:\n${keys}  k7: again\n`);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ line: 20_003, column: 3 });
    expect(problems[0]!.message).toContain('the key `k7` appears twice in this mapping');
    expect(ms).toBeLessThan(boundMs);
  });

  it('rule tests - an `at` past the last instant a timestamp holds is a problem at its line, not a RangeError', () => {
    // Found by the rule-test fuzzer: `new Date(start + at).toISOString()` threw for a huge offset.
    const content = [
      'rulebook: ./rulebook.yaml',
      'cases:',
      '  - name: far',
      '    events:',
      '      - { at: 9999999999d, type: t }',
      '    expect: { runs: [] }',
      '',
    ].join('\n');
    try {
      parseRuleTest({ path: 'x.test.yaml', content }).compile({ rules: [], webhooks: [] } as never);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(RuleTestError);
      const [problem] = (error as RuleTestError).problems;
      expect(problem!.message).toMatch(/^`at` puts the event past the last instant/);
      expect(problem!.line).toBe(5);
    }
  });
  it('yaml limits - rule test files are held to the same limits', () => {
    for (const content of [bomb, `cases: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`]) {
      try {
        parseRuleTest({ path: 'x.test.yaml', content });
        expect.unreachable();
      } catch (error) {
        expect(error).toBeInstanceOf(RuleTestError);
        expect((error as RuleTestError).problems[0]!.message).toMatch(/^invalid YAML: /);
      }
    }
  });
});

describe('yaml files', () => {
  const dir = tempDirPerTest('reflex-yaml-files-');

  it('yaml files - what is not a plain file, or too large, is a problem and never hangs', async () => {
    const fifo = join(dir(), 'pipe.yaml');
    spawnSync('mkfifo', [fifo]);
    const large = join(dir(), 'large.yaml');
    writeFileSync(large, `rules: []\n# ${'x'.repeat(yamlLimits.maxBytes)}\n`);
    // A named pipe blocked the read until someone wrote to it; /dev/zero was read until memory ran out.
    for (const [path, reason] of [
      [fifo, /is not a regular file/],
      ['/dev/zero', /is not a regular file/],
      [large, /more than the limit of 262144/],
    ] as const) {
      const error = await readRulebookFiles([path]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RulebookError);
      expect((error as RulebookError).problems[0]).toMatchObject({ file: path, line: 1, column: 1 });
      expect((error as RulebookError).problems[0]!.message).toMatch(reason);
    }
  });

  it('yaml files - a link to nowhere in a folder of rulebooks is a problem, not a stack trace', async () => {
    const folder = join(dir(), 'rules');
    mkdirSync(folder);
    writeFileSync(join(folder, 'ok.yaml'), 'rules: []\n');
    symlinkSync(join(dir(), 'nowhere.yaml'), join(folder, 'gone.yaml'));
    const error = await readRulebookFiles([folder]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RulebookError);
    expect((error as RulebookError).problems).toEqual([
      expect.objectContaining({
        file: join(folder, 'gone.yaml'),
        message: expect.stringContaining('it does not exist (a link to nowhere?)'),
      }),
    ]);
  });
});
