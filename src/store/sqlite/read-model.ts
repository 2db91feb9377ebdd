import type Database from 'better-sqlite3';
import type { ErrorInfo } from '../../core/errors.js';
import type { LoggedEvent } from '../../core/event.js';
import type {
  DeadLetter,
  EventQuery,
  ReadModel,
  Run,
  RunDetail,
  RunQuery,
  StorePage,
} from '../../core/ports/store.js';
import {
  type AttemptRow,
  type EventRow,
  type RunRow,
  toAttempt,
  toLoggedEvent,
  toRun,
} from '../store-rows.js';
import { takeWithin } from '../store-values.js';
import type { SqliteContext } from './context.js';
import { endOfLog } from './durability.js';

interface DeadLetterRow {
  run_id: string;
  rule: string;
  step: number;
  error: string;
  created_at: number;
}

/** The read model on SQLite: the listings and details the API, the CLI and explain read. */
export class SqliteReadModel implements ReadModel {
  readonly #db: Database.Database;
  readonly #listEventStatements = new Map<string, Database.Statement<unknown[], EventRow>>();
  readonly #listRunStatements = new Map<string, Database.Statement<unknown[], RunRow>>();

  readonly #getRun;
  readonly #attemptsOfRun;
  readonly #runsForEvent;
  readonly #deadLetters;

  constructor({ db }: SqliteContext) {
    this.#db = db;
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
}
