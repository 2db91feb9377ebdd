import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { type ErrorInfo, ReflexError } from '../../core/errors.js';
import type { AppendResult, CloudEvent, LoggedEvent, LogPosition } from '../../core/event.js';
import type {
  Attempt,
  AttemptCompletion,
  AuditEntry,
  AuditKind,
  DeadLetter,
  DispatchCommit,
  EventQuery,
  FactChange,
  FlowStateRow,
  LogRead,
  NewRulebookVersion,
  NewRun,
  RulebookVersion,
  Run,
  RunClaim,
  RunContext,
  RunDetail,
  RunQuery,
  RunStatus,
  Store,
  StorePage,
} from '../../core/ports/store.js';
import { type Checkpointer, startCheckpointer } from './checkpointer.js';
import { codedStoreError, withCodedErrors } from './coded-errors.js';
import { prepareDataDir } from './data-dir.js';
import { acquireDataDirLock, type DataDirLock } from './data-dir-lock.js';
import { createDatabaseFile, inspectDatabaseFile, quickCheck } from './database-file.js';
import { migrate, readSchemaVersion, schemaVersion } from './migrations.js';
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

// --- rows as SQLite returns them ---

interface EventRow {
  seq: number;
  partition: number;
  received_at: number;
  event: string;
}

interface RunRow {
  id: string;
  rule: string;
  rulebook_version: number;
  trigger_seq: number;
  trigger_partition: number;
  trigger_id: string;
  trigger_source: string;
  trigger_type: string;
  ordinal: number;
  context: string;
  concurrency_key: string | null;
  concurrency_max: number | null;
  status: RunStatus;
  step: number;
  attempt: number;
  claims: number;
  outputs: string;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  next_attempt_at: number | null;
  lease_owner: string | null;
  lease_until: number | null;
  error: string | null;
}

interface AttemptRow {
  run_id: string;
  step: number;
  step_id: string;
  action: string;
  attempt: number;
  started_at: number;
  finished_at: number;
  status: 'succeeded' | 'failed';
  output: string | null;
  error: string | null;
}

interface DeadLetterRow {
  run_id: string;
  rule: string;
  step: number;
  error: string;
  created_at: number;
}

interface AuditRow {
  at: number;
  kind: AuditKind;
  seq: number | null;
  rule: string | null;
  run_id: string | null;
  detail: string | null;
}

interface FlowStateSqlRow {
  rule: string;
  stage: string;
  key: string;
  hash: string;
  state: string;
  expires_at: number | null;
}

interface TimerRow {
  partition: number;
  rule: string;
  stage: string;
  key: string;
  due: number;
}

/** A run that claimRuns may lease, with the time that orders it among the others. */
interface ClaimCandidate {
  id: string;
  due: number;
}

interface RulebookRow {
  id: number;
  hash: string;
  files: string;
  created_at: number;
}

// --- row mapping ---

/**
 * Takes rows while they number at most `limit` and their sizes stay within `maxBytes` (the first row
 * always), and reads one row more to tell whether the page is the last. Only rows taken are converted.
 */
function takeWithin<Row, T>(
  rows: IterableIterator<Row>,
  limit: number,
  maxBytes: number,
  size: (row: Row) => number,
  convert: (row: Row) => T,
): StorePage<T> {
  const items: T[] = [];
  let bytes = 0;
  for (const row of rows) {
    const rowBytes = size(row);
    if (items.length === limit || (items.length > 0 && bytes + rowBytes > maxBytes)) {
      // Leaving the loop ends the statement's iteration.
      return { items, more: true };
    }
    bytes += rowBytes;
    items.push(convert(row));
  }
  return { items, more: false };
}

function toLoggedEvent(row: EventRow): LoggedEvent {
  return {
    seq: row.seq,
    partition: row.partition,
    receivedAt: row.received_at,
    event: JSON.parse(row.event) as CloudEvent,
  };
}

function toRun(row: RunRow): Run {
  return {
    id: row.id,
    rule: row.rule,
    rulebookVersion: row.rulebook_version,
    trigger: {
      seq: row.trigger_seq,
      partition: row.trigger_partition,
      id: row.trigger_id,
      source: row.trigger_source,
      type: row.trigger_type,
    },
    ordinal: row.ordinal,
    context: JSON.parse(row.context) as RunContext,
    concurrency:
      row.concurrency_key === null || row.concurrency_max === null
        ? null
        : { key: row.concurrency_key, max: row.concurrency_max },
    status: row.status,
    step: row.step,
    attempt: row.attempt,
    claims: row.claims,
    outputs: JSON.parse(row.outputs) as Record<string, unknown>,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    nextAttemptAt: row.next_attempt_at,
    error: row.error === null ? null : (JSON.parse(row.error) as ErrorInfo),
  };
}

function toAttempt(row: AttemptRow): Attempt {
  const attempt: Attempt = {
    runId: row.run_id,
    step: row.step,
    stepId: row.step_id,
    action: row.action,
    attempt: row.attempt,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    status: row.status,
  };
  if (row.output !== null) attempt.output = JSON.parse(row.output);
  if (row.error !== null) attempt.error = JSON.parse(row.error) as ErrorInfo;
  return attempt;
}

function toAudit(row: AuditRow): AuditEntry {
  const entry: AuditEntry = { at: row.at, kind: row.kind };
  if (row.seq !== null) entry.seq = row.seq;
  if (row.rule !== null) entry.rule = row.rule;
  if (row.run_id !== null) entry.runId = row.run_id;
  if (row.detail !== null) entry.detail = JSON.parse(row.detail) as Record<string, unknown>;
  return entry;
}

function toFlowState(row: FlowStateSqlRow): FlowStateRow {
  return {
    rule: row.rule,
    stage: row.stage,
    key: row.key,
    hash: row.hash,
    state: JSON.parse(row.state),
    expiresAt: row.expires_at,
  };
}

/** Due, then id: the order claimRuns hands runs out in. */
function byDueThenId(a: ClaimCandidate, b: ClaimCandidate): number {
  return a.due - b.due || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** The `reflex.timer` event a due timer becomes (see `Store.fireDueTimers`). */
function timerEvent(timer: TimerRow, now: number): CloudEvent {
  const { rule, stage, key, due } = timer;
  return {
    specversion: '1.0',
    // The same (rule, stage, key) may have a timer in several partitions: each is its own event.
    id:
      timer.partition === 0
        ? `${rule}/${stage}/${key}@${due}`
        : `${rule}/${stage}/${key}@${due}/${timer.partition}`,
    source: 'reflex',
    type: 'reflex.timer',
    time: new Date(now).toISOString(),
    data: { rule, stage, key, due },
  };
}

/** A fact's value as stored: JSON text, or null for "absent" (`undefined`). */
function factText(value: unknown): string | null {
  // JSON.stringify gives undefined for a function or a symbol: such a value reads back as null.
  return value === undefined ? null : (JSON.stringify(value) ?? 'null');
}

/**
 * JSON text of a value read from JSON, with every object's keys sorted: equal for equal JSON values,
 * whatever order their keys were written in.
 */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    const entries = Object.keys(object)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(object[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Whether two facts' JSON texts (null for absent) hold the same value. */
function sameFact(before: string | null, after: string | null): boolean {
  if (before === after) return true;
  if (before === null || after === null) return false;
  return canonicalJson(JSON.parse(before)) === canonicalJson(JSON.parse(after));
}

/** The smallest seq among the events a commit newly appended (duplicates were there before), if any. */
function firstAppended(results: readonly AppendResult[]): number | undefined {
  let first: number | undefined;
  for (const r of results) if (!r.duplicate && (first === undefined || r.seq < first)) first = r.seq;
  return first;
}

/** JSON text for a column; `undefined` (which JSON cannot hold) is stored as SQL NULL. */
function jsonOrNull(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

/** Sets a key even when it is `__proto__`, which plain assignment would turn into a prototype change. */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

const synchronousNames = ['off', 'normal', 'full', 'extra'] as const;

/** Greater than any seq SQLite hands out in practice; the "from the end" cursor. */
const endOfLog = Number.MAX_SAFE_INTEGER;

class SqliteStoreImpl implements SqliteStore {
  readonly dir: string;
  readonly #db: Database.Database;
  readonly #path: string;
  readonly #readonly: boolean;
  readonly #lock: DataDirLock | undefined;
  #closed = false;
  readonly #listEventStatements = new Map<string, Database.Statement<unknown[], EventRow>>();
  readonly #listRunStatements = new Map<string, Database.Statement<unknown[], RunRow>>();

  // Prepared once: the SQL text is parsed and planned a single time per connection.
  readonly #insertEvent;
  readonly #seqOfEvent;
  readonly #readEvents;
  readonly #readFactChanges;
  readonly #getEvent;
  readonly #eventsById;
  readonly #eventsByIdAndSource;
  readonly #lastSeq;
  readonly #getOffset;
  readonly #upsertOffset;
  readonly #insertRun;
  readonly #insertAudit;
  readonly #upsertActivation;
  readonly #insertRulebook;
  readonly #rulebookIdByHash;
  readonly #getRulebook;
  readonly #rulebookAt;
  readonly #dueRuns;
  readonly #queuedKeys;
  readonly #queueOfKey;
  readonly #leaseRun;
  readonly #extendLease;
  readonly #releaseLeases;
  readonly #runForCompletion;
  readonly #insertAttempt;
  readonly #runNextStep;
  readonly #runRetry;
  readonly #runSucceeded;
  readonly #runFailed;
  readonly #insertDeadLetter;
  readonly #nextDue;
  readonly #getRun;
  readonly #attemptsOfRun;
  readonly #runsForEvent;
  readonly #deadLetters;
  readonly #facts;
  readonly #factsView;
  readonly #upsertViewFact;
  readonly #deleteViewFact;
  readonly #factRow;
  readonly #writeFact;
  readonly #flowStates;
  readonly #upsertState;
  readonly #deleteState;
  readonly #upsertTimer;
  readonly #deleteTimer;
  readonly #dueTimers;
  readonly #nextTimer;
  readonly #auditForEvent;

  // Transactions: better-sqlite3 wraps the function in BEGIN/COMMIT and rolls back if it throws.
  readonly #appendBatch;
  readonly #checkpointer: Checkpointer | undefined;
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
  readonly #commitDispatch;
  readonly #appendAudit;
  readonly #claim;
  readonly #extend;
  readonly #complete;
  /** Runs a function in one transaction (for batches of completions). */
  readonly #completeBatch;
  #completions: Array<{
    completion: AttemptCompletion;
    resolve: (held: boolean) => void;
    reject: (error: unknown) => void;
  }> = [];
  readonly #nextRunDue;
  readonly #changeFact;
  readonly #fireTimers;

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
    this.#walSync = walSync;
    this.#onSyncFailure = hooks.onSyncFailure;
    this.#db = db;
    this.dir = dir;
    this.#path = path;
    this.#readonly = readonly;
    this.#lock = lock;

    this.#insertEvent = db.prepare<[string, string, string, string | null, number, string, number]>(
      `INSERT INTO events (source, id, type, subject, received_at, event, partition) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id, source) DO NOTHING`,
    );
    this.#seqOfEvent = db.prepare<[string, string], { seq: number; partition: number }>(
      'SELECT seq, partition FROM events WHERE id = ? AND source = ?',
    );
    this.#readEvents = db.prepare<[number, number, number, number], EventRow>(
      // A scan of the seq range that skips the other partitions' events. An index on partition would
      // cost every append a second index write, also with one partition, which is the common case.
      'SELECT seq, partition, received_at, event FROM events WHERE seq > ? AND seq <= ? AND partition = ? ORDER BY seq LIMIT ?',
    );
    this.#readFactChanges = db.prepare<[number, number, number], EventRow>(
      `SELECT seq, partition, received_at, event FROM events
       WHERE type = 'reflex.fact.changed' AND source = 'reflex' AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
    );
    this.#getEvent = db.prepare<[number], EventRow>(
      'SELECT seq, partition, received_at, event FROM events WHERE seq = ?',
    );
    this.#eventsById = db.prepare<[string], EventRow>(
      'SELECT seq, partition, received_at, event FROM events WHERE id = ? ORDER BY seq',
    );
    this.#eventsByIdAndSource = db.prepare<[string, string], EventRow>(
      'SELECT seq, partition, received_at, event FROM events WHERE id = ? AND source = ?',
    );
    this.#lastSeq = db.prepare<[], { seq: number | null }>('SELECT max(seq) AS seq FROM events');

    this.#getOffset = db.prepare<[string, number], { seq: number }>(
      'SELECT seq FROM offsets WHERE consumer = ? AND partition = ?',
    );
    this.#upsertOffset = db.prepare<[string, number, number]>(
      `INSERT INTO offsets (consumer, partition, seq) VALUES (?, ?, ?)
       ON CONFLICT (consumer, partition) DO UPDATE SET seq = excluded.seq`,
    );
    this.#insertRun = db.prepare<
      [
        string,
        string,
        number,
        number,
        string,
        string,
        string,
        number,
        string,
        string | null,
        number | null,
        number,
        number,
        number,
      ]
    >(
      `INSERT INTO runs (id, rule, rulebook_version, trigger_seq, trigger_id, trigger_source, trigger_type,
                         ordinal, context, concurrency_key, concurrency_max,
                         status, step, attempt, outputs, created_at, next_attempt_at, trigger_partition)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, 0, '{}', ?, ?, ?)
       ON CONFLICT (trigger_seq, rule, ordinal) DO NOTHING`,
    );
    this.#insertAudit = db.prepare<
      [number, string, number | null, string | null, string | null, string | null]
    >('INSERT INTO audit (at, kind, seq, rule, run_id, detail) VALUES (?, ?, ?, ?, ?, ?)');
    this.#upsertActivation = db.prepare<[number, number, string, number]>(
      `INSERT INTO rulebook_activations (seq, version, consumer, partition) VALUES (?, ?, ?, ?)
       ON CONFLICT (seq) DO UPDATE SET version = excluded.version, consumer = excluded.consumer,
                                       partition = excluded.partition`,
    );

    this.#insertRulebook = db.prepare<[string, string, number]>(
      'INSERT INTO rulebook_versions (hash, files, created_at) VALUES (?, ?, ?) ON CONFLICT (hash) DO NOTHING',
    );
    this.#rulebookIdByHash = db.prepare<[string], { id: number }>(
      'SELECT id FROM rulebook_versions WHERE hash = ?',
    );
    this.#getRulebook = db.prepare<[number], RulebookRow>(
      'SELECT id, hash, files, created_at FROM rulebook_versions WHERE id = ?',
    );
    // Only an event the consumer that activated the version has already passed counts as dispatched.
    this.#rulebookAt = db.prepare<[number, number, number], { version: number }>(
      `SELECT a.version AS version FROM rulebook_activations a
       JOIN offsets o ON o.consumer = a.consumer AND o.partition = a.partition
       WHERE a.partition = ? AND a.seq <= ? AND o.seq >= ? ORDER BY a.seq DESC LIMIT 1`,
    );

    // Runs free to go when due: no concurrency key, or already holding a slot (claimed before). Both arms
    // read a partial index in due order; SQLite merges them and stops at the limit. INDEXED BY because
    // without statistics the planner takes runs_by_status and sorts every pending run; it also makes a
    // WHERE that no longer matches the partial index's fail loudly instead of scanning.
    this.#dueRuns = db.prepare<[number, number, number], ClaimCandidate>(
      `SELECT id, next_attempt_at AS due FROM runs INDEXED BY runs_due
       WHERE status = 'pending' AND (concurrency_key IS NULL OR started_at IS NOT NULL)
         AND next_attempt_at <= ?
       UNION ALL
       SELECT id, lease_until AS due FROM runs INDEXED BY runs_leased
       WHERE status = 'running' AND lease_until <= ?
       ORDER BY due, id LIMIT ?`,
    );
    // Every concurrency key with runs waiting for a slot, and how many slots it has taken. The keys are
    // found by skipping through runs_queued (one seek per key), so a long queue is not read through.
    this.#queuedKeys = db.prepare<[], { key: string; active: number }>(
      `WITH RECURSIVE keys (key) AS (
         SELECT min(concurrency_key) FROM runs INDEXED BY runs_queued
         WHERE status = 'pending' AND started_at IS NULL AND concurrency_key IS NOT NULL
         UNION ALL
         SELECT (SELECT min(concurrency_key) FROM runs INDEXED BY runs_queued
                 WHERE status = 'pending' AND started_at IS NULL AND concurrency_key IS NOT NULL
                   AND concurrency_key > keys.key)
         FROM keys WHERE keys.key IS NOT NULL
       )
       SELECT key, (SELECT count(*) FROM runs INDEXED BY runs_by_concurrency
                    WHERE concurrency_key = keys.key AND status IN ('pending', 'running')
                      AND started_at IS NOT NULL) AS active
       FROM keys WHERE key IS NOT NULL`,
    );
    // The runs waiting for a slot of one key, in the order they may start.
    this.#queueOfKey = db.prepare<[string, number], ClaimCandidate & { max: number }>(
      `SELECT id, next_attempt_at AS due, concurrency_max AS max FROM runs INDEXED BY runs_queued
       WHERE status = 'pending' AND started_at IS NULL AND concurrency_key IS NOT NULL
         AND concurrency_key = ?
       ORDER BY id LIMIT ?`,
    );
    this.#leaseRun = db.prepare<[string, number, number, string], RunRow>(
      `UPDATE runs SET status = 'running', lease_owner = ?, lease_until = ?,
                       started_at = coalesce(started_at, ?), next_attempt_at = NULL, claims = claims + 1
       WHERE id = ? RETURNING *`,
    );
    this.#extendLease = db.prepare<[number, string, string]>(
      `UPDATE runs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = 'running'`,
    );
    this.#releaseLeases = db.prepare<[number, string]>(
      `UPDATE runs SET status = 'pending', next_attempt_at = ?, lease_owner = NULL, lease_until = NULL,
                       claims = max(claims - 1, 0)
       WHERE lease_owner = ? AND status = 'running'`,
    );
    this.#runForCompletion = db.prepare<
      [string],
      Pick<
        RunRow,
        | 'rule'
        | 'status'
        | 'lease_owner'
        | 'step'
        | 'attempt'
        | 'outputs'
        | 'trigger_seq'
        | 'trigger_partition'
      >
    >(
      'SELECT rule, status, lease_owner, step, attempt, outputs, trigger_seq, trigger_partition FROM runs WHERE id = ?',
    );
    this.#insertAttempt = db.prepare<
      [string, number, string, string, number, number, number, string, string | null, string | null]
    >(
      `INSERT INTO attempts (run_id, step, step_id, action, attempt, started_at, finished_at, status, output, error)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#runNextStep = db.prepare<[string, string]>(
      'UPDATE runs SET step = step + 1, attempt = 0, claims = 1, outputs = ?, error = NULL WHERE id = ?',
    );
    this.#runRetry = db.prepare<[number, string | null, string]>(
      `UPDATE runs SET status = 'pending', attempt = attempt + 1, claims = 0, next_attempt_at = ?, error = ?,
                       lease_owner = NULL, lease_until = NULL
       WHERE id = ?`,
    );
    this.#runSucceeded = db.prepare<[string, number, string]>(
      `UPDATE runs SET status = 'succeeded', step = step + 1, attempt = 0, outputs = ?, finished_at = ?,
                       error = NULL, next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL
       WHERE id = ?`,
    );
    this.#runFailed = db.prepare<[number, string, string]>(
      `UPDATE runs SET status = 'failed', attempt = attempt + 1, finished_at = ?, error = ?,
                       next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL
       WHERE id = ?`,
    );
    this.#insertDeadLetter = db.prepare<[string, string, number, string, number]>(
      'INSERT INTO dead_letters (run_id, rule, step, error, created_at) VALUES (?, ?, ?, ?, ?)',
    );
    this.#nextDue = db.prepare<[], { due: number | null }>(
      `SELECT min(due) AS due FROM (
         SELECT min(next_attempt_at) AS due FROM runs INDEXED BY runs_due
         WHERE status = 'pending' AND (concurrency_key IS NULL OR started_at IS NOT NULL)
         UNION ALL
         SELECT min(lease_until) FROM runs INDEXED BY runs_leased WHERE status = 'running')`,
    );
    this.#getRun = db.prepare<[string], RunRow>('SELECT * FROM runs WHERE id = ?');
    this.#attemptsOfRun = db.prepare<[string], AttemptRow>(
      `SELECT run_id, step, step_id, action, attempt, started_at, finished_at, status, output, error
       FROM attempts WHERE run_id = ? ORDER BY id`,
    );
    // rowid order is creation order: the order the dispatcher matched the rules in.
    this.#runsForEvent = db.prepare<[number], RunRow>(
      'SELECT * FROM runs WHERE trigger_seq = ? ORDER BY rowid',
    );
    this.#deadLetters = db.prepare<[number], DeadLetterRow>(
      'SELECT run_id, rule, step, error, created_at FROM dead_letters ORDER BY id DESC LIMIT ?',
    );

    this.#factsView = db.prepare<[string, number], { name: string; value: string }>(
      'SELECT name, value FROM dispatch_facts WHERE consumer = ? AND partition = ?',
    );
    this.#upsertViewFact = db.prepare<[string, number, string, string]>(
      `INSERT INTO dispatch_facts (consumer, partition, name, value) VALUES (?, ?, ?, ?)
       ON CONFLICT (consumer, partition, name) DO UPDATE SET value = excluded.value`,
    );
    this.#deleteViewFact = db.prepare<[string, number, string]>(
      'DELETE FROM dispatch_facts WHERE consumer = ? AND partition = ? AND name = ?',
    );
    this.#facts = db.prepare<[], { name: string; value: string }>(
      'SELECT name, value FROM facts WHERE value IS NOT NULL',
    );
    this.#factRow = db.prepare<[string], { value: string | null; changes: number }>(
      'SELECT value, changes FROM facts WHERE name = ?',
    );
    this.#writeFact = db.prepare<[string, string | null, number, number]>(
      `INSERT INTO facts (name, value, updated_at, changes) VALUES (?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,
                                        changes = excluded.changes`,
    );

    this.#flowStates = db.prepare<[number], FlowStateSqlRow>(
      'SELECT rule, stage, key, hash, state, expires_at FROM flow_states WHERE partition = ? ORDER BY rule, stage, key',
    );
    this.#upsertState = db.prepare<[number, string, string, string, string, string, number | null]>(
      `INSERT INTO flow_states (partition, rule, stage, key, hash, state, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (partition, rule, stage, key) DO UPDATE
       SET hash = excluded.hash, state = excluded.state, expires_at = excluded.expires_at`,
    );
    this.#deleteState = db.prepare<[number, string, string, string]>(
      'DELETE FROM flow_states WHERE partition = ? AND rule = ? AND stage = ? AND key = ?',
    );
    this.#upsertTimer = db.prepare<[number, string, string, string, number]>(
      `INSERT INTO timers (partition, rule, stage, key, due) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (partition, rule, stage, key) DO UPDATE SET due = excluded.due`,
    );
    this.#deleteTimer = db.prepare<[number, string, string, string]>(
      'DELETE FROM timers WHERE partition = ? AND rule = ? AND stage = ? AND key = ?',
    );
    this.#dueTimers = db.prepare<[number, number], TimerRow>(
      `SELECT partition, rule, stage, key, due FROM timers INDEXED BY timers_by_due WHERE due <= ?
       ORDER BY due, partition, rule, stage, key LIMIT ?`,
    );
    this.#nextTimer = db.prepare<[], { due: number | null }>('SELECT min(due) AS due FROM timers');
    this.#auditForEvent = db.prepare<[number], AuditRow>(
      'SELECT at, kind, seq, rule, run_id, detail FROM audit WHERE seq = ? ORDER BY id',
    );

    this.#appendBatch = db.transaction(
      (events: readonly CloudEvent[], receivedAt: number, partitions: readonly number[] | undefined) => {
        const results = new Array<AppendResult>(events.length);
        for (let i = 0; i < events.length; i++)
          results[i] = this.#appendOne(events[i]!, receivedAt, partitions?.[i] ?? 0);
        return results;
      },
    );
    this.#appendAudit = db.transaction((entries: readonly AuditEntry[]) => {
      for (const entry of entries) this.#writeAudit(entry);
    });
    this.#commitDispatch = db.transaction((commit: DispatchCommit) => {
      for (const run of commit.runs) this.#insertNewRun(run, commit.consumer);
      for (const entry of commit.audit) this.#writeAudit(entry);
      if (commit.activation !== undefined) {
        this.#upsertActivation.run(
          commit.activation.seq,
          commit.activation.version,
          commit.consumer,
          commit.partition,
        );
      }
      for (const change of commit.states ?? []) {
        const { rule, stage, key } = change;
        // undefined, which JSON cannot hold, deletes too.
        if (change.state === null || change.state === undefined)
          this.#deleteState.run(commit.partition, rule, stage, key);
        else {
          const state = JSON.stringify(change.state);
          this.#upsertState.run(
            commit.partition,
            rule,
            stage,
            key,
            change.hash,
            state,
            change.expiresAt ?? null,
          );
        }
      }
      for (const timer of commit.timers ?? []) {
        if (timer.due === null) this.#deleteTimer.run(commit.partition, timer.rule, timer.stage, timer.key);
        else this.#upsertTimer.run(commit.partition, timer.rule, timer.stage, timer.key, timer.due);
      }
      for (const fact of commit.facts ?? []) {
        if (fact.value === undefined) this.#deleteViewFact.run(commit.consumer, commit.partition, fact.name);
        else
          this.#upsertViewFact.run(commit.consumer, commit.partition, fact.name, JSON.stringify(fact.value));
      }
      this.#upsertOffset.run(commit.consumer, commit.partition, commit.offset);
    });
    this.#claim = db.transaction((claim: RunClaim): Run[] => {
      const limit = Math.max(0, claim.limit);
      if (limit === 0) return [];
      const candidates = [
        ...this.#dueRuns.all(claim.now, claim.now, limit),
        ...this.#startable(claim.now, limit),
      ];
      candidates.sort(byDueThenId);
      const until = claim.now + claim.leaseMs;
      return candidates
        .slice(0, limit)
        .map(({ id }) => toRun(this.#leaseRun.get(claim.owner, until, claim.now, id)!));
    });
    this.#extend = db.transaction((owner: string, runIds: readonly string[], until: number) => {
      for (const id of runIds) this.#extendLease.run(until, id, owner);
    });
    this.#completeBatch = db.transaction((work: () => void) => work());
    this.#complete = db.transaction((completion: AttemptCompletion): boolean => {
      const { attempt, outcome, at } = completion;
      const run = this.#runForCompletion.get(attempt.runId);
      if (run === undefined || run.status !== 'running' || run.lease_owner !== completion.owner) return false;
      // Only the next attempt of the current step: a try is recorded once, even if it was executed twice.
      if (run.step !== attempt.step || run.attempt + 1 !== attempt.attempt) return false;
      this.#insertAttempt.run(
        attempt.runId,
        attempt.step,
        attempt.stepId,
        attempt.action,
        attempt.attempt,
        attempt.startedAt,
        attempt.finishedAt,
        attempt.status,
        jsonOrNull(attempt.output),
        jsonOrNull(attempt.error),
      );
      switch (outcome.type) {
        case 'next-step':
        case 'succeeded': {
          const outputs = JSON.parse(run.outputs) as Record<string, unknown>;
          // JSON has no undefined: a step without output is recorded as null, so its key is kept.
          setOwn(outputs, attempt.stepId, outcome.output ?? null);
          if (outcome.type === 'next-step') {
            this.#runNextStep.run(JSON.stringify(outputs), attempt.runId);
            break;
          }
          this.#runSucceeded.run(JSON.stringify(outputs), at, attempt.runId);
          this.#finish(
            attempt.runId,
            run.rule,
            { seq: run.trigger_seq, partition: run.trigger_partition },
            outcome.event,
            at,
            'run.succeeded',
            {},
          );
          break;
        }
        case 'retry':
          this.#runRetry.run(outcome.at, jsonOrNull(attempt.error), attempt.runId);
          break;
        case 'failed': {
          const error = JSON.stringify(outcome.error);
          this.#runFailed.run(at, error, attempt.runId);
          this.#insertDeadLetter.run(attempt.runId, run.rule, run.step, error, at);
          this.#finish(
            attempt.runId,
            run.rule,
            { seq: run.trigger_seq, partition: run.trigger_partition },
            outcome.event,
            at,
            'run.failed',
            {
              step: run.step,
              error: outcome.error.code,
            },
          );
          break;
        }
      }
      return true;
    });
    // One read transaction, so a commit cannot land between the reads.
    this.#nextRunDue = db.transaction((): number | undefined => {
      const due = this.#nextDue.get()?.due ?? undefined;
      const startable = this.#nextStartable();
      if (due === undefined) return startable;
      return startable === undefined ? due : Math.min(due, startable);
    });
    this.#changeFact = db.transaction(
      (name: string, value: unknown, at: number, chain: number, partition: number): FactChange => {
        const row = this.#factRow.get(name);
        const before = row?.value ?? null;
        const after = factText(value);
        if (sameFact(before, after)) return { changed: false };
        let changes = row?.changes ?? 0;
        const data = {
          name,
          value: after === null ? null : JSON.parse(after),
          previous: before === null ? null : JSON.parse(before),
          // null is a value a fact can have: these say when it stands for "not set".
          added: before === null,
          removed: after === null,
        };
        let event: AppendResult;
        // The id must be new for the change to reach the log: an event someone else appended under the
        // same source and id (an `emit` step may name source reflex) would swallow it as a duplicate.
        do {
          changes += 1;
          event = this.#appendOne(
            {
              specversion: '1.0',
              id: `fact/${name}/${changes}`,
              source: 'reflex',
              type: 'reflex.fact.changed',
              time: new Date(at).toISOString(),
              data,
              ...(chain > 0 ? { reflexchain: chain } : {}),
            },
            at,
            partition,
          );
        } while (event.duplicate);
        this.#writeFact.run(name, after, at, changes);
        return { changed: true, event };
      },
    );
    this.#fireTimers = db.transaction((now: number, limit: number): AppendResult[] => {
      const due = this.#dueTimers.all(now, Math.max(0, limit));
      return due.map((timer) => {
        this.#deleteTimer.run(timer.partition, timer.rule, timer.stage, timer.key);
        return this.#appendOne(timerEvent(timer, now), now, timer.partition);
      });
    });
  }

  #insertNewRun(run: NewRun, consumer: string): void {
    const t = run.trigger;
    const inserted = this.#insertRun.run(
      run.id,
      run.rule,
      run.rulebookVersion,
      t.seq,
      t.id,
      t.source,
      t.type,
      run.ordinal,
      JSON.stringify(run.context),
      run.concurrency?.key ?? null,
      run.concurrency?.max ?? null,
      run.createdAt,
      run.createdAt,
      t.partition,
    );
    if (inserted.changes === 0) {
      throw new ReflexError(
        'REFLEX_ERR_STORE_DUPLICATE_RUN',
        { rule: run.rule, seq: t.seq },
        { details: { runId: run.id, ordinal: run.ordinal, consumer } },
      );
    }
  }

  /**
   * Runs waiting for a concurrency slot that may start now, at most `limit` per key: in id order, while
   * the key has fewer active runs than the run's `max`, stopping at the first that is not due (a younger
   * run never overtakes an older one of its key).
   */
  #startable(now: number, limit: number): ClaimCandidate[] {
    const startable: ClaimCandidate[] = [];
    for (const { key, active } of this.#queuedKeys.all()) {
      let taken = active;
      let due = Number.NEGATIVE_INFINITY;
      for (const run of this.#queueOfKey.all(key, limit)) {
        if (run.due > now || taken >= run.max) break;
        taken += 1;
        // Never earlier than an older run of the key, so a claim cut off at `limit` keeps their order.
        due = Math.max(due, run.due);
        startable.push({ id: run.id, due });
      }
    }
    return startable;
  }

  /** When the first run waiting for a concurrency slot that is free may start; undefined if none. */
  #nextStartable(): number | undefined {
    let next: number | undefined;
    for (const { key, active } of this.#queuedKeys.all()) {
      const [head] = this.#queueOfKey.all(key, 1);
      if (head === undefined || active >= head.max) continue;
      if (next === undefined || head.due < next) next = head.due;
    }
    return next;
  }

  #appendOne(event: CloudEvent, receivedAt: number, partition: number): AppendResult {
    const { id, source } = event;
    const subject = typeof event.subject === 'string' ? event.subject : null;
    const text = JSON.stringify(event);
    const info = this.#insertEvent.run(source, id, event.type, subject, receivedAt, text, partition);
    if (info.changes === 1)
      return { seq: Number(info.lastInsertRowid), partition, id, source, duplicate: false };
    // The conflict guarantees the original is there, inside this very transaction.
    const original = this.#seqOfEvent.get(id, source)!;
    return { seq: original.seq, partition: original.partition, id, source, duplicate: true };
  }

  #writeAudit(entry: AuditEntry): void {
    this.#insertAudit.run(
      entry.at,
      entry.kind,
      entry.seq ?? null,
      entry.rule ?? null,
      entry.runId ?? null,
      jsonOrNull(entry.detail),
    );
  }

  /** The end of a run: its outcome event goes to the log (dedup applies) and the audit trail says so. */
  #finish(
    runId: string,
    rule: string,
    trigger: { seq: number; partition: number },
    event: CloudEvent,
    at: number,
    kind: 'run.succeeded' | 'run.failed',
    detail: Record<string, unknown>,
  ): void {
    const appended = this.#appendOne(event, at, trigger.partition);
    this.#writeAudit({
      at,
      kind,
      seq: trigger.seq,
      rule,
      runId,
      detail: { ...detail, eventSeq: appended.seq },
    });
  }

  // --- the log ---

  async appendEvents(
    events: readonly CloudEvent[],
    receivedAt: number,
    partitions?: readonly number[],
  ): Promise<AppendResult[]> {
    if (events.length === 0) return [];
    return this.#durably(
      () => this.#appendBatch.immediate(events, receivedAt, partitions),
      (results) => results,
    );
  }

  async readEvents(after: LogPosition, limit: number): Promise<LogRead> {
    const horizon = this.#horizon();
    const events = this.#readEvents
      .all(after.seq, horizon, after.partition, Math.max(0, limit))
      .map(toLoggedEvent);
    const through =
      events.length === limit
        ? events[events.length - 1]!.seq
        : Math.max(after.seq, Math.min(horizon, this.#lastSeq.get()?.seq ?? 0));
    return { events, through };
  }

  async readFactChanges(afterSeq: number, throughSeq: number, limit: number): Promise<LoggedEvent[]> {
    const last = Math.min(throughSeq, this.#horizon());
    return this.#readFactChanges.all(afterSeq, last, Math.max(0, limit)).map(toLoggedEvent);
  }

  /**
   * The last seq a reader may see. An action must never be done for an event that a power cut could
   * still take back: its sender was not acknowledged and would send it again. Events from the first one
   * still being synced on are left for later; that sync's caller hands them on when it returns.
   */
  #horizon(): number {
    let last = endOfLog;
    for (const first of this.#unsynced) if (first <= last) last = first - 1;
    return last;
  }

  /**
   * Commits with `commit` and returns once that is on disk (at once with durability normal, which
   * never waits for the disk). Until then the dispatcher does not read the events it appended, which
   * `logged` lists from the commit's result.
   */
  async #durably<T>(commit: () => T, logged: (result: T) => readonly AppendResult[]): Promise<T> {
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

  async getEvent(seq: number): Promise<LoggedEvent | undefined> {
    const row = this.#getEvent.get(seq);
    return row === undefined ? undefined : toLoggedEvent(row);
  }

  async findEventsById(id: string, source?: string): Promise<LoggedEvent[]> {
    const rows = source === undefined ? this.#eventsById.all(id) : this.#eventsByIdAndSource.all(id, source);
    return rows.map(toLoggedEvent);
  }

  async listEvents(query: EventQuery): Promise<LoggedEvent[]> {
    const { statement, params } = this.#eventListing(query);
    return statement.all(...params, Math.max(0, query.limit)).map(toLoggedEvent);
  }

  async pageEvents(query: EventQuery, maxBytes: number): Promise<StorePage<LoggedEvent>> {
    const { statement, params } = this.#eventListing(query);
    const limit = Math.max(0, query.limit);
    const rows = statement.iterate(...params, limit + 1);
    return takeWithin(rows, limit, maxBytes, (row) => row.event.length, toLoggedEvent);
  }

  /** The statement and parameters (all but the limit) of a listing of events. */
  #eventListing(query: EventQuery): {
    statement: Database.Statement<unknown[], EventRow>;
    params: unknown[];
  } {
    const ascending = query.after !== undefined;
    const key = `${ascending ? 'a' : 'd'}${query.type === undefined ? '' : 't'}${query.source === undefined ? '' : 's'}`;
    let statement = this.#listEventStatements.get(key);
    if (statement === undefined) {
      const where = [ascending ? 'seq > ?' : 'seq < ?'];
      if (query.type !== undefined) where.push('type = ?');
      if (query.source !== undefined) where.push('source = ?');
      statement = this.#db.prepare<unknown[], EventRow>(
        `SELECT seq, partition, received_at, event FROM events WHERE ${where.join(' AND ')}
         ORDER BY seq ${ascending ? 'ASC' : 'DESC'} LIMIT ?`,
      );
      this.#listEventStatements.set(key, statement);
    }
    const params: unknown[] = [ascending ? query.after : (query.before ?? endOfLog)];
    if (query.type !== undefined) params.push(query.type);
    if (query.source !== undefined) params.push(query.source);
    return { statement, params };
  }

  async lastSeq(): Promise<number> {
    return this.#lastSeq.get()?.seq ?? 0;
  }

  // --- dispatch ---

  async getOffset(consumer: string, partition: number): Promise<number> {
    return this.#getOffset.get(consumer, partition)?.seq ?? 0;
  }

  // Dispatch commits, claims, leases, completions and timer firings do not wait for the disk (the port
  // allows it; see its doc on lazy durability): the next sync — every acknowledged append is one — makes
  // them durable with everything before them. What a power cut takes back is redone the same way: the
  // dispatcher decides the batch again into runs with the same ids, and an executor runs a lost attempt
  // again under the same idempotency key.

  async commitDispatch(commit: DispatchCommit): Promise<void> {
    this.#commitDispatch.immediate(commit);
  }

  // --- rulebooks ---

  async saveRulebookVersion(version: NewRulebookVersion): Promise<number> {
    this.#insertRulebook.run(version.hash, JSON.stringify(version.files), version.createdAt);
    return this.#rulebookIdByHash.get(version.hash)!.id;
  }

  async getRulebookVersion(id: number): Promise<RulebookVersion | undefined> {
    const row = this.#getRulebook.get(id);
    if (row === undefined) return undefined;
    return {
      id: row.id,
      hash: row.hash,
      files: JSON.parse(row.files) as RulebookVersion['files'],
      createdAt: row.created_at,
    };
  }

  async rulebookVersionAt({ partition, seq }: LogPosition): Promise<number | undefined> {
    return this.#rulebookAt.get(partition, seq, seq)?.version;
  }

  // --- runs ---

  async claimRuns(claim: RunClaim): Promise<Run[]> {
    return this.#claim.immediate(claim);
  }

  async extendLeases(owner: string, runIds: readonly string[], until: number): Promise<void> {
    this.#extend.immediate(owner, runIds, until);
  }

  async releaseLeases(owner: string, now: number): Promise<void> {
    this.#releaseLeases.run(now, owner);
  }

  completeAttempt(completion: AttemptCompletion): Promise<boolean> {
    // Completions that arrive in the same turn of the event loop share one transaction: each small
    // commit rewrites the same few pages (runs, attempts, events, audit), so a thousand runs a second
    // would otherwise write the same pages a thousand times.
    return new Promise<boolean>((resolve, reject) => {
      this.#completions.push({ completion, resolve, reject });
      if (this.#completions.length === 1) setImmediate(() => this.#flushCompletions());
    });
  }

  #flushCompletions(): void {
    const batch = this.#completions;
    this.#completions = [];
    if (batch.length === 0) return;
    const results: Array<{ ok: true; held: boolean } | { ok: false; error: unknown }> = [];
    try {
      this.#completeBatch.immediate(() => {
        for (const { completion } of batch) {
          // Inside the batch's transaction each completion is a savepoint: one that fails is undone
          // alone and reported to its caller; the others still commit.
          try {
            results.push({ ok: true, held: this.#complete(completion) });
          } catch (error) {
            results.push({ ok: false, error });
          }
        }
      });
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
      return;
    }
    batch.forEach((waiting, i) => {
      const result = results[i]!;
      if (result.ok) waiting.resolve(result.held);
      else waiting.reject(result.error);
    });
  }

  async nextRunDueAt(): Promise<number | undefined> {
    return this.#nextRunDue();
  }

  async getRun(id: string): Promise<RunDetail | undefined> {
    const row = this.#getRun.get(id);
    if (row === undefined) return undefined;
    return { ...toRun(row), attempts: this.#attemptsOfRun.all(id).map(toAttempt) };
  }

  async listRuns(query: RunQuery): Promise<Run[]> {
    const { statement, params } = this.#runListing(query);
    return statement.all(...params, Math.max(0, query.limit)).map(toRun);
  }

  async pageRuns(query: RunQuery, maxBytes: number): Promise<StorePage<Run>> {
    const { statement, params } = this.#runListing(query);
    const limit = Math.max(0, query.limit);
    const rows = statement.iterate(...params, limit + 1);
    const size = (row: RunRow) => row.context.length + row.outputs.length + (row.error?.length ?? 0);
    return takeWithin(rows, limit, maxBytes, size, toRun);
  }

  /** The statement and parameters (all but the limit) of a listing of runs. */
  #runListing(query: RunQuery): { statement: Database.Statement<unknown[], RunRow>; params: unknown[] } {
    const key = `${query.before === undefined ? '' : 'b'}${query.rule === undefined ? '' : 'r'}${query.status === undefined ? '' : 's'}`;
    let statement = this.#listRunStatements.get(key);
    if (statement === undefined) {
      const where: string[] = [];
      if (query.before !== undefined) where.push('id < ?');
      if (query.rule !== undefined) where.push('rule = ?');
      if (query.status !== undefined) where.push('status = ?');
      statement = this.#db.prepare<unknown[], RunRow>(
        `SELECT * FROM runs ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}
         ORDER BY id DESC LIMIT ?`,
      );
      this.#listRunStatements.set(key, statement);
    }
    const params: unknown[] = [];
    if (query.before !== undefined) params.push(query.before);
    if (query.rule !== undefined) params.push(query.rule);
    if (query.status !== undefined) params.push(query.status);
    return { statement, params };
  }

  async runsForEvent(seq: number): Promise<Run[]> {
    return this.#runsForEvent.all(seq).map(toRun);
  }

  async listDeadLetters(limit: number): Promise<DeadLetter[]> {
    return this.#deadLetters.all(Math.max(0, limit)).map((row) => ({
      runId: row.run_id,
      rule: row.rule,
      step: row.step,
      error: JSON.parse(row.error) as ErrorInfo,
      createdAt: row.created_at,
    }));
  }

  // --- facts ---

  async getFacts(): Promise<Record<string, unknown>> {
    // fromEntries defines own properties, so a fact named `__proto__` stays a fact.
    return Object.fromEntries(this.#facts.all().map((row) => [row.name, JSON.parse(row.value)]));
  }

  async changeFact(name: string, value: unknown, at: number, chain = 0, partition = 0): Promise<FactChange> {
    return this.#durably(
      () => this.#changeFact.immediate(name, value, at, chain, partition),
      (change) => (change.event === undefined ? [] : [change.event]),
    );
  }

  // --- flow state and timers ---

  async loadFactsView(consumer: string, partition: number): Promise<Record<string, unknown>> {
    // fromEntries defines own properties, so a fact named `__proto__` stays a fact.
    return Object.fromEntries(
      this.#factsView.all(consumer, partition).map((row) => [row.name, JSON.parse(row.value)]),
    );
  }

  async loadFlowStates(partition: number): Promise<FlowStateRow[]> {
    return this.#flowStates.all(partition).map(toFlowState);
  }

  async fireDueTimers(now: number, limit: number): Promise<AppendResult[]> {
    // A lost firing leaves its timer row in place: it fires again, under the same event id.
    return this.#fireTimers.immediate(now, limit);
  }

  async nextTimerDueAt(): Promise<number | undefined> {
    return this.#nextTimer.get()?.due ?? undefined;
  }

  // --- audit ---

  async appendAudit(entries: readonly AuditEntry[]): Promise<void> {
    if (entries.length > 0) this.#appendAudit.immediate(entries);
  }

  async auditForEvent(seq: number): Promise<AuditEntry[]> {
    return this.#auditForEvent.all(seq).map(toAudit);
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
      durability: this.#walSync === undefined ? 'normal' : 'full',
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Whatever fails on the way (a full disk refuses the last completions and the last checkpoint), the
    // database is closed and the lock released: the next start must not find this process's lock.
    try {
      this.#flushCompletions();
      await this.#checkpointer?.stop();
    } finally {
      try {
        this.#db.close();
        await this.#walSync?.close();
      } finally {
        this.#lock?.release();
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
