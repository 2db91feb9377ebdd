import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createSqliteStore } from '../../src/store/index.js';
import { tempDirPerTest } from '../helpers/temp-dir.js';
import { checkFinal, checkRestart } from './chaos-invariants.js';
import { chaosTimings } from './chaos-loop.js';

/**
 * The chaos loop's oracle can fail: a store made by hand with a lost event, a match without a run, a run
 * that never ended and a try recorded twice is reported for each of them.
 */
describe('chaos invariants', () => {
  const dir = tempDirPerTest('reflex-chaos-oracle-');

  it('chaos invariants - a lost acked event, a match without a run, an open run and a doubled try are each reported', async () => {
    const t0 = Date.parse('2026-12-06T08:00:00Z');
    const store = await createSqliteStore({ dir: dir() });
    try {
      const order = (id: string) => ({
        specversion: '1.0' as const,
        id,
        source: 'chaos',
        type: 'chaos.order',
        data: { k: 'o1', n: 1 },
      });
      const [first] = await store.appendEvents([order('e1'), order('e2')], t0);
      const version = await store.saveRulebookVersion({ hash: 'h', files: [], createdAt: t0 });
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: first!.seq + 1,
        runs: [
          {
            id: 'run-1',
            rule: 'deliver',
            rulebookVersion: version,
            trigger: { partition: 0, seq: first!.seq, id: 'e1', source: 'chaos', type: 'chaos.order' },
            ordinal: 0,
            context: { event: first!.seq },
            createdAt: t0,
          },
        ],
        audit: [],
      });
    } finally {
      await store.close();
    }
    // The same try of run-1 twice, as the executor bug recorded it: only raw SQL can write that now.
    const db = new Database(join(dir(), 'reflex.db'));
    try {
      const insert = db.prepare(
        `INSERT INTO attempts (run_id, step, step_id, action, attempt, started_at, finished_at, status)
         VALUES ('run-1', 0, 'deliver', 'http', 1, ?, ?, 'succeeded')`,
      );
      insert.run(t0, t0);
      insert.run(t0, t0);
    } finally {
      db.close();
    }

    const database = join(dir(), 'reflex.db');
    const acked = new Set(['e1', 'e3']);
    expect(checkRestart(database, acked, 'restart')).toEqual([
      expect.stringContaining('restart: acknowledged events missing from the log: "e3"'),
      expect.stringContaining('restart: attempts recorded more than once'),
    ]);
    const { violations } = checkFinal(database, {
      acked,
      sent: new Set(['e1', 'e2', 'e3']),
      deliveries: [],
      overlaps: [{ key: 'run-1:deliver', at: t0 }],
      timings: chaosTimings,
    });
    const expected = [
      'acknowledged events missing from the log: "e3"',
      'deliver: matches without a run (trigger seqs): 2',
      'runs that never ended: ["run-1","pending"]',
      'attempts not numbered 1..n, or recorded twice',
      'more tries recorded than calls received',
      'steps recorded as succeeded that the target never answered 200: "run-1:deliver"',
      'steps in flight twice at the same time',
    ];
    for (const text of expected) expect(violations.join('\n')).toContain(text);
    expect(violations).toHaveLength(expected.length);
  });
});
