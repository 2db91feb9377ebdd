import type Database from 'better-sqlite3';
import { ReflexError } from '../../core/errors.js';

/** One numbered step of the SQLite schema. Applied in order; a database records the last one it has. */
export interface Migration {
  /** 1, 2, 3, ...: stored in `PRAGMA user_version` once applied. */
  version: number;
  description: string;
  sql: string;
}

/**
 * The schema of the embedded store, oldest first. Never edit a migration that has shipped: add one.
 * Times are integer milliseconds since the epoch; JSON values are TEXT.
 */
export const migrations: readonly Migration[] = [
  {
    version: 1,
    description: 'event log, offsets, runs, attempts, dead letters, facts, rulebooks, audit',
    sql: `
      -- seq is the rowid: the next one is max(seq) + 1, so the log has no gaps. (AUTOINCREMENT would
      -- burn a number on every duplicate that ON CONFLICT skips.) The price: retention must never delete
      -- the newest event, or its seq would be handed out again under consumers' offsets.
      CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        id TEXT NOT NULL,
        type TEXT NOT NULL,
        subject TEXT,
        received_at INTEGER NOT NULL,
        event TEXT NOT NULL,
        -- The identity (source, id). Written id first so the same index also answers findEventsById
        -- without a source.
        UNIQUE (id, source)
      );
      -- SQLite appends the rowid (seq) to every index, so these also give seq order within a filter.
      CREATE INDEX events_by_type ON events (type);
      CREATE INDEX events_by_source ON events (source);

      CREATE TABLE offsets (
        consumer TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
      );

      CREATE TABLE rulebook_versions (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        files TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );

      -- From seq on, the consumer dispatched with this version.
      CREATE TABLE rulebook_activations (
        seq INTEGER PRIMARY KEY,
        version INTEGER NOT NULL REFERENCES rulebook_versions (id),
        consumer TEXT NOT NULL
      );

      CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        rulebook_version INTEGER NOT NULL REFERENCES rulebook_versions (id),
        trigger_seq INTEGER NOT NULL,
        trigger_id TEXT NOT NULL,
        trigger_source TEXT NOT NULL,
        trigger_type TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
        step INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        outputs TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        next_attempt_at INTEGER,
        lease_owner TEXT,
        lease_until INTEGER,
        error TEXT,
        -- A match is never doubled.
        UNIQUE (trigger_seq, rule)
      );
      -- claimRuns and nextRunDueAt: due pending runs, and leases that run out.
      CREATE INDEX runs_due ON runs (next_attempt_at, id) WHERE status = 'pending';
      CREATE INDEX runs_leased ON runs (lease_until, id) WHERE status = 'running';
      -- listRuns with a filter, newest first.
      CREATE INDEX runs_by_rule ON runs (rule, id);
      CREATE INDEX runs_by_status ON runs (status, id);

      CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        step_id TEXT NOT NULL,
        action TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
        output TEXT,
        error TEXT
      );
      CREATE INDEX attempts_by_run ON attempts (run_id);

      CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        rule TEXT NOT NULL,
        step INTEGER NOT NULL,
        error TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX dead_letters_by_run ON dead_letters (run_id);

      CREATE TABLE facts (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );

      CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        seq INTEGER,
        rule TEXT,
        run_id TEXT,
        detail TEXT
      );
      CREATE INDEX audit_by_seq ON audit (seq) WHERE seq IS NOT NULL;
    `,
  },
  {
    version: 2,
    description: 'runs with ordinal, context and concurrency; flow states; timers; fact change counters',
    sql: `
      -- The uniqueness of a match moves to (trigger_seq, rule, ordinal): SQLite cannot drop a constraint,
      -- so the table is rebuilt (foreign keys are off meanwhile, see migrate). rowid is copied because
      -- runsForEvent reads creation order from it.
      CREATE TABLE runs_v2 (
        id TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        rulebook_version INTEGER NOT NULL REFERENCES rulebook_versions (id),
        trigger_seq INTEGER NOT NULL,
        trigger_id TEXT NOT NULL,
        trigger_source TEXT NOT NULL,
        trigger_type TEXT NOT NULL,
        ordinal INTEGER NOT NULL,
        -- RunContext as JSON: the seqs the run sees as event, events and batch.
        context TEXT NOT NULL,
        concurrency_key TEXT,
        concurrency_max INTEGER,
        status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
        step INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        outputs TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        next_attempt_at INTEGER,
        lease_owner TEXT,
        lease_until INTEGER,
        error TEXT,
        CHECK ((concurrency_key IS NULL) = (concurrency_max IS NULL)),
        CHECK (concurrency_max IS NULL OR concurrency_max >= 1),
        -- A match is never doubled.
        UNIQUE (trigger_seq, rule, ordinal)
      );
      INSERT INTO runs_v2 (rowid, id, rule, rulebook_version, trigger_seq, trigger_id, trigger_source,
                           trigger_type, ordinal, context, concurrency_key, concurrency_max, status, step,
                           attempt, outputs, created_at, started_at, finished_at, next_attempt_at,
                           lease_owner, lease_until, error)
        SELECT rowid, id, rule, rulebook_version, trigger_seq, trigger_id, trigger_source, trigger_type,
               0, json_object('event', trigger_seq), NULL, NULL, status, step, attempt, outputs,
               created_at, started_at, finished_at, next_attempt_at, lease_owner, lease_until, error
        FROM runs;
      DROP TABLE runs;
      ALTER TABLE runs_v2 RENAME TO runs;

      -- claimRuns and nextRunDueAt. A run that has to wait for a concurrency slot (a key, never claimed)
      -- is left out of runs_due and queued in runs_queued instead, so a long queue behind one slot is not
      -- read on every claim; a run that has been claimed holds its slot and is due like any other.
      CREATE INDEX runs_due ON runs (next_attempt_at, id)
        WHERE status = 'pending' AND (concurrency_key IS NULL OR started_at IS NOT NULL);
      CREATE INDEX runs_queued ON runs (concurrency_key, id)
        WHERE status = 'pending' AND started_at IS NULL AND concurrency_key IS NOT NULL;
      CREATE INDEX runs_leased ON runs (lease_until, id) WHERE status = 'running';
      -- Counts the runs holding a key's slots (claimed, not finished) without touching the table.
      CREATE INDEX runs_by_concurrency ON runs (concurrency_key, status, started_at)
        WHERE concurrency_key IS NOT NULL;
      -- listRuns with a filter, newest first.
      CREATE INDEX runs_by_rule ON runs (rule, id);
      CREATE INDEX runs_by_status ON runs (status, id);

      -- Correlation partial matches and storm-control windows, one row per (rule, stage, key).
      CREATE TABLE flow_states (
        rule TEXT NOT NULL,
        stage TEXT NOT NULL,
        key TEXT NOT NULL,
        hash TEXT NOT NULL,
        state TEXT NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (rule, stage, key)
      );

      -- At most one timer per (rule, stage, key).
      CREATE TABLE timers (
        rule TEXT NOT NULL,
        stage TEXT NOT NULL,
        key TEXT NOT NULL,
        due INTEGER NOT NULL,
        PRIMARY KEY (rule, stage, key)
      );
      -- fireDueTimers and nextTimerDueAt, in a fixed order for equal due times.
      CREATE INDEX timers_by_due ON timers (due, rule, stage, key);

      -- A removed fact keeps its row (value NULL) so that its change counter, which numbers the ids of
      -- its reflex.fact.changed events, never starts again at 1 and collides with an older event.
      CREATE TABLE facts_v2 (
        name TEXT PRIMARY KEY,
        value TEXT,
        updated_at INTEGER NOT NULL,
        changes INTEGER NOT NULL
      );
      INSERT INTO facts_v2 (name, value, updated_at, changes) SELECT name, value, updated_at, 0 FROM facts;
      DROP TABLE facts;
      ALTER TABLE facts_v2 RENAME TO facts;
    `,
  },
  {
    version: 3,
    description: 'runs count their claims, so a run whose process keeps dying ends',
    sql: `
      -- Claims since the last recorded attempt of the run's current step (see Store.claimRuns): the
      -- executor fails a run with too many. Runs already running when this is applied start at 0.
      ALTER TABLE runs ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 4,
    description: 'a random key for ids that outsiders cannot predict',
    sql: `
      -- Made once, with the data, so that ids derived from it are the same when a decision is replayed,
      -- and restored with a backup. 32 random bytes as hex.
      CREATE TABLE instance_keys (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );
      INSERT INTO instance_keys (name, value) VALUES ('id-key', lower(hex(randomblob(32))));
    `,
  },
  {
    version: 5,
    description:
      'each dispatcher keeps the facts as of its offset, so an event is decided with the facts of its place in the log',
    sql: `
      -- The facts view of one dispatcher: every reflex.fact.changed event up to its offset applied
      -- (DispatchStore.loadFactsView). Written with the offset in each dispatch commit.
      CREATE TABLE dispatch_facts (
        consumer TEXT NOT NULL,
        partition INTEGER NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (consumer, partition, name)
      );
      -- The view of each existing dispatcher, as of its offset: a fact changed after the offset has the
      -- value its first later change found (its "previous", unless it was added then); any other fact
      -- has its current value.
      INSERT INTO dispatch_facts (consumer, partition, name, value)
      SELECT o.consumer, 0, f.name, f.value FROM offsets o JOIN facts f
      WHERE f.value IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM events e
        WHERE e.type = 'reflex.fact.changed' AND e.source = 'reflex' AND e.seq > o.seq
          AND e.event ->> '$.data.name' = f.name
      );
      INSERT INTO dispatch_facts (consumer, partition, name, value)
      SELECT o.consumer, 0, e.event ->> '$.data.name', e.event -> '$.data.previous'
      FROM offsets o JOIN events e
      WHERE e.type = 'reflex.fact.changed' AND e.source = 'reflex' AND e.seq > o.seq
        AND NOT coalesce(e.event ->> '$.data.added', 0)
        AND e.seq = (
          SELECT min(later.seq) FROM events later
          WHERE later.type = 'reflex.fact.changed' AND later.source = 'reflex' AND later.seq > o.seq
            AND later.event ->> '$.data.name' = e.event ->> '$.data.name'
        );
    `,
  },
  {
    version: 6,
    description: 'the log is split into partitions; offsets, flow states and timers are kept per partition',
    sql: `
      -- Everything written before partitions is partition 0. seq stays one sequence for the whole log.
      ALTER TABLE events ADD COLUMN partition INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE runs ADD COLUMN trigger_partition INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE rulebook_activations ADD COLUMN partition INTEGER NOT NULL DEFAULT 0;

      CREATE TABLE offsets_v2 (
        consumer TEXT NOT NULL,
        partition INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (consumer, partition)
      );
      INSERT INTO offsets_v2 (consumer, partition, seq) SELECT consumer, 0, seq FROM offsets;
      DROP TABLE offsets;
      ALTER TABLE offsets_v2 RENAME TO offsets;

      CREATE TABLE flow_states_v2 (
        partition INTEGER NOT NULL,
        rule TEXT NOT NULL,
        stage TEXT NOT NULL,
        key TEXT NOT NULL,
        hash TEXT NOT NULL,
        state TEXT NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (partition, rule, stage, key)
      );
      INSERT INTO flow_states_v2 (partition, rule, stage, key, hash, state, expires_at)
      SELECT 0, rule, stage, key, hash, state, expires_at FROM flow_states;
      DROP TABLE flow_states;
      ALTER TABLE flow_states_v2 RENAME TO flow_states;

      -- At most one timer per (partition, rule, stage, key); its reflex.timer event goes to its partition.
      CREATE TABLE timers_v2 (
        partition INTEGER NOT NULL,
        rule TEXT NOT NULL,
        stage TEXT NOT NULL,
        key TEXT NOT NULL,
        due INTEGER NOT NULL,
        PRIMARY KEY (partition, rule, stage, key)
      );
      INSERT INTO timers_v2 (partition, rule, stage, key, due) SELECT 0, rule, stage, key, due FROM timers;
      DROP TABLE timers;
      ALTER TABLE timers_v2 RENAME TO timers;
      CREATE INDEX timers_by_due ON timers (due, partition, rule, stage, key);
    `,
  },
];

/** The schema version this Reflex writes and reads: the last migration's. */
export const schemaVersion: number = migrations.at(-1)?.version ?? 0;

/** Reads the schema version a database records (0 for a new, empty one). */
export function readSchemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * Brings the database at `path` up to `schemaVersion`, one transaction per migration, and returns the
 * version it found. Refuses a database written by a newer Reflex rather than guess at its tables.
 */
export function migrate(db: Database.Database, path: string): number {
  const found = readSchemaVersion(db);
  if (found > schemaVersion) {
    throw new ReflexError('REFLEX_ERR_STORE_NEWER_SCHEMA', { path, found, known: schemaVersion });
  }
  if (found === schemaVersion) return found;
  // A migration may rebuild a table (create, copy, drop, rename). With foreign keys on, dropping the old
  // table would delete the rows that reference it (ON DELETE CASCADE), so they are off meanwhile — the
  // pragma is a no-op inside a transaction — and checked before each migration commits.
  const foreignKeys = db.pragma('foreign_keys', { simple: true }) === 1;
  db.pragma('foreign_keys = OFF');
  try {
    for (const migration of migrations) {
      if (migration.version <= found) continue;
      // user_version lives in the database header, so setting it commits or rolls back with the DDL.
      db.transaction(() => {
        db.exec(migration.sql);
        const broken = db.pragma('foreign_key_check') as unknown[];
        if (broken.length > 0) {
          throw new ReflexError('REFLEX_ERR_INTERNAL_UNEXPECTED', {
            reason: `migration ${migration.version} of ${path} left ${broken.length} broken references`,
          });
        }
        db.pragma(`user_version = ${migration.version}`);
      }).immediate();
    }
  } finally {
    if (foreignKeys) db.pragma('foreign_keys = ON');
  }
  return found;
}
