import type { AppendResult, CloudEvent } from '../core/event.js';
import type { StorePage } from '../core/ports/store.js';

/**
 * Values every store backend computes the same way, so that SQLite and PostgreSQL give the same answers
 * (the conformance suite checks they do): the events that state changes append, how fact values compare,
 * how runs are ordered for claims, and how a page is cut by size.
 */

/** A due timer, as the `reflex.timer` event it becomes names it. */
export interface DueTimer {
  partition: number;
  rule: string;
  stage: string;
  key: string;
  due: number;
}

/** The `reflex.timer` event a due timer becomes (see `DispatchStore.fireDueTimers`). */
export function timerEvent(timer: DueTimer, now: number): CloudEvent {
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

/** The `reflex.fact.changed` event of a fact's `changes`-th change (see `Store.changeFact`). */
export function factChangedEvent(
  name: string,
  changes: number,
  data: { value: unknown; previous: unknown; added: boolean; removed: boolean },
  at: number,
  chain: number,
): CloudEvent {
  return {
    specversion: '1.0',
    id: `fact/${name}/${changes}`,
    source: 'reflex',
    type: 'reflex.fact.changed',
    time: new Date(at).toISOString(),
    data: { name, ...data },
    ...(chain > 0 ? { reflexchain: chain } : {}),
  };
}

/** A fact's value as stored: JSON text, or null for "absent" (`undefined`). */
export function factText(value: unknown): string | null {
  // JSON.stringify gives undefined for a function or a symbol: such a value reads back as null.
  return value === undefined ? null : (JSON.stringify(value) ?? 'null');
}

/**
 * JSON text of a value read from JSON, with every object's keys sorted: equal for equal JSON values,
 * whatever order their keys were written in.
 */
export function canonicalJson(value: unknown): string {
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
export function sameFact(before: string | null, after: string | null): boolean {
  if (before === after) return true;
  if (before === null || after === null) return false;
  return canonicalJson(JSON.parse(before)) === canonicalJson(JSON.parse(after));
}

/** The smallest seq among the events a commit newly appended (duplicates were there before), if any. */
export function firstAppended(results: readonly AppendResult[]): number | undefined {
  let first: number | undefined;
  for (const r of results) if (!r.duplicate && (first === undefined || r.seq < first)) first = r.seq;
  return first;
}

/** JSON text for a column; `undefined` (which JSON cannot hold) is stored as SQL NULL. */
export function jsonOrNull(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

/** Sets a key even when it is `__proto__`, which plain assignment would turn into a prototype change. */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A run that claimRuns may lease, with the time that orders it among the others. */
export interface ClaimCandidate {
  id: string;
  due: number;
}

/** Due, then id (byte order): the order claimRuns hands runs out in. */
export function byDueThenId(a: ClaimCandidate, b: ClaimCandidate): number {
  return a.due - b.due || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** A run waiting for a slot of its concurrency key, with the slots its key has taken. */
export interface QueuedRun extends ClaimCandidate {
  key: string;
  max: number;
  /** Runs of the key that hold a slot (claimed at least once, not finished). */
  active: number;
}

/**
 * The queued runs that may start now, given each key's queue in id order (at most `limit` per key):
 * while the key has fewer active runs than the run's `max`, stopping at the first that is not due (a
 * younger run never overtakes an older one of its key).
 */
export function startableRuns(queues: Iterable<readonly QueuedRun[]>, now: number): ClaimCandidate[] {
  const startable: ClaimCandidate[] = [];
  for (const queue of queues) {
    let taken = queue[0]?.active ?? 0;
    let due = Number.NEGATIVE_INFINITY;
    for (const run of queue) {
      if (run.due > now || taken >= run.max) break;
      taken += 1;
      // Never earlier than an older run of the key, so a claim cut off at `limit` keeps their order.
      due = Math.max(due, run.due);
      startable.push({ id: run.id, due });
    }
  }
  return startable;
}

/**
 * Takes rows while they number at most `limit` and their sizes stay within `maxBytes` (the first row
 * always); `rows` holds one row more than the limit when there may be more. Only rows taken are
 * converted.
 */
export function takeWithin<Row, T>(
  rows: Iterable<Row>,
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
      // Leaving the loop ends the iteration early (for a SQLite statement, that ends the statement).
      return { items, more: true };
    }
    bytes += rowBytes;
    items.push(convert(row));
  }
  return { items, more: false };
}
