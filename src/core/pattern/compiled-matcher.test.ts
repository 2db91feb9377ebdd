import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReflexError } from '../errors.js';
import {
  arrayEvent,
  arrayEventFor,
  arrayPattern,
  eventFor,
  eventText,
  type JsonText,
  keys,
  pattern,
  render,
} from './automaton/generators.test-helpers.js';
import { compiledMatcherLimits, createCompiledMatcher } from './compiled-matcher.js';
import { flattenEvent } from './event-fields.js';
import { matchValue } from './match-value.js';
import { describeMatcherContract } from './matcher-contract.test-helpers.js';
import { type Pattern, type PatternCondition, parsePattern } from './pattern.js';
import { createReferenceMatcher } from './reference-matcher.js';

const runs = 2000;
/** Properties over several patterns check up to 24 pattern-event pairs per run: fewer runs suffice. */
const multiRuns = 1000;

/**
 * Patterns on 20 names that no generated event holds, at the top and under each generated key: with
 * them, those prefixes have more names than are probed one by one, so events are read by their own
 * keys (see event-values.ts), and the answers must not change.
 */
const siblingPadding: readonly Pattern[] = ['', ...keys].flatMap((key) =>
  Array.from({ length: 20 }, (_, k) => {
    const leaf = `{"pad${k}": ["never"]}`;
    return parsePattern(JSON.parse(key === '' ? leaf : `{${JSON.stringify(key)}: ${leaf}}`));
  }),
);

/** Adds the same patterns to both matchers and checks that they agree on every event, both ways in. */
function agree(
  patterns: readonly Pattern[],
  events: readonly JsonText[],
  removed: readonly number[] = [],
  padded = false,
) {
  const compiled = createCompiledMatcher();
  const reference = createReferenceMatcher();
  if (padded) {
    siblingPadding.forEach((p, i) => {
      compiled.add(1_000_000 + i, p);
      reference.add(1_000_000 + i, p);
    });
  }
  patterns.forEach((p, i) => {
    compiled.add(i * 3, p);
    reference.add(i * 3, p);
  });
  for (const i of removed) {
    compiled.remove(i * 3);
    reference.remove(i * 3);
  }
  expect(compiled.size).toBe(reference.size);
  for (const event of events) {
    const text = render(event);
    const expected = reference.match(JSON.parse(text));
    expect(compiled.match(JSON.parse(text))).toEqual(expected);
    expect(compiled.matchJson(text)).toEqual(expected);
    expect(compiled.matchJson(render(event, true))).toEqual(expected);
  }
}

/** Patterns with events derived from them (most of which match), plus unrelated events. */
const patternsAndEvents = fc
  .array(pattern, { minLength: 1, maxLength: 6 })
  .chain((patterns) =>
    fc.tuple(
      fc.constant(patterns),
      fc.array(fc.oneof(...patterns.map(eventFor), eventText), { minLength: 1, maxLength: 4 }),
    ),
  );

/** Whether `pattern` would match if array elements did not have to agree (to measure the generators). */
function matchesIgnoringArrays(pattern: Pattern, event: unknown): boolean {
  const fields = flattenEvent(event);
  const holds = (conditions: readonly PatternCondition[]): boolean =>
    conditions.every((c) => {
      if (c.type === 'or') return c.alternatives.some(holds);
      const found = fields.get(c.path) ?? [];
      if (found.some((f) => c.matchers.some((m) => matchValue(m, f.value)))) return true;
      return found.length === 0 && c.matchers.some((m) => m.type === 'exists' && !m.value);
    });
  return holds(pattern.conditions);
}

describe('compiled matcher - agrees with the reference matcher', () => {
  it('compiled matcher - one pattern, events derived from it, parsed and as JSON text', () => {
    let matched = 0;
    fc.assert(
      fc.property(
        pattern.chain((p) => fc.tuple(fc.constant(p), fc.array(eventFor(p), { minLength: 1, maxLength: 3 }))),
        ([p, events]) => {
          agree([p], events);
          const reference = createReferenceMatcher();
          reference.add(0, p);
          for (const e of events) if (reference.match(JSON.parse(render(e))).length > 0) matched++;
        },
      ),
      { numRuns: runs },
    );
    // The generators are biased towards matches: a test that never matches would prove little.
    expect(matched).toBeGreaterThan(runs / 2);
  });

  it('compiled matcher - many patterns at once share states and still answer each one', () => {
    fc.assert(
      fc.property(patternsAndEvents, ([patterns, events]) => {
        agree(patterns, events);
      }),
      { numRuns: multiRuns },
    );
  });

  it('compiled matcher - after removing some patterns, the rest still match as before', () => {
    fc.assert(
      fc.property(
        patternsAndEvents.chain(([patterns, events]) =>
          fc.tuple(fc.constant(patterns), fc.constant(events), fc.subarray(patterns.map((_, i) => i))),
        ),
        ([patterns, events, removed]) => {
          agree(patterns, events, removed);
        },
      ),
      { numRuns: multiRuns },
    );
  });

  it('compiled matcher - fields under arrays of objects meet in one element (nested arrays, exists false, $or)', () => {
    let decided = 0;
    fc.assert(
      fc.property(
        fc
          .array(arrayPattern, { minLength: 1, maxLength: 3 })
          .chain((patterns) =>
            fc.tuple(
              fc.constant(patterns),
              fc.array(fc.oneof(...patterns.map(arrayEventFor), arrayEvent), { minLength: 1, maxLength: 4 }),
            ),
          ),
        ([patterns, events]) => {
          agree(patterns, events);
          const reference = createReferenceMatcher();
          patterns.forEach((p, i) => {
            reference.add(i, p);
          });
          for (const e of events) {
            const event = JSON.parse(render(e)) as unknown;
            const ids = reference.match(event);
            patterns.forEach((p, i) => {
              if (matchesIgnoringArrays(p, event) !== ids.includes(i)) decided++;
            });
          }
        },
      ),
      { numRuns: runs },
    );
    // Array consistency must decide a fair share of cases, or this test would prove little.
    expect(decided).toBeGreaterThan(runs / 20);
  });

  // Padded: 20 more names at every prefix, so objects are read by their own keys (see siblingPadding).
  for (const [padded, title, numRuns] of [
    [false, '', runs],
    [true, ', with 20 more names at every prefix', runs / 4],
  ] as const) {
    it(`compiled matcher - random events against random patterns${title}`, () => {
      fc.assert(
        fc.property(
          fc.array(pattern, { minLength: 1, maxLength: 4 }),
          fc.array(eventText, { minLength: 1, maxLength: 3 }),
          (patterns, events) => {
            agree(patterns, events, [], padded);
          },
        ),
        { numRuns },
      );
    });
  }

  it('compiled matcher - removing every pattern and adding them again gives the same answers', () => {
    fc.assert(
      fc.property(patternsAndEvents, ([patterns, events]) => {
        const compiled = createCompiledMatcher();
        const reference = createReferenceMatcher();
        patterns.forEach((p, i) => {
          compiled.add(i, p);
          reference.add(i, p);
        });
        patterns.forEach((_, i) => {
          compiled.remove(i);
        });
        expect(compiled.stats).toEqual({ states: 2, fields: 0 });
        patterns.forEach((p, i) => {
          compiled.add(i, p);
        });
        for (const event of events) {
          const text = render(event);
          expect(compiled.matchJson(text)).toEqual(reference.match(JSON.parse(text)));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describeMatcherContract('compiled matcher', createCompiledMatcher);

describe('compiled matcher - ids and events', () => {
  it('compiled matcher - refuses ids that are not non-negative integers', () => {
    const matcher = createCompiledMatcher();
    expect(() => matcher.add(-1, parsePattern({ a: ['x'] }))).toThrow(RangeError);
    expect(() => matcher.add(1.5, parsePattern({ a: ['x'] }))).toThrow(RangeError);
  });

  it('compiled matcher - events that are not objects have no fields', () => {
    const matcher = createCompiledMatcher();
    matcher.add(0, parsePattern({ a: [{ exists: false }] }));
    matcher.add(1, parsePattern({ a: ['x'] }));
    for (const event of [null, 'text', 5, [{ a: 'x' }], undefined]) expect(matcher.match(event)).toEqual([0]);
    expect(matcher.matchJson('[{"a": "x"}]')).toEqual([0]);
    expect(matcher.matchJson('"a"')).toEqual([0]);
  });

  it('compiled matcher - reads own enumerable keys only, like Object.entries', () => {
    const matcher = createCompiledMatcher();
    matcher.add(0, parsePattern({ size: [{ exists: true }] }));
    matcher.add(1, parsePattern({ constructor: [{ exists: false }] }));
    matcher.add(2, parsePattern(JSON.parse('{"__proto__": {"x": ["1"]}}')));
    expect(matcher.match({ m: new Map() })).toEqual([1]);
    expect(matcher.match(new Map([['size', 1]]))).toEqual([1]);
    expect(matcher.match(JSON.parse('{"__proto__": {"x": "1"}, "constructor": 1}'))).toEqual([2]);
    expect(matcher.matchJson('{"__proto__": {"x": "1"}, "constructor": 1}')).toEqual([2]);
  });

  it('compiled matcher - matchJson refuses what JSON.parse refuses', () => {
    const matcher = createCompiledMatcher();
    matcher.add(0, parsePattern({ a: ['x'] }));
    for (const text of [
      '',
      '{',
      '{"a": "x",}',
      '{"a" "x"}',
      "{'a': 1}",
      '{"a": 01}',
      '{"a": "x"} x',
      '{"b": [1,]}',
      '{"b": "\u0001"}',
      '{"b": "\\x"}',
      '{"b": tru}',
      '{"b": -}',
      '{"b": 1.}',
      '{"b": .5}',
      '[1 2]',
      '{"b": "\\u12G4"}',
    ]) {
      expect(() => JSON.parse(text), text).toThrow();
      let thrown: unknown;
      try {
        matcher.matchJson(text);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, text).toBeInstanceOf(ReflexError);
      expect((thrown as ReflexError).code).toBe('REFLEX_ERR_EVENT_INVALID_JSON');
    }
    expect(createCompiledMatcher().matchJson('{"a": "x", "b": [1, {"c": null}], "d": -1.5e-3}')).toEqual([]);
    expect(() => createCompiledMatcher().matchJson('{"a": ')).toThrow(ReflexError);
  });

  it('compiled matcher - matchJson keeps the last of duplicate keys, as JSON.parse does', () => {
    const matcher = createCompiledMatcher();
    matcher.add(0, parsePattern({ a: { b: ['1'] } }));
    matcher.add(1, parsePattern({ a: { b: [{ exists: false }] } }));
    matcher.add(2, parsePattern({ a: { c: ['2'] } }));
    expect(matcher.matchJson('{"a": {"b": "1"}, "a": {"c": "2"}}')).toEqual([1, 2]);
    expect(matcher.matchJson('{"a": {"b": "0", "b": "1"}}')).toEqual([0]);
    expect(matcher.matchJson('{"a": [{"b": "1", "b": "0"}]}')).toEqual([]);
  });

  it('compiled matcher - numbers compare by value whatever their notation', () => {
    const matcher = createCompiledMatcher();
    matcher.add(0, parsePattern({ n: [300] }));
    matcher.add(1, parsePattern({ n: [{ numeric: ['=', 300] }] }));
    matcher.add(2, parsePattern({ n: [{ 'anything-but': [300] }] }));
    matcher.add(3, parsePattern({ n: [{ numeric: ['>=', -0.0, '<', 1e-6] }] }));
    for (const text of ['300', '300.0', '3e2', '3E+2', '300.000', '30000e-2']) {
      expect(matcher.matchJson(`{"n": ${text}}`), text).toEqual([0, 1]);
    }
    expect(matcher.matchJson('{"n": -0}')).toEqual([2, 3]);
    expect(matcher.matchJson('{"n": 1e-7}')).toEqual([2, 3]);
    // Not finite once read: no value at all, as after JSON.parse.
    expect(matcher.matchJson('{"n": 1e400}')).toEqual([]);
    expect(matcher.match({ n: Number.POSITIVE_INFINITY })).toEqual([]);
  });
});

describe('compiled matcher - size guard', () => {
  it('compiled matcher - refuses a pattern whose $or lists expand too far, naming where', () => {
    const alternatives = Array.from({ length: 11 }, (_, i) => ({ [`f${i}`]: ['x'] }));
    const json = {
      $or: alternatives,
      detail: { $or: alternatives, inner: { $or: alternatives } },
    };
    const matcher = createCompiledMatcher();
    matcher.add(1, parsePattern({ a: ['x'] }));
    let thrown: unknown;
    try {
      matcher.add(2, parsePattern(json));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ReflexError);
    const error = thrown as ReflexError;
    expect(error.code).toBe('REFLEX_ERR_PATTERN_TOO_COMPLEX');
    expect(error.details).toMatchObject({
      path: ['detail', 'inner', '$or'],
      alternatives: 1331,
      limit: compiledMatcherLimits.maxAlternatives,
    });
    expect(error.message).toContain('To fix:');
    // The caller names the rule by re-throwing with the same parameters.
    const named = new ReflexError(error.code, { ...error.params, rule: ' of rule `orders`' });
    expect(named.message).toMatch(/^The event pattern of rule `orders` is too complex/);
    // Nothing changed.
    expect(matcher.size).toBe(1);
    expect(matcher.match({ a: 'x', f0: 'x' })).toEqual([1]);
  });

  it('compiled matcher - refuses wildcards on one field that are too complex together across $or', () => {
    const alternative = (w: string) => ({ s: [{ wildcard: w }] });
    const json = {
      $or: [alternative('*a*a*'), alternative('*a*b*'), alternative('*b*a*'), alternative('*b*b*a*')],
    };
    const matcher = createCompiledMatcher();
    let thrown: unknown;
    try {
      matcher.add(0, parsePattern(json));
    } catch (error) {
      thrown = error;
    }
    expect((thrown as ReflexError).code).toBe('REFLEX_ERR_PATTERN_TOO_COMPLEX');
    expect((thrown as ReflexError).details).toMatchObject({ field: 's', path: ['$or', 3, 's'] });
    expect(matcher.size).toBe(0);
    // The same wildcards as separate rules are fine: each rule is judged on its own.
    json.$or.forEach((alt, i) => {
      matcher.add(i, parsePattern(alt));
    });
    expect(matcher.match({ s: 'xaxbx' })).toEqual([1]);
  });
});

describe('compiled matcher - bounded work on arrays', () => {
  /** k arrays of n objects, each holding both fields the pattern tests there, and a field that decides. */
  function independentArrays(k: number, n: number, matching: boolean) {
    const pattern: Record<string, unknown> = {};
    const event: Record<string, unknown> = {};
    for (let i = 0; i < k; i++) {
      pattern[`g${i}`] = { kind: [`k${i}`], id: [{ prefix: 'id-' }] };
      event[`g${i}`] = Array.from({ length: n }, (_, j) => ({ kind: `k${i}`, id: `id-${j}` }));
    }
    // Ranked last (anything-but), so every combination of elements reaches it before failing.
    pattern.state = [{ 'anything-but': 'closed' }];
    event.state = matching ? 'open' : 'closed';
    return { pattern: parsePattern(pattern), event };
  }

  it('compiled matcher - decides several arrays of objects without trying their combinations', () => {
    // Carrying the chosen elements through the automaton took 45 s here (40^4 combinations, 4 KB of JSON).
    const started = performance.now();
    for (const matching of [false, true]) {
      const { pattern, event } = independentArrays(4, 40, matching);
      const matcher = createCompiledMatcher();
      matcher.add(0, pattern);
      expect(matcher.match(event)).toEqual(matching ? [0] : []);
      expect(matcher.matchJson(JSON.stringify(event))).toEqual(matching ? [0] : []);
    }
    // And at a size where combinations could never finish: 16 arrays of 2 000 objects (1.2 MB).
    const { pattern, event } = independentArrays(16, 2000, false);
    const matcher = createCompiledMatcher();
    matcher.add(0, pattern);
    expect(matcher.match(event)).toEqual([]);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('compiled matcher - one array of 20 000 objects under a pattern with two alternatives stays fast', () => {
    // Took 10 s before: each element became its own search state at each step of the automaton.
    const pattern = parsePattern({
      $or: [{ d: { a0: ['x'], b0: ['x'] } }, { d: { a1: ['y'] } }],
      e: [{ 'anything-but': 'q' }],
    });
    const event = { d: Array.from({ length: 20_000 }, () => ({ a0: 'x', b0: 'z', a1: 'w' })), e: 'q' };
    const matcher = createCompiledMatcher();
    matcher.add(0, pattern);
    const started = performance.now();
    expect(matcher.match(event)).toEqual([]);
    expect(matcher.matchJson(JSON.stringify(event))).toEqual([]);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});
