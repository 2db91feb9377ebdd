import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

/**
 * Moves WAL checkpoints off the main thread.
 *
 * SQLite checkpoints automatically inside whichever commit crosses the WAL size limit: that commit then
 * copies pages into the database file and syncs it, and the event loop waits meanwhile — the long tail
 * of ingest latency. Instead the main connection never checkpoints, and a worker thread with its own
 * connection runs a PASSIVE checkpoint (one that never waits for writers) every `intervalMs`. If the
 * worker fails, automatic checkpoints are switched back on, so the WAL cannot grow without bound.
 *
 * Under sustained writes a PASSIVE checkpoint never quite finishes (commits keep landing behind it),
 * and SQLite starts the WAL over only after a checkpoint that copied all of it: the file would grow for
 * as long as the load lasts. So once the WAL holds more than `restartFrames` pages, the worker runs a
 * RESTART checkpoint, which holds writers back while it copies the little the PASSIVE ones left (the
 * commits of the last interval) and lets the next commit write from the start of the file again. The
 * main connection's `journal_size_limit` then truncates the file.
 */
export interface Checkpointer {
  /** Stops the worker after one last checkpoint that also truncates the WAL. */
  stop(): Promise<void>;
}

// Plain JavaScript run with `eval`: a worker does not inherit the TypeScript loader of the main thread.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 1000');
// A checkpoint syncs the database file before the WAL may be reused: it must run synced.
db.pragma('synchronous = FULL');
// Busy: a writer holds the lock; full: the database file cannot grow now. Both pass: the WAL keeps every
// commit meanwhile, and the next round copies it.
const passes = (error) => error.code === 'SQLITE_BUSY' || error.code === 'SQLITE_FULL';
const checkpoint = (mode) => {
  try { return db.pragma('wal_checkpoint(' + mode + ')')[0]; } catch (error) { if (!passes(error)) throw error; }
};
const timer = setInterval(() => {
  const done = checkpoint('PASSIVE');
  if (done !== undefined && done.log > workerData.restartFrames) checkpoint('RESTART');
}, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  try { checkpoint('TRUNCATE'); } finally { db.close(); parentPort.close(); }
});
`;

/** Options of {@link startCheckpointer}. */
export interface CheckpointerOptions {
  /** @default 250 */
  intervalMs?: number;
  /** WAL pages past which the WAL is started over. @default 16384 (64 MiB of 4 KiB pages) */
  restartFrames?: number;
}

export function startCheckpointer(
  db: Database.Database,
  path: string,
  options: CheckpointerOptions = {},
): Checkpointer {
  const intervalMs = options.intervalMs ?? 250;
  const restartFrames = options.restartFrames ?? 16_384;
  db.pragma('wal_autocheckpoint = 0');
  // Once the WAL is started over, its file is cut back to this size (it stays allocated up to it, so
  // the commits that refill it overwrite blocks instead of growing the file).
  db.pragma(`journal_size_limit = ${restartFrames * (db.pragma('page_size', { simple: true }) as number)}`);
  const module = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(workerSource, {
    eval: true,
    workerData: { module, path, intervalMs, restartFrames },
  });
  // The worker must not keep a process alive that has nothing else to do.
  worker.unref();
  let stopping = false;
  const fallBack = () => {
    if (stopping || !db.open) return;
    db.pragma('wal_autocheckpoint = 1000');
  };
  // Listened to from the start: a worker that has already died emits no second 'exit' for stop to wait
  // on (waiting for one left `reflex start` with an unsettled promise: exit 13 and a stale lock).
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.once('error', fallBack);
  worker.once('exit', fallBack);
  return {
    async stop() {
      if (stopping) return;
      stopping = true;
      // Unreferenced, the worker would let the process end before its last checkpoint: hold it now.
      worker.ref();
      worker.postMessage('stop');
      await exited;
    },
  };
}
