import type { AppendResult, CloudEvent, LoggedEvent, LogPosition } from '../../core/event.js';
import type { EventLog, LogRead } from '../../core/ports/store.js';
import { type EventRow, toLoggedEvent } from '../store-rows.js';
import type { SqliteContext } from './context.js';
import type { DurableCommits } from './durability.js';

/**
 * The event log on SQLite: the `events` table, deduplicated on (id, source), its seq handed out by
 * SQLite. `appendOne` is for the other parts' transactions, which append inside their own.
 */
export class SqliteEventLog implements EventLog {
  readonly #durable: DurableCommits;

  // Prepared once: the SQL text is parsed and planned a single time per connection.
  readonly #insertEvent;
  readonly #seqOfEvent;
  readonly #readEvents;
  readonly #readFactChanges;
  readonly #getEvent;
  readonly #eventsById;
  readonly #eventsByIdAndSource;
  readonly #lastSeq;

  // Transactions: better-sqlite3 wraps the function in BEGIN/COMMIT and rolls back if it throws.
  readonly #appendBatch;

  constructor({ db }: SqliteContext, durable: DurableCommits) {
    this.#durable = durable;

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

    this.#appendBatch = db.transaction(
      (events: readonly CloudEvent[], receivedAt: number, partitions: readonly number[] | undefined) => {
        const results = new Array<AppendResult>(events.length);
        for (let i = 0; i < events.length; i++)
          results[i] = this.appendOne(events[i]!, receivedAt, partitions?.[i] ?? 0);
        return results;
      },
    );
  }

  async appendEvents(
    events: readonly CloudEvent[],
    receivedAt: number,
    partitions?: readonly number[],
  ): Promise<AppendResult[]> {
    if (events.length === 0) return [];
    return this.#durable.durably(
      () => this.#appendBatch.immediate(events, receivedAt, partitions),
      (results) => results,
    );
  }

  async readEvents(after: LogPosition, limit: number): Promise<LogRead> {
    const horizon = this.#durable.horizon();
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
    const last = Math.min(throughSeq, this.#durable.horizon());
    return this.#readFactChanges.all(afterSeq, last, Math.max(0, limit)).map(toLoggedEvent);
  }

  async getEvent(seq: number): Promise<LoggedEvent | undefined> {
    const row = this.#getEvent.get(seq);
    return row === undefined ? undefined : toLoggedEvent(row);
  }

  async findEventsById(id: string, source?: string): Promise<LoggedEvent[]> {
    const rows = source === undefined ? this.#eventsById.all(id) : this.#eventsByIdAndSource.all(id, source);
    return rows.map(toLoggedEvent);
  }

  async lastSeq(): Promise<number> {
    return this.#lastSeq.get()?.seq ?? 0;
  }

  /** Appends one event inside the caller's transaction (a duplicate of (id, source) returns the original). */
  appendOne(event: CloudEvent, receivedAt: number, partition: number): AppendResult {
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
}
