import type { ErrorInfo } from '../core/errors.js';
import type { CloudEvent, LoggedEvent } from '../core/event.js';
import type { Attempt, Run, RunContext, RunStatus } from '../core/ports/store.js';

// The rows both backends read (their tables have the same columns) and how they become the ports' values.

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

export interface AttemptRow {
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

/** Converts an `attempts` row. */
export function toAttempt(row: AttemptRow): Attempt {
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
