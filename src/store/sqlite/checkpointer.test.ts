import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { tempDirPerTest } from '../../../test/helpers/temp-dir.js';
import { startCheckpointer } from './checkpointer.js';

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('checkpointer', () => {
  const dir = tempDirPerTest('reflex-checkpointer-');

  /** Commits over and over for `ms`, and returns the largest the WAL file was seen. */
  async function writeSteadily(restartFrames: number, ms: number): Promise<number> {
    const path = join(dir(), `db-${restartFrames}`);
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)');
    const checkpointer = startCheckpointer(db, path, { intervalMs: 10, restartFrames });
    const insert = db.prepare('INSERT INTO t (body) VALUES (?)');
    const batch = db.transaction(() => {
      for (let i = 0; i < 20; i++) insert.run('x'.repeat(2000));
    });
    let largest = 0;
    const end = Date.now() + ms;
    while (Date.now() < end) {
      batch();
      largest = Math.max(largest, statSync(`${path}-wal`).size);
      // As in Reflex, commits take a part of the time, not all of it.
      await pause(1);
    }
    await checkpointer.stop();
    db.close();
    return largest;
  }

  it('checkpointer - under sustained commits the WAL is started over, so its file stays bounded', async () => {
    const bounded = await writeSteadily(64, 2000);
    // 64 pages of 4 KiB is 256 KiB; until the worker's RESTART gets its turn the commits add some more.
    // With PASSIVE checkpoints alone the file grew past 28 MiB in the same two seconds.
    expect(bounded).toBeLessThan(8 * 1024 * 1024);
  });

  it('checkpointer - stop settles when the worker has already died', async () => {
    const path = join(dir(), 'db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    // The worker cannot open a database that is not there: it dies at once, as it did when a full disk
    // failed its checkpoint. Stopping then waited for an 'exit' that had already been emitted: the
    // promise never settled, and `reflex start` ended with exit 13 and its lock left behind.
    const checkpointer = startCheckpointer(db, join(dir(), 'missing', 'db'), { intervalMs: 10 });
    // A dead worker switches SQLite's own checkpoints back on: that is how its death shows.
    for (let i = 0; i < 500 && db.pragma('wal_autocheckpoint', { simple: true }) === 0; i++) await pause(10);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    // That is on its 'error' event; its 'exit' follows once the thread is torn down. Real time: a worker
    // thread does not run on the test clock.
    await pause(300);
    const stopped = await Promise.race([
      checkpointer.stop().then(() => 'stopped'),
      pause(5000).then(() => 'hung'),
    ]);
    expect(stopped).toBe('stopped');
    db.close();
  });
});
