import { describe, expect, it } from 'vitest';
import { createLogLimiter } from './log-limiter.js';
import { createTestClock } from './ports/clock.js';
import type { Logger } from './ports/logger.js';

function recordingLogger() {
  const lines: Array<{ level: string; obj: object; msg: string | undefined }> = [];
  const at = (level: string) => (obj: object, msg?: string) => lines.push({ level, obj, msg });
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { logger, lines };
}

describe('log limiter', () => {
  it('log limiter - a burst of identical lines is written up to the burst, then summarised in one line', () => {
    const clock = createTestClock(0);
    const { logger, lines } = recordingLogger();
    const limited = createLogLimiter(logger, clock, { windowMs: 1000, burst: 3 });
    for (let i = 0; i < 500; i++) limited.error({ attempt: i }, 'request failed');
    expect(lines).toHaveLength(3);
    clock.advance(1000);
    expect(lines).toHaveLength(4);
    expect(lines[3]).toEqual({
      level: 'error',
      obj: { attempt: 499, suppressed: 497 },
      msg: 'request failed (497 similar lines suppressed in the last 1s)',
    });
    // The next window starts afresh.
    limited.error({ attempt: 500 }, 'request failed');
    expect(lines).toHaveLength(5);
    clock.advance(1000);
    expect(lines).toHaveLength(5);
  });

  it('log limiter - different messages and levels do not hold each other back', () => {
    const clock = createTestClock(0);
    const { logger, lines } = recordingLogger();
    const limited = createLogLimiter(logger, clock, { burst: 1 });
    limited.warn({}, 'a');
    limited.warn({}, 'b');
    limited.error({}, 'a');
    limited.warn({}, 'a');
    expect(lines.map((l) => `${l.level}:${l.msg}`)).toEqual(['warn:a', 'warn:b', 'error:a']);
    limited.flush();
    expect(lines.at(-1)?.msg).toBe('a (1 similar lines suppressed in the last 1s)');
  });

  it('log limiter - beyond the kinds it tracks, lines pass unlimited', () => {
    const clock = createTestClock(0);
    const { logger, lines } = recordingLogger();
    const limited = createLogLimiter(logger, clock, { burst: 1, maxKinds: 2 });
    limited.info({}, 'one');
    limited.info({}, 'two');
    for (let i = 0; i < 5; i++) limited.info({}, 'three');
    expect(lines.filter((l) => l.msg === 'three')).toHaveLength(5);
  });
});
