import { describe, expect, it } from 'vitest';
import { parsePattern } from '../pattern.js';
import { expandPattern } from './conjunctions.js';

const order = (json: unknown) => expandPattern(parsePattern(json)).map((c) => c.steps.map((s) => s.path));

describe('conjunctions', () => {
  it('conjunctions - expands $or into alternatives, nested and parallel', () => {
    const alternatives = expandPattern(
      parsePattern({
        a: ['1'],
        $or: [{ b: ['2'] }, { c: ['3'], $or: [{ d: ['4'] }, { e: ['5'] }] }],
        f: { $or: [{ g: ['6'] }, { h: ['7'] }] },
      }),
    );
    expect(alternatives).toHaveLength(6);
    expect(alternatives.every((c) => c.steps.some((s) => s.path === 'a'))).toBe(true);
  });

  it('conjunctions - orders selective steps first: exact, then shallow fields, absence last', () => {
    expect(
      order({
        data: { severity: ['high'], n: [{ numeric: ['>', 1] }] },
        gone: [{ exists: false }],
        type: ['x'],
        source: [{ prefix: 's' }],
      }),
    ).toEqual([['type', 'data.severity', 'source', 'data.n', 'gone']]);
  });

  it('conjunctions - equal steps have equal keys whatever the order or notation of their values', () => {
    const [a] = expandPattern(parsePattern({ x: ['b', 'a', 300, { numeric: ['=', -0] }] }));
    const [b] = expandPattern(parsePattern({ x: [{ numeric: ['=', 0] }, 3e2, 'a', 'b', 'a'] }));
    expect(a!.steps[0]!.key).toBe(b!.steps[0]!.key);
  });

  it('conjunctions - marks alternatives that test one field twice as strict, and drops exact repeats', () => {
    const [strict, loose] = expandPattern(parsePattern({ a: ['x'], $or: [{ a: ['y'] }, { a: ['x'] }] }));
    expect(strict!.strict).toBe(true);
    expect(loose!.strict).toBe(false);
    expect(loose!.steps).toHaveLength(1);
  });
});
