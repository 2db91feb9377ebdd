import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { explainLimits, explainPattern } from './explain.js';
import { parsePattern } from './pattern.js';

describe('explain - naming the failing field', () => {
  it('explain - says matched when the pattern matches', () => {
    expect(explainPattern(parsePattern({ a: ['x'] }), { a: 'x' })).toEqual({ matched: true });
  });

  it('explain - names the field, what was expected and what the event holds', () => {
    const pattern = parsePattern({ type: ['alert'], data: { labels: { severity: ['critical'] } } });
    expect(explainPattern(pattern, { type: 'alert', data: { labels: { severity: 'warning' } } })).toEqual({
      matched: false,
      path: 'data.labels.severity',
      expected: 'one of ["critical"]',
      actual: 'warning',
      present: true,
    });
  });

  it('explain - reports an absent field as not present, with no actual value', () => {
    const explanation = explainPattern(parsePattern({ data: { status: ['firing', 'resolved'] } }), {
      data: {},
    });
    expect(explanation).toEqual({
      matched: false,
      path: 'data.status',
      expected: 'one of ["firing", "resolved"]',
      present: false,
    });
  });

  it('explain - reports the first failing field in pattern order', () => {
    const pattern = parsePattern({ a: ['1'], b: ['2'], c: ['3'] });
    expect(explainPattern(pattern, { a: '1', b: 'x', c: 'y' })).toMatchObject({ path: 'b', actual: 'x' });
  });

  it('explain - describes operators in words', () => {
    const explain = (pattern: unknown, event: unknown) => {
      const result = explainPattern(parsePattern(pattern), event);
      return result.matched ? 'matched' : result.path === null ? result.reason : result.expected;
    };
    expect(explain({ n: [{ numeric: ['>', 0, '<=', 5] }] }, { n: 9 })).toBe('a number > 0 and <= 5');
    expect(explain({ n: [{ numeric: ['=', 5] }] }, { n: 9 })).toBe('a number = 5');
    expect(explain({ s: [{ prefix: 'us-' }] }, { s: 'eu-1' })).toBe('prefix "us-"');
    expect(explain({ s: [{ suffix: { 'equals-ignore-case': '.png' } }] }, { s: 'a' })).toBe(
      'suffix ".png" in any case',
    );
    expect(explain({ s: [{ 'anything-but': ['a', 'b'] }] }, { s: 'a' })).toBe(
      'anything but one of ["a", "b"]',
    );
    expect(explain({ s: [{ 'anything-but': { prefix: 'x' } }] }, { s: 'xy' })).toBe(
      'anything but prefix "x"',
    );
    expect(explain({ s: [{ exists: false }] }, { s: 1 })).toBe('absent');
    expect(explain({ s: [{ exists: true }] }, {})).toBe('present');
    expect(explain({ ip: [{ cidr: '10.0.0.0/8' }] }, { ip: '11.0.0.1' })).toBe('an IP address in 10.0.0.0/8');
    expect(explain({ s: [{ wildcard: 'a*b' }, 'c'] }, { s: 'x' })).toBe('one of [wildcard "a*b", "c"]');
  });

  it('explain - shows objects and lists found at the path', () => {
    expect(
      explainPattern(parsePattern({ k: { S: [{ exists: false }] }, p: [{ exists: true }] }), {
        p: { S: 'x' },
      }),
    ).toEqual({
      matched: false,
      path: 'p',
      expected: 'present',
      actual: { S: 'x' },
      present: true,
    });
    expect(explainPattern(parsePattern({ tags: ['admin'] }), { tags: ['a', 'b'] })).toMatchObject({
      actual: ['a', 'b'],
      present: true,
    });
    expect(explainPattern(parsePattern({ tags: [{ exists: true }] }), { tags: [] })).toMatchObject({
      actual: [],
      present: true,
    });
  });

  it('explain - blames array consistency when each field matches on its own', () => {
    const pattern = parsePattern({ users: { name: ['alice'], role: ['admin'] } });
    const explanation = explainPattern(pattern, { users: [{ name: 'alice' }, { role: 'admin' }] });
    expect(explanation).toEqual({
      matched: false,
      path: 'users.role',
      expected: 'one of ["admin"], in the same array element as users.name',
      actual: 'admin',
      present: true,
    });
  });

  it('explain - follows the first $or alternative when none matches', () => {
    const pattern = parsePattern({ source: ['cw'], $or: [{ metric: ['CPU'] }, { namespace: ['EC2'] }] });
    expect(explainPattern(pattern, { source: 'cw', metric: 'RAM' })).toEqual({
      matched: false,
      path: 'metric',
      expected: 'one of ["CPU"] (or another of the 2 `$or` alternatives)',
      actual: 'RAM',
      present: true,
    });
    expect(explainPattern(pattern, { source: 'sns', namespace: 'EC2' })).toMatchObject({ path: 'source' });
  });
});

describe('explain - bounded work', () => {
  /** k arrays of n objects, each holding both fields the pattern tests there, and a last field that fails. */
  function independentArrays(k: number, n: number) {
    const pattern: Record<string, unknown> = {};
    const event: Record<string, unknown> = {};
    for (let i = 0; i < k; i++) {
      pattern[`g${i}`] = { kind: [`k${i}`], id: [{ prefix: 'id-' }] };
      event[`g${i}`] = Array.from({ length: n }, (_, j) => ({ kind: `k${i}`, id: `id-${j}` }));
    }
    pattern.state = ['open'];
    event.state = 'closed';
    return { pattern: parsePattern(pattern), event };
  }

  it('explain - names the failing field of a pattern with several array fields without trying combinations', () => {
    // The search over combinations took 2.8 s for 4 arrays of 30, and grows as 30^(k-1).
    const started = performance.now();
    for (const [k, n] of [
      [4, 30],
      [12, 500],
    ] as const) {
      const { pattern, event } = independentArrays(k, n);
      expect(explainPattern(pattern, event)).toEqual({
        matched: false,
        path: 'state',
        expected: 'one of ["open"]',
        actual: 'closed',
        present: true,
      });
    }
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('explain - shows an excerpt of large values, never the whole value', () => {
    const long = 'x'.repeat(100_000);
    const many = Array.from({ length: 50_000 }, (_, i) => `tag-${i}`);
    const explained = explainPattern(parsePattern({ note: ['short'], tags: ['none'], blob: ['y'] }), {
      note: long,
    });
    expect(explained).toEqual({
      matched: false,
      path: 'note',
      expected: 'one of ["short"]',
      actual: `${'x'.repeat(explainLimits.maxActualChars)}…`,
      present: true,
      truncated: true,
    });
    const tags = explainPattern(parsePattern({ tags: ['none'] }), { tags: many });
    expect(tags).toMatchObject({ path: 'tags', truncated: true });
    expect((tags as { actual: unknown[] }).actual).toEqual(many.slice(0, explainLimits.maxActualValues));
    const object = explainPattern(parsePattern({ blob: ['y'] }), { blob: { text: long, more: many } });
    expect(object).toMatchObject({ path: 'blob', present: true, truncated: true });
    const actual = (object as { actual: string }).actual;
    expect(actual).toBe(`${JSON.stringify({ text: long }).slice(0, explainLimits.maxActualChars)}…`);
    // Small objects and lists are shown as they are.
    expect(explainPattern(parsePattern({ blob: ['y'] }), { blob: { a: [1, 2] } })).toEqual({
      matched: false,
      path: 'blob',
      expected: 'one of ["y"]',
      actual: { a: [1, 2] },
      present: true,
    });
  });

  it('explain - says the field was not worked out, rather than working for long, past the work limit', () => {
    // Ten `$or` that each hold, then a field that fails: naming it means deciding 2, 4, ... 1 024
    // alternatives over a field with 20 000 values, far more work than allowed.
    const alternatives = Object.fromEntries(
      Array.from({ length: 10 }, (_, i) => [`o${i}`, { $or: [{ b: [`y${i}`] }, { a: [`x${i}`] }] }]),
    );
    const pattern = parsePattern({ ...alternatives, z: ['never'] });
    const event = {
      o0: Array.from({ length: 20_000 }, (_, i) => ({ a: 'x0', b: `w${i}` })),
      ...Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`o${i + 1}`, { a: `x${i + 1}` }])),
    };
    const started = performance.now();
    const explained = explainPattern(pattern, event);
    // About 0.3 s on a quiet machine; the bound leaves room for a loaded one.
    expect(performance.now() - started).toBeLessThan(5000);
    expect(explained).toEqual({
      matched: false,
      path: null,
      reason: `which field fails was not worked out: explaining this event needs more than the work limit of ${explainLimits.maxWork}`,
    });
    // The same pattern on a small event names the field.
    expect(explainPattern(pattern, { ...event, o0: { a: 'x0' } })).toMatchObject({ path: 'z' });
  });
});

describe('explain - agrees with the compiled matcher', () => {
  it('explain - matched is what the compiled matcher says, and a failure names a field or says why not', async () => {
    const { arrayEvent, arrayEventFor, arrayPattern, eventFor, eventText, pattern, render } = await import(
      './automaton/generators.test-helpers.js'
    );
    const { createCompiledMatcher } = await import('./compiled-matcher.js');
    const cases = fc.oneof(
      pattern.chain((p) => fc.tuple(fc.constant(p), fc.oneof(eventFor(p), eventText))),
      arrayPattern.chain((p) => fc.tuple(fc.constant(p), fc.oneof(arrayEventFor(p), arrayEvent))),
    );
    fc.assert(
      fc.property(cases, ([p, text]) => {
        const event = JSON.parse(render(text)) as unknown;
        const matcher = createCompiledMatcher();
        matcher.add(0, p);
        const explained = explainPattern(p, event);
        expect(explained.matched).toBe(matcher.match(event).length > 0);
        if (!explained.matched) {
          // Small events never exhaust the work allowed.
          expect(explained.path).toBeTypeOf('string');
          if (explained.path !== null) expect(explained.expected).not.toBe('');
        }
      }),
      { numRuns: 3000 },
    );
  });
});
