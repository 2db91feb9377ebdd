import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const src = new URL('../../src/', import.meta.url).pathname;

/** Which rooms of src/ each room may import (DESIGN.md: core is pure, only cli wires everything). */
const allowed: Record<string, readonly string[]> = {
  core: ['core'],
  // The CloudEvents codec every transport shares: sources read with it, actions (publish) will write with it.
  codec: ['core', 'codec'],
  rulebook: ['core', 'rulebook'],
  store: ['core', 'store'],
  actions: ['core', 'codec', 'actions'],
  // Sources implement the Source port; the engine runs them through the port, never by name.
  sources: ['core', 'codec', 'sources'],
  // The engine is given its rulebook compilers (the RulebookCompiler port); it reads no format itself.
  engine: ['core', 'engine'],
  // The server serves the sources' HTTP routes from their table (sources/http-routes.ts).
  server: ['core', 'codec', 'engine', 'sources', 'server'],
  // The rule-test engine runs a real engine on a real store, with the built-in actions recorded; the CLI
  // gives it the rulebook compilers.
  testing: ['core', 'rulebook', 'store', 'actions', 'engine', 'testing'],
  cli: ['core', 'codec', 'rulebook', 'store', 'actions', 'sources', 'engine', 'server', 'testing', 'cli'],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Test code beside the code it tests: tests, and modules only tests import (`*.test-helpers.ts`). */
const isTestCode = (file: string) => file.endsWith('.test.ts') || file.endsWith('.test-helpers.ts');

const importPattern =
  /(?:^|\n)\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

describe('architecture', () => {
  it('architecture - every room of src/ imports only the rooms it may (no wrong-way arrows)', () => {
    const wrong: string[] = [];
    for (const file of files(src)) {
      const rel = relative(src, file);
      const room = rel.split('/')[0]!;
      const may = allowed[room];
      expect(may, `src/${room}/ is not a known room; add it to this test`).toBeDefined();
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(importPattern)) {
        const spec = match[1] ?? match[2]!;
        if (!spec.startsWith('.')) {
          if (room === 'core' && !isTestCode(file) && spec.startsWith('node:'))
            wrong.push(`${rel} imports ${spec} (core is pure)`);
          continue;
        }
        if (!isTestCode(file) && spec.includes('.test-helpers'))
          wrong.push(`${rel} imports ${spec} (test code)`);
        const target = relative(src, join(file, '..', spec)).split('/')[0]!;
        // Tests beside the code may wire in real neighbours (e.g. the action registry); the rule is for code.
        if (target.startsWith('..') || isTestCode(file)) continue;
        if (!may!.includes(target)) wrong.push(`${rel} imports ${spec} (${room} may not import ${target})`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
