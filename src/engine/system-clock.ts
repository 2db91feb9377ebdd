import type { Clock } from '../core/ports/clock.js';

/** The wall clock. Timers longer than Node's limit (~24.8 days) are re-armed in steps. */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  schedule(at: number, fn: () => void) {
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      const delay = at - Date.now();
      if (delay <= 0) {
        timer = undefined;
        fn();
        return;
      }
      timer = setTimeout(arm, Math.min(delay, 2 ** 31 - 1));
      timer.unref();
    };
    arm();
    return () => {
      if (timer) clearTimeout(timer);
    };
  },
});
