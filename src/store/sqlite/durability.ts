import { ReflexError } from '../../core/errors.js';
import type { AppendResult } from '../../core/event.js';
import type { WalSync } from './wal-sync.js';

/** Greater than any seq SQLite hands out in practice; the "from the end" cursor. */
export const endOfLog = Number.MAX_SAFE_INTEGER;

/** The smallest seq among the events a commit newly appended (duplicates were there before), if any. */
function firstAppended(results: readonly AppendResult[]): number | undefined {
  let first: number | undefined;
  for (const r of results) if (!r.duplicate && (first === undefined || r.seq < first)) first = r.seq;
  return first;
}

/**
 * Durability of appends and fact changes: with durability full each such commit is acknowledged only
 * once the WAL is synced, and the dispatcher reads no further than the first event still being synced.
 */
export class DurableCommits {
  /** Syncs the WAL before appends and fact changes are acknowledged (durability full). */
  readonly #walSync: WalSync | undefined;
  /**
   * The first seq of each append and fact change whose WAL sync is still running (one entry per
   * commit): the dispatcher reads no further than the smallest, so it never acts on an event its sender
   * has not been told is stored.
   */
  readonly #unsynced: number[] = [];
  /** Set when a WAL sync failed: every later append and fact change is refused with it. */
  #syncFailure: ReflexError | undefined;
  readonly #onSyncFailure: ((error: ReflexError) => void) | undefined;
  readonly #path: string;

  /** `walSync` undefined: durability normal. `path` is the database file's. */
  constructor(path: string, walSync?: WalSync, onSyncFailure?: (error: ReflexError) => void) {
    this.#path = path;
    this.#walSync = walSync;
    this.#onSyncFailure = onSyncFailure;
  }

  /** `full` when commits wait for the WAL sync, else `normal`. */
  get durability(): 'full' | 'normal' {
    return this.#walSync === undefined ? 'normal' : 'full';
  }

  /**
   * The last seq a reader may see. An action must never be done for an event that a power cut could
   * still take back: its sender was not acknowledged and would send it again. Events from the first one
   * still being synced on are left for later; that sync's caller hands them on when it returns.
   */
  horizon(): number {
    let last = endOfLog;
    for (const first of this.#unsynced) if (first <= last) last = first - 1;
    return last;
  }

  /**
   * Commits with `commit` and returns once that is on disk (at once with durability normal, which
   * never waits for the disk). Until then the dispatcher does not read the events it appended, which
   * `logged` lists from the commit's result.
   */
  async durably<T>(commit: () => T, logged: (result: T) => readonly AppendResult[]): Promise<T> {
    if (this.#walSync === undefined) return commit();
    if (this.#syncFailure !== undefined) throw this.#syncFailure;
    const result = commit();
    // Hold back only what this commit appended: its caller hands that on (and so wakes the dispatcher)
    // when this returns. A commit that appended nothing (all duplicates) wakes no one, so it must not
    // hold back events that others commit meanwhile.
    const first = firstAppended(logged(result));
    const appended = first !== undefined;
    if (appended) this.#unsynced.push(first);
    try {
      await this.#walSync.sync();
    } catch (error) {
      // What this commit wrote may or may not be on disk. Its events stay held back for good: nothing
      // is done for an event whose sender was told it was not stored.
      throw this.#failSync(error);
    }
    // A sync that succeeds after another failed proves nothing: the kernel reports a write error once
    // and may have dropped the pages it could not write.
    if (this.#syncFailure !== undefined) throw this.#syncFailure;
    if (appended) this.#unsynced.splice(this.#unsynced.indexOf(first), 1);
    return result;
  }

  /** Records the first failed sync (and tells the owner once); returns the error every writer now gets. */
  #failSync(cause: unknown): ReflexError {
    if (this.#syncFailure === undefined) {
      const reason = cause instanceof Error ? cause.message : String(cause);
      this.#syncFailure = new ReflexError(
        'REFLEX_ERR_STORE_SYNC_FAILED',
        { path: `${this.#path}-wal`, reason },
        { cause },
      );
      this.#onSyncFailure?.(this.#syncFailure);
    }
    return this.#syncFailure;
  }

  /** Stops the sync thread. */
  async close(): Promise<void> {
    await this.#walSync?.close();
  }
}
