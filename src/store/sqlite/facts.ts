import type { AppendResult } from '../../core/event.js';
import type { FactChange, FactStore } from '../../core/ports/store.js';
import { factChangedEvent, factText, sameFact } from '../store-values.js';
import type { SqliteContext } from './context.js';
import type { DurableCommits } from './durability.js';
import type { SqliteEventLog } from './event-log.js';

/**
 * Facts on SQLite: the `facts` table, and each change appended to the log as a `reflex.fact.changed`
 * event in the same transaction, acknowledged as durably as an append.
 */
export class SqliteFactStore implements FactStore {
  readonly #log: SqliteEventLog;
  readonly #durable: DurableCommits;

  readonly #facts;
  readonly #factRow;
  readonly #writeFact;
  readonly #changeFact;

  constructor({ db }: SqliteContext, log: SqliteEventLog, durable: DurableCommits) {
    this.#log = log;
    this.#durable = durable;

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
    this.#changeFact = db.transaction(
      (name: string, value: unknown, at: number, chain: number, partition: number): FactChange => {
        const row = this.#factRow.get(name);
        const before = row?.value ?? null;
        const after = factText(value);
        if (sameFact(before, after)) return { changed: false };
        let changes = row?.changes ?? 0;
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
          event = this.#log.appendOne(factChangedEvent(name, changes, data, at, chain), at, partition);
        } while (event.duplicate);
        this.#writeFact.run(name, after, at, changes);
        return { changed: true, event };
      },
    );
  }

  async getFacts(): Promise<Record<string, unknown>> {
    // fromEntries defines own properties, so a fact named `__proto__` stays a fact.
    return Object.fromEntries(this.#facts.all().map((row) => [row.name, JSON.parse(row.value)]));
  }

  async changeFact(name: string, value: unknown, at: number, chain = 0, partition = 0): Promise<FactChange> {
    return this.#durable.durably(
      () => this.#changeFact.immediate(name, value, at, chain, partition),
      (change) => (change.event === undefined ? [] : [change.event]),
    );
  }
}
