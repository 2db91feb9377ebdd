import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { NumericBound } from '../pattern.js';
import { createNumericRanges } from './numeric-ranges.js';

function found(ranges: { collect(v: number, out: number[], at: number): number }, value: number): number[] {
  const out: number[] = [];
  out.length = ranges.collect(value, out, 0);
  return out.sort((a, b) => a - b);
}

const bound = (value: number, inclusive: boolean): NumericBound => ({ value, inclusive });

describe('numeric ranges', () => {
  it('numeric ranges - honours inclusive and exclusive bounds, open ends, and -0', () => {
    const ranges = createNumericRanges<number>();
    ranges.add(bound(0, false), bound(5, true), 1);
    ranges.add(undefined, bound(0, false), 2);
    ranges.add(bound(-0, true), undefined, 3);
    expect(found(ranges, 0)).toEqual([3]);
    expect(found(ranges, -0)).toEqual([3]);
    expect(found(ranges, 5)).toEqual([1, 3]);
    expect(found(ranges, -1e-9)).toEqual([2]);
    expect(ranges.remove(bound(0, false), bound(5, true), 1)).toBe(true);
    expect(ranges.remove(bound(0, false), bound(5, true), 1)).toBe(false);
    expect(found(ranges, 5)).toEqual([3]);
  });

  it('numeric ranges - the sorted tree agrees with a scan for many ranges, before and after removals', () => {
    const point = fc.constantFrom(-5e9, -3, -1, -0, 0, 0.5, 1, 2, 2.5, 3, 1e-7, 5e9);
    const range = fc.tuple(
      fc.option(fc.tuple(point, fc.boolean())),
      fc.option(fc.tuple(point, fc.boolean())),
    );
    fc.assert(
      fc.property(
        fc.array(range, { minLength: 0, maxLength: 40 }),
        fc.array(fc.nat(39)),
        fc.array(point, { minLength: 1 }),
        (list, removals, probes) => {
          const ranges = createNumericRanges<number>();
          const stored = list.map(([l, u]) => ({
            lower: l === null ? undefined : bound(l[0], l[1]),
            upper: u === null ? undefined : bound(u[0], u[1]),
          }));
          stored.forEach((r, i) => {
            ranges.add(r.lower, r.upper, i);
          });
          const removed = new Set(removals.filter((i) => i < stored.length));
          for (const i of removed) ranges.remove(stored[i]!.lower, stored[i]!.upper, i);
          for (const v of [...probes, 4, -4]) {
            const expected = stored.flatMap((r, i) => {
              if (removed.has(i)) return [];
              if (r.lower && (r.lower.inclusive ? v < r.lower.value : v <= r.lower.value)) return [];
              if (r.upper && (r.upper.inclusive ? v > r.upper.value : v >= r.upper.value)) return [];
              return [i];
            });
            expect(found(ranges, v)).toEqual(expected);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
