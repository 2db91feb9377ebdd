/**
 * The Clock port. Core code never reads the time itself: it is given `now`. The engine asks a Clock, so
 * tests can drive time with a test clock instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /**
   * Calls `fn` once the clock reaches `at` (at once if it already has). The returned function cancels it.
   */
  schedule(at: number, fn: () => void): () => void;
}

/** A clock that moves only when told to. Due callbacks run in time order during `advance`/`set`. */
export interface TestClock extends Clock {
  /** Moves time forward by `ms` and runs every callback that falls due, in order. */
  advance(ms: number): void;
  /** Moves time to `at` (never backwards) and runs every callback that falls due, in order. */
  set(at: number): void;
}

/**
 * Creates a test clock starting at `start`.
 *
 * @example
 * const clock = createTestClock(Date.parse('2026-01-01T00:00:00Z'));
 * clock.advance(60_000);
 */
export function createTestClock(start = 0): TestClock {
  let now = start;
  let nextId = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const clock: TestClock = {
    now: () => now,
    schedule(at, fn) {
      const id = nextId++;
      timers.set(id, { at, fn });
      return () => {
        timers.delete(id);
      };
    },
    advance(ms) {
      clock.set(now + ms);
    },
    set(at) {
      if (at < now) throw new RangeError(`a test clock does not go back (from ${now} to ${at})`);
      for (;;) {
        let due: [number, { at: number; fn: () => void }] | undefined;
        for (const entry of timers) {
          if (entry[1].at <= at && (due === undefined || entry[1].at < due[1].at)) due = entry;
        }
        if (due === undefined) break;
        timers.delete(due[0]);
        now = Math.max(now, due[1].at);
        due[1].fn();
      }
      now = at;
    },
  };
  return clock;
}
