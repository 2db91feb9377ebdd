import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ArrayPlace, type FieldGoal, solveConjunction } from './array-consistency.js';
import { expandPattern } from './automaton/conjunctions.js';
import {
  arrayEvent,
  arrayEventFor,
  arrayPattern,
  type JsonText,
  render,
} from './automaton/generators.test-helpers.js';
import { createCompiledMatcher } from './compiled-matcher.js';
import { readFieldValues } from './event-fields.js';
import { matchValue } from './match-value.js';
import { type Pattern, parsePattern } from './pattern.js';
import { matchPattern } from './reference-matcher.js';

/** Whether some alternative of `pattern` holds on `event`, as the solver decides it. */
function solve(
  pattern: Pattern,
  event: unknown,
  extraWork?: number,
  onChoice?: () => void,
): boolean | undefined {
  const conjunctions = expandPattern(pattern);
  const fields = readFieldValues(
    event,
    conjunctions.flatMap((c) => c.steps.map((s) => s.path)),
  );
  let undecided = false;
  for (const conjunction of conjunctions) {
    const goals: FieldGoal[] = conjunction.steps.map((step) => {
      const found = fields.get(step.path) ?? [];
      return {
        hits: found.filter((v) => step.matchers.some((m) => matchValue(m, v.value))).map((v) => v.place),
        absentOk: step.absent,
        values: step.absent ? found.map((v) => v.place) : [],
      };
    });
    const holds = solveConjunction(goals, {
      ...(extraWork === undefined ? {} : { extraWork }),
      ...(onChoice === undefined ? {} : { onChoice }),
    });
    if (holds === true) return true;
    if (holds === undefined) undecided = true;
  }
  return undecided ? undefined : false;
}

/** k arrays of n objects that each hold the two fields the pattern tests there, and a last field that fails. */
function independentArrays(k: number, n: number, matching: boolean) {
  const pattern: Record<string, unknown> = {};
  const event: Record<string, unknown> = {};
  for (let i = 0; i < k; i++) {
    pattern[`g${i}`] = { kind: [`k${i}`], id: [{ prefix: 'id-' }] };
    event[`g${i}`] = Array.from({ length: n }, (_, j) => ({ kind: `k${i}`, id: `id-${j}` }));
  }
  pattern.state = [{ 'anything-but': 'closed' }];
  event.state = matching ? 'open' : 'closed';
  return { pattern: parsePattern(pattern), event };
}

// ---- events that spell one field both with dotted keys and nested objects, inside arrays ----

const aliasScalar = fc.constantFrom('"1"', '"2"', '1').map((text): JsonText => ({ t: 'raw', text }));
const aliasValue = fc.oneof(
  aliasScalar,
  fc.array(aliasScalar, { minLength: 1, maxLength: 2 }).map((items): JsonText => ({ t: 'array', items })),
);
const aliasElement = fc
  .array(fc.tuple(fc.constantFrom('q', 's'), aliasValue), { minLength: 1, maxLength: 2 })
  .map((entries): JsonText => ({ t: 'object', entries }));

/** `p.q` and `p.s` written as `{"p": [{"q": .., "s": ..}]}`, as `{"p.q": [..]}`, or both; and `s`. */
const aliasEvent: fc.Arbitrary<JsonText> = fc
  .tuple(
    fc.array(aliasElement, { minLength: 1, maxLength: 3 }),
    fc.boolean(),
    fc.option(fc.array(aliasScalar, { minLength: 1, maxLength: 3 }), { nil: undefined }),
    fc.option(fc.array(aliasScalar, { minLength: 1, maxLength: 3 }), { nil: undefined }),
    fc.option(aliasValue, { nil: undefined }),
  )
  .map(([elements, nested, pq, ps, top]): JsonText => {
    const array: JsonText = { t: 'array', items: elements };
    const entries: Array<readonly [string, JsonText]> = [
      ['p', nested ? { t: 'array', items: [array] } : array],
    ];
    if (pq !== undefined) entries.push(['p.q', { t: 'array', items: pq }]);
    if (ps !== undefined) entries.push(['p.s', { t: 'array', items: ps }]);
    if (top !== undefined) entries.push(['s', top]);
    return { t: 'object', entries };
  });

const aliasList = fc.array(
  fc.constantFrom<unknown>('1', '2', 1, { exists: true }, { exists: false }, { 'anything-but': '1' }),
  { minLength: 1, maxLength: 2 },
);

const aliasPattern: fc.Arbitrary<Pattern> = fc
  .array(fc.tuple(fc.constantFrom('p.q', 'p.s', 's'), aliasList), { minLength: 1, maxLength: 4 })
  .map((fields) => {
    const json: Record<string, unknown> = {};
    for (const [path, list] of fields) json[path] = list;
    try {
      return parsePattern(json);
    } catch {
      return undefined;
    }
  })
  .filter((p): p is Pattern => p !== undefined);

describe('array consistency - agrees with the reference matcher', () => {
  it('array consistency - decides arrays of objects as the reference matcher does (nested arrays, exists false, $or)', () => {
    fc.assert(
      fc.property(
        arrayPattern.chain((p) => fc.tuple(fc.constant(p), fc.oneof(arrayEventFor(p), arrayEvent))),
        ([pattern, text]) => {
          const event = JSON.parse(render(text)) as unknown;
          expect(solve(pattern, event)).toBe(matchPattern(pattern, event));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('array consistency - decides fields spelled both dotted and nested inside arrays, with choices to try', () => {
    let choices = 0;
    fc.assert(
      fc.property(aliasPattern, aliasEvent, (pattern, text) => {
        const event = JSON.parse(render(text)) as unknown;
        const expected = matchPattern(pattern, event);
        let chose = false;
        expect(
          solve(pattern, event, undefined, () => {
            chose = true;
          }),
        ).toBe(expected);
        if (chose) choices++;
        const compiled = createCompiledMatcher();
        compiled.add(0, pattern);
        expect(compiled.match(event)).toEqual(expected ? [0] : []);
      }),
      { numRuns: 3000 },
    );
    // The generator must reach the choosing part of the solver, or this test would prove little.
    expect(choices).toBeGreaterThan(30);
  });
});

describe('array consistency - bounded work', () => {
  it('array consistency - decides many independent arrays of objects without trying combinations', () => {
    // 12 arrays of 400 elements: trying combinations would take 400^11 steps.
    const failing = independentArrays(12, 400, false);
    const started = performance.now();
    expect(solve(failing.pattern, failing.event)).toBe(false);
    const matching = independentArrays(12, 400, true);
    expect(solve(matching.pattern, matching.event)).toBe(true);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('array consistency - answers undecided, not slowly, when choices exceed the work allowed', () => {
    // Each of 16 fields `k.v<i>` is spelled both `{"k": [{"v<i>": ..}]}` and `{"k.v<i>": [..]}`: two
    // arrays to take it from, 2^16 ways; and `k.none` (absent) rules nothing out.
    const event: Record<string, unknown> = {
      k: Array.from({ length: 2 }, (_, e) =>
        Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`v${i}`, (i + e) % 2 === 0 ? 'x' : 'y'])),
      ),
    };
    for (let i = 0; i < 16; i++) event[`k.v${i}`] = [i % 3 === 0 ? 'x' : 'y', 'z'];
    const pattern = parsePattern({
      ...Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k.v${i}`, ['x']])),
      w: [{ exists: false }, 'q'],
      'k.w': [{ exists: false }],
    });
    const started = performance.now();
    expect(solve(pattern, event, 50)).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('array consistency - a value outside arrays is taken without committing any array', () => {
    const d = {};
    const at = (index: number): ArrayPlace => ({ array: d, index, parent: null });
    expect(
      solveConjunction([
        { hits: [at(0)], absentOk: false, values: [] },
        { hits: [at(1)], absentOk: false, values: [] },
      ]),
    ).toBe(false);
    expect(
      solveConjunction([
        { hits: [at(0)], absentOk: false, values: [] },
        { hits: [at(1), null], absentOk: false, values: [] },
      ]),
    ).toBe(true);
    // Absent: its only value is in the element that the other field does not take.
    expect(
      solveConjunction([
        { hits: [at(0)], absentOk: false, values: [] },
        { hits: [], absentOk: true, values: [at(1)] },
      ]),
    ).toBe(true);
    // Absent, but nothing commits the array its value is in.
    expect(solveConjunction([{ hits: [], absentOk: true, values: [at(1)] }])).toBe(false);
  });
});
