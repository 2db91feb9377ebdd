import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReflexError } from '../../errors.js';
import { EventValues, FieldPaths, readObject } from './event-values.js';
import { eventText, render } from './generators.test-helpers.js';
import { readJson } from './json-scanner.js';

/** What a read gives, per field: the live values and the array positions they sit in. */
function snapshot(paths: FieldPaths, names: readonly string[], values: EventValues): Map<string, unknown[]> {
  const out = new Map<string, unknown[]>();
  for (const name of names) {
    const id = paths.acquire(name);
    paths.release(name);
    const slot = values.slot(id);
    if (slot === undefined) continue;
    const list: unknown[] = [];
    for (let k = 0; k < slot.count; k++) {
      const r = slot.records[k]!;
      if (values.isDead(r)) continue;
      const arrays: number[] = [];
      for (let c = values.hasArrays ? values.contexts[r] : null; c != null; c = c.parent)
        arrays.push(c.index);
      list.push([values.values[r], arrays.join('/')]);
    }
    // Order within a field carries no meaning (the object reader probes keys, the scanner reads text).
    if (list.length > 0)
      out.set(
        name,
        list.sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1)),
      );
  }
  return out;
}

const fieldNames = ['a', 'b', 'a.b', 'c.d', 'a.b.c', 'constructor', '__proto__', 'é', 'd.a.b'];

function reader(): { paths: FieldPaths; values: EventValues } {
  const paths = new FieldPaths();
  for (const name of fieldNames) paths.acquire(name);
  return { paths, values: new EventValues() };
}

describe('json scanner', () => {
  it('json scanner - reads the same values and array positions as reading JSON.parse output', () => {
    const { paths, values } = reader();
    fc.assert(
      fc.property(eventText, fc.boolean(), (event, spaced) => {
        const text = render(event, spaced);
        values.begin(paths.capacity);
        readObject(JSON.parse(text), paths.root(), values);
        const fromObject = snapshot(paths, fieldNames, values);
        values.begin(paths.capacity);
        readJson(text, paths.root(), values);
        expect(snapshot(paths, fieldNames, values)).toEqual(fromObject);
      }),
      { numRuns: 2000 },
    );
  });

  it('json scanner - reads every number as JSON.parse does, to the last bit and the sign of zero', () => {
    const digits = (min: number, max: number) =>
      fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });
    const number = fc
      .tuple(
        fc.boolean(),
        fc.oneof(
          fc.constant('0'),
          fc.tuple(fc.constantFrom(...'123456789'), digits(0, 18)).map(([a, b]) => a + b),
        ),
        fc.option(digits(1, 18)),
        fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(1, 3))),
      )
      .map(
        ([negative, whole, fraction, exponent]) =>
          `${negative ? '-' : ''}${whole}${fraction === null ? '' : `.${fraction}`}${exponent === null ? '' : exponent.join('')}`,
      );
    const { paths, values } = reader();
    const a = paths.acquire('a');
    fc.assert(
      fc.property(number, (text) => {
        values.begin(paths.capacity);
        readJson(`{"a": ${text}}`, paths.root(), values);
        const expected = JSON.parse(text) as number;
        const slot = values.slot(a);
        if (!Number.isFinite(expected)) expect(slot).toBeUndefined();
        else expect(Object.is(values.values[slot!.records[0]!], expected), text).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });

  it('json scanner - decodes escapes in keys and values, keeps lone surrogates, keeps the last duplicate', () => {
    const { paths, values } = reader();
    const text =
      '{"\\u0061": "x\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud800", "b": 1, "b": 2, "\\u00e9": [true, {"x": 1}, null]}';
    values.begin(paths.capacity);
    readJson(text, paths.root(), values);
    expect(snapshot(paths, ['a', 'b', 'é'], values)).toEqual(
      new Map<string, unknown[]>([
        ['a', [[JSON.parse(text).a, '']]],
        ['b', [[2, '']]],
        [
          'é',
          [
            [null, '2'],
            [true, '0'],
          ],
        ],
      ]),
    );
  });

  it('json scanner - refuses exactly what JSON.parse refuses (random corruptions of valid texts)', () => {
    const { paths, values } = reader();
    const noise = fc.constantFrom(
      '"',
      '\\',
      '{',
      '}',
      '[',
      ']',
      ',',
      ':',
      ' ',
      '\n',
      '\u0001',
      'e',
      '-',
      '0',
      '.',
      'tru',
      'x',
      '\\u12',
      '\\q',
    );
    fc.assert(
      fc.property(eventText, fc.nat(), noise, fc.boolean(), (event, at, inserted, clean) => {
        const valid = render(event, !clean);
        const position = at % (valid.length + 1);
        const text = valid.slice(0, position) + inserted + valid.slice(position);
        let parsed = true;
        try {
          JSON.parse(text);
        } catch {
          parsed = false;
        }
        values.begin(paths.capacity);
        if (parsed) {
          readJson(text, paths.root(), values);
        } else {
          expect(() => readJson(text, paths.root(), values)).toThrow(ReflexError);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
