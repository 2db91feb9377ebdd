import type { NumericBound } from '../pattern.js';

/**
 * The `numeric` ranges of one field, sorted so that finding the ranges that hold a number costs
 * O(log n + hits) however many ranges there are: the distinct bounds cut the number line into
 * elementary segments (each bound is a segment of its own, and so is each gap between two bounds), and a
 * segment tree over those segments stores each range in O(log n) nodes.
 *
 * Small sets are scanned directly; the tree is built on the first lookup after a change, so adding many
 * ranges in a row costs one build.
 */
export interface NumericRanges<T> {
  /** Stores `payload` for the numbers within the bounds (an absent bound is unbounded). */
  add(lower: NumericBound | undefined, upper: NumericBound | undefined, payload: T): void;
  /** Removes one range with these bounds and this payload; returns whether there was one. */
  remove(lower: NumericBound | undefined, upper: NumericBound | undefined, payload: T): boolean;
  /** Writes the payload of every range that holds `value` into `out` from `at` on; returns the next index. */
  collect(value: number, out: T[], at: number): number;
  readonly size: number;
}

/** A range with its bounds as plain numbers (an absent bound is an infinite inclusive one): one object. */
interface Range<T> {
  readonly low: number;
  readonly lowInclusive: boolean;
  readonly high: number;
  readonly highInclusive: boolean;
  readonly payload: T;
}

function rangeOf<T>(lower: NumericBound | undefined, upper: NumericBound | undefined, payload: T): Range<T> {
  return {
    low: lower?.value ?? Number.NEGATIVE_INFINITY,
    lowInclusive: lower?.inclusive ?? true,
    high: upper?.value ?? Number.POSITIVE_INFINITY,
    highInclusive: upper?.inclusive ?? true,
    payload,
  };
}

/** Below this many ranges a linear scan beats building and walking the tree. */
const scanBelow = 12;

function sameRange<T>(a: Range<T>, b: Range<T>): boolean {
  return (
    a.payload === b.payload &&
    a.low === b.low &&
    a.lowInclusive === b.lowInclusive &&
    a.high === b.high &&
    a.highInclusive === b.highInclusive
  );
}

function holds<T>(range: Range<T>, value: number): boolean {
  if (range.lowInclusive ? value < range.low : value <= range.low) return false;
  return range.highInclusive ? value <= range.high : value < range.high;
}

/** Index of the first bound that is >= value (bounds.length when none is). */
function lowerBound(bounds: Float64Array, value: number): number {
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (bounds[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

interface Tree<T> {
  bounds: Float64Array;
  /** Leaves start here; node i has children 2i and 2i+1. */
  base: number;
  lists: Array<T[] | undefined>;
}

function segmentOf(bounds: Float64Array, value: number): number {
  const k = lowerBound(bounds, value);
  return k < bounds.length && bounds[k] === value ? 2 * k + 1 : 2 * k;
}

function build<T>(ranges: readonly Range<T>[]): Tree<T> {
  const all: number[] = [];
  for (const { low, high } of ranges) {
    if (low !== Number.NEGATIVE_INFINITY) all.push(low);
    if (high !== Number.POSITIVE_INFINITY) all.push(high);
  }
  all.sort((a, b) => a - b);
  const distinct: number[] = [];
  for (const v of all) if (distinct.length === 0 || distinct[distinct.length - 1] !== v) distinct.push(v);
  const bounds = Float64Array.from(distinct);
  // Segments: 2k is the gap below bounds[k], 2k+1 is bounds[k] itself, 2m is the gap above the last.
  const segments = 2 * bounds.length + 1;
  let base = 1;
  while (base < segments) base *= 2;
  const lists: Array<T[] | undefined> = new Array(2 * base);
  for (const range of ranges) {
    const first =
      range.low === Number.NEGATIVE_INFINITY
        ? 0
        : segmentOf(bounds, range.low) + (range.lowInclusive ? 0 : 1);
    const last =
      range.high === Number.POSITIVE_INFINITY
        ? segments - 1
        : segmentOf(bounds, range.high) - (range.highInclusive ? 0 : 1);
    let l = first + base;
    let r = last + base + 1;
    while (l < r) {
      if (l & 1) {
        const list = lists[l++];
        if (list === undefined) lists[l - 1] = [range.payload];
        else list.push(range.payload);
      }
      if (r & 1) {
        const list = lists[--r];
        if (list === undefined) lists[r] = [range.payload];
        else list.push(range.payload);
      }
      l >>= 1;
      r >>= 1;
    }
  }
  return { bounds, base, lists };
}

/** The set as a class: its methods sit on one prototype, and each set is one small object. */
class SortedRanges<T> implements NumericRanges<T> {
  readonly #ranges: Range<T>[] = [];
  #tree: Tree<T> | undefined;

  add(lower: NumericBound | undefined, upper: NumericBound | undefined, payload: T): void {
    this.#ranges.push(rangeOf(lower, upper, payload));
    this.#tree = undefined;
  }

  remove(lower: NumericBound | undefined, upper: NumericBound | undefined, payload: T): boolean {
    const ranges = this.#ranges;
    const wanted = rangeOf(lower, upper, payload);
    const at = ranges.findIndex((r) => sameRange(r, wanted));
    if (at < 0) return false;
    ranges[at] = ranges[ranges.length - 1]!;
    ranges.pop();
    this.#tree = undefined;
    return true;
  }

  collect(value: number, out: T[], at: number): number {
    const ranges = this.#ranges;
    if (ranges.length < scanBelow) {
      for (let i = 0; i < ranges.length; i++) {
        const range = ranges[i]!;
        if (holds(range, value)) out[at++] = range.payload;
      }
      return at;
    }
    this.#tree ??= build(ranges);
    const { bounds, base, lists } = this.#tree;
    for (let node = segmentOf(bounds, value) + base; node >= 1; node >>= 1) {
      const list = lists[node];
      if (list !== undefined) for (let i = 0; i < list.length; i++) out[at++] = list[i]!;
    }
    return at;
  }

  get size(): number {
    return this.#ranges.length;
  }
}

/**
 * Creates an empty set of ranges.
 *
 * @example
 * const ranges = createNumericRanges<string>();
 * ranges.add({ value: 0, inclusive: false }, { value: 5, inclusive: true }, 'A');
 * const out: string[] = [];
 * ranges.collect(5, out, 0); // 1; out: ['A']
 */
export function createNumericRanges<T>(): NumericRanges<T> {
  return new SortedRanges<T>();
}
