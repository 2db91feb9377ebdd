import { describe, expect, it } from 'vitest';
import { newSortableId } from './ids.js';

describe('ids', () => {
  it('ids - sort by creation time and do not repeat', () => {
    const a = newSortableId(1_700_000_000_000);
    const b = newSortableId(1_700_000_000_001);
    const c = newSortableId(1_800_000_000_000);
    expect(a.length).toBe(26);
    expect([c, a, b].sort()).toEqual([a, b, c]);
    const many = new Set(Array.from({ length: 1000 }, () => newSortableId(1_700_000_000_000)));
    expect(many.size).toBe(1000);
  });
});
