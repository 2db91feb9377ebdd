import { toErrorInfo } from './errors.js';
import type { LoggedEvent } from './event.js';
import type { ExpressionContext } from './expression.js';
import { type AuditEntry, AuditKind, type NewRun } from './ports/store.js';
import type { RuleIndex } from './rule-index.js';

/** Extension attribute that counts how many rule outcomes led to an event (0 or absent: from outside). */
export const chainExtension = 'reflexchain';

/** How deep an event stands in a chain of rule outcomes: 0 for events from outside. */
export function chainDepth(event: LoggedEvent['event']): number {
  const depth = event[chainExtension];
  return typeof depth === 'number' && Number.isInteger(depth) && depth > 0 ? depth : 0;
}

/** Everything `decideForEvent` reads. It reads nothing else, so replaying an event decides the same. */
export interface DecisionInput {
  event: LoggedEvent;
  index: RuleIndex;
  rulebookVersion: number;
  facts: Record<string, unknown>;
  /** When the dispatcher decides: stamps the runs and audit entries. */
  now: number;
  /**
   * Rules do not fire on events deeper than this in a chain of rule outcomes, which stops a rule that
   * reacts to its own failure from looping forever.
   * @default 8
   */
  maxChainDepth: number;
  newRunId: () => string;
}

export interface Decision {
  runs: NewRun[];
  audit: AuditEntry[];
}

/**
 * Decides what one event causes: for every candidate rule in order, evaluate its condition and create a
 * run, until a rule with `stop: true` fires. Conditions see `now` as the time the event was logged, so
 * the decision is the same when the event is replayed.
 */
export function decideForEvent(input: DecisionInput): Decision {
  const { event, index } = input;
  const runs: NewRun[] = [];
  const audit: AuditEntry[] = [];
  const at = input.now;
  const candidates = index.candidates(event.event);
  if (candidates.length === 0) return { runs, audit };
  const tooDeep = chainDepth(event.event) > input.maxChainDepth;
  let stoppedBy: string | undefined;
  let context: ExpressionContext | undefined;
  for (const i of candidates) {
    const rule = index.rules[i]!;
    if (!rule.enabled) continue;
    if (stoppedBy !== undefined) {
      audit.push({ at, kind: AuditKind.stopped, seq: event.seq, rule: rule.name, detail: { by: stoppedBy } });
      continue;
    }
    if (tooDeep) {
      audit.push({
        at,
        kind: AuditKind.chainTooDeep,
        seq: event.seq,
        rule: rule.name,
        detail: { depth: chainDepth(event.event), limit: input.maxChainDepth },
      });
      continue;
    }
    if (rule.condition) {
      context ??= { event: event.event, facts: input.facts, vars: rule.vars, now: event.receivedAt };
      context.vars = rule.vars;
      let holds: boolean;
      try {
        holds = rule.condition.evaluate(context);
      } catch (error) {
        audit.push({
          at,
          kind: AuditKind.conditionError,
          seq: event.seq,
          rule: rule.name,
          detail: { error: toErrorInfo(error) },
        });
        continue;
      }
      if (!holds) {
        audit.push({ at, kind: AuditKind.conditionFalse, seq: event.seq, rule: rule.name });
        continue;
      }
    }
    const id = input.newRunId();
    runs.push({
      id,
      rule: rule.name,
      rulebookVersion: input.rulebookVersion,
      trigger: { seq: event.seq, id: event.event.id, source: event.event.source, type: event.event.type },
      createdAt: at,
    });
    audit.push({ at, kind: AuditKind.runCreated, seq: event.seq, rule: rule.name, runId: id });
    if (rule.stop) stoppedBy = rule.name;
  }
  return { runs, audit };
}
