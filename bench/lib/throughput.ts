/**
 * Runs `fn` over `items` in turn, first for a short warm-up, then for `ms` milliseconds (a fixed time,
 * not a fixed count, so slow candidates finish too), and returns calls per second. What `fn` returns is
 * summed so the work cannot be optimised away.
 *
 * @example
 * const perSecond = throughput(events, (event) => matcher.match(event).length, 1000);
 */
export function throughput<T>(items: readonly T[], fn: (item: T) => number, ms: number): number {
  let sink = 0;
  let i = 0;
  const warm = Date.now() + Math.min(200, ms / 4);
  while (Date.now() < warm) sink += fn(items[i++ % items.length]!);
  let done = 0;
  const start = process.hrtime.bigint();
  const stop = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < stop) {
    // Read the clock once per 64 calls: its cost stays out of the figure.
    for (let k = 0; k < 64; k++) sink += fn(items[(i + k) % items.length]!);
    i += 64;
    done += 64;
    now = process.hrtime.bigint();
  }
  if (sink === -1) console.log(sink);
  return (done * 1e9) / Number(now - start);
}

/** The median of measured figures: the lower middle one for an even count (always a measured value). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}
