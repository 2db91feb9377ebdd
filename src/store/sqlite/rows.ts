import type { ErrorInfo } from '../../core/errors.js';
import type { CloudEvent, LoggedEvent } from '../../core/event.js';
import type { Run, RunContext, RunStatus } from '../../core/ports/store.js';

// Rows and conversions that several parts of the SQLite store read.

/** An `events` row as SQLite returns it. */
export interface EventRow {
  seq: number;
  partition: number;
  received_at: number;
  event: string;
}

/** A `runs` row as SQLite returns it. */
export interface RunRow {
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

/** Converts an `events` row. */
export function toLoggedEvent(row: EventRow): LoggedEvent {
  return {
    seq: row.seq,
    partition: row.partition,
    receivedAt: row.received_at,
    event: JSON.parse(row.event) as CloudEvent,
  };
}

/** Converts a `runs` row. */
export function toRun(row: RunRow): Run {
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

/** Greater than any seq SQLite hands out in practice; the "from the end" cursor. */
export const endOfLog = Number.MAX_SAFE_INTEGER;
