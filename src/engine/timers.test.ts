import { describe, expect, it } from 'vitest';
import type { AppendResult } from '../core/event.js';
import { createTestClock } from '../core/ports/clock.js';
import { silentLogger } from '../core/ports/logger.js';
import { createTimerService } from './timers.js';

describe('timer service', () => {
  it('timers - start resolves once the timers already due are in the log, however slow the store answers', async () => {
    // A networked store (PostgreSQL) takes round trips to fire: before, start returned at once and a
    // source could log a new event ahead of a deadline that passed while Reflex was down.
    const clock = createTestClock(10_000);
    const pending: AppendResult[] = [
      { partition: 0, seq: 7, id: 'r/when/"a"@9000', source: 'reflex', duplicate: false },
    ];
    let firedAt: number | undefined;
    const service = createTimerService({
      store: {
        async fireDueTimers(now) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          const due = now >= 9_000 ? pending.splice(0) : [];
          return due;
        },
        async nextTimerDueAt() {
          return pending.length > 0 ? 9_000 : undefined;
        },
      },
      clock,
      logger: silentLogger,
      onFired: () => {
        firedAt ??= performance.now();
      },
    });
    await service.start();
    const startedAt = performance.now();
    expect(firedAt, 'the overdue timer was not fired when start resolved').toBeDefined();
    expect(firedAt!).toBeLessThanOrEqual(startedAt);
    await service.drain();
  });
});
