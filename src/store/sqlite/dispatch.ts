import { ReflexError } from '../../core/errors.js';
import type { AppendResult, LogPosition } from '../../core/event.js';
import type { DispatchCommit, DispatchStore, FlowStateRow, NewRun } from '../../core/ports/store.js';
import { type DueTimer, timerEvent } from '../store-values.js';
import type { SqliteAuditLog } from './audit.js';
import type { SqliteContext } from './context.js';
import type { SqliteEventLog } from './event-log.js';

interface FlowStateSqlRow {
  rule: string;
  stage: string;
  key: string;
  hash: string;
  state: string;
  expires_at: number | null;
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

export class SqliteDispatchStore implements DispatchStore {
  readonly #log: SqliteEventLog;
  readonly #audit: SqliteAuditLog;

  readonly #getOffset;
  readonly #upsertOffset;
  readonly #insertRun;
  readonly #upsertActivation;
  readonly #rulebookAt;
  readonly #factsView;
  readonly #upsertViewFact;
  readonly #deleteViewFact;
  readonly #flowStates;
  readonly #upsertState;
  readonly #deleteState;
  readonly #upsertTimer;
  readonly #deleteTimer;
  readonly #dueTimers;
  readonly #nextTimer;
  readonly #getMeta;
  readonly #insertMeta;
  readonly #lastPartition;
  readonly #path: string;

  // Transactions: better-sqlite3 wraps the function in BEGIN/COMMIT and rolls back if it throws.
  readonly #commitDispatch;
  readonly #fireTimers;
  readonly #keepPartitionCount;

  constructor({ db, path }: SqliteContext, log: SqliteEventLog, audit: SqliteAuditLog) {
    this.#log = log;
    this.#audit = audit;
    this.#path = path;

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
    this.#upsertActivation = db.prepare<[number, number, string, number]>(
      `INSERT INTO rulebook_activations (seq, version, consumer, partition) VALUES (?, ?, ?, ?)
       ON CONFLICT (seq) DO UPDATE SET version = excluded.version, consumer = excluded.consumer,
                                       partition = excluded.partition`,
    );
    // Only an event the consumer that activated the version has already passed counts as dispatched.
    this.#rulebookAt = db.prepare<[number, number, number], { version: number }>(
      `SELECT a.version AS version FROM rulebook_activations a
       JOIN offsets o ON o.consumer = a.consumer AND o.partition = a.partition
       WHERE a.partition = ? AND a.seq <= ? AND o.seq >= ? ORDER BY a.seq DESC LIMIT 1`,
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
    this.#dueTimers = db.prepare<[number, number], DueTimer>(
      `SELECT partition, rule, stage, key, due FROM timers INDEXED BY timers_by_due WHERE due <= ?
       ORDER BY due, partition, rule, stage, key LIMIT ?`,
    );
    this.#nextTimer = db.prepare<[], { due: number | null }>('SELECT min(due) AS due FROM timers');

    this.#getMeta = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE name = ?');
    this.#insertMeta = db.prepare<[string, string]>('INSERT INTO meta (name, value) VALUES (?, ?)');
    // Read once per data directory, at the first start that keeps the count: a scan of the log is fine.
    this.#lastPartition = db.prepare<[], { partition: number | null }>(
      'SELECT max(partition) AS partition FROM events',
    );

    this.#commitDispatch = db.transaction((commit: DispatchCommit) => {
      for (const run of commit.runs) this.#insertNewRun(run, commit.consumer);
      for (const entry of commit.audit) this.#audit.writeAudit(entry);
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
    this.#keepPartitionCount = db.transaction((partitions: number) => {
      const kept = this.#getMeta.get('partitions');
      if (kept !== undefined) {
        const count = Number(kept.value);
        if (count !== partitions)
          throw this.#otherPartitionCount(partitions, `${count} partitions`, `${count}`);
        return;
      }
      const last = this.#lastPartition.get()?.partition ?? null;
      if (last !== null && last >= partitions) {
        throw this.#otherPartitionCount(partitions, `events in partition ${last}`, `${last + 1} or more`);
      }
      this.#insertMeta.run('partitions', String(partitions));
    });
    this.#fireTimers = db.transaction((now: number, limit: number): AppendResult[] => {
      const due = this.#dueTimers.all(now, Math.max(0, limit));
      return due.map((timer) => {
        this.#deleteTimer.run(timer.partition, timer.rule, timer.stage, timer.key);
        return this.#log.appendOne(timerEvent(timer, now), now, timer.partition);
      });
    });
  }

  async keepPartitionCount(partitions: number): Promise<void> {
    this.#keepPartitionCount.immediate(partitions);
  }

  /**
   * The error for a start whose partition count does not fit the data: `written` says what the data
   * holds, `needed` which counts fit it.
   */
  #otherPartitionCount(partitions: number, written: string, needed: string): ReflexError {
    return new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
      option: 'partitions',
      reason: `it is ${partitions}, but the data at \`${this.#path}\` was written with ${written} (the count is kept with the data: events of a partition the engine lacks would never be dispatched)`,
      fix: `start with partitions: ${needed}; to use another count, start on a new data directory`,
    });
  }

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

  async rulebookVersionAt({ partition, seq }: LogPosition): Promise<number | undefined> {
    return this.#rulebookAt.get(partition, seq, seq)?.version;
  }

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
}
