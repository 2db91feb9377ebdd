import type { AuditLog } from './audit-log.js';
import type { DispatchStore } from './dispatch-store.js';
import type { EventLog } from './event-log.js';
import type { FactStore } from './fact-store.js';
import type { ReadModel } from './read-model.js';
import type { RulebookStore } from './rulebook-store.js';
import type { RunQueue } from './run-queue.js';

export * from './audit-log.js';
export * from './dispatch-store.js';
export * from './event-log.js';
export * from './fact-store.js';
export * from './read-model.js';
export * from './rulebook-store.js';
export * from './run-queue.js';

/**
 * What a store backend provides: every store port — the event log, dispatch state, the run queue,
 * facts, audit, the read model and rulebook versions — over one database. Engine parts take only the
 * ports they use (the dispatcher an `EventLog` and a `DispatchStore`, the executor a `RunQueue`, ...).
 *
 * Methods are async so a networked backend (PostgreSQL) can implement the same ports; the embedded
 * SQLite backend answers synchronously inside. Every method that changes several things does so in ONE
 * transaction: that is what the engine's guarantees rest on. Times are milliseconds since the epoch.
 */
export interface Store
  extends EventLog,
    DispatchStore,
    RunQueue,
    FactStore,
    AuditLog,
    ReadModel,
    RulebookStore {
  /**
   * A random key (hex) made once with the store and kept with its data (and its backups), never shown
   * by the API. Ids derived from it with an HMAC cannot be predicted from outside, so nobody can post an
   * event under such an id before Reflex appends it, yet they stay the same when a decision is replayed.
   */
  idKey(): Promise<string>;
  close(): Promise<void>;
}
