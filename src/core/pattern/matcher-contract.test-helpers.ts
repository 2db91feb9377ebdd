import { describe, expect, it } from 'vitest';
import type { Matcher } from './matcher.js';
import { parsePattern } from './pattern.js';

/** The tests every {@link Matcher} must pass, whatever it is built on. */
export function describeMatcherContract(name: string, create: () => Matcher): void {
  describe(`${name} - Matcher contract`, () => {
    it(`${name} - returns the matching ids in ascending order, any ids`, () => {
      const matcher = create();
      matcher.add(70, parsePattern({ type: [{ prefix: 'order.' }] }));
      matcher.add(2, parsePattern({ type: ['order.created'] }));
      matcher.add(4_000_000_000, parsePattern({ type: ['user.created'] }));
      matcher.add(10, parsePattern({ type: [{ exists: true }] }));
      expect(matcher.size).toBe(4);
      expect(matcher.match({ type: 'order.created' })).toEqual([2, 10, 70]);
      expect(matcher.match({ type: 'user.created' })).toEqual([10, 4_000_000_000]);
      expect(matcher.match({ source: 'x' })).toEqual([]);
    });

    it(`${name} - add replaces the pattern under an id, remove drops it`, () => {
      const matcher = create();
      matcher.add(1, parsePattern({ a: ['x'] }));
      matcher.add(2, parsePattern({ a: ['x'] }));
      matcher.remove(1);
      matcher.remove(99);
      expect(matcher.size).toBe(1);
      expect(matcher.match({ a: 'x' })).toEqual([2]);
      matcher.add(2, parsePattern({ a: ['y'] }));
      expect(matcher.size).toBe(1);
      expect(matcher.match({ a: 'x' })).toEqual([]);
      expect(matcher.match({ a: 'y' })).toEqual([2]);
    });
  });
}
