import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const src = new URL('../../src/', import.meta.url).pathname;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

const isTestCode = (file: string) => file.endsWith('.test.ts') || file.endsWith('.test-helpers.ts');

describe('architecture - test oracles', () => {
  it('architecture - only tests import the reference matcher, whose search is exponential (issue 9)', () => {
    const users = files(src)
      .filter((file) => !isTestCode(file) && !file.endsWith('reference-matcher.ts'))
      .filter((file) => /from\s+['"][^'"]*reference-matcher\.js['"]/.test(readFileSync(file, 'utf8')))
      .map((file) => `src/${relative(src, file)}`);
    expect(users, 'match with the compiled matcher (compiled-matcher.ts), explain with explain.ts').toEqual(
      [],
    );
  });
});
