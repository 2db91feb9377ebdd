import { describe, expect, it } from 'vitest';
import { createCompiledMatcher } from './compiled-matcher.js';
import { readConformanceCases } from './conformance-cases.test-helpers.js';
import { parsePattern } from './pattern.js';
import { matchPattern } from './reference-matcher.js';

const cases = readConformanceCases();
const valid = cases.filter((c) => c.expect !== 'invalid');

describe('compiled matcher conformance (EventBridge)', () => {
  it('compiled matcher conformance - reads every valid case of the shared file', () => {
    expect(cases).toHaveLength(227);
    expect(valid).toHaveLength(186);
  });

  for (const c of valid) {
    it(c.name, () => {
      const matcher = createCompiledMatcher();
      matcher.add(5, parsePattern(c.pattern));
      const expected = c.expect === 'match' ? [5] : [];
      expect(matcher.match(c.event)).toEqual(expected);
      expect(matcher.matchJson(JSON.stringify(c.event))).toEqual(expected);
      // The case line as written (e.g. `300.0`), with the pattern moved under the line's `event` key.
      const nested = createCompiledMatcher();
      nested.add(5, parsePattern({ event: c.pattern }));
      expect(nested.matchJson(c.line)).toEqual(expected);
    });
  }

  it('compiled matcher conformance - all patterns in one matcher give each event exactly its matches', () => {
    const matcher = createCompiledMatcher();
    const patterns = valid.map((c) => parsePattern(c.pattern));
    patterns.forEach((pattern, id) => {
      matcher.add(id * 2, pattern);
    });
    expect(matcher.size).toBe(valid.length);
    for (const c of valid) {
      const expected = patterns.flatMap((pattern, id) => (matchPattern(pattern, c.event) ? [id * 2] : []));
      expect(matcher.match(c.event)).toEqual(expected);
      expect(matcher.matchJson(JSON.stringify(c.event))).toEqual(expected);
    }
  });

  it('compiled matcher conformance - removing half of the patterns leaves the other half intact', () => {
    const matcher = createCompiledMatcher();
    const patterns = valid.map((c) => parsePattern(c.pattern));
    patterns.forEach((pattern, id) => {
      matcher.add(id, pattern);
    });
    patterns.forEach((_, id) => {
      if (id % 2 === 1) matcher.remove(id);
    });
    for (const c of valid) {
      const expected = patterns.flatMap((pattern, id) =>
        id % 2 === 0 && matchPattern(pattern, c.event) ? [id] : [],
      );
      expect(matcher.match(c.event)).toEqual(expected);
    }
  });
});
