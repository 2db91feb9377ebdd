import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createActionRegistry } from '../../src/actions/registry.js';
import type { RulebookFile, RulebookProblem } from '../../src/core/ports/rulebook-compiler.js';
import { compileRulebook } from '../../src/rulebook/rule-compiler.js';
import { parseRuleTest } from '../../src/rulebook/rule-test-schema.js';
import { yamlRulebookCompiler } from '../../src/rulebook/yaml-rulebook-compiler.js';
import { createRecordingActions, runRuleTestCase } from '../../src/testing/rule-test.js';
import {
  expectCodedRefusal,
  fuzz,
  fuzzRuns,
  fuzzTestTimeoutMs,
  hostileString,
  mutated,
  withinTimeBoundSync,
} from './fuzz-helpers.js';

/**
 * Rulebook files and rule-test files, as `reflex validate`, `reflex start` and `reflex test` read them.
 * Inputs are the examples' files mutated: by bytes, by lines (cut, repeated, swapped, re-indented) and
 * by hostile YAML put in (alias bombs, merge keys, tags, duplicate keys, deep flow nesting, tabs,
 * hostile keys and scalars). Invariants: a compiled rulebook or test, or a coded refusal whose every
 * problem points at a real `file:line:column` of the input, within the time bound.
 */

const examples = new URL('../../examples/', import.meta.url).pathname;
const folders = readdirSync(examples).sort();
const read = (folder: string, name: string) => readFileSync(join(examples, folder, name), 'utf8');

/**
 * A file whose list under `key` (rules, cases) is split into one file per item, each with the lines
 * before the list: small valid seeds, since the YAML parser's time grows with the size of the file.
 */
function splitItems(content: string, key: string): string[] {
  const lines = content.split('\n');
  const start = lines.indexOf(`${key}:`);
  if (start === -1) return [content];
  const head = lines.slice(0, start + 1);
  const items: string[][] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('  - ')) items.push([line]);
    else items[items.length - 1]?.push(line);
  }
  return items.map((item) => [...head, ...item].join('\n'));
}

const rulebookFiles = folders.map((folder) => read(folder, 'rulebook.yaml'));
/** The examples' rulebooks whole, and each of their rules alone. */
const rulebooks = [...rulebookFiles, ...rulebookFiles.flatMap((file) => splitItems(file, 'rules'))];
/** Each case of the examples' rule tests alone, with its file's header. */
const ruleTests = folders.flatMap((folder) =>
  splitItems(read(folder, 'rulebook.test.yaml'), 'cases').map((content) => ({ folder, content })),
);

const actions = createActionRegistry();

/** YAML a hostile author writes: each a line or a block to put somewhere in a file. */
const hostileYaml = fc.oneof(
  fc.constantFrom(
    'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
    'x: &x { a: 1 }\ny: { <<: *x, b: 2 }',
    'rules: *undefined_alias',
    'name: !!binary aGVsbG8=',
    'name: !!js/function "function(){}"',
    'name: !custom tag',
    'rules: []\nrules: []',
    '__proto__: { polluted: true }',
    'constructor: { prototype: { polluted: true } }',
    `deep: ${'['.repeat(2000)}${']'.repeat(2000)}`,
    `deep: ${'{a: '.repeat(500)}1${'}'.repeat(500)}`,
    '\tname: tab',
    '? [complex, key]\n: value',
    '---\nrules: []\n---\nrules: []',
    '%YAML 1.1\n---',
    'name: "\\u0000\\x1b[31m"',
    'vars: { n: 1e400, m: -.inf, o: .nan, p: 0x7fffffffffffffffff }',
    'name: 12:30:00',
    'on: yes',
    '...',
    '- just a list',
    `long: ${'x'.repeat(20_000)}`,
  ),
  hostileString.map((s) => `name: ${JSON.stringify(s)}`),
  hostileString.map((s) => `${JSON.stringify(s)}: 1`),
);

const lineEdit = fc.oneof(
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), with: fc.nat() }),
  fc.record({ kind: fc.constant('indent' as const), at: fc.nat(), by: fc.integer({ min: -4, max: 4 }) }),
  fc.record({
    kind: fc.constant('value' as const),
    at: fc.nat(),
    value: fc.oneof(
      hostileString.map((s) => JSON.stringify(s)),
      fc.constantFrom(
        '',
        'null',
        '[]',
        '{}',
        '*a',
        '&a x',
        '1e999',
        '|',
        '>-',
        '"${{ event.data }}"',
        '"${{ ) }}"',
      ),
    ),
  }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: hostileYaml }),
);

type LineEdit = typeof lineEdit extends fc.Arbitrary<infer E> ? E : never;

/** `file` with `edits` applied, each at a line of the file (positions taken modulo its length). */
function editLines(file: string, edits: readonly LineEdit[]): string {
  const lines = file.split('\n');
  for (const e of edits) {
    const at = e.at % lines.length;
    const line = lines[at] ?? '';
    if (e.kind === 'cut') lines.splice(at, 1);
    else if (e.kind === 'repeat') lines.splice(at, 0, line);
    else if (e.kind === 'swap') {
      const other = e.with % lines.length;
      lines[at] = lines[other] ?? '';
      lines[other] = line;
    } else if (e.kind === 'indent') lines[at] = e.by >= 0 ? ' '.repeat(e.by) + line : line.slice(-e.by);
    else if (e.kind === 'value')
      lines[at] = line.includes(': ')
        ? `${line.slice(0, line.indexOf(': ') + 2)}${e.value}`
        : `${line}${e.value}`;
    else lines.splice(at, 0, ...e.text.split('\n').map((l) => (line.match(/^\s*/)?.[0] ?? '') + l));
    if (lines.length === 0) lines.push('');
  }
  return lines.join('\n');
}

/** Files of `originals`, mutated by lines, by bytes, or replaced by hostile YAML. */
function files(originals: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .tuple(originals, fc.array(lineEdit, { minLength: 1, maxLength: 4 }))
        .map(([f, e]) => editLines(f, e)),
    },
    mutated(originals).map((b) => b.toString('utf8')),
    hostileYaml,
  );
}

/** Every problem points at a real place of the file it names, and says something. */
function expectPlacedProblems(problems: readonly RulebookProblem[], inputs: Record<string, string>): void {
  expect(problems.length).toBeGreaterThan(0);
  for (const p of problems) {
    const content = inputs[p.file];
    expect(content, `a problem in an unknown file: ${JSON.stringify(p)}`).toBeDefined();
    const lines = (content ?? '').split(/\r\n|\r|\n/).length;
    expect(p.line, JSON.stringify(p)).toBeGreaterThanOrEqual(1);
    expect(p.line, JSON.stringify(p)).toBeLessThanOrEqual(lines + 1);
    expect(p.column, JSON.stringify(p)).toBeGreaterThanOrEqual(1);
    expect(p.message.trim(), JSON.stringify(p)).not.toBe('');
  }
}

describe('fuzz - rulebooks', () => {
  it(
    'fuzz - a mutated rulebook compiles, or is refused with problems at a real file:line:column, in time',
    async () => {
      // The seeds are valid: a mutant that fails says something about the mutation, not the seed.
      for (const content of rulebooks) compileRulebook([{ path: 'seed.yaml', content }], { actions });
      let compiled = 0;
      await fuzz(
        fc.property(files(fc.constantFrom(...rulebooks)), (content) => {
          const file: RulebookFile = { path: 'rules/mutant.yaml', content };
          try {
            withinTimeBoundSync('compileRulebook', () => compileRulebook([file], { actions }));
            compiled += 1;
          } catch (error) {
            const refusal = expectCodedRefusal(error);
            expect(refusal.code).toBe('REFLEX_ERR_RULEBOOK_INVALID');
            expectPlacedProblems((refusal as unknown as { problems: RulebookProblem[] }).problems, {
              [file.path]: content,
            });
          }
        }),
      );
      expect(compiled, 'no mutant compiled: the generator is off').toBeGreaterThan(0);
    },
    fuzzTestTimeoutMs,
  );
});

describe('fuzz - rule-test files', () => {
  const testActions = createActionRegistry(createRecordingActions([]));
  const compiledRulebooks = new Map(
    folders.map((folder, i) => [
      folder,
      compileRulebook([{ path: `examples/${folder}/rulebook.yaml`, content: rulebooks[i] as string }], {
        actions: testActions,
      }),
    ]),
  );

  it(
    'fuzz - a mutated rule-test file parses and compiles against its rulebook, or is refused with problems at a real file:line:column, in time',
    async () => {
      let compiled = 0;
      await fuzz(
        fc.property(
          fc
            .constantFrom(...ruleTests)
            .chain((original) =>
              files(fc.constant(original.content)).map((content) => ({ folder: original.folder, content })),
            ),
          ({ folder, content }) => {
            const path = `examples/${folder}/mutant.test.yaml`;
            try {
              withinTimeBoundSync('parseRuleTest + compile', () =>
                parseRuleTest({ path, content }).compile(compiledRulebooks.get(folder) as never),
              );
              compiled += 1;
            } catch (error) {
              const refusal = expectCodedRefusal(error);
              expect(refusal.code).toBe('REFLEX_ERR_RULETEST_INVALID');
              expectPlacedProblems((refusal as unknown as { problems: RulebookProblem[] }).problems, {
                [path]: content,
              });
            }
          },
        ),
      );
      expect(compiled, 'no mutant compiled: the generator is off').toBeGreaterThan(0);
    },
    fuzzTestTimeoutMs,
  );
  it(
    'fuzz - the cases of a mutated rule-test file that compiles run to a verdict, never a crash',
    async () => {
      // Each case runs on a fresh engine over a fresh SQLite store: far fewer inputs than the parsers get.
      const runs = Math.max(1, Math.round(fuzzRuns() / 200));
      let ran = 0;
      await fuzz(
        fc.asyncProperty(
          fc
            .constantFrom(...ruleTests)
            .chain((original) =>
              files(fc.constant(original.content)).map((content) => ({ folder: original.folder, content })),
            ),
          async ({ folder, content }) => {
            const path = `examples/${folder}/mutant.test.yaml`;
            const rulebook = compiledRulebooks.get(folder) as never;
            let test: ReturnType<ReturnType<typeof parseRuleTest>['compile']>;
            try {
              test = parseRuleTest({ path, content }).compile(rulebook);
            } catch (error) {
              expectCodedRefusal(error);
              return;
            }
            const files = [
              {
                path: `examples/${folder}/rulebook.yaml`,
                content: rulebookFiles[folders.indexOf(folder)] as string,
              },
            ];
            const loaded = { test, files, rulebook, compilers: [yamlRulebookCompiler] };
            for (const testCase of test.cases) {
              // A verdict (passed or failed, with its differences). A case that never settles is failed by
              // its timeout: the engine's work is bounded by the case, not by the per-input bound.
              const result = await runRuleTestCase(loaded, testCase, { timeoutMs: 2000 });
              expect(typeof result.ok).toBe('boolean');
              expect(result.ms).toBeLessThan(10_000);
              expect(() => JSON.stringify(result)).not.toThrow();
              ran += 1;
            }
          },
        ),
        { runs },
      );
      expect(ran, 'no case ran: the generator is off').toBeGreaterThan(0);
    },
    fuzzTestTimeoutMs,
  );
});
