import { describe, expect, it } from 'vitest';
import type { Matcher } from './pattern/matcher.js';
import { parsePattern } from './pattern/pattern.js';
import { createReferenceMatcher } from './pattern/reference-matcher.js';
import type { Rule } from './rule.js';
import { createRuleIndexer } from './rule-index.js';

/** Just enough of a rule for indexing: its position and its sub-conditions' patterns. */
function rule(index: number, ...patterns: Array<Record<string, unknown> | null>): Rule {
  return {
    index,
    subs: patterns.map((p, i) => ({ name: `e${i}`, ...(p ? { pattern: parsePattern(p) } : {}) })),
  } as unknown as Rule;
}

/** A matcher that counts the changes made to it. */
function counting(): Matcher & { added: number; removed: number } {
  const inner = createReferenceMatcher();
  const m = {
    added: 0,
    removed: 0,
    add(id: number, p: Parameters<Matcher['add']>[1]) {
      m.added++;
      inner.add(id, p);
    },
    remove(id: number) {
      m.removed++;
      inner.remove(id);
    },
    match: (event: unknown) => inner.match(event),
    get size() {
      return inner.size;
    },
  };
  return m;
}

const event = (type: string) => ({ specversion: '1.0', id: 'x', source: 's', type }) as const;

describe('rule index', () => {
  it('rule index - candidates come in rule order with the subs each event matched; pattern-less subs match all', () => {
    const indexer = createRuleIndexer(createReferenceMatcher());
    const index = indexer.index([
      rule(0, { type: ['b'] }),
      rule(1, { type: ['a'] }, { type: ['a', 'b'] }),
      rule(2, null),
    ]);
    expect(index.candidates(event('a'))).toEqual([
      { rule: 1, subs: [0, 1] },
      { rule: 2, subs: [0] },
    ]);
    expect(index.candidates(event('b'))).toEqual([
      { rule: 0, subs: [0] },
      { rule: 1, subs: [1] },
      { rule: 2, subs: [0] },
    ]);
  });

  it('rule index - identical patterns share one matcher entry', () => {
    const matcher = counting();
    const index = createRuleIndexer(matcher).index([rule(0, { type: ['a'] }), rule(1, { type: ['a'] })]);
    expect(matcher.added).toBe(1);
    expect(index.candidates(event('a'))).toEqual([
      { rule: 0, subs: [0] },
      { rule: 1, subs: [0] },
    ]);
  });

  it('rule index - a new version changes only the patterns that changed, and stops matching removed ones', () => {
    const matcher = counting();
    const indexer = createRuleIndexer(matcher);
    const many = Array.from({ length: 1000 }, (_, i) => rule(i, { type: [`t${i}`] }));
    indexer.index(many);
    expect(matcher.added).toBe(1000);
    const edited = [...many.slice(0, 999), rule(999, { type: ['new'] })];
    const index = indexer.index(edited);
    expect([matcher.added, matcher.removed]).toEqual([1001, 1]);
    expect(index.candidates(event('t999'))).toEqual([]);
    expect(index.candidates(event('new'))).toEqual([{ rule: 999, subs: [0] }]);
    // Rules moved to other positions keep their matcher entry and report their new position.
    const shifted = [rule(0, { type: ['first'] }), ...edited.map((r) => ({ ...r, index: r.index + 1 }))];
    const moved = indexer.index(shifted);
    expect(matcher.added).toBe(1002);
    expect(moved.candidates(event('t5'))).toEqual([{ rule: 6, subs: [0] }]);
    expect(indexer.patterns).toBe(1001);
  });
});
