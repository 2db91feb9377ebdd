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
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (error) { if (error.code !== 'SQLITE_BUSY') throw error; }
}, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  try { db.pragma('wal_checkpoint(TRUNCATE)'); } finally { db.close(); parentPort.close(); }
});
`;

export function startCheckpointer(db: Database.Database, path: string, intervalMs = 250): Checkpointer {
  db.pragma('wal_autocheckpoint = 0');
  const module = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(workerSource, { eval: true, workerData: { module, path, intervalMs } });
  // The worker must not keep a process alive that has nothing else to do.
  worker.unref();
  let stopping = false;
  const fallBack = () => {
    if (stopping || !db.open) return;
    db.pragma('wal_autocheckpoint = 1000');
  };
  worker.once('error', fallBack);
  worker.once('exit', fallBack);
  return {
    async stop() {
      if (stopping) return;
      stopping = true;
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      // Unreferenced, the worker would let the process end before its last checkpoint: hold it now.
      worker.ref();
      worker.postMessage('stop');
      await exited;
    },
  };
}
