import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ReflexError } from '../../core/errors.js';
import type { AppendResult, CloudEvent, LoggedEvent, LogPosition } from '../../core/event.js';
import type {
  AttemptCompletion,
  AuditEntry,
  DeadLetter,
  DispatchCommit,
  EventQuery,
  FactChange,
  FlowStateRow,
  LogRead,
  NewRulebookVersion,
  RulebookVersion,
  Run,
  RunClaim,
  RunDetail,
  RunQuery,
  Store,
  StorePage,
} from '../../core/ports/store.js';
import { SqliteAuditLog } from './audit.js';
import { type Checkpointer, startCheckpointer } from './checkpointer.js';
import { codedStoreError, withCodedErrors } from './coded-errors.js';
import { prepareDataDir } from './data-dir.js';
import { acquireDataDirLock, type DataDirLock } from './data-dir-lock.js';
import { createDatabaseFile, inspectDatabaseFile, quickCheck } from './database-file.js';
import { SqliteDispatchStore } from './dispatch.js';
import { DurableCommits } from './durability.js';
import { SqliteEventLog } from './event-log.js';
import { SqliteFactStore } from './facts.js';
import { migrate, readSchemaVersion, schemaVersion } from './migrations.js';
import { SqliteReadModel } from './read-model.js';
import { SqliteRulebookStore } from './rulebook-versions.js';
import { SqliteRunQueue } from './run-queue.js';
import { WalSync } from './wal-sync.js';

/** The name of the database file inside a data directory. */
export const databaseFileName = 'reflex.db';

/** How hard commits are pushed to disk unless told otherwise (`reflex start --durability`). */
export const defaultDurability = 'full';

/** Options of `createSqliteStore`. */
export interface SqliteStoreOptions {
  /** Data directory; holds `reflex.db` (+ WAL files) and a lock file. Created if missing. */
  dir: string;
  /**
   * How hard a commit is pushed to disk.
   * - `'full'`: appends and fact changes return only once they are on disk (the WAL is synced on the
   *   thread pool, so the event loop goes on meanwhile): what was acknowledged survives a power loss.
   * - `'normal'`: nothing waits for the disk (`synchronous=NORMAL` in WAL mode); survives a crash of
   *   the process, but the last commits may be lost on a power loss. Faster.
   * @default {@link defaultDurability} ('full')
   */
  durability?: 'full' | 'normal';
  /**
   * Open for reading only (the CLI reading a live instance's data): no lock, no migrations, no writes.
   * @default false
   */
  readonly?: boolean;
  /**
   * Called once when a sync of the write-ahead log fails (durability `full`). The store then refuses
   * every later append and fact change with that error, and the events whose sync failed are never
   * handed to the dispatcher. The process should stop: after a failed fsync the kernel may have dropped
   * the unwritten pages, so what the log holds is known only after a restart (PostgreSQL stops too).
   */
  onSyncFailure?: (error: ReflexError) => void;
}

/** What an open SQLite store runs with, read back from the connection (for `reflex status` and tests). */
export interface SqliteStoreInfo {
  /** The database file. */
  path: string;
  readonly: boolean;
  /** The `PRAGMA user_version` of the database. */
  schemaVersion: number;
  /** `PRAGMA journal_mode`: `wal` for a writer. */
  journalMode: string;
  /** `PRAGMA synchronous` of this connection. */
  synchronous: 'off' | 'normal' | 'full' | 'extra';
  /** Whether appends and fact changes wait until the WAL is synced (`full`), or not (`normal`). */
  durability: 'full' | 'normal';
}

/** The embedded `Store`: one SQLite file in a data directory, owned by one process at a time. */
export interface SqliteStore extends Store, AsyncDisposable {
  /** The data directory, resolved. */
  readonly dir: string;
  info(): SqliteStoreInfo;
}

/**
 * Opens (creating and upgrading if needed) the SQLite store in `options.dir`. A writer takes the data
 * directory's lock: a second writer fails with REFLEX_ERR_STORE_LOCKED until the first closes or dies.
 *
 * Nothing damaged is opened: an empty, truncated or foreign database file, a garbage write-ahead log or
 * a page that SQLite's `quick_check` finds broken is refused with REFLEX_ERR_STORE_CORRUPT (a reader
 * skips the quick_check). A data directory that cannot be used is REFLEX_ERR_STORE_DATA_DIR_INVALID, a
 * full disk REFLEX_ERR_STORE_DISK_FULL — at open and on every later call.
 *
 * @example
 * await using store = await createSqliteStore({ dir: '.reflex' });
 * const [result] = await store.appendEvents([event], Date.now());
 */
export async function createSqliteStore(options: SqliteStoreOptions): Promise<SqliteStore> {
  const dir = resolve(options.dir);
  const path = join(dir, databaseFileName);
  if (options.readonly === true) return openReader(dir, path);

  // The database holds every event, step output and rulebook (inline secrets included): owner only.
  prepareDataDir(dir);
  const lock = acquireDataDirLock(dir);
  let db: Database.Database | undefined;
  try {
    if (inspectDatabaseFile(path) === 'missing') createDatabaseFile(path);
    db = new Database(path, { fileMustExist: true });
    db.pragma('journal_mode = WAL');
    // Commits never wait for the disk inside SQLite: with durability full, the WAL is synced off the
    // event loop before an append or a fact change is acknowledged (see WalSync).
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
    // Before anything is written: a damaged file refused now is not made worse by the migrations.
    quickCheck(db, path);
    migrate(db, path);
    const walSync = options.durability === 'normal' ? undefined : new WalSync(`${path}-wal`);
    const store = new SqliteStoreImpl(db, dir, path, false, lock, startCheckpointer(db, path), walSync, {
      onSyncFailure: options.onSyncFailure,
    });
    return withCodedErrors<SqliteStore>(store, path);
  } catch (error) {
    try {
      db?.close();
    } finally {
      lock.release();
    }
    throw codedStoreError(error, path);
  }
}

function openReader(dir: string, path: string): SqliteStore {
  let db: Database.Database | undefined;
  try {
    if (inspectDatabaseFile(path) === 'missing')
      throw new ReflexError('REFLEX_ERR_STORE_NOT_FOUND', { path });
    db = new Database(path, { readonly: true, fileMustExist: true });
    // The writer may be committing or checkpointing at the moment we read.
    db.pragma('busy_timeout = 5000');
    const found = readSchemaVersion(db);
    if (found > schemaVersion) {
      throw new ReflexError('REFLEX_ERR_STORE_NEWER_SCHEMA', { path, found, known: schemaVersion });
    }
    if (found < schemaVersion) {
      throw new ReflexError('REFLEX_ERR_STORE_OLDER_SCHEMA', { path, found, known: schemaVersion });
    }
    return withCodedErrors<SqliteStore>(new SqliteStoreImpl(db, dir, path, true, undefined), path);
  } catch (error) {
    db?.close();
    throw codedStoreError(error, path);
  }
}

const synchronousNames = ['off', 'normal', 'full', 'extra'] as const;

/**
 * The SQLite store: one part per port (see ./event-log.ts, ./dispatch.ts, ./run-queue.ts, ./facts.ts,
 * ./audit.ts, ./read-model.ts, ./rulebook-versions.ts), all on one connection, composed here.
 */
class SqliteStoreImpl implements SqliteStore {
  readonly dir: string;
  readonly #db: Database.Database;
  readonly #path: string;
  readonly #readonly: boolean;
  readonly #lock: DataDirLock | undefined;
  #closed = false;
  readonly #checkpointer: Checkpointer | undefined;
  readonly #durable: DurableCommits;
  readonly #log: SqliteEventLog;
  readonly #audit: SqliteAuditLog;
  readonly #dispatch: SqliteDispatchStore;
  readonly #runs: SqliteRunQueue;
  readonly #facts: SqliteFactStore;
  readonly #read: SqliteReadModel;
  readonly #rulebooks: SqliteRulebookStore;

  constructor(
    db: Database.Database,
    dir: string,
    path: string,
    readonly: boolean,
    lock: DataDirLock | undefined,
    checkpointer?: Checkpointer,
    walSync?: WalSync,
    hooks: { onSyncFailure?: ((error: ReflexError) => void) | undefined } = {},
  ) {
    this.#checkpointer = checkpointer;
    this.#db = db;
    this.dir = dir;
    this.#path = path;
    this.#readonly = readonly;
    this.#lock = lock;
    const context = { db, path };
    this.#durable = new DurableCommits(path, walSync, hooks.onSyncFailure);
    this.#log = new SqliteEventLog(context, this.#durable);
    this.#audit = new SqliteAuditLog(context);
    this.#dispatch = new SqliteDispatchStore(context, this.#log, this.#audit);
    this.#runs = new SqliteRunQueue(context, this.#log, this.#audit);
    this.#facts = new SqliteFactStore(context, this.#log, this.#durable);
    this.#read = new SqliteReadModel(context);
    this.#rulebooks = new SqliteRulebookStore(context);
  }

  // --- the log ---

  appendEvents(
    events: readonly CloudEvent[],
    receivedAt: number,
    partitions?: readonly number[],
  ): Promise<AppendResult[]> {
    return this.#log.appendEvents(events, receivedAt, partitions);
  }

  readEvents(after: LogPosition, limit: number): Promise<LogRead> {
    return this.#log.readEvents(after, limit);
  }

  readFactChanges(afterSeq: number, throughSeq: number, limit: number): Promise<LoggedEvent[]> {
    return this.#log.readFactChanges(afterSeq, throughSeq, limit);
  }

  getEvent(seq: number): Promise<LoggedEvent | undefined> {
    return this.#log.getEvent(seq);
  }

  findEventsById(id: string, source?: string): Promise<LoggedEvent[]> {
    return this.#log.findEventsById(id, source);
  }

  lastSeq(): Promise<number> {
    return this.#log.lastSeq();
  }

  // --- dispatch ---

  keepPartitionCount(partitions: number): Promise<void> {
    return this.#dispatch.keepPartitionCount(partitions);
  }

  getOffset(consumer: string, partition: number): Promise<number> {
    return this.#dispatch.getOffset(consumer, partition);
  }

  commitDispatch(commit: DispatchCommit): Promise<void> {
    return this.#dispatch.commitDispatch(commit);
  }

  rulebookVersionAt(position: LogPosition): Promise<number | undefined> {
    return this.#dispatch.rulebookVersionAt(position);
  }

  loadFactsView(consumer: string, partition: number): Promise<Record<string, unknown>> {
    return this.#dispatch.loadFactsView(consumer, partition);
  }

  loadFlowStates(partition: number): Promise<FlowStateRow[]> {
    return this.#dispatch.loadFlowStates(partition);
  }

  fireDueTimers(now: number, limit: number): Promise<AppendResult[]> {
    return this.#dispatch.fireDueTimers(now, limit);
  }

  nextTimerDueAt(): Promise<number | undefined> {
    return this.#dispatch.nextTimerDueAt();
  }

  // --- rulebooks ---

  saveRulebookVersion(version: NewRulebookVersion): Promise<number> {
    return this.#rulebooks.saveRulebookVersion(version);
  }

  getRulebookVersion(id: number): Promise<RulebookVersion | undefined> {
    return this.#rulebooks.getRulebookVersion(id);
  }

  // --- runs ---

  claimRuns(claim: RunClaim): Promise<Run[]> {
    return this.#runs.claimRuns(claim);
  }

  extendLeases(owner: string, runIds: readonly string[], until: number): Promise<void> {
    return this.#runs.extendLeases(owner, runIds, until);
  }

  releaseLeases(owner: string, now: number): Promise<void> {
    return this.#runs.releaseLeases(owner, now);
  }

  completeAttempt(completion: AttemptCompletion): Promise<boolean> {
    return this.#runs.completeAttempt(completion);
  }

  nextRunDueAt(): Promise<number | undefined> {
    return this.#runs.nextRunDueAt();
  }

  // --- the read model ---

  listEvents(query: EventQuery): Promise<LoggedEvent[]> {
    return this.#read.listEvents(query);
  }

  pageEvents(query: EventQuery, maxBytes: number): Promise<StorePage<LoggedEvent>> {
    return this.#read.pageEvents(query, maxBytes);
  }

  getRun(id: string): Promise<RunDetail | undefined> {
    return this.#read.getRun(id);
  }

  listRuns(query: RunQuery): Promise<Run[]> {
    return this.#read.listRuns(query);
  }

  pageRuns(query: RunQuery, maxBytes: number): Promise<StorePage<Run>> {
    return this.#read.pageRuns(query, maxBytes);
  }

  runsForEvent(seq: number): Promise<Run[]> {
    return this.#read.runsForEvent(seq);
  }

  listDeadLetters(limit: number): Promise<DeadLetter[]> {
    return this.#read.listDeadLetters(limit);
  }

  // --- facts ---

  getFacts(): Promise<Record<string, unknown>> {
    return this.#facts.getFacts();
  }

  changeFact(name: string, value: unknown, at: number, chain = 0, partition = 0): Promise<FactChange> {
    return this.#facts.changeFact(name, value, at, chain, partition);
  }

  // --- audit ---

  appendAudit(entries: readonly AuditEntry[]): Promise<void> {
    return this.#audit.appendAudit(entries);
  }

  auditForEvent(seq: number): Promise<AuditEntry[]> {
    return this.#audit.auditForEvent(seq);
  }

  // --- keys ---

  async idKey(): Promise<string> {
    const row = this.#db
      .prepare<[], { value: string }>("SELECT value FROM instance_keys WHERE name = 'id-key'")
      .get();
    // Migration 3 makes the key; a database without it was changed by hand.
    if (row === undefined)
      throw new ReflexError('REFLEX_ERR_INTERNAL_UNEXPECTED', { reason: 'the id key is missing' });
    return row.value;
  }

  // --- lifecycle ---

  info(): SqliteStoreInfo {
    const synchronous = this.#db.pragma('synchronous', { simple: true }) as number;
    return {
      path: this.#path,
      readonly: this.#readonly,
      schemaVersion: readSchemaVersion(this.#db),
      journalMode: String(this.#db.pragma('journal_mode', { simple: true })),
      synchronous: synchronousNames[synchronous] ?? 'full',
      durability: this.#durable.durability,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Whatever fails on the way (a full disk refuses the last completions and the last checkpoint), the
    // database is closed and the lock released: the next start must not find this process's lock.
    try {
      this.#runs.flushCompletions();
      await this.#checkpointer?.stop();
    } finally {
      try {
        this.#db.close();
        await this.#durable.close();
      } finally {
        this.#lock?.release();
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
