import { toErrorInfo } from '../core/errors.js';
import type { Clock } from '../core/ports/clock.js';
import type { Logger } from '../core/ports/logger.js';
import type { DispatchStore } from '../core/ports/store.js';
import type { DiskFullWatch } from './disk-full.js';

export interface TimerServiceOptions {
  store: Pick<DispatchStore, 'fireDueTimers' | 'nextTimerDueAt'>;
  clock: Clock;
  logger: Logger;
  /** Called after due timers became `reflex.timer` events in the log. */
  onFired: () => void;
  /** Told about firings refused for want of space (which are then not logged one by one). */
  diskFull?: DiskFullWatch;
}

/**
 * Turns due timers (set by correlation and storm-control stages) into events in the log, at their time
 * by the engine's clock. The dispatcher then hands each one to the stage that set it, so time-based
 * firings are logged, audited and replayed like any other.
 */
export interface TimerService {
  /**
   * Starts: resolves once the timers already due (those that fell due while Reflex was down) are
   * events in the log, so they come before anything a source brings in after the start.
   */
  start(): Promise<void>;
  /** Timers may have changed: look again for the earliest. */
  reschedule(): void;
  drain(): Promise<void>;
}

export function createTimerService(options: TimerServiceOptions): TimerService {
  const { store, clock, logger } = options;
  let cancel: (() => void) | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  const fire = async () => {
    try {
      for (;;) {
        const fired = await store.fireDueTimers(clock.now(), 500);
        if (fired.length > 0) options.diskFull?.wrote();
        if (fired.some((result) => !result.duplicate)) options.onFired();
        if (fired.length < 500) break;
      }
    } catch (error) {
      if (!options.diskFull?.refused(error))
        logger.error({ error: toErrorInfo(error) }, 'firing due timers failed; trying again in 1s');
      cancel?.();
      if (!stopped) cancel = clock.schedule(clock.now() + 1000, () => schedule());
      return;
    }
    await arm();
  };

  const arm = async () => {
    cancel?.();
    cancel = undefined;
    if (stopped) return;
    const due = await store.nextTimerDueAt();
    if (due !== undefined && !stopped) cancel = clock.schedule(due, () => schedule());
  };

  // One look at a time; a request during a look makes one more look afterwards.
  const schedule = () => {
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await fire();
        } while (again && !stopped);
      } catch (error) {
        logger.error({ error: toErrorInfo(error) }, 'timer service failed');
      } finally {
        // In the same step as the loop's last look at `again`: a request arriving after it starts a
        // new look instead of being lost.
        running = undefined;
      }
    })();
  };

  return {
    async start() {
      schedule();
      await running;
    },
    reschedule: schedule,
    async drain() {
      stopped = true;
      cancel?.();
      await running;
    },
  };
}
