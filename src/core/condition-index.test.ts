import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileCondition } from './condition.js';
import { impliedPattern } from './condition-index.js';
import { parsePattern } from './pattern/pattern.js';
import { matchPattern } from './pattern/reference-matcher.js';

function implied(source: string): unknown {
  return impliedPattern(source)?.source;
}

describe('condition index - implied patterns', () => {
  it('condition index - equality on either side becomes an exact value', () => {
    expect(implied('event.type == "order.created"')).toEqual({ type: ['order.created'] });
    expect(implied('"order.created" == event.type')).toEqual({ type: ['order.created'] });
    expect(implied('event.data.count == 5 && event.data.ok == true && event.data.gone == null')).toEqual({
      'data.count': [5],
      'data.ok': [true],
      'data.gone': [null],
    });
    expect(implied('event.data.delta == -2.5')).toEqual({ 'data.delta': [-2.5] });
    expect(implied('event["a-b"].c == "x"')).toEqual({ 'a-b.c': ['x'] });
  });

  it('condition index - in, startsWith, endsWith and contains become lists and string operators', () => {
    expect(implied('event.data.severity in ["critical", "high"]')).toEqual({
      'data.severity': ['critical', 'high'],
    });
    expect(implied('event.source.startsWith("svc-")')).toEqual({ source: [{ prefix: 'svc-' }] });
    expect(implied('event.subject.endsWith(".png")')).toEqual({ subject: [{ suffix: '.png' }] });
    expect(implied('event.subject.contains("a*b")')).toEqual({ subject: [{ wildcard: '*a\\*b*' }] });
  });

  it('condition index - numeric comparisons become ranges, intersected on one field', () => {
    expect(implied('event.data.value > 90')).toEqual({ 'data.value': [{ numeric: ['>', 90] }] });
    expect(implied('10 >= event.n')).toEqual({ n: [{ numeric: ['<=', 10] }] });
    expect(implied('event.n >= 5 && event.n < 10 && event.n > 6')).toEqual({
      n: [{ numeric: ['>', 6, '<', 10] }],
    });
    // Beyond the ±5e9 a pattern can hold: the part that still follows, or nothing.
    expect(implied('event.n > 1e12')).toEqual({ n: [{ numeric: ['>', 5e9] }] });
    expect(implied('event.n > -1e12')).toBeUndefined();
  });

  it('condition index - || on one field is a list, on several fields a $or', () => {
    expect(implied('event.a == "x" || event.a == "y" || event.a.startsWith("z")')).toEqual({
      a: ['x', 'y', { prefix: 'z' }],
    });
    expect(implied('event.type == "a" && (event.n < 0 || event.n > 10)')).toEqual({
      $or: [
        { type: ['a'], n: [{ numeric: ['<', 0] }] },
        { type: ['a'], n: [{ numeric: ['>', 10] }] },
      ],
    });
    expect(implied('event.a == 1 || event.b == 2')).toEqual({ $or: [{ a: [1] }, { b: [2] }] });
  });

  it('condition index - what it cannot read is left out, never guessed', () => {
    expect(implied('event.type == "x" && facts.open && !(event.a == 1) && event.b != 2')).toEqual({
      type: ['x'],
    });
    expect(implied('event.a == 1 || facts.x')).toBeUndefined();
    expect(implied('has(event.a) && event.tags[0] == "x" && size(event.s) > 2')).toBeUndefined();
    expect(implied('event.s > "m"')).toBeUndefined();
    expect(implied('event.x in []')).toBeUndefined();
    expect(implied('event.s.contains("")')).toBeUndefined();
    expect(implied('this is not CEL (')).toBeUndefined();
    // Operator names cannot be fields inside $or, so that alternative would match anything: no pattern.
    expect(implied('event.prefix == "a" || event.b == 1')).toBeUndefined();
  });

  it('condition index - takes the cel-js AST as well as the source', async () => {
    const { Environment } = await import('@marcbachmann/cel-js');
    const ast = new Environment({ unlistedVariablesAreDyn: true }).parse('event.type == "x"').ast;
    expect(impliedPattern(ast)?.source).toEqual({ type: ['x'] });
  });
});

// ---- soundness ----

const fields = ['event.a', 'event.b', 'event.d.x', 'event.d.y', 'event["d"].z'];
const values = ['"x"', '"y"', '"xy"', '""', '1', '2', '-1', '2.5', '0', 'true', 'false', 'null'];
const strings = ['"x"', '"y"', '""', '"xy"', '"*"'];

const atom: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .tuple(fc.constantFrom(...fields), fc.constantFrom(...values))
      .map(([f, v]) => `${f} == ${v}`),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(...fields), fc.constantFrom(...values))
      .map(([f, v]) => `${v} == ${f}`),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.constantFrom(...fields),
        fc.constantFrom('<', '<=', '>', '>='),
        fc.constantFrom('0', '1', '2', '-1', '2.5', '1e12', '-1e12'),
      )
      .map(([f, op, n]) => `${f} ${op} ${n}`),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(...fields), fc.array(fc.constantFrom(...values), { maxLength: 3 }))
      .map(([f, list]) => `${f} in [${list.join(', ')}]`),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.constantFrom(...fields),
        fc.constantFrom('startsWith', 'endsWith', 'contains'),
        fc.constantFrom(...strings),
      )
      .map(([f, m, s]) => `${f}.${m}(${s})`),
  },
  { weight: 1, arbitrary: fc.constantFrom(...fields) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(...fields), fc.constantFrom(...values))
      .map(([f, v]) => `${f} != ${v}`),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'has(event.a)',
      'true',
      'false',
      'vars.on',
      'size(event.tags) > 0',
      'event.tags[0] == "x"',
    ),
  },
);

const condition: fc.Arbitrary<string> = fc.letrec<{ c: string }>((tie) => ({
  c: fc.oneof(
    { depthSize: 'small', maxDepth: 3 },
    { weight: 3, arbitrary: atom },
    { weight: 2, arbitrary: fc.tuple(tie('c'), tie('c')).map(([a, b]) => `(${a}) && (${b})`) },
    { weight: 2, arbitrary: fc.tuple(tie('c'), tie('c')).map(([a, b]) => `(${a}) || (${b})`) },
    { weight: 1, arbitrary: tie('c').map((a) => `!(${a})`) },
  ),
})).c;

const scalar = fc.constantFrom<unknown>(
  'x',
  'y',
  'xy',
  '',
  '*',
  'x*',
  1,
  2,
  -1,
  2.5,
  0,
  -0,
  1e13,
  true,
  false,
  null,
);
const event = fc.record(
  {
    a: scalar,
    b: fc.oneof(scalar, fc.array(scalar, { maxLength: 2 })),
    d: fc.oneof(
      fc.record({ x: scalar, y: scalar, z: scalar }, { requiredKeys: [] }),
      fc.array(fc.record({ x: scalar }), { maxLength: 2 }),
      scalar,
    ),
    tags: fc.array(scalar, { maxLength: 2 }),
  },
  { requiredKeys: [] },
);

describe('condition index - soundness', () => {
  it('condition index - whenever a condition is true, its implied pattern matches the event', () => {
    let held = 0;
    let indexed = 0;
    fc.assert(
      fc.property(condition, fc.array(event, { minLength: 4, maxLength: 8 }), (source, events) => {
        const pattern = impliedPattern(source);
        if (pattern !== undefined) indexed++;
        const compiled = compileCondition(source);
        for (const e of events) {
          let result = false;
          try {
            result = compiled.evaluate({ event: e, facts: {}, vars: { on: true }, now: 0 });
          } catch {
            // A condition that fails to evaluate does not hold.
          }
          if (!result) continue;
          held++;
          if (pattern !== undefined)
            expect(matchPattern(pattern, e), `${source} on ${JSON.stringify(e)}`).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
    // The property says something only if conditions often hold and often give a pattern.
    expect(held).toBeGreaterThan(1000);
    expect(indexed).toBeGreaterThan(500);
  });

  it('condition index - a pattern is as selective as the condition where it can be (equality)', () => {
    const pattern = impliedPattern('event.type == "a" && event.data.n > 3')!;
    expect(matchPattern(pattern, { type: 'a', data: { n: 4 } })).toBe(true);
    expect(matchPattern(pattern, { type: 'b', data: { n: 4 } })).toBe(false);
    expect(matchPattern(pattern, { type: 'a', data: { n: 3 } })).toBe(false);
    expect(parsePattern(pattern.source)).toEqual(pattern);
  });
});
