import { describe, expect, it } from 'vitest';
import { ReflexError } from '../errors.js';
import { readConformanceCases } from './conformance-cases.test-helpers.js';
import { explainPattern } from './explain.js';
import { parsePattern } from './pattern.js';
import { createReferenceMatcher, matchPattern } from './reference-matcher.js';

const cases = readConformanceCases();
const valid = cases.filter((c) => c.expect !== 'invalid');

describe('pattern conformance (EventBridge)', () => {
  it('pattern conformance - reads every case of the shared file', () => {
    expect(cases).toHaveLength(227);
    expect(new Set(cases.map((c) => c.name)).size).toBe(227);
  });

  for (const c of cases) {
    it(c.name, () => {
      if (c.expect === 'invalid') {
        let thrown: unknown;
        try {
          parsePattern(c.pattern);
        } catch (error) {
          thrown = error;
        }
        expect(thrown).toBeInstanceOf(ReflexError);
        const error = thrown as ReflexError;
        expect(error.code).toBe('REFLEX_ERR_PATTERN_INVALID');
        expect(Array.isArray(error.details?.path)).toBe(true);
        return;
      }
      expect(matchPattern(parsePattern(c.pattern), c.event)).toBe(c.expect === 'match');
    });
  }
});

describe('pattern conformance - explanations', () => {
  for (const c of valid) {
    it(`explain - agrees with matchPattern: ${c.name}`, () => {
      const pattern = parsePattern(c.pattern);
      const explanation = explainPattern(pattern, c.event);
      expect(explanation.matched).toBe(matchPattern(pattern, c.event));
      if (!explanation.matched) {
        expect(explanation.path).toBeTypeOf('string');
        expect(explanation.path).not.toBe('');
        if (explanation.path !== null) expect(explanation.expected).not.toBe('');
      }
    });
  }
});

describe('pattern conformance - reference matcher', () => {
  it('reference matcher - gives each conformance event exactly the patterns that match it', () => {
    const matcher = createReferenceMatcher();
    const patterns = valid.map((c) => parsePattern(c.pattern));
    patterns.forEach((pattern, id) => {
      matcher.add(id, pattern);
    });
    expect(matcher.size).toBe(valid.length);
    for (const [i, c] of valid.entries()) {
      const ids = matcher.match(c.event);
      expect(ids.includes(i)).toBe(c.expect === 'match');
      const expected = patterns.flatMap((pattern, id) => (matchPattern(pattern, c.event) ? [id] : []));
      expect(ids).toEqual(expected);
    }
  });
});
