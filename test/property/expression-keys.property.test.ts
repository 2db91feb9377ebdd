import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReflexError } from '../../src/core/errors.js';
import { compileExpression, type ExpressionContext } from '../../src/core/expression.js';
import { compileTemplate } from '../../src/core/template.js';

/**
 * A key of the data is a key, whatever its name: for generated JSON whose keys include every name an
 * object inherits (and names a Map or a promise answers to), conditions, keys and templates give the same
 * answer for a key `k` as for the same data under a neutral name. The JSON is generated as text and
 * parsed, the way events and facts arrive, so "__proto__" is an own key.
 */

const inherited = [
  ...Object.getOwnPropertyNames(Object.prototype),
  'prototype',
  'then',
  'length',
  'size',
  'get',
  'has',
  'set',
  'keys',
  'values',
  'entries',
];
const neutral = 'neutral_key';

const keyName = fc
  .oneof({ weight: 3, arbitrary: fc.constantFrom(...inherited) }, fc.string({ maxLength: 6 }))
  .filter((k) => ![neutral, 'other', 'deep', 'a'].includes(k));

/** A JSON value as text, with keys drawn from `keyName`. */
const { json } = fc.letrec<{ json: string }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('null', 'true', 'false'),
    fc.integer({ min: -1000, max: 1000 }).map(String),
    fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }).map((d) => JSON.stringify(d)),
    fc.string({ maxLength: 6 }).map((s) => JSON.stringify(s)),
    fc.array(tie('json'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
    fc
      .uniqueArray(fc.tuple(keyName, tie('json')), { maxLength: 4, selector: ([k]) => k })
      .map((entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
  ),
}));

/** The value written as a CEL literal: maps and lists literally, JSON numbers as doubles. */
function literal(value: unknown): string {
  if (value === null || typeof value === 'boolean') return String(value);
  if (typeof value === 'number') return Number.isInteger(value) ? `${value}.0` : String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(literal).join(', ')}]`;
  const entries = Object.keys(value as object).map(
    (k) => `${JSON.stringify(k)}: ${literal((value as Record<string, unknown>)[k])}`,
  );
  return `{${entries.join(', ')}}`;
}

/**
 * What an evaluation gave, as JSON text with the key renamed to the neutral name (the rest of the data
 * never holds the key), or the code of its error. Text that a template wrote from JSON is read back.
 */
function outcome(run: () => unknown, name: string): string {
  const rename = (value: unknown): unknown => {
    if (typeof value === 'string' && value.startsWith('json:'))
      return `json:${JSON.stringify(rename(JSON.parse(value.slice(5))))}`;
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map(rename);
    return Object.fromEntries(
      Object.keys(value).map((k) => [
        k === name ? neutral : k,
        rename((value as Record<string, unknown>)[k]),
      ]),
    );
  };
  try {
    return `= ${JSON.stringify(rename(run()))}`;
  } catch (error) {
    if (error instanceof ReflexError) return `! ${error.code}`;
    throw error;
  }
}

const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/;
const reservedAfterDot = new Set(['__proto__', 'prototype', 'true', 'false', 'null', 'in']);

/** The expressions to compare, reading the key `name`. */
function expressions(name: string, v: unknown): string[] {
  const k = JSON.stringify(name);
  const list = [
    `event.data[${k}]`,
    `${k} in event.data`,
    `event.data[${k}] == ${literal(v)}`,
    `event.data[${k}] == event.data.other`,
    `event.data.deep.a[${k}] == event.data[${k}]`,
    'size(event.data)',
    'event.data.all(x, event.data[x] == event.data[x])',
    `event.data.exists_one(x, x == ${k}) && event.data.filter(x, x == ${k}).size() == 1`,
    `facts[${k}] == ${literal(v)} && facts.other == facts.other`,
    `{${k}: event.data[${k}]} == {${k}: facts[${k}]}`,
    `[event.data[${k}], event.data.other]`,
    'event.data',
    'event.data.deep',
    `{${k}: event.data.other}`,
  ];
  if (identifier.test(name) && !reservedAfterDot.has(name)) {
    list.push(
      `has(event.data.${name})`,
      `has(event.data.deep.a.${name}) && event.data.deep.a.${name} == event.data.${name}`,
    );
  }
  return list;
}

describe('expression keys (property)', () => {
  it('expression keys - a key named like an inherited member gives the answers of a neutral key', () => {
    fc.assert(
      fc.property(keyName, json, json, (name, valueText, otherText) => {
        // The outputs are compared after renaming the key: it must not occur in the data otherwise.
        fc.pre(!`${valueText} ${otherText}`.includes(JSON.stringify(name)));
        const value: unknown = JSON.parse(valueText);
        const data = (key: string) =>
          JSON.parse(
            `{${JSON.stringify(key)}: ${valueText}, "other": ${otherText}, "deep": {"a": {${JSON.stringify(key)}: ${valueText}}}}`,
          );
        const ctx = (key: string): ExpressionContext => ({
          event: { specversion: '1.0', id: 'e', source: 's', type: 't', data: data(key) },
          facts: JSON.parse(`{${JSON.stringify(key)}: ${valueText}, "other": 1}`),
          vars: {},
          now: 0,
        });
        const hostile = ctx(name);
        const plain = ctx(neutral);
        const pairs = expressions(name, value).map(
          (source, i) => [source, expressions(neutral, value)[i]!] as const,
        );
        for (const [withName, withNeutral] of pairs) {
          const got = outcome(() => compileExpression(withName).evaluate(hostile), name);
          const want = outcome(() => compileExpression(withNeutral).evaluate(plain), neutral);
          expect(got, withName).toBe(want);
        }
        // The same reads in a template give the same plain JSON.
        const template = (key: string) =>
          compileTemplate({
            whole: `\${{ event.data[${JSON.stringify(key)}] }}`,
            text: `json:\${{ event.data.deep }}`,
            built: `\${{ {${JSON.stringify(key)}: event.data.other} }}`,
          });
        const got = outcome(() => template(name).render(hostile), name);
        const want = outcome(() => template(neutral).render(plain), neutral);
        expect(got).toBe(want);
      }),
      { numRuns: 400 },
    );
  });
});
