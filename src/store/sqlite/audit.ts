import type { AuditEntry, AuditKind, AuditLog } from '../../core/ports/store.js';
import { jsonOrNull } from '../store-values.js';
import type { SqliteContext } from './context.js';

interface AuditRow {
  at: number;
  kind: AuditKind;
  seq: number | null;
  rule: string | null;
  run_id: string | null;
  detail: string | null;
}

function toAudit(row: AuditRow): AuditEntry {
  const entry: AuditEntry = { at: row.at, kind: row.kind };
  if (row.seq !== null) entry.seq = row.seq;
  if (row.rule !== null) entry.rule = row.rule;
  if (row.run_id !== null) entry.runId = row.run_id;
  if (row.detail !== null) entry.detail = JSON.parse(row.detail) as Record<string, unknown>;
  return entry;
}

/** The audit trail on SQLite. `writeAudit` is for the other parts' transactions. */
export class SqliteAuditLog implements AuditLog {
  readonly #insertAudit;
  readonly #auditForEvent;
  readonly #appendAudit;

  constructor({ db }: SqliteContext) {
    this.#insertAudit = db.prepare<
      [number, string, number | null, string | null, string | null, string | null]
    >('INSERT INTO audit (at, kind, seq, rule, run_id, detail) VALUES (?, ?, ?, ?, ?, ?)');
    this.#auditForEvent = db.prepare<[number], AuditRow>(
      'SELECT at, kind, seq, rule, run_id, detail FROM audit WHERE seq = ? ORDER BY id',
    );
    this.#appendAudit = db.transaction((entries: readonly AuditEntry[]) => {
      for (const entry of entries) this.writeAudit(entry);
    });
  }

  async appendAudit(entries: readonly AuditEntry[]): Promise<void> {
    if (entries.length > 0) this.#appendAudit.immediate(entries);
  }

  async auditForEvent(seq: number): Promise<AuditEntry[]> {
    return this.#auditForEvent.all(seq).map(toAudit);
  }

  /** Writes one entry inside the caller's transaction. */
  writeAudit(entry: AuditEntry): void {
    this.#insertAudit.run(
      entry.at,
      entry.kind,
      entry.seq ?? null,
      entry.rule ?? null,
      entry.runId ?? null,
      jsonOrNull(entry.detail),
    );
  }
}
