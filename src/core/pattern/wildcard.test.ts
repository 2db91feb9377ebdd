import { describe, expect, it } from 'vitest';
import { matchWildcard, parseWildcard, type Wildcard, wildcardComplexity } from './wildcard.js';

function wildcard(source: string): Wildcard {
  const parsed = parseWildcard(source);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

describe('wildcard', () => {
  it('wildcard - splits on unescaped stars and resolves escapes', () => {
    expect(wildcard('a*b\\*c*').parts).toEqual(['a', 'b*c', '']);
    expect(wildcard('\\\\*').parts).toEqual(['\\', '']);
    expect(wildcard('').parts).toEqual(['']);
  });

  it('wildcard - rejects consecutive stars and bad escapes', () => {
    expect(parseWildcard('a**')).toMatch(/in a row/);
    expect(parseWildcard('\\\\**')).toMatch(/in a row/);
    expect(parseWildcard('a\\')).toMatch(/backslash/);
    expect(parseWildcard('a\\n')).toMatch(/backslash/);
  });

  it('wildcard - matches whole strings, stars matching any run including none', () => {
    const cases: Array<[string, string, boolean]> = [
      ['/Users/*/doc.txt', '/Users/me/dir/doc.txt', true],
      ['/Users/*/doc.txt', '/Users/me/dir/notdoc.txt.bak', false],
      ['*/dir/*', 'a/dir/b', true],
      ['*/dir/*', '/dir/', true],
      ['*/dir/*', 'dir/init/file', false],
      ['a*a', 'a', false],
      ['a*a', 'aa', true],
      ['*ab*ab*', 'xabyab', true],
      ['*ab*ab*', 'xaby', false],
      ['abc', 'abc', true],
      ['abc', 'abcd', false],
      ['*', '', true],
    ];
    for (const [pattern, text, expected] of cases) {
      expect([pattern, text, matchWildcard(wildcard(pattern), text)]).toEqual([pattern, text, expected]);
    }
  });

  it('wildcard - scores complexity by simultaneous positions, growing with stars and repeats', () => {
    expect(wildcardComplexity([wildcard('abc')])).toBe(1);
    expect(wildcardComplexity([wildcard('arn:aws:events:us-east-1:*:event-bus/*')])).toBe(3);
    expect(wildcardComplexity([wildcard('/Users/*/dir/dir/dir/dir/dir/doc.txt')])).toBe(7);
    expect(wildcardComplexity([wildcard('*:*:*:*:event-bus/*')])).toBe(9);
    expect(wildcardComplexity([wildcard('*:*:*:*:*:event-bus/*')])).toBe(11);
    expect(wildcardComplexity([wildcard('*/init/*'), wildcard('*/dir/*')])).toBe(7);
  });

  it('wildcard - stops early once past the limit it is given', () => {
    expect(wildcardComplexity([wildcard(`*${'a'.repeat(40)}`)], 10)).toBe(11);
  });
});
