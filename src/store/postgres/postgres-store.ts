import { resolve } from 'node:path';
import pg from 'pg';
import { type ErrorInfo, ReflexError } from '../../core/errors.js';
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
  NewRun,
  RulebookVersion,
  Run,
  RunClaim,
  RunDetail,
  RunQuery,
  RunStatus,
  Store,
  StorePage,
} from '../../core/ports/store.js';
import { AuditKind } from '../../core/ports/store.js';
import { prepareDataDir } from '../sqlite/data-dir.js';
import { acquireDataDirLock, type DataDirLock } from '../sqlite/data-dir-lock.js';
import {
  type AttemptRow,
  type EventRow,
  type RunRow,
  toAttempt,
  toLoggedEvent,
  toRun,
} from '../store-rows.js';
import {
  byDueThenId,
  type ClaimCandidate,
  type DueTimer,
  factChangedEvent,
  factText,
  firstAppended,
  jsonOrNull,
  type QueuedRun,
  sameFact,
  setOwn,
  startableRuns,
  takeWithin,
  timerEvent,
} from '../store-values.js';
import { codedPostgresError } from './coded-errors.js';
import {
  migratePostgres,
  postgresSchemaVersion,
  quoteSchema,
  readPostgresSchemaVersion,
} from './migrations.js';
import { type PostgresLocation, parsePostgresUrl } from './postgres-url.js';

/** Options of `createPostgresStore`. */
export interface PostgresStoreOptions {
  /**
   * Where the store lives: `postgres://user@host:port/database?schema=name` (see docs/postgres.md). The
   * schema (default `reflex`) holds this instance's tables; one Reflex instance per schema.
   */
  url: string;
  /**
   * A data directory that this instance owns alongside its schema (a writer only): created if missing
   * and locked as in SQLite mode, so one directory stays one instance. Nothing else is kept there.
   */
  dataDir?: string;
  /**
   * When appends and fact changes return.
   * - `'full'`: once PostgreSQL has flushed their commit to its WAL: what was acknowledged survives a
   *   crash of the server or the machine.
   * - `'normal'`: at once (`synchronous_commit = off` for them too); a crash of the server may take
   *   back the last fraction of a second of commits. Faster.
   * @default 'full'
   */
  durability?: 'full' | 'normal';
  /**
   * Open for reading only (the CLI reading a live instance's data): no instance lock, no migrations,
   * and every transaction read-only.
   * @default false
   */
  readonly?: boolean;
  /**
   * Connections in the pool. Appends, claims, completions and API reads each hold one while their
   * transaction runs.
   * @default 10
   */
  poolSize?: number;
}

/** What an open PostgreSQL store runs with (for `reflex status` and tests). */
export interface PostgresStoreInfo {
  /** The URL with the password hidden and the schema spelled out. */
  url: string;
  schema: string;
  readonly: boolean;
  /** The version recorded in the schema's `schema_migrations`. */
  schemaVersion: number;
  /** Whether appends and fact changes wait for the WAL flush (`full`), or not (`normal`). */
  durability: 'full' | 'normal';
}

/** The networked `Store`: the tables of one schema in a PostgreSQL database, owned by one instance. */
export interface PostgresStore extends Store, AsyncDisposable {
  /** The schema that holds this instance's tables. */
  readonly schema: string;
  info(): PostgresStoreInfo;
}

/** bigint (OID 20) as a JS number: seqs, times and counts stay far below 2^53. */
const int8Oid = 20;
const types = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === int8Oid
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/**
 * Opens (creating and upgrading if needed) the PostgreSQL store that `options.url` names. A writer
 * holds a session advisory lock on its schema for as long as it is open: a second writer of the same
 * schema fails with REFLEX_ERR_STORE_SCHEMA_IN_USE. A server that cannot be reached is
 * REFLEX_ERR_STORE_UNREACHABLE, naming host, port and database; a URL that cannot be used is
 * REFLEX_ERR_CONFIG_INVALID.
 *
 * @example
 * await using store = await createPostgresStore({ url: 'postgres://127.0.0.1/test?schema=reflex_dev' });
 * const [result] = await store.appendEvents([event], Date.now());
 */
export async function createPostgresStore(options: PostgresStoreOptions): Promise<PostgresStore> {
  const location = parsePostgresUrl(options.url);
  const readonly = options.readonly === true;
  const connection = {
    connectionString: location.connectionString,
    types,
    // Every statement names tables without a schema: they resolve in this instance's schema only.
    options: `-c search_path=${quoteSchema(location.schema)}${readonly ? ' -c default_transaction_read_only=on' : ''}`,
    application_name: 'reflex',
    connectionTimeoutMillis: 10_000,
  };
  let owner: pg.Client | undefined;
  let dirLock: DataDirLock | undefined;
  if (!readonly && options.dataDir !== undefined) {
    const dir = resolve(options.dataDir);
    prepareDataDir(dir);
    dirLock = acquireDataDirLock(dir);
  }
  const pool = new pg.Pool({ ...connection, max: options.poolSize ?? 10 });
  // An idle connection that the server drops is taken out of the pool; the next query reports it.
  pool.on('error', () => {});
  try {
    let found: number;
    if (readonly) {
      const client = await pool.connect();
      try {
        found = await readPostgresSchemaVersion(client, location.schema);
      } finally {
        client.release();
      }
      if (found === 0) throw new ReflexError('REFLEX_ERR_STORE_NOT_FOUND', { path: location.display });
      if (found < postgresSchemaVersion) {
        throw new ReflexError('REFLEX_ERR_STORE_OLDER_SCHEMA', {
          path: location.display,
          found,
          known: postgresSchemaVersion,
        });
      }
      if (found > postgresSchemaVersion) {
        throw new ReflexError('REFLEX_ERR_STORE_NEWER_SCHEMA', {
          path: location.display,
          found,
          known: postgresSchemaVersion,
        });
      }
    } else {
      // A connection of its own holds the instance lock: the lock lives as long as the session, and a
      // process that dies loses its session, so a killed instance never leaves the schema locked.
      owner = new pg.Client(connection);
      owner.on('error', () => {});
      await owner.connect();
      const locked = await owner.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked',
        [`reflex.instance/${location.schema}`],
      );
      if (locked.rows[0]?.locked !== true) {
        throw new ReflexError('REFLEX_ERR_STORE_SCHEMA_IN_USE', {
          schema: location.schema,
          url: location.display,
        });
      }
      await migratePostgres(owner, location.schema, location.display);
      found = postgresSchemaVersion;
    }
    const appends = options.durability === 'normal' ? 'lazy' : 'durable';
    const store = new PostgresStoreImpl(pool, owner, dirLock, location, readonly, found, appends);
    return withCodedPostgresErrors(store, location);
  } catch (error) {
    await owner?.end().catch(() => {});
    await pool.end().catch(() => {});
    dirLock?.release();
    throw codedPostgresError(error, location);
  }
}

/** Wraps every method of `store` so that what it rejects with goes through {@link codedPostgresError}. */
function withCodedPostgresErrors(store: PostgresStoreImpl, location: PostgresLocation): PostgresStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        let result: unknown;
        try {
          result = (value as (...a: unknown[]) => unknown).apply(target, args);
        } catch (error) {
          throw codedPostgresError(error, location);
        }
        return result instanceof Promise
          ? result.catch((error: unknown) => {
              throw codedPostgresError(error, location);
            })
          : result;
      };
    },
  });
}

// --- rows as pg returns them (bigint already a number, see `types`) ---

/** The columns of an event that `toLoggedEvent` reads. */
const eventColumns = 'seq, partition, received_at, event';

interface AuditRow {
  at: number;
  kind: AuditKind;
  seq: number | null;
  rule: string | null;
  run_id: string | null;
  detail: string | null;
}

/** The columns of a run that `toRun` reads (the lease columns are the store's own business). */
const runColumns = `id, rule, rulebook_version, trigger_seq, trigger_partition, trigger_id, trigger_source, trigger_type, ordinal,
  context, concurrency_key, concurrency_max, status, step, attempt, claims, outputs, created_at, started_at,
  finished_at, next_attempt_at, error`;

function toAudit(row: AuditRow): AuditEntry {
  const entry: AuditEntry = { at: row.at, kind: row.kind };
  if (row.seq !== null) entry.seq = row.seq;
  if (row.rule !== null) entry.rule = row.rule;
  if (row.run_id !== null) entry.runId = row.run_id;
  if (row.detail !== null) entry.detail = JSON.parse(row.detail) as Record<string, unknown>;
  return entry;
}

/** Greater than any seq in practice; the "from the end" cursor. */
const endOfLog = Number.MAX_SAFE_INTEGER;

/** How a transaction commits: `durable` waits for the WAL flush, `lazy` does not (see Store.commitDispatch). */
type Durability = 'durable' | 'lazy';

/** A client inside a transaction. */
type Tx = pg.PoolClient;

/**
 * Appends one batch of distinct events (no (source, id) twice) after `base`, the seq the caller read
 * from `log_head` under its lock: the new ones get base+1, base+2, … in batch order, the ones already
 * in the log come back with their seq. One statement, so the lock is held for one round trip more.
 */
const appendStatement = `
  WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $8::integer[])
      WITH ORDINALITY AS i (source, id, type, subject, event, partition, ord)
  ),
  found AS (
    SELECT i.ord, e.seq, e.partition FROM input i JOIN events e ON e.id = i.id AND e.source = i.source
  ),
  fresh AS (
    SELECT i.*, $6::bigint + row_number() OVER (ORDER BY i.ord) AS seq FROM input i
    WHERE NOT EXISTS (SELECT FROM found f WHERE f.ord = i.ord)
  ),
  inserted AS (
    INSERT INTO events (seq, partition, source, id, type, subject, received_at, event)
    SELECT seq, partition, source, id, type, subject, $7, event FROM fresh
  ),
  head AS (
    UPDATE log_head SET seq = $6::bigint + (SELECT count(*) FROM fresh)
  )
  SELECT ord, seq, partition, true AS duplicate FROM found
  UNION ALL
  SELECT ord, seq, partition, false FROM fresh`;

/** Locks the log for a transaction's appends and reads the last seq handed out. */
const lockLogHead = 'SELECT seq FROM log_head FOR UPDATE';

class PostgresStoreImpl implements PostgresStore {
  readonly schema: string;
  readonly #pool: pg.Pool;
  /** The session that holds the instance lock (writers only). */
  readonly #owner: pg.Client | undefined;
  readonly #dirLock: DataDirLock | undefined;
  readonly #location: PostgresLocation;
  readonly #readonly: boolean;
  readonly #schemaVersion: number;
  /** How appends and fact changes commit (`durability`). */
  readonly #appends: Durability;
  #closed = false;
  /** Completions waiting for the next batch (see completeAttempt). */
  #completions: Array<{
    completion: AttemptCompletion;
    resolve: (held: boolean) => void;
    reject: (error: unknown) => void;
  }> = [];
  /**
   * The first seq of each append and fact change that has written its events but whose COMMIT has not
   * returned yet: the dispatcher reads no further than the smallest, so it never acts on an event its
   * sender has not been told is stored.
   */
  readonly #unacknowledged: number[] = [];

  constructor(
    pool: pg.Pool,
    owner: pg.Client | undefined,
    dirLock: DataDirLock | undefined,
    location: PostgresLocation,
    readonly: boolean,
    schemaVersion: number,
    appends: Durability,
  ) {
    this.#appends = appends;
    this.#pool = pool;
    this.#owner = owner;
    this.#dirLock = dirLock;
    this.#location = location;
    this.schema = location.schema;
    this.#readonly = readonly;
    this.#schemaVersion = schemaVersion;
  }

  /**
   * Runs `work` in one transaction on a connection of the pool. `lazy` commits without waiting for the
   * WAL flush (the port allows it for dispatch commits, claims, leases, completions and timers: what a
   * crash of the server takes back is redone the same way); a later durable commit flushes it too,
   * since the WAL is written in order. `beforeCommit` sees the result just before COMMIT is sent;
   * `firstStatement` (SQL without parameters) is sent with BEGIN, and `work` gets its rows.
   */
  async #transaction<T>(
    durability: Durability,
    work: (tx: Tx, first: pg.QueryResultRow[]) => Promise<T>,
    beforeCommit?: (result: T) => (() => void) | undefined,
    firstStatement = '',
  ): Promise<T> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      // One round trip: the simple protocol takes several statements in one message.
      const begin = durability === 'lazy' ? 'BEGIN; SET LOCAL synchronous_commit TO off' : 'BEGIN';
      const begun = await client.query(firstStatement === '' ? begin : `${begin}; ${firstStatement}`);
      // Several statements in one message answer with one result each: the first statement's is last.
      const first = Array.isArray(begun) ? (begun.at(-1) as pg.QueryResult).rows : [];
      let result: T;
      try {
        result = await work(client, first);
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => {
          broken = rollbackError;
        });
        throw error;
      }
      const afterCommit = beforeCommit?.(result);
      try {
        await client.query('COMMIT');
      } catch (error) {
        broken = error as Error;
        throw error;
      } finally {
        // Whether a COMMIT whose answer was lost took effect is unknown; the sender is told it failed
        // and sends again, and the log's dedup gives back the original. Its events are not held back
        // for good: a stalled dispatcher would be worse than an action for an unacknowledged event.
        afterCommit?.();
      }
      return result;
    } finally {
      client.release(broken);
    }
  }

  /**
   * Appends `events` (each to its partition in `partitions`, 0 when absent) inside `tx` after taking the
   * log's lock (held until the transaction ends, so append last). Events repeated within `events` are
   * appended once and come back as duplicates.
   */
  async #append(
    tx: Tx,
    events: readonly CloudEvent[],
    receivedAt: number,
    partitions?: readonly number[],
    lockedHead?: number,
  ): Promise<AppendResult[]> {
    const firstIndex = new Map<string, number>();
    const distinct: number[] = [];
    const sources: string[] = [];
    const ids: string[] = [];
    const typesOf: string[] = [];
    const subjects: Array<string | null> = [];
    const texts: string[] = [];
    const partitionsOf: number[] = [];
    const origin = new Array<number>(events.length);
    events.forEach((event, i) => {
      const identity = `${event.source}\u0000${event.id}`;
      const seen = firstIndex.get(identity);
      if (seen !== undefined) {
        origin[i] = seen;
        return;
      }
      firstIndex.set(identity, distinct.length);
      origin[i] = distinct.length;
      distinct.push(i);
      sources.push(event.source);
      ids.push(event.id);
      typesOf.push(event.type);
      subjects.push(typeof event.subject === 'string' ? event.subject : null);
      texts.push(JSON.stringify(event));
      partitionsOf.push(partitions?.[i] ?? 0);
    });
    const base =
      lockedHead ??
      (await tx.query<{ seq: number }>({ name: 'lock-log-head', text: lockLogHead })).rows[0]!.seq;
    const appended = await tx.query<{ ord: number; seq: number; partition: number; duplicate: boolean }>({
      name: 'append-events',
      text: appendStatement,
      values: [sources, ids, typesOf, subjects, texts, base, receivedAt, partitionsOf],
    });
    const byOrdinal = new Array<{ seq: number; partition: number; duplicate: boolean }>(distinct.length);
    for (const row of appended.rows) byOrdinal[row.ord - 1] = row;
    const reported = new Set<number>();
    return events.map((event, i) => {
      const slot = origin[i]!;
      const row = byOrdinal[slot]!;
      // A repeat inside the batch is a duplicate of its first occurrence.
      const duplicate = row.duplicate || reported.has(slot);
      reported.add(slot);
      return { seq: row.seq, partition: row.partition, id: event.id, source: event.source, duplicate };
    });
  }

  /**
   * Commits an append (or fact change) durably, holding back from the dispatcher what it appended until
   * COMMIT has returned.
   */
  #acknowledging<T>(logged: (result: T) => readonly AppendResult[]): (result: T) => () => void {
    return (result) => {
      const first = firstAppended(logged(result));
      if (first === undefined) return () => {};
      this.#unacknowledged.push(first);
      return () => {
        this.#unacknowledged.splice(this.#unacknowledged.indexOf(first), 1);
      };
    };
  }

  async #query<Row extends pg.QueryResultRow>(
    text: string,
    values: unknown[] = [],
    name?: string,
  ): Promise<Row[]> {
    const result = await this.#pool.query<Row>(
      name === undefined ? { text, values } : { name, text, values },
    );
    return result.rows;
  }

  // --- the log ---

  async appendEvents(
    events: readonly CloudEvent[],
    receivedAt: number,
    partitions?: readonly number[],
  ): Promise<AppendResult[]> {
    if (events.length === 0) return [];
    // The log's lock is taken with BEGIN, in the same round trip: an append is the whole transaction.
    return this.#transaction(
      this.#appends,
      (tx, [head]) => this.#append(tx, events, receivedAt, partitions, (head as { seq: number }).seq),
      this.#acknowledging((results) => results),
      lockLogHead,
    );
  }

  async readEvents(after: LogPosition, limit: number): Promise<LogRead> {
    const wanted = Math.max(0, limit);
    // One statement, one snapshot: the head (the highest committed seq, since seqs follow commit
    // order) is the head of the rows read, so no event of the partition can later appear below it.
    const rows = await this.#query<EventRow & { head: number | null }>(
      `(SELECT ${eventColumns}, NULL::bigint AS head FROM events WHERE partition = $1 AND seq > $2
        ORDER BY seq LIMIT $3)
       UNION ALL
       SELECT NULL, NULL, NULL, NULL, seq FROM log_head`,
      [after.partition, after.seq, wanted],
      'read-events',
    );
    const horizon = this.#horizon();
    const events: LoggedEvent[] = [];
    let head = 0;
    for (const row of rows) {
      if (row.head !== null) head = row.head;
      else if (row.seq <= horizon) events.push(toLoggedEvent(row));
    }
    const through =
      events.length === wanted && wanted > 0
        ? events[events.length - 1]!.seq
        : Math.max(after.seq, Math.min(horizon, head));
    return { events, through };
  }

  async readFactChanges(afterSeq: number, throughSeq: number, limit: number): Promise<LoggedEvent[]> {
    const rows = await this.#query<EventRow>(
      `SELECT ${eventColumns} FROM events
       WHERE type = 'reflex.fact.changed' AND source = 'reflex' AND seq > $1 AND seq <= $2
       ORDER BY seq LIMIT $3`,
      [afterSeq, throughSeq, Math.max(0, limit)],
      'read-fact-changes',
    );
    const horizon = this.#horizon();
    const events: LoggedEvent[] = [];
    for (const row of rows) {
      if (row.seq > horizon) break;
      events.push(toLoggedEvent(row));
    }
    return events;
  }

  /**
   * The last seq a reader may see. Computed after the rows came back: an append that committed while
   * they were read has its first seq in #unacknowledged until its COMMIT returns (it is put there
   * before COMMIT is sent), and seqs follow commit order, so everything from that seq on is left for
   * later: its caller hands it on when it returns.
   */
  #horizon(): number {
    let last = endOfLog;
    for (const first of this.#unacknowledged) if (first <= last) last = first - 1;
    return last;
  }

  async getEvent(seq: number): Promise<LoggedEvent | undefined> {
    const [row] = await this.#query<EventRow>(
      `SELECT ${eventColumns} FROM events WHERE seq = $1`,
      [seq],
      'get-event',
    );
    return row === undefined ? undefined : toLoggedEvent(row);
  }

  async findEventsById(id: string, source?: string): Promise<LoggedEvent[]> {
    const rows =
      source === undefined
        ? await this.#query<EventRow>(`SELECT ${eventColumns} FROM events WHERE id = $1 ORDER BY seq`, [id])
        : await this.#query<EventRow>(`SELECT ${eventColumns} FROM events WHERE id = $1 AND source = $2`, [
            id,
            source,
          ]);
    return rows.map(toLoggedEvent);
  }

  async listEvents(query: EventQuery): Promise<LoggedEvent[]> {
    const rows = await this.#listEventRows(query, Math.max(0, query.limit));
    return rows.map(toLoggedEvent);
  }

  async pageEvents(query: EventQuery, maxBytes: number): Promise<StorePage<LoggedEvent>> {
    const limit = Math.max(0, query.limit);
    const rows = await this.#listEventRows(query, limit + 1);
    return takeWithin(rows, limit, maxBytes, (row) => row.event.length, toLoggedEvent);
  }

  #listEventRows(query: EventQuery, limit: number): Promise<EventRow[]> {
    const ascending = query.after !== undefined;
    const values: unknown[] = [ascending ? query.after : (query.before ?? endOfLog)];
    const where = [ascending ? 'seq > $1' : 'seq < $1'];
    if (query.type !== undefined) {
      values.push(query.type);
      where.push(`type = $${values.length}`);
    }
    if (query.source !== undefined) {
      values.push(query.source);
      where.push(`source = $${values.length}`);
    }
    values.push(limit);
    return this.#query<EventRow>(
      `SELECT ${eventColumns} FROM events WHERE ${where.join(' AND ')}
       ORDER BY seq ${ascending ? 'ASC' : 'DESC'} LIMIT $${values.length}`,
      values,
    );
  }

  async lastSeq(): Promise<number> {
    const [row] = await this.#query<{ seq: number | null }>('SELECT max(seq) AS seq FROM events');
    return row?.seq ?? 0;
  }

  // --- dispatch ---

  async keepPartitionCount(partitions: number): Promise<void> {
    await this.#transaction('durable', async (tx) => {
      // The insert (or the row lock) makes two starts at once agree on one count.
      const inserted = await tx.query(
        "INSERT INTO meta (name, value) VALUES ('partitions', $1) ON CONFLICT (name) DO NOTHING RETURNING name",
        [String(partitions)],
      );
      if (inserted.rows.length === 0) {
        const kept = await tx.query<{ value: string }>(
          "SELECT value FROM meta WHERE name = 'partitions' FOR UPDATE",
        );
        const count = Number(kept.rows[0]?.value);
        if (count !== partitions)
          throw this.#otherPartitionCount(partitions, `${count} partitions`, `${count}`);
        return;
      }
      // Recorded now: every schema keeps its count from its first start, so its log is empty here unless
      // events were written without an engine (a test, a tool); those must fit in the count too.
      const last = await tx.query<{ partition: number | null }>(
        'SELECT max(partition) AS partition FROM events',
      );
      const lastPartition = last.rows[0]?.partition ?? null;
      if (lastPartition !== null && lastPartition >= partitions) {
        throw this.#otherPartitionCount(
          partitions,
          `events in partition ${lastPartition}`,
          `${lastPartition + 1} or more`,
        );
      }
    });
  }

  #otherPartitionCount(partitions: number, written: string, needed: string): ReflexError {
    return new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
      option: 'partitions',
      reason: `it is ${partitions}, but the schema \`${this.schema}\` was written with ${written} (the count is kept with the data: events of a partition the engine lacks would never be dispatched)`,
      fix: `start with partitions: ${needed}; to use another count, start on a new schema`,
    });
  }

  async getOffset(consumer: string, partition: number): Promise<number> {
    const [row] = await this.#query<{ seq: number }>(
      'SELECT seq FROM offsets WHERE consumer = $1 AND partition = $2',
      [consumer, partition],
    );
    return row?.seq ?? 0;
  }

  async commitDispatch(commit: DispatchCommit): Promise<void> {
    await this.#transaction('lazy', async (tx) => {
      if (commit.runs.length > 0) await this.#insertRuns(tx, commit.runs, commit.consumer);
      await this.#writeAudit(tx, commit.audit);
      if (commit.activation !== undefined) {
        await tx.query(
          `INSERT INTO rulebook_activations (partition, seq, version, consumer) VALUES ($1, $2, $3, $4)
           ON CONFLICT (partition, seq) DO UPDATE SET version = excluded.version, consumer = excluded.consumer`,
          [commit.partition, commit.activation.seq, commit.activation.version, commit.consumer],
        );
      }
      // Applying the changes in order leaves the last change of each (rule, stage, key): that is what
      // is written, set-wise, in two statements per table.
      const states = lastByKey(commit.states ?? [], (s) => [s.rule, s.stage, s.key]);
      // undefined, which JSON cannot hold, deletes too.
      const deleted = states.filter((s) => s.state === null || s.state === undefined);
      const written = states.filter((s) => s.state !== null && s.state !== undefined);
      if (deleted.length > 0) {
        await tx.query(
          `DELETE FROM flow_states f USING unnest($1::text[], $2::text[], $3::text[]) AS d (rule, stage, key)
           WHERE f.partition = $4 AND f.rule = d.rule AND f.stage = d.stage AND f.key = d.key`,
          [
            deleted.map((s) => s.rule),
            deleted.map((s) => s.stage),
            deleted.map((s) => s.key),
            commit.partition,
          ],
        );
      }
      if (written.length > 0) {
        await tx.query(
          `INSERT INTO flow_states (partition, rule, stage, key, hash, state, expires_at)
           SELECT $7, * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
           ON CONFLICT (partition, rule, stage, key) DO UPDATE
           SET hash = excluded.hash, state = excluded.state, expires_at = excluded.expires_at`,
          [
            written.map((s) => s.rule),
            written.map((s) => s.stage),
            written.map((s) => s.key),
            written.map((s) => s.hash),
            written.map((s) => JSON.stringify(s.state)),
            written.map((s) => s.expiresAt ?? null),
            commit.partition,
          ],
        );
      }
      const timers = lastByKey(commit.timers ?? [], (t) => [t.rule, t.stage, t.key]);
      const cancelled = timers.filter((t) => t.due === null);
      const set = timers.filter((t) => t.due !== null);
      if (cancelled.length > 0) {
        await tx.query(
          `DELETE FROM timers t USING unnest($1::text[], $2::text[], $3::text[]) AS d (rule, stage, key)
           WHERE t.partition = $4 AND t.rule = d.rule AND t.stage = d.stage AND t.key = d.key`,
          [
            cancelled.map((t) => t.rule),
            cancelled.map((t) => t.stage),
            cancelled.map((t) => t.key),
            commit.partition,
          ],
        );
      }
      if (set.length > 0) {
        await tx.query(
          `INSERT INTO timers (partition, rule, stage, key, due)
           SELECT $5, * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
           ON CONFLICT (partition, rule, stage, key) DO UPDATE SET due = excluded.due`,
          [
            set.map((t) => t.rule),
            set.map((t) => t.stage),
            set.map((t) => t.key),
            set.map((t) => t.due),
            commit.partition,
          ],
        );
      }
      const facts = lastByKey(commit.facts ?? [], (f) => [f.name]);
      const unsetFacts = facts.filter((f) => f.value === undefined);
      const setFacts = facts.filter((f) => f.value !== undefined);
      if (unsetFacts.length > 0) {
        await tx.query(
          'DELETE FROM facts_views WHERE consumer = $1 AND partition = $2 AND name = ANY($3::text[])',
          [commit.consumer, commit.partition, unsetFacts.map((f) => f.name)],
        );
      }
      if (setFacts.length > 0) {
        await tx.query(
          `INSERT INTO facts_views (consumer, partition, name, value)
           SELECT $1, $2, * FROM unnest($3::text[], $4::text[])
           ON CONFLICT (consumer, partition, name) DO UPDATE SET value = excluded.value`,
          [
            commit.consumer,
            commit.partition,
            setFacts.map((f) => f.name),
            setFacts.map((f) => factText(f.value)),
          ],
        );
      }
      await tx.query({
        name: 'upsert-offset',
        text: `INSERT INTO offsets (consumer, partition, seq) VALUES ($1, $2, $3)
               ON CONFLICT (consumer, partition) DO UPDATE SET seq = excluded.seq`,
        values: [commit.consumer, commit.partition, commit.offset],
      });
    });
  }

  async #insertRuns(tx: Tx, runs: readonly NewRun[], consumer: string): Promise<void> {
    const inserted = await tx.query<{ trigger_seq: number; rule: string; ordinal: number }>({
      name: 'insert-runs',
      text: `INSERT INTO runs (id, rule, rulebook_version, trigger_seq, trigger_partition, trigger_id,
                               trigger_source, trigger_type, ordinal, context, concurrency_key, concurrency_max,
                               status, step, attempt, outputs, created_at, next_attempt_at)
             SELECT id, rule, version, tseq, tpartition, tid, tsource, ttype, ordinal, context, ckey, cmax,
                    'pending', 0, 0, '{}', created_at, created_at
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[],
                         $8::integer[], $9::text[], $10::text[], $11::integer[], $12::bigint[], $13::integer[])
               WITH ORDINALITY AS r (id, rule, version, tseq, tid, tsource, ttype, ordinal, context, ckey, cmax,
                                     created_at, tpartition, ord)
             ORDER BY ord
             ON CONFLICT (trigger_seq, rule, ordinal) DO NOTHING
             RETURNING trigger_seq, rule, ordinal`,
      values: [
        runs.map((r) => r.id),
        runs.map((r) => r.rule),
        runs.map((r) => r.rulebookVersion),
        runs.map((r) => r.trigger.seq),
        runs.map((r) => r.trigger.id),
        runs.map((r) => r.trigger.source),
        runs.map((r) => r.trigger.type),
        runs.map((r) => r.ordinal),
        runs.map((r) => JSON.stringify(r.context)),
        runs.map((r) => r.concurrency?.key ?? null),
        runs.map((r) => r.concurrency?.max ?? null),
        runs.map((r) => r.createdAt),
        runs.map((r) => r.trigger.partition),
      ],
    });
    if (inserted.rowCount === runs.length) return;
    const made = new Set(inserted.rows.map((r) => `${r.trigger_seq}\u0000${r.rule}\u0000${r.ordinal}`));
    const doubled =
      runs.find((r) => !made.has(`${r.trigger.seq}\u0000${r.rule}\u0000${r.ordinal}`)) ??
      // Two runs of one match inside the commit: the second one's row never came back.
      runs[runs.length - 1]!;
    throw new ReflexError(
      'REFLEX_ERR_STORE_DUPLICATE_RUN',
      { rule: doubled.rule, seq: doubled.trigger.seq },
      { details: { runId: doubled.id, ordinal: doubled.ordinal, consumer } },
    );
  }

  async #writeAudit(tx: Tx, entries: readonly AuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await tx.query({
      name: 'insert-audit',
      text: `INSERT INTO audit (at, kind, seq, rule, run_id, detail)
             SELECT at, kind, seq, rule, run_id, detail
             FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
               WITH ORDINALITY AS a (at, kind, seq, rule, run_id, detail, ord)
             ORDER BY ord`,
      values: [
        entries.map((e) => e.at),
        entries.map((e) => e.kind),
        entries.map((e) => e.seq ?? null),
        entries.map((e) => e.rule ?? null),
        entries.map((e) => e.runId ?? null),
        entries.map((e) => jsonOrNull(e.detail)),
      ],
    });
  }

  // --- rulebooks ---

  async saveRulebookVersion(version: NewRulebookVersion): Promise<number> {
    // WHERE NOT EXISTS rather than ON CONFLICT: a conflict would use up an id, and versions count 1, 2, 3.
    const [row] = await this.#query<{ id: number }>(
      `WITH inserted AS (
         INSERT INTO rulebook_versions (hash, files, created_at)
         SELECT $1::text, $2::text, $3::bigint WHERE NOT EXISTS (SELECT FROM rulebook_versions WHERE hash = $1)
         ON CONFLICT (hash) DO NOTHING
         RETURNING id
       )
       SELECT id FROM inserted UNION ALL SELECT id FROM rulebook_versions WHERE hash = $1`,
      [version.hash, JSON.stringify(version.files), version.createdAt],
    );
    if (row !== undefined) return row.id;
    // A concurrent save of the same hash committed between the two looks: it is there now.
    const [again] = await this.#query<{ id: number }>('SELECT id FROM rulebook_versions WHERE hash = $1', [
      version.hash,
    ]);
    return again!.id;
  }

  async getRulebookVersion(id: number): Promise<RulebookVersion | undefined> {
    const [row] = await this.#query<{ id: number; hash: string; files: string; created_at: number }>(
      'SELECT id, hash, files, created_at FROM rulebook_versions WHERE id = $1',
      [id],
    );
    if (row === undefined) return undefined;
    return {
      id: row.id,
      hash: row.hash,
      files: JSON.parse(row.files) as RulebookVersion['files'],
      createdAt: row.created_at,
    };
  }

  async rulebookVersionAt(position: LogPosition): Promise<number | undefined> {
    // Only an event the consumer that activated the version has already passed counts as dispatched.
    const [row] = await this.#query<{ version: number }>(
      `SELECT a.version AS version FROM rulebook_activations a
       JOIN offsets o ON o.consumer = a.consumer AND o.partition = a.partition
       WHERE a.partition = $1 AND a.seq <= $2 AND o.seq >= $2 ORDER BY a.seq DESC LIMIT 1`,
      [position.partition, position.seq],
    );
    return row?.version;
  }

  // --- runs ---

  async claimRuns(claim: RunClaim): Promise<Run[]> {
    const limit = Math.max(0, claim.limit);
    if (limit === 0) return [];
    return this.#transaction(
      'lazy',
      (tx) => this.#claim(tx, claim, limit),
      undefined,
      // Claims take turns: a concurrency key's free slots are counted and taken under one lock, so two
      // claimers never hand out the same slot. (One instance per schema claims, so this rarely waits.)
      `SELECT pg_advisory_xact_lock(hashtextextended('reflex.claim/${this.schema}', 0))`,
    );
  }

  async #claim(tx: Tx, claim: RunClaim, limit: number): Promise<Run[]> {
    // Free runs that are due, oldest first. SKIP LOCKED: a run another claimer or a completion has
    // locked is left to it rather than waited for.
    const due = await tx.query<ClaimCandidate>({
      name: 'due-runs',
      text: `SELECT id, CASE WHEN status = 'pending' THEN next_attempt_at ELSE lease_until END AS due
             FROM runs
             WHERE (status = 'pending' AND (concurrency_key IS NULL OR started_at IS NOT NULL)
                    AND next_attempt_at <= $1)
                OR (status = 'running' AND lease_until <= $1)
             ORDER BY due, id LIMIT $2
             FOR UPDATE SKIP LOCKED`,
      values: [claim.now, limit],
    });
    const candidates = [...due.rows, ...(await this.#startable(tx, claim.now, limit))];
    if (candidates.length === 0) return [];
    candidates.sort(byDueThenId);
    const chosen = candidates.slice(0, limit).map((c) => c.id);
    const leased = await tx.query<RunRow>({
      name: 'lease-runs',
      text: `UPDATE runs SET status = 'running', lease_owner = $1, lease_until = $2,
                             started_at = coalesce(started_at, $3), next_attempt_at = NULL,
                             claims = claims + 1
             WHERE id = ANY($4::text[]) RETURNING ${runColumns}`,
      values: [claim.owner, claim.now + claim.leaseMs, claim.now, chosen],
    });
    const byId = new Map(leased.rows.map((row) => [row.id, row]));
    return chosen.map((id) => toRun(byId.get(id)!));
  }

  /** Runs waiting for a concurrency slot that may start now (see `startableRuns`). */
  async #startable(tx: Tx, now: number, limit: number): Promise<ClaimCandidate[]> {
    const queued = await tx.query<QueuedRun>({
      name: 'queued-runs',
      text: `WITH queue AS (
               SELECT id, next_attempt_at AS due, concurrency_key AS key, concurrency_max AS max,
                      row_number() OVER (PARTITION BY concurrency_key ORDER BY id) AS position
               FROM runs WHERE status = 'pending' AND started_at IS NULL AND concurrency_key IS NOT NULL
             )
             SELECT q.id, q.due, q.key, q.max,
                    (SELECT count(*) FROM runs a WHERE a.concurrency_key = q.key
                       AND a.status IN ('pending', 'running') AND a.started_at IS NOT NULL) AS active
             FROM queue q WHERE q.position <= $1 ORDER BY q.key, q.id`,
      values: [limit],
    });
    if (queued.rows.length === 0) return [];
    return startableRuns(
      groupBy(queued.rows, (row) => row.key),
      now,
    );
  }

  async extendLeases(owner: string, runIds: readonly string[], until: number): Promise<void> {
    if (runIds.length === 0) return;
    await this.#transaction('lazy', async (tx) => {
      await tx.query(
        `UPDATE runs SET lease_until = $1 WHERE id = ANY($2::text[]) AND lease_owner = $3 AND status = 'running'`,
        [until, runIds, owner],
      );
    });
  }

  async releaseLeases(owner: string, now: number): Promise<void> {
    await this.#transaction('lazy', async (tx) => {
      await tx.query(
        `UPDATE runs SET status = 'pending', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL,
                         claims = greatest(claims - 1, 0)
         WHERE lease_owner = $2 AND status = 'running'`,
        [now, owner],
      );
    });
  }

  completeAttempt(completion: AttemptCompletion): Promise<boolean> {
    // Completions that arrive in the same turn of the event loop share one transaction of a few
    // set-wise statements: on PostgreSQL round trips, not rows, are what a completion costs.
    return new Promise<boolean>((resolve, reject) => {
      this.#completions.push({ completion, resolve, reject });
      if (this.#completions.length === 1) setImmediate(() => void this.#flushCompletions());
    });
  }

  async #flushCompletions(): Promise<void> {
    const waiting = this.#completions;
    this.#completions = [];
    if (waiting.length === 0) return;
    // One completion per run in a batch (an executor awaits each before the next); a second one for the
    // same run waits for the next batch, so it sees what the first did.
    const seen = new Set<string>();
    const batch: typeof waiting = [];
    for (const item of waiting) {
      if (seen.has(item.completion.attempt.runId)) this.#completions.push(item);
      else {
        seen.add(item.completion.attempt.runId);
        batch.push(item);
      }
    }
    if (this.#completions.length > 0) setImmediate(() => void this.#flushCompletions());
    try {
      const held = await this.#transaction(
        'lazy',
        (tx) =>
          this.#completeBatch(
            tx,
            batch.map((item) => item.completion),
          ),
        this.#acknowledging((result) => result.appended),
      );
      for (const [i, item] of batch.entries()) item.resolve(held.held[i]!);
    } catch {
      // One bad completion must not fail the others: each goes again on its own, and only its own
      // caller hears about its error.
      for (const item of batch) {
        this.#transaction(
          'lazy',
          (tx) => this.#completeBatch(tx, [item.completion]),
          this.#acknowledging((result) => result.appended),
        ).then((result) => item.resolve(result.held[0]!), item.reject);
      }
    }
  }

  /**
   * Records completions of distinct runs in `tx`, set-wise: which of them still held their lease, and
   * the outcome events they appended (in their triggers' partitions).
   */
  async #completeBatch(
    tx: Tx,
    completions: readonly AttemptCompletion[],
  ): Promise<{ held: boolean[]; appended: AppendResult[] }> {
    const found = await tx.query<{
      id: string;
      rule: string;
      status: RunStatus;
      lease_owner: string | null;
      step: number;
      attempt: number;
      outputs: string;
      trigger_seq: number;
      trigger_partition: number;
    }>({
      name: 'runs-for-completion',
      text: `SELECT id, rule, status, lease_owner, step, attempt, outputs, trigger_seq, trigger_partition FROM runs
             WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`,
      values: [completions.map((c) => c.attempt.runId)],
    });
    const runs = new Map(found.rows.map((row) => [row.id, row]));
    const held = completions.map((c) => {
      const run = runs.get(c.attempt.runId);
      // Only the next attempt of the current step: a try is recorded once, even if it was executed twice.
      return (
        run !== undefined &&
        run.status === 'running' &&
        run.lease_owner === c.owner &&
        run.step === c.attempt.step &&
        run.attempt + 1 === c.attempt.attempt
      );
    });
    const done = completions.filter((_, i) => held[i]);
    if (done.length === 0) return { held, appended: [] };
    await tx.query({
      name: 'insert-attempts',
      text: `INSERT INTO attempts (run_id, step, step_id, action, attempt, started_at, finished_at, status,
                                   output, error)
             SELECT run_id, step, step_id, action, attempt, started_at, finished_at, status, output, error
             FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::integer[], $6::bigint[],
                         $7::bigint[], $8::text[], $9::text[], $10::text[])
               WITH ORDINALITY AS a (run_id, step, step_id, action, attempt, started_at, finished_at, status,
                                     output, error, ord)
             ORDER BY ord`,
      values: [
        done.map((c) => c.attempt.runId),
        done.map((c) => c.attempt.step),
        done.map((c) => c.attempt.stepId),
        done.map((c) => c.attempt.action),
        done.map((c) => c.attempt.attempt),
        done.map((c) => c.attempt.startedAt),
        done.map((c) => c.attempt.finishedAt),
        done.map((c) => c.attempt.status),
        done.map((c) => jsonOrNull(c.attempt.output)),
        done.map((c) => jsonOrNull(c.attempt.error)),
      ],
    });
    const outputsOf = (c: AttemptCompletion): string | null => {
      if (c.outcome.type !== 'next-step' && c.outcome.type !== 'succeeded') return null;
      const outputs = JSON.parse(runs.get(c.attempt.runId)!.outputs) as Record<string, unknown>;
      // JSON has no undefined: a step without output is recorded as null, so its key is kept.
      setOwn(outputs, c.attempt.stepId, c.outcome.output ?? null);
      return JSON.stringify(outputs);
    };
    const errorOf = (c: AttemptCompletion): string | null =>
      c.outcome.type === 'retry'
        ? jsonOrNull(c.attempt.error)
        : c.outcome.type === 'failed'
          ? JSON.stringify(c.outcome.error)
          : null;
    // What each outcome does to its run, as the SQLite store's statements do it one by one.
    await tx.query({
      name: 'complete-runs',
      text: `UPDATE runs r SET
               status = CASE u.kind WHEN 'next-step' THEN r.status WHEN 'retry' THEN 'pending' ELSE u.kind END,
               step = CASE WHEN u.kind IN ('next-step', 'succeeded') THEN r.step + 1 ELSE r.step END,
               attempt = CASE WHEN u.kind IN ('next-step', 'succeeded') THEN 0 ELSE r.attempt + 1 END,
               claims = CASE u.kind WHEN 'next-step' THEN 1 WHEN 'retry' THEN 0 ELSE r.claims END,
               outputs = coalesce(u.outputs, r.outputs),
               error = u.error,
               finished_at = CASE WHEN u.kind IN ('succeeded', 'failed') THEN u.at ELSE r.finished_at END,
               next_attempt_at = CASE u.kind WHEN 'next-step' THEN r.next_attempt_at WHEN 'retry' THEN u.retry_at
                                             ELSE NULL END,
               lease_owner = CASE u.kind WHEN 'next-step' THEN r.lease_owner ELSE NULL END,
               lease_until = CASE u.kind WHEN 'next-step' THEN r.lease_until ELSE NULL END
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
               AS u (id, kind, outputs, error, retry_at, at)
             WHERE r.id = u.id`,
      values: [
        done.map((c) => c.attempt.runId),
        done.map((c) => c.outcome.type),
        done.map(outputsOf),
        done.map(errorOf),
        done.map((c) => (c.outcome.type === 'retry' ? c.outcome.at : null)),
        done.map((c) => c.at),
      ],
    });
    const failed = done.filter((c) => c.outcome.type === 'failed');
    if (failed.length > 0) {
      await tx.query({
        name: 'insert-dead-letters',
        text: `INSERT INTO dead_letters (run_id, rule, step, error, created_at)
               SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::bigint[])`,
        values: [
          failed.map((c) => c.attempt.runId),
          failed.map((c) => runs.get(c.attempt.runId)!.rule),
          failed.map((c) => runs.get(c.attempt.runId)!.step),
          failed.map(errorOf),
          failed.map((c) => c.at),
        ],
      });
    }
    const finished = done.filter((c) => c.outcome.type === 'succeeded' || c.outcome.type === 'failed');
    if (finished.length === 0) return { held, appended: [] };
    // The end of a run: its outcome event goes to the log, in its trigger's partition (dedup applies),
    // and the audit trail says so. Appended last: the log's lock is held until COMMIT.
    const appended = await this.#append(
      tx,
      finished.map((c) => (c.outcome as { event: CloudEvent }).event),
      // One receivedAt for the batch: the latest completion's time.
      Math.max(...finished.map((c) => c.at)),
      finished.map((c) => runs.get(c.attempt.runId)!.trigger_partition),
    );
    await this.#writeAudit(
      tx,
      finished.map((c, i) => {
        const run = runs.get(c.attempt.runId)!;
        const detail = c.outcome.type === 'failed' ? { step: run.step, error: c.outcome.error.code } : {};
        return {
          at: c.at,
          kind: c.outcome.type === 'failed' ? AuditKind.runFailed : AuditKind.runSucceeded,
          seq: run.trigger_seq,
          rule: run.rule,
          runId: c.attempt.runId,
          detail: { ...detail, eventSeq: appended[i]!.seq },
        };
      }),
    );
    return { held, appended };
  }

  async nextRunDueAt(): Promise<number | undefined> {
    // One statement, one snapshot: a commit cannot land between the two parts.
    const [row] = await this.#query<{ due: number | null; startable: number | null }>(
      `SELECT
         (SELECT min(due) FROM (
            SELECT min(next_attempt_at) AS due FROM runs
            WHERE status = 'pending' AND (concurrency_key IS NULL OR started_at IS NOT NULL)
            UNION ALL
            SELECT min(lease_until) FROM runs WHERE status = 'running') d) AS due,
         (SELECT min(head.due) FROM (
            SELECT DISTINCT ON (concurrency_key) concurrency_key AS key, next_attempt_at AS due,
                   concurrency_max AS max
            FROM runs WHERE status = 'pending' AND started_at IS NULL AND concurrency_key IS NOT NULL
            ORDER BY concurrency_key, id) head
          WHERE (SELECT count(*) FROM runs a WHERE a.concurrency_key = head.key
                   AND a.status IN ('pending', 'running') AND a.started_at IS NOT NULL) < head.max
         ) AS startable`,
      [],
      'next-run-due',
    );
    const due = row?.due ?? undefined;
    const startable = row?.startable ?? undefined;
    if (due === undefined) return startable;
    return startable === undefined ? due : Math.min(due, startable);
  }

  async getRun(id: string): Promise<RunDetail | undefined> {
    const [row] = await this.#query<RunRow>(`SELECT ${runColumns} FROM runs WHERE id = $1`, [id], 'get-run');
    if (row === undefined) return undefined;
    const attempts = await this.#query<AttemptRow>(
      `SELECT run_id, step, step_id, action, attempt, started_at, finished_at, status, output, error
       FROM attempts WHERE run_id = $1 ORDER BY id`,
      [id],
      'attempts-of-run',
    );
    return { ...toRun(row), attempts: attempts.map(toAttempt) };
  }

  async listRuns(query: RunQuery): Promise<Run[]> {
    return (await this.#listRunRows(query, Math.max(0, query.limit))).map(toRun);
  }

  async pageRuns(query: RunQuery, maxBytes: number): Promise<StorePage<Run>> {
    const limit = Math.max(0, query.limit);
    const rows = await this.#listRunRows(query, limit + 1);
    const size = (row: RunRow) => row.context.length + row.outputs.length + (row.error?.length ?? 0);
    return takeWithin(rows, limit, maxBytes, size, toRun);
  }

  #listRunRows(query: RunQuery, limit: number): Promise<RunRow[]> {
    const values: unknown[] = [];
    const where: string[] = [];
    if (query.before !== undefined) {
      values.push(query.before);
      where.push(`id < $${values.length}`);
    }
    if (query.rule !== undefined) {
      values.push(query.rule);
      where.push(`rule = $${values.length}`);
    }
    if (query.status !== undefined) {
      values.push(query.status);
      where.push(`status = $${values.length}`);
    }
    values.push(limit);
    return this.#query<RunRow>(
      `SELECT ${runColumns} FROM runs ${where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`}
       ORDER BY id DESC LIMIT $${values.length}`,
      values,
    );
  }

  async runsForEvent(seq: number): Promise<Run[]> {
    const rows = await this.#query<RunRow>(
      `SELECT ${runColumns} FROM runs WHERE trigger_seq = $1 ORDER BY created_order`,
      [seq],
      'runs-for-event',
    );
    return rows.map(toRun);
  }

  async listDeadLetters(limit: number): Promise<DeadLetter[]> {
    const rows = await this.#query<{
      run_id: string;
      rule: string;
      step: number;
      error: string;
      created_at: number;
    }>('SELECT run_id, rule, step, error, created_at FROM dead_letters ORDER BY id DESC LIMIT $1', [
      Math.max(0, limit),
    ]);
    return rows.map((row) => ({
      runId: row.run_id,
      rule: row.rule,
      step: row.step,
      error: JSON.parse(row.error) as ErrorInfo,
      createdAt: row.created_at,
    }));
  }

  // --- facts ---

  async getFacts(): Promise<Record<string, unknown>> {
    const rows = await this.#query<{ name: string; value: string }>(
      'SELECT name, value FROM facts WHERE value IS NOT NULL ORDER BY name',
    );
    // fromEntries defines own properties, so a fact named `__proto__` stays a fact.
    return Object.fromEntries(rows.map((row) => [row.name, JSON.parse(row.value)]));
  }

  async changeFact(name: string, value: unknown, at: number, chain = 0, partition = 0): Promise<FactChange> {
    return this.#transaction(
      this.#appends,
      async (tx): Promise<FactChange> => {
        // The row lock orders changes of one fact; a fact never set gets its row first, so there is one.
        await tx.query(
          `INSERT INTO facts (name, value, updated_at, changes) VALUES ($1, NULL, $2, 0)
           ON CONFLICT (name) DO NOTHING`,
          [name, at],
        );
        const found = await tx.query<{ value: string | null; changes: number }>(
          'SELECT value, changes FROM facts WHERE name = $1 FOR UPDATE',
          [name],
        );
        const row = found.rows[0]!;
        const before = row.value;
        const after = factText(value);
        if (sameFact(before, after)) return { changed: false };
        let changes = row.changes;
        const data = {
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
          [event] = (await this.#append(tx, [factChangedEvent(name, changes, data, at, chain)], at, [
            partition,
          ])) as [AppendResult];
        } while (event.duplicate);
        await tx.query('UPDATE facts SET value = $2, updated_at = $3, changes = $4 WHERE name = $1', [
          name,
          after,
          at,
          changes,
        ]);
        return { changed: true, event };
      },
      this.#acknowledging((change) => (change.event === undefined ? [] : [change.event])),
    );
  }

  // --- flow state and timers ---

  async loadFactsView(consumer: string, partition: number): Promise<Record<string, unknown>> {
    const rows = await this.#query<{ name: string; value: string }>(
      'SELECT name, value FROM facts_views WHERE consumer = $1 AND partition = $2 ORDER BY name',
      [consumer, partition],
    );
    // fromEntries defines own properties, so a fact named `__proto__` stays a fact.
    return Object.fromEntries(rows.map((row) => [row.name, JSON.parse(row.value)]));
  }

  async loadFlowStates(partition: number): Promise<FlowStateRow[]> {
    const rows = await this.#query<{
      rule: string;
      stage: string;
      key: string;
      hash: string;
      state: string;
      expires_at: number | null;
    }>(
      'SELECT rule, stage, key, hash, state, expires_at FROM flow_states WHERE partition = $1 ORDER BY rule, stage, key',
      [partition],
    );
    return rows.map((row) => ({
      rule: row.rule,
      stage: row.stage,
      key: row.key,
      hash: row.hash,
      state: JSON.parse(row.state),
      expiresAt: row.expires_at,
    }));
  }

  async fireDueTimers(now: number, limit: number): Promise<AppendResult[]> {
    // A lost firing leaves its timer row in place: it fires again, under the same event id.
    return this.#transaction(
      'lazy',
      async (tx) => {
        const due = await tx.query<DueTimer>({
          name: 'due-timers',
          text: `DELETE FROM timers WHERE (partition, rule, stage, key) IN (
                 SELECT partition, rule, stage, key FROM timers WHERE due <= $1
                 ORDER BY due, rule, stage, key, partition LIMIT $2 FOR UPDATE SKIP LOCKED)
               RETURNING partition, rule, stage, key, due`,
          values: [now, Math.max(0, limit)],
        });
        if (due.rows.length === 0) return [];
        const timers = [...due.rows].sort(
          (a, b) =>
            a.due - b.due ||
            compareText(a.rule, b.rule) ||
            compareText(a.stage, b.stage) ||
            compareText(a.key, b.key) ||
            a.partition - b.partition,
        );
        return this.#append(
          tx,
          timers.map((timer) => timerEvent(timer, now)),
          now,
          timers.map((timer) => timer.partition),
        );
      },
      this.#acknowledging((results) => results),
    );
  }

  async nextTimerDueAt(): Promise<number | undefined> {
    const [row] = await this.#query<{ due: number | null }>('SELECT min(due) AS due FROM timers');
    return row?.due ?? undefined;
  }

  // --- audit ---

  async appendAudit(entries: readonly AuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.#transaction('lazy', (tx) => this.#writeAudit(tx, entries));
  }

  async auditForEvent(seq: number): Promise<AuditEntry[]> {
    const rows = await this.#query<AuditRow>(
      'SELECT at, kind, seq, rule, run_id, detail FROM audit WHERE seq = $1 ORDER BY id',
      [seq],
      'audit-for-event',
    );
    return rows.map(toAudit);
  }

  // --- keys ---

  async idKey(): Promise<string> {
    const [row] = await this.#query<{ value: string }>(
      "SELECT value FROM instance_keys WHERE name = 'id-key'",
    );
    // migrate makes the key; a schema without it was changed by hand.
    if (row === undefined)
      throw new ReflexError('REFLEX_ERR_INTERNAL_UNEXPECTED', { reason: 'the id key is missing' });
    return row.value;
  }

  // --- lifecycle ---

  info(): PostgresStoreInfo {
    return {
      url: this.#location.display,
      schema: this.schema,
      readonly: this.#readonly,
      schemaVersion: this.#schemaVersion,
      durability: this.#appends === 'durable' ? 'full' : 'normal',
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      // Completions already handed in are recorded before the pool goes.
      while (this.#completions.length > 0) await this.#flushCompletions();
      await this.#pool.end();
    } finally {
      try {
        // After the pool: the schema stays locked until every transaction of this instance has ended.
        await this.#owner?.end();
      } finally {
        this.#dirLock?.release();
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Byte order of two strings (what `COLLATE "C"` sorts by), for text the database sorted. */
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The last item of each key, in the order the keys first appear. */
function lastByKey<T>(items: readonly T[], key: (item: T) => string[]): T[] {
  const last = new Map<string, T>();
  for (const item of items) {
    const k = key(item).join('\u0000');
    last.delete(k);
    last.set(k, item);
  }
  return [...last.values()];
}

/** Rows grouped by key, each group in the order given. */
function groupBy<T>(rows: readonly T[], key: (row: T) => string): Iterable<T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const k = key(row);
    const group = groups.get(k);
    if (group === undefined) groups.set(k, [row]);
    else group.push(row);
  }
  return groups.values();
}
