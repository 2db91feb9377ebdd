import { describe, expect, it } from 'vitest';
import { fnv1a, partitionOf } from './partition.js';

describe('partitionOf', () => {
  it('partition - FNV-1a gives the published test values', () => {
    expect(fnv1a('')).toBe(0x811c9dc5);
    expect(fnv1a('a')).toBe(0xe40c292c);
    expect(fnv1a('foobar')).toBe(0xbf9cf968);
  });

  it('partition - the partition key wins over the source; one partition is always 0', () => {
    const event = { source: 'shop', partitionkey: 'order-7' };
    expect(partitionOf(event, 4)).toBe(fnv1a('order-7') % 4);
    expect(partitionOf({ source: 'shop' }, 4)).toBe(fnv1a('shop') % 4);
    expect(partitionOf(event, 1)).toBe(0);
    const seen = new Set<number>();
    for (let i = 0; i < 100; i++) seen.add(partitionOf({ source: `s${i}` }, 4));
    expect([...seen].sort()).toEqual([0, 1, 2, 3]);
  });
});
