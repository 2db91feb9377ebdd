import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReflexError } from '../errors.js';
import { defaultEventLimits } from '../event.js';
import {
  arrayEvent,
  arrayEventFor,
  arrayPattern,
  eventFor,
  eventText,
  pattern,
  render,
} from './automaton/generators.test-helpers.js';
import { createCompiledMatcher } from './compiled-matcher.js';
import { patternTestLimits, testPattern } from './pattern-test.js';

function refusal(pattern: unknown, event: unknown): ReflexError {
  try {
    testPattern(pattern, event, defaultEventLimits);
  } catch (error) {
    expect(error).toBeInstanceOf(ReflexError);
    return error as ReflexError;
  }
  throw new Error('expected the test to be refused');
}

/** Whether a parsed JSON value holds a number JSON.parse could not keep (`1e400` becomes Infinity). */
function holdsNonFinite(value: unknown): boolean {
  if (typeof value === 'number') return !Number.isFinite(value);
  if (value === null || typeof value !== 'object') return false;
  return Object.values(value).some(holdsNonFinite);
}

describe('pattern test', () => {
  it('pattern test - answers as dispatch does, arrays of objects included', () => {
    const pods = {
      pods: [
        { phase: 'Running', restarts: 0 },
        { phase: 'CrashLoopBackOff', restarts: 7 },
      ],
    };
    expect(
      testPattern(
        { pods: { phase: ['CrashLoopBackOff'], restarts: [{ numeric: ['>', 5] }] } },
        pods,
        defaultEventLimits,
      ),
    ).toBe(true);
    expect(
      testPattern(
        { pods: { phase: ['Running'], restarts: [{ numeric: ['>', 5] }] } },
        pods,
        defaultEventLimits,
      ),
    ).toBe(false);
    // Any JSON value is an event; only objects have fields.
    expect(testPattern({ a: [{ exists: false }] }, 'text', defaultEventLimits)).toBe(true);
  });

  it('pattern test - decides a few hundred bytes built to make array matching explode, at once', () => {
    // Six arrays of 20 values and a field that fails: 20^5 combinations for a search over elements.
    const arrays = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`f${i}`, [...Array(20).keys()]]));
    const pattern = {
      ...Object.fromEntries(Object.keys(arrays).map((k) => [k, [{ exists: true }]])),
      z: ['1'],
    };
    const started = performance.now();
    expect(testPattern(pattern, { ...arrays, z: 0 }, defaultEventLimits)).toBe(false);
    expect(testPattern(pattern, { ...arrays, z: '1' }, defaultEventLimits)).toBe(true);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('pattern test - refuses a pattern, an event, or the two together beyond their limits, with coded errors', () => {
    expect(refusal({ type: 'x' }, {}).code).toBe('REFLEX_ERR_PATTERN_INVALID');
    const alternatives = (n: number) =>
      Object.fromEntries(
        Array.from({ length: n }, (_, i) => [`o${i}`, { $or: [{ a: ['x'] }, { b: ['y'] }] }]),
      );
    expect(refusal(alternatives(11), {}).code).toBe('REFLEX_ERR_PATTERN_TOO_COMPLEX');
    let deep: unknown = 1;
    for (let i = 0; i <= defaultEventLimits.maxDepth; i++) deep = { a: deep };
    expect(refusal({ a: ['x'] }, deep).code).toBe('REFLEX_ERR_EVENT_TOO_DEEP');
    // 1 024 alternatives of 10 fields, each field with 100 values: about 1 M units of work, too many.
    const values = Array.from({ length: 100 }, (_, i) => `v${i}`);
    const event = Object.fromEntries(
      Array.from({ length: 10 }, (_, i) => [`o${i}`, { a: values, b: values }]),
    );
    const tooLarge = refusal(alternatives(10), event);
    expect(tooLarge.code).toBe('REFLEX_ERR_PATTERN_TEST_TOO_LARGE');
    expect(tooLarge.statusCode).toBe(400);
    expect(tooLarge.details).toEqual({ work: 1024 * 10 * 101, limit: patternTestLimits.maxWork });
    expect(tooLarge.message).toMatch(/To fix: /);
    // With fewer values it runs.
    const fewer = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`o${i}`, { a: 'x' }]));
    expect(testPattern(alternatives(10), fewer, defaultEventLimits)).toBe(true);
  });

  it('pattern test - agrees with the compiled matcher that dispatch uses, on generated patterns and events', () => {
    const cases = fc.oneof(
      pattern.chain((p) => fc.tuple(fc.constant(p), fc.oneof(eventFor(p), eventText))),
      arrayPattern.chain((p) => fc.tuple(fc.constant(p), fc.oneof(arrayEventFor(p), arrayEvent))),
    );
    fc.assert(
      fc.property(cases, ([p, text]) => {
        const event = JSON.parse(render(text)) as unknown;
        // Ingest refuses numbers beyond a double (JSON.parse made them Infinity), so the route does too;
        // such an event never reaches dispatch.
        if (holdsNonFinite(event)) {
          expect(() => testPattern(p.source, event, defaultEventLimits)).toThrow(
            expect.objectContaining({ code: 'REFLEX_ERR_EVENT_NUMBER_OUT_OF_RANGE' }),
          );
          return;
        }
        const matcher = createCompiledMatcher();
        matcher.add(0, p);
        expect(testPattern(p.source, event, defaultEventLimits)).toBe(matcher.match(event).length > 0);
      }),
      { numRuns: 2000 },
    );
  });
});
