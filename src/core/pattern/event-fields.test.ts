import { describe, expect, it } from 'vitest';
import { flattenEvent, valuesAt } from './event-fields.js';

describe('event fields', () => {
  it('event fields - join keys with dots and keep only values', () => {
    const fields = flattenEvent({ a: { b: 1, 'c.d': 'x' }, e: null, f: {}, g: [] });
    expect([...fields.keys()]).toEqual(['a.b', 'a.c.d', 'e']);
    expect(fields.get('a.b')).toEqual([{ value: 1, arrays: [] }]);
  });

  it('event fields - crush arrays into their field, recording the element of each array', () => {
    const fields = flattenEvent({ d: [{ a: 1 }, { a: 2, t: ['x', 'y'] }] });
    expect(fields.get('d.a')).toEqual([
      { value: 1, arrays: [{ array: 0, index: 0 }] },
      { value: 2, arrays: [{ array: 0, index: 1 }] },
    ]);
    expect(fields.get('d.t')).toEqual([
      {
        value: 'x',
        arrays: [
          { array: 0, index: 1 },
          { array: 1, index: 0 },
        ],
      },
      {
        value: 'y',
        arrays: [
          { array: 0, index: 1 },
          { array: 1, index: 1 },
        ],
      },
    ]);
  });

  it('event fields - anything but an object has no fields', () => {
    expect(flattenEvent('x').size).toBe(0);
    expect(flattenEvent([{ a: 1 }]).size).toBe(0);
  });

  it('event fields - valuesAt finds objects, values and empty lists under a name', () => {
    const event = { d: { 'k.s': 1, k: { t: { u: 2 } } }, l: [], m: [{ n: 1 }, { n: [2, 3] }] };
    expect(valuesAt(event, 'd.k.t')).toEqual([{ u: 2 }]);
    expect(valuesAt(event, 'd.k.s')).toEqual([1]);
    expect(valuesAt(event, 'l')).toEqual([[]]);
    expect(valuesAt(event, 'm.n')).toEqual([1, 2, 3]);
    expect(valuesAt(event, 'missing')).toEqual([]);
  });
});
