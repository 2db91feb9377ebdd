/**
 * The AuditLog port: the append-only trail of decisions (what a match led to, rulebook loads).
 */
export interface AuditLog {
  appendAudit(entries: readonly AuditEntry[]): Promise<void>;
  /** Audit entries about the event at `seq`, in the order written. */
  auditForEvent(seq: number): Promise<AuditEntry[]>;
}

export const AuditKind = {
  /** A rule's pattern matched and its condition (if any) held: a run was created. */
  runCreated: 'run.created',
  /** The pattern matched but the condition was false. */
  conditionFalse: 'rule.condition-false',
  /** The pattern matched but the condition could not be evaluated. */
  conditionError: 'rule.condition-error',
  /** A rule matched after an earlier rule said `stop: true`. */
  stopped: 'rule.stopped',
  /** A rule matched an event derived from too long a chain of rule outcomes. */
  chainTooDeep: 'rule.chain-too-deep',
  /** The event is held in a correlation's partial match or a storm-control window, waiting for more. */
  held: 'rule.held',
  /** Storm control dropped or delayed the event or its firing (detail: by, key, until). */
  suppressed: 'rule.suppressed',
  /** The event was the awaited one of an `absence` and came in time: that wait ended without firing. */
  waitEnded: 'rule.wait-ended',
  /** A `by`/`key` expression failed on the event, so the rule skipped it. */
  keyError: 'rule.key-error',
  runSucceeded: 'run.succeeded',
  runFailed: 'run.failed',
  rulebookLoaded: 'rulebook.loaded',
  rulebookRejected: 'rulebook.rejected',
} as const;
export type AuditKind = (typeof AuditKind)[keyof typeof AuditKind];

/** One decision in the append-only audit trail. */
export interface AuditEntry {
  at: number;
  kind: AuditKind;
  seq?: number;
  rule?: string;
  runId?: string;
  detail?: Record<string, unknown>;
}
