import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultEventLimits } from '../../src/core/event.js';
import { explainPattern, parsePattern } from '../../src/core/pattern/index.js';
import { testPattern } from '../../src/core/pattern/pattern-test.js';
import { matchPattern } from '../../src/core/pattern/reference-matcher.js';
import {
  expectCodedRefusal,
  fuzz,
  fuzzTestTimeoutMs,
  hostileJsonText,
  hostileKeys,
  hostileString,
  withinTimeBoundSync,
} from './fuzz-helpers.js';

/**
 * EventBridge patterns against events: what `POST /api/v1/patterns/test`, `reflex match` and `explain`
 * run (`testPattern`, the compiled matcher, `explainPattern`). Patterns are generated from the grammar
 * (every operator, `$or`, nesting, hostile keys) and as arbitrary JSON; events share the patterns' keys
 * and values so that matches happen. Whatever the pair: an answer or a coded refusal within the time
 * bound; the compiled matcher agrees with the reference matcher (the oracle, on events small enough for
 * it) and with the explanation.
 */

const key = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('type', 'data', 'a', 'b', 'c') },
  fc.constantFrom(...hostileKeys),
);
const word = fc.constantFrom(
  'order',
  'order.created',
  'ORDER',
  'critical',
  '',
  'a*b',
  '10.1.2.3',
  '2001:db8::1',
  'x'.repeat(300),
);
const scalar = fc.oneof(
  word,
  fc.integer({ min: -5, max: 5 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constant(null),
  fc.boolean(),
);

const matcher = fc.oneof(
  { weight: 3, arbitrary: scalar },
  fc.record({ prefix: fc.oneof(word, hostileString) }),
  fc.record({ suffix: fc.oneof(word, hostileString) }),
  fc.record({ 'equals-ignore-case': fc.oneof(word, hostileString) }),
  fc.record({
    wildcard: fc.oneof(fc.constantFrom('*', 'o*r', '*.*.*', 'a**b', '\\*', '*'.repeat(50)), hostileString),
  }),
  fc.record({
    'anything-but': fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }), fc.record({ prefix: word })),
  }),
  fc.record({
    numeric: fc.oneof(
      fc.tuple(
        fc.constantFrom('>', '>=', '=', '<', '<=', '!', '=='),
        fc.oneof(fc.integer(), fc.double(), fc.constant(1e308)),
      ),
      fc.tuple(
        fc.constantFrom('>', '>='),
        fc.integer({ min: -5, max: 5 }),
        fc.constantFrom('<', '<='),
        fc.integer({ min: -5, max: 5 }),
      ),
    ),
  }),
  fc.record({ exists: fc.oneof(fc.boolean(), scalar) }),
  fc.record({
    cidr: fc.constantFrom(
      '10.0.0.0/8',
      '10.1.2.3/32',
      '2001:db8::/32',
      '::/0',
      '300.0.0.0/8',
      '10.0.0.0/33',
      'x',
    ),
  }),
  fc.record({ unknown: scalar }),
);

/** A pattern from the grammar (not always valid: wrong operator values are part of it). */
const { pattern } = fc.letrec<{ pattern: Record<string, unknown>; value: unknown }>((tie) => ({
  pattern: fc.dictionary(key, tie('value'), { minKeys: 1, maxKeys: 3 }),
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 3, withCrossShrink: true },
    fc.array(matcher, { minLength: 1, maxLength: 3 }),
    tie('pattern'),
    fc.array(tie('pattern'), { minLength: 1, maxLength: 3 }).map((alternatives) => ({ $or: alternatives })),
  ),
}));

/** An event with the patterns' keys and values, arrays of objects included (at most 3 elements each). */
const { event } = fc.letrec<{ event: Record<string, unknown>; field: unknown }>((tie) => ({
  event: fc.dictionary(key, tie('field'), { maxKeys: 4 }),
  field: fc.oneof(
    { depthSize: 'small', maxDepth: 3, withCrossShrink: true },
    scalar,
    fc.array(scalar, { maxLength: 3 }),
    tie('event'),
    fc.array(tie('event'), { maxLength: 3 }),
  ),
}));

const parsedJson = (arbitrary: fc.Arbitrary<string>) =>
  arbitrary.map((text) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  });

describe('fuzz - patterns', () => {
  it(
    'fuzz - testing a pattern against an event answers or refuses with a code, in time, as the reference matcher and the explanation say',
    async () => {
      let matches = 0;
      let refusals = 0;
      await fuzz(
        fc.property(
          fc.oneof({ weight: 4, arbitrary: pattern }, parsedJson(hostileJsonText())),
          fc.oneof({ weight: 4, arbitrary: event }, parsedJson(hostileJsonText())),
          (patternJson, eventJson) => {
            let matched: boolean;
            try {
              matched = withinTimeBoundSync('testPattern', () =>
                testPattern(patternJson, eventJson, defaultEventLimits),
              );
            } catch (error) {
              expectCodedRefusal(error);
              refusals += 1;
              return;
            }
            if (matched) matches += 1;
            const parsed = parsePattern(patternJson);
            expect(
              withinTimeBoundSync('explainPattern', () => explainPattern(parsed, eventJson)).matched,
            ).toBe(matched);
            // The reference matcher is exponential in the number of arrays: only small events go to it.
            if (JSON.stringify(eventJson).length < 400) expect(matchPattern(parsed, eventJson)).toBe(matched);
          },
        ),
      );
      expect(matches, 'no pattern matched: the generators are off').toBeGreaterThan(0);
      expect(refusals, 'no pattern was refused: the generators are off').toBeGreaterThan(0);
    },
    fuzzTestTimeoutMs,
  );
});
