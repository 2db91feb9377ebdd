import { closeSync, fdatasync, openSync } from 'node:fs';
import { promisify } from 'node:util';

const fdatasyncAsync = promisify(fdatasync);

/**
 * Makes commits durable by syncing the WAL file on libuv's thread pool, the way PostgreSQL flushes its
 * WAL: the connection commits with `synchronous=NORMAL` (the commit writes its frames to the WAL and
 * returns without waiting for the disk), and whoever must acknowledge a commit awaits {@link sync}. The
 * event loop keeps parsing requests while the disk works, and the requests that arrive meanwhile form
 * the next group commit.
 *
 * A WAL only grows at its end and SQLite's recovery keeps its longest valid prefix, so a synced WAL
 * holds every commit made before the sync began: a power cut can only lose commits that nobody was
 * told about. SQLite still syncs the WAL before every checkpoint and when it starts the WAL over.
 *
 * The file is opened once, read-only, and closed after the database: SQLite keeps no lock on the WAL
 * file itself (its locks are on the database and `-shm` files), so closing this descriptor cannot drop
 * one of SQLite's locks.
 */
export class WalSync {
  readonly #path: string;
  #fd: number | undefined;
  /** The sync in flight. */
  #running: Promise<void> | undefined;
  /** The sync queued behind it: it starts when the running one ends and serves everyone waiting. */
  #queued: Promise<void> | undefined;

  /** @param path the WAL file (`<database>-wal`); opened on the first sync. */
  constructor(path: string) {
    this.#path = path;
  }

  /**
   * Resolves once everything committed before the call is on disk. Calls that overlap share syncs: a
   * sync already running may have begun before the caller's commit, so the caller waits for the next
   * one, which every caller arriving meanwhile shares.
   */
  sync(): Promise<void> {
    if (this.#queued !== undefined) return this.#queued;
    const running = this.#running;
    if (running === undefined) return this.#start();
    const next = running
      .catch(() => undefined)
      .then(() => {
        this.#queued = undefined;
        return this.#start();
      });
    this.#queued = next;
    return next;
  }

  /** Waits for the syncs in flight, then closes the file. Call after the database is closed. */
  async close(): Promise<void> {
    while (this.#running !== undefined || this.#queued !== undefined) {
      await (this.#queued ?? this.#running)?.catch(() => undefined);
    }
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  #start(): Promise<void> {
    let done: Promise<void>;
    try {
      this.#fd ??= openSync(this.#path, 'r');
      done = fdatasyncAsync(this.#fd);
    } catch (error) {
      done = Promise.reject(error);
    }
    const running = done.finally(() => {
      if (this.#running === running) this.#running = undefined;
    });
    this.#running = running;
    return running;
  }
}
