import { describe, expect, it } from 'vitest';
import { newSortableId, runId } from './ids.js';

describe('ids', () => {
  it('ids - sort by creation time and do not repeat', () => {
    const a = newSortableId(1_700_000_000_000);
    const b = newSortableId(1_700_000_000_001);
    const c = newSortableId(1_800_000_000_000);
    expect(a.length).toBe(26);
    expect([c, a, b].sort()).toEqual([a, b, c]);
    const many = Array.from({ length: 1000 }, () => newSortableId(1_800_000_000_000));
    expect(new Set(many).size).toBe(1000);
    // Made one after another in the same millisecond, they still sort in the order they were made.
    expect([...many].sort()).toEqual(many);
    // A clock that steps back does not break the order either.
    expect(newSortableId(1_000) > many[999]!).toBe(true);
  });
});

describe('run ids', () => {
  it('run ids - the same cause gives the same id, and ids sort by time, seq, rule and ordinal', () => {
    const t = Date.parse('2026-11-27T10:00:00Z');
    expect(runId(t, 42, 3, 0)).toBe(runId(t, 42, 3, 0));
    const ordered = [
      runId(t, 9, 5, 1),
      runId(t, 10, 0, 0),
      runId(t, 10, 0, 1),
      runId(t, 10, 2, 0),
      runId(t + 1, 1, 0, 0),
    ];
    expect([...ordered].reverse().sort()).toEqual(ordered);
    expect(new Set(ordered).size).toBe(ordered.length);
  });
});
