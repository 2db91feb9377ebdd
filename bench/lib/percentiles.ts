/** Latency figures of one measurement, in milliseconds. */
export interface LatencySummary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/**
 * A growable list of samples in a typed array: a 10-second run at tens of thousands of requests a second
 * would make a plain `number[]` a noticeable part of the generator's own garbage.
 */
export interface Samples {
  add(value: number): void;
  readonly count: number;
  summarize(): LatencySummary;
  /** The samples so far, in the order they were added. */
  values(): Float64Array;
}

/**
 * Creates an empty sample list.
 * @param initialCapacity grown by doubling when full. @default 65536
 */
export function createSamples(initialCapacity = 65_536): Samples {
  let buffer = new Float64Array(Math.max(1, initialCapacity));
  let count = 0;
  return {
    add(value) {
      if (count === buffer.length) {
        const bigger = new Float64Array(buffer.length * 2);
        bigger.set(buffer);
        buffer = bigger;
      }
      buffer[count++] = value;
    },
    get count() {
      return count;
    },
    summarize() {
      return summarize(buffer.subarray(0, count));
    },
    values() {
      return buffer.slice(0, count);
    },
  };
}

/**
 * The `p`-th percentile (0–100) of ascending `sorted` values by the nearest-rank method: the smallest
 * value such that at least p % of the samples are at or below it. No interpolation, so every figure
 * reported is a latency that was actually observed.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  if (p <= 0) return sorted[0]!;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

/** Sorts a copy of `samples` and returns its summary; an empty input gives NaN figures and count 0. */
export function summarize(samples: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    count: sorted.length,
    min: sorted.length > 0 ? sorted[0]! : Number.NaN,
    mean: sorted.length > 0 ? sum / sorted.length : Number.NaN,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted.length > 0 ? sorted[sorted.length - 1]! : Number.NaN,
  };
}

/**
 * The median item of `items` by `key`: the middle one for an odd count, the lower middle for an even
 * count (so the item is always one that was measured, never an average of two runs).
 *
 * @example
 * const typical = medianBy(runs, (run) => run.throughput);
 */
export function medianBy<T>(items: readonly T[], key: (item: T) => number): T {
  if (items.length === 0) throw new Error('medianBy needs at least one item');
  const sorted = [...items].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}
