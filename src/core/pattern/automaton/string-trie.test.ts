import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createStringTrie } from './string-trie.js';

function found<T>(trie: { collect(text: string, out: T[], at: number): number }, text: string): T[] {
  const out: T[] = [];
  out.length = trie.collect(text, out, 0);
  return out;
}

describe('string trie', () => {
  it('string trie - finds every stored prefix of a text, splitting and merging edges as keys come and go', () => {
    const trie = createStringTrie<string>('forward');
    trie.add('us-east-', 'B');
    trie.add('us-', 'A');
    trie.add('us-west-', 'C');
    trie.add('', 'all');
    expect(found(trie, 'us-east-1').sort()).toEqual(['A', 'B', 'all']);
    expect(found(trie, 'us-').sort()).toEqual(['A', 'all']);
    expect(found(trie, 'u')).toEqual(['all']);
    expect(trie.remove('us-', 'A')).toBe(true);
    expect(trie.remove('us-', 'A')).toBe(false);
    expect(trie.remove('us-e', 'B')).toBe(false);
    expect(found(trie, 'us-east-1').sort()).toEqual(['B', 'all']);
    expect(trie.size).toBe(3);
  });

  it('string trie - backward tries find suffixes, code unit by code unit', () => {
    const trie = createStringTrie<string>('backward');
    trie.add('.png', 'png');
    trie.add('g', 'g');
    trie.add('\ude00', 'low surrogate');
    expect(found(trie, 'a.png').sort()).toEqual(['g', 'png']);
    expect(found(trie, 'a.jpg')).toEqual(['g']);
    expect(found(trie, 'smile \ud83d\ude00')).toEqual(['low surrogate']);
  });

  /** Random keys and texts over `units`, some keys removed: the trie finds what startsWith/endsWith find. */
  const agreesWithStringMethods = (units: readonly string[], keyCount: number, numRuns: number): void => {
    const text = fc.string({ unit: fc.constantFrom(...units), maxLength: 6 });
    fc.assert(
      fc.property(
        fc.constantFrom('forward' as const, 'backward' as const),
        fc.array(text, { maxLength: keyCount }),
        fc.array(fc.nat(keyCount - 1), { maxLength: keyCount }),
        fc.array(text, { minLength: 1, maxLength: 6 }),
        (direction, keys, removals, texts) => {
          const trie = createStringTrie<number>(direction);
          keys.forEach((key, i) => {
            trie.add(key, i);
          });
          const removed = new Set(removals.filter((i) => i < keys.length));
          for (const i of removed) expect(trie.remove(keys[i]!, i)).toBe(true);
          expect(trie.size).toBe(keys.length - removed.size);
          for (const t of texts) {
            const expected = keys.flatMap((key, i) =>
              !removed.has(i) && (direction === 'forward' ? t.startsWith(key) : t.endsWith(key)) ? [i] : [],
            );
            expect(found(trie, t).sort((a, b) => a - b)).toEqual(expected);
          }
        },
      ),
      { numRuns },
    );
  };

  it('string trie - agrees with startsWith/endsWith on random keys, texts and removals', () => {
    agreesWithStringMethods(['a', 'b', 'ab', 'ß', '\ud83d\ude00'], 12, 1000);
  });

  it('string trie - agrees with startsWith/endsWith where nodes have more children than are scanned', () => {
    // 20 letters and up to 80 keys: nodes pass the scan limit and back again as keys are removed.
    agreesWithStringMethods([...'abcdefghijklmnopqrst'], 80, 300);
  });
});
