import { describe, expect, it } from 'vitest';
import { createActionRegistry } from '../../actions/registry.js';
import { compileRulebook } from '../../rulebook/rule-compiler.js';
import { yamlRulebookCompiler } from '../../rulebook/yaml-rulebook-compiler.js';
import { compileRulebookFiles, type RulebookCompiler, RulebookError } from './rulebook-compiler.js';

const context = { actions: createActionRegistry() };

/**
 * A second front end for the tests: rulebooks written as JSON in `.json` files (YAML reads JSON, so the
 * YAML compiler's work can be reused), recognised by name as an Event-Driven Ansible front end would be.
 */
const jsonCompiler: RulebookCompiler = {
  format: 'json',
  accepts: (file) => file.path.endsWith('.json'),
  compile: compileRulebook,
};

const yamlRule = (name: string) =>
  `rules:\n  - name: ${name}\n    when: { pattern: { type: [a] } }\n    then: [{ log: { message: m } }]\n`;
const jsonRule = (name: string) =>
  JSON.stringify({
    rules: [{ name, when: { pattern: { type: ['b'] } }, then: [{ log: { message: 'm' } }] }],
  });

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    if (error instanceof RulebookError) return error.problems.map((p) => `${p.file}:${p.line}: ${p.message}`);
    throw error;
  }
  throw new Error('expected the files to be refused');
}

describe('rulebook compilers', () => {
  it('rulebook compilers - each file goes to the first front end that accepts it, and the rulebooks join in file order', () => {
    const rulebook = compileRulebookFiles(
      [jsonCompiler, yamlRulebookCompiler],
      [
        { path: 'a.json', content: jsonRule('first') },
        { path: 'b.yaml', content: yamlRule('second') },
        { path: 'c.json', content: jsonRule('third') },
      ],
      context,
    );
    // The JSON front end got a.json and c.json together; its rules come first, as its first file does.
    expect(rulebook.rules.map((r) => [r.name, r.index, r.location.file])).toEqual([
      ['first', 0, 'a.json'],
      ['third', 1, 'c.json'],
      ['second', 2, 'b.yaml'],
    ]);
  });

  it('rulebook compilers - a rule name used by two formats is refused at the later place', () => {
    const problems = problemsOf(() =>
      compileRulebookFiles(
        [jsonCompiler, yamlRulebookCompiler],
        [
          { path: 'a.json', content: jsonRule('same') },
          { path: 'b.yaml', content: yamlRule('same') },
        ],
        context,
      ),
    );
    expect(problems).toEqual([
      'b.yaml:2: the rule name `same` is already used at a.json:1:19. To fix: rule names must be unique across all loaded rulebooks.',
    ]);
  });

  it('rulebook compilers - a file no front end accepts is refused, naming the formats known', () => {
    const problems = problemsOf(() =>
      compileRulebookFiles([jsonCompiler], [{ path: 'rules.yaml', content: yamlRule('x') }], context),
    );
    expect(problems).toEqual([
      'rules.yaml:1: no rulebook format recognises this file (known: json). To fix: leave it out, or give it the name and content of one of those formats.',
    ]);
  });

  it('rulebook compilers - one format gives the rulebook its compiler made, and no files an empty one', () => {
    const files = [{ path: 'r.yaml', content: yamlRule('only') }];
    const one = compileRulebookFiles([yamlRulebookCompiler], files, context);
    expect(one.rules.map((r) => [r.name, r.index, r.location])).toEqual([
      ['only', 0, { file: 'r.yaml', line: 2, column: 11 }],
    ]);
    const empty = compileRulebookFiles([yamlRulebookCompiler], [], context);
    expect([empty.rules.length, empty.webhooks.size]).toEqual([0, 0]);
  });
});
