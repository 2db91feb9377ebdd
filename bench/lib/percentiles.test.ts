import { describe, expect, it } from 'vitest';
import { createSamples, medianBy, percentile, summarize } from './percentiles.js';

describe('percentiles', () => {
  it('percentiles - nearest rank picks an observed value, never an interpolation', () => {
    const sorted = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(sorted, 50)).toBe(5);
    expect(percentile(sorted, 90)).toBe(9);
    expect(percentile(sorted, 99)).toBe(10);
    expect(percentile(sorted, 0)).toBe(1);
    expect(percentile(sorted, 100)).toBe(10);
  });

  it('percentiles - p99 of 1000 samples is the 990th smallest', () => {
    const values = Array.from({ length: 1000 }, (_, i) => 1000 - i);
    const summary = summarize(values);
    expect(summary.p99).toBe(990);
    expect(summary.p50).toBe(500);
    expect(summary.min).toBe(1);
    expect(summary.max).toBe(1000);
    expect(summary.mean).toBe(500.5);
    expect(summary.count).toBe(1000);
  });

  it('percentiles - an empty sample gives NaN figures and a zero count', () => {
    const summary = summarize([]);
    expect(summary.count).toBe(0);
    expect(summary.p99).toBeNaN();
    expect(summary.max).toBeNaN();
  });

  it('percentiles - samples grow past their initial capacity and keep insertion order', () => {
    const samples = createSamples(2);
    for (const value of [5, 1, 4, 2, 3]) samples.add(value);
    expect(samples.count).toBe(5);
    expect([...samples.values()]).toEqual([5, 1, 4, 2, 3]);
    expect(samples.summarize().p50).toBe(3);
  });

  it('percentiles - the median run is a measured run: the lower middle for an even count', () => {
    const runs = [{ rate: 30 }, { rate: 10 }, { rate: 20 }];
    expect(medianBy(runs, (r) => r.rate)).toBe(runs[2]);
    expect(medianBy([{ rate: 4 }, { rate: 1 }, { rate: 3 }, { rate: 2 }], (r) => r.rate)).toEqual({
      rate: 2,
    });
    expect(() => medianBy([], () => 0)).toThrow();
  });
});
