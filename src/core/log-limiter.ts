import { formatDuration } from './duration.js';
import type { Clock } from './ports/clock.js';
import type { Logger } from './ports/logger.js';

/** How `createLogLimiter` summarises repeated lines. */
export interface LogLimiterOptions {
  /**
   * Lines with the same level and message written within one window beyond the first `burst` are held
   * back and counted; when the window ends, one line says how many were suppressed.
   * @default 1000 (1s)
   */
  windowMs?: number;
  /**
   * Lines of one kind written in full per window.
   * @default 10
   */
  burst?: number;
  /**
   * Kinds of line tracked at once; beyond it lines pass unlimited (a flood of distinct messages is not
   * what this guards against, and tracking them would cost memory without bound).
   * @default 1000
   */
  maxKinds?: number;
}

/** A logger that summarises bursts of the same line. `flush` writes the summaries still pending. */
export interface LimitedLogger extends Logger {
  flush(): void;
}

type Level = 'debug' | 'info' | 'warn' | 'error';

interface Window {
  level: Level;
  msg: string;
  written: number;
  suppressed: number;
  last: object;
  cancel: () => void;
}

/**
 * Wraps `logger` so that a line repeated many times a second (a failing disk, a client retrying in a
 * loop, a run failing over and over) does not flood the log: per level and message, the first `burst`
 * lines of each window are written, the rest counted, and at the end of the window one line carries the
 * fields of the last one suppressed, `suppressed: <n>`, and the message with "(<n> similar lines
 * suppressed in the last 1s)". Lines with different messages never hold each other back.
 *
 * @example
 * const logger = createLogLimiter(pino(), systemClock);
 */
export function createLogLimiter(
  logger: Logger,
  clock: Clock,
  options: LogLimiterOptions = {},
): LimitedLogger {
  const windowMs = options.windowMs ?? 1000;
  const burst = options.burst ?? 10;
  const maxKinds = options.maxKinds ?? 1000;
  const windows = new Map<string, Window>();

  const close = (key: string) => {
    const window = windows.get(key);
    if (window === undefined) return;
    windows.delete(key);
    window.cancel();
    if (window.suppressed === 0) return;
    logger[window.level](
      { ...window.last, suppressed: window.suppressed },
      `${window.msg} (${window.suppressed} similar lines suppressed in the last ${formatDuration(windowMs)})`,
    );
  };

  const write = (level: Level) => (obj: object, msg?: string) => {
    const text = msg ?? '';
    const key = `${level}\u0000${text}`;
    let window = windows.get(key);
    if (window === undefined) {
      if (windows.size >= maxKinds) {
        logger[level](obj, msg);
        return;
      }
      window = { level, msg: text, written: 0, suppressed: 0, last: obj, cancel: () => {} };
      windows.set(key, window);
      window.cancel = clock.schedule(clock.now() + windowMs, () => close(key));
    }
    if (window.written < burst) {
      window.written += 1;
      logger[level](obj, msg);
    } else {
      window.suppressed += 1;
      window.last = obj;
    }
  };

  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    flush() {
      for (const key of [...windows.keys()]) close(key);
    },
  };
}
