import { setImmediate as nextTurn } from 'node:timers/promises';
import { type ErrorInfo, ReflexError } from '../core/errors.js';
import type { LoggedEvent } from '../core/event.js';
import {
  createPatternExplainer,
  type PatternExplainer,
  type PatternExplanation,
  type PatternMismatch,
  type PatternMismatchUnexplained,
} from '../core/pattern/explain.js';
import type { Pattern } from '../core/pattern/pattern.js';
import {
  type AuditEntry,
  AuditKind,
  type AuditLog,
  type DispatchStore,
  type EventLog,
  type ReadModel,
  type Run,
  type RunDetail,
  type RunStatus,
} from '../core/ports/store.js';
import type { Rule, Rulebook } from '../core/rule.js';
import type { RulebookVersions } from './rulebook-versions.js';

/** One page of a listing; pass `next` back as `cursor` for the following page. */
export interface Page<T> {
  items: T[];
  next: string | null;
}

export interface EventListQuery {
  type?: string;
  source?: string;
  /** Oldest first from just after this seq (for tailing the log). */
  after?: number;
  cursor?: string;
  /** @default 50 (at most 1000) */
  limit?: number;
}

export interface RunListQuery {
  rule?: string;
  status?: RunStatus;
  cursor?: string;
  /** @default 50 (at most 1000) */
  limit?: number;
}

/** Why one rule did or did not fire on one event. */
export interface RuleExplanation {
  rule: string;
  verdict:
    | 'fired'
    | 'no-match'
    | 'condition-false'
    | 'condition-error'
    | 'disabled'
    | 'stopped'
    | 'chain-too-deep'
    | 'held'
    | 'suppressed'
    | 'ended-wait'
    | 'ignored'
    | 'key-error'
    | 'not-dispatched';
  /** One sentence for a person. */
  reason: string;
  /** How the pattern of a single-event rule fared; null when it has none, or for a correlation. */
  pattern: PatternExplanation | null;
  /** For a correlation: how each sub-condition's pattern fared on this event. */
  subs?: Array<{ name: string; pattern: PatternExplanation | null }>;
  /** Every run the rule created for this event (a correlation may create several). */
  runs?: Array<{ id: string; status: RunStatus }>;
  condition?: { expression: string; result: 'true' | 'false' | 'error' | 'not evaluated'; error?: ErrorInfo };
  run?: { id: string; status: RunStatus };
}

export interface Explanation {
  event: { seq: number; id: string; source: string; type: string; receivedAt: string };
  /** Whether the dispatcher has decided on this event yet. */
  dispatched: boolean;
  /** The rulebook version the event was (or will be) decided with. */
  rulebookVersion: number | null;
  rules: RuleExplanation[];
}

/** Read-only questions about the log and the runs, shared by the HTTP API and the CLI. */
export interface Queries {
  listEvents(query: EventListQuery): Promise<Page<LoggedEvent>>;
  getEvent(seq: number): Promise<LoggedEvent>;
  /** Finds an event by seq (a number) or by id (the newest with that id when several sources used it). */
  resolveEvent(ref: string): Promise<LoggedEvent>;
  explain(ref: string): Promise<Explanation>;
  listRuns(query: RunListQuery): Promise<Page<Run>>;
  getRun(id: string): Promise<RunDetail>;
}

export interface QueriesOptions {
  /** What the API reads: the log, the read model, the audit trail, and how far dispatch has come. */
  store: Pick<EventLog, 'getEvent' | 'findEventsById'> &
    ReadModel &
    Pick<AuditLog, 'auditForEvent'> &
    Pick<DispatchStore, 'getOffset' | 'rulebookVersionAt'>;
  versions: RulebookVersions;
  /**
   * Most bytes of events (their stored JSON) or runs one page of a listing holds: past it the page ends
   * early, with a `next` cursor, so that a listing of big events costs about this much to read and send,
   * whatever its `limit`. A single larger item is a page of its own.
   * @default 1048576 (1 MiB)
   */
  pageBytes?: number;
  /** The consumer whose offset says what has been dispatched. @default 'dispatcher' */
  consumer?: string;
  /** The version in force now, for events not dispatched yet. */
  activeVersion?: () => number | undefined;
}

const maxLimit = 1000;

/**
 * Working out where patterns fail yields to other work whenever this many milliseconds have passed: on a
 * big event it can take a while, and other requests must not wait for it.
 */
const explainSliceMs = 5;

/** One explainer per rulebook version (its patterns compiled into one automaton), made when first asked. */
const explainers = new WeakMap<Rulebook, { explainer: PatternExplainer; indexes: Map<Pattern, number> }>();

/** How each pattern of `rulebook` (those of sub-conditions, and those conditions imply) fares on `event`. */
async function explainPatterns(
  rulebook: Rulebook,
  event: unknown,
): Promise<Map<Pattern, PatternExplanation>> {
  let entry = explainers.get(rulebook);
  if (entry === undefined) {
    const indexes = new Map<Pattern, number>();
    for (const rule of rulebook.rules) {
      for (const sub of rule.subs) {
        for (const pattern of [sub.pattern, sub.indexPattern]) {
          if (pattern !== undefined && !indexes.has(pattern)) indexes.set(pattern, indexes.size);
        }
      }
    }
    entry = { explainer: createPatternExplainer([...indexes.keys()]), indexes };
    explainers.set(rulebook, entry);
  }
  const of = entry.explainer.explain(event);
  const out = new Map<Pattern, PatternExplanation>();
  let since = performance.now();
  for (const [pattern, index] of entry.indexes) {
    const steps = of.steps(index);
    for (let step = steps.next(); ; step = steps.next()) {
      if (step.done) {
        out.set(pattern, step.value);
        break;
      }
      if (performance.now() - since > explainSliceMs) {
        await nextTurn();
        since = performance.now();
      }
    }
  }
  return out;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string | undefined): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    if (k === undefined) continue;
    const group = groups.get(k);
    if (group === undefined) groups.set(k, [item]);
    else group.push(item);
  }
  return groups;
}

export function createQueries(options: QueriesOptions): Queries {
  const { store, versions } = options;
  const consumer = options.consumer ?? 'dispatcher';
  const pageBytes = options.pageBytes ?? 1_048_576;

  const getEvent = async (seq: number) => {
    const event = await store.getEvent(seq);
    if (!event) throw new ReflexError('REFLEX_ERR_EVENT_NOT_FOUND', { what: `with seq ${seq}` });
    return event;
  };

  const resolveEvent = async (ref: string) => {
    if (/^\d+$/.test(ref)) {
      const bySeq = await store.getEvent(Number(ref));
      if (bySeq) return bySeq;
    }
    const found = await store.findEventsById(ref);
    const newest = found[found.length - 1];
    if (!newest)
      throw new ReflexError('REFLEX_ERR_EVENT_NOT_FOUND', { what: `with seq or id ${JSON.stringify(ref)}` });
    return newest;
  };

  return {
    async listEvents(query) {
      const limit = checkLimit(query.limit);
      const position = query.cursor !== undefined ? decodeCursor(query.cursor, 'events') : undefined;
      const after = position && 'after' in position ? position.after : position ? undefined : query.after;
      const before = position && 'before' in position ? position.before : undefined;
      const { items, more } = await store.pageEvents(
        {
          ...(query.type === undefined ? {} : { type: query.type }),
          ...(query.source === undefined ? {} : { source: query.source }),
          ...(after === undefined ? {} : { after }),
          ...(before === undefined ? {} : { before }),
          limit,
        },
        pageBytes,
      );
      const last = items[items.length - 1];
      let next: string | null = null;
      if (more && last) next = encodeCursor(after !== undefined ? { after: last.seq } : { before: last.seq });
      return { items, next };
    },
    getEvent,
    resolveEvent,
    async explain(ref) {
      const logged = await resolveEvent(ref);
      const offset = await store.getOffset(consumer, logged.partition);
      const dispatched = logged.seq <= offset;
      const versionId = dispatched ? await store.rulebookVersionAt(logged) : options.activeVersion?.();
      const base = {
        event: {
          seq: logged.seq,
          id: logged.event.id,
          source: logged.event.source,
          type: logged.event.type,
          receivedAt: new Date(logged.receivedAt).toISOString(),
        },
        dispatched,
        rulebookVersion: versionId ?? null,
      };
      if (versionId === undefined) return { ...base, rules: [] };
      const version = await versions.get(versionId);
      const audit = dispatched ? await store.auditForEvent(logged.seq) : [];
      const runs = dispatched ? await store.runsForEvent(logged.seq) : [];
      const auditByRule = groupBy(audit, (entry) => entry.rule);
      const runsByRule = groupBy(runs, (run) => run.rule);
      const patterns = await explainPatterns(version.rulebook, logged.event);
      const rules = version.rulebook.rules.map((rule) =>
        explainRule(
          rule,
          logged,
          dispatched,
          auditByRule.get(rule.name) ?? [],
          runsByRule.get(rule.name) ?? [],
          (pattern) => patterns.get(pattern)!,
        ),
      );
      return { ...base, rules };
    },
    async listRuns(query) {
      const limit = checkLimit(query.limit);
      const position = query.cursor !== undefined ? decodeCursor(query.cursor, 'runs') : undefined;
      const { items, more } = await store.pageRuns(
        {
          ...(query.rule === undefined ? {} : { rule: query.rule }),
          ...(query.status === undefined ? {} : { status: query.status }),
          ...(position && 'run' in position ? { before: position.run } : {}),
          limit,
        },
        pageBytes,
      );
      const last = items[items.length - 1];
      return { items, next: more && last ? encodeCursor({ run: last.id }) : null };
    },
    async getRun(id) {
      const run = await store.getRun(id);
      if (!run) throw new ReflexError('REFLEX_ERR_RUN_NOT_FOUND', { id });
      return run;
    },
  };
}

/** Why one rule did or did not act on one event, from its patterns and the rule's audit entries for it. */
function explainRule(
  rule: Rule,
  logged: LoggedEvent,
  dispatched: boolean,
  entries: readonly AuditEntry[],
  runs: readonly Run[],
  explainPattern: (pattern: Pattern) => PatternExplanation,
): RuleExplanation {
  const single = rule.flow.when.type === 'single';
  const patterns = rule.subs.map((sub) => ({
    name: sub.name,
    pattern: sub.pattern ? explainPattern(sub.pattern) : null,
  }));
  const first = rule.subs[0];
  const out: RuleExplanation = {
    rule: rule.name,
    verdict: 'no-match',
    reason: '',
    pattern: single ? patterns[0]!.pattern : null,
  };
  if (!single) out.subs = patterns;
  const condition =
    single && first?.condition
      ? {
          expression: first.condition.source,
          result: 'not evaluated' as 'true' | 'false' | 'error' | 'not evaluated',
        }
      : undefined;
  if (condition) out.condition = condition;
  if (!rule.enabled)
    return { ...out, verdict: 'disabled', reason: 'The rule is disabled (`enabled: false`).' };
  const matchedAny = patterns.some((p) => p.pattern === null || p.pattern.matched);
  const isTimer = entries.length > 0 && logged.event.type === 'reflex.timer';
  if (!matchedAny && !isTimer) {
    const mismatch = patterns.find((p) => p.pattern && !p.pattern.matched)?.pattern;
    const reason = mismatch && !mismatch.matched ? describeMismatch(mismatch) : 'The pattern did not match.';
    return { ...out, verdict: 'no-match', reason: single ? reason : `No sub-condition matched. ${reason}` };
  }
  // A condition-only rule is indexed by the pattern its condition implies: an event outside it never
  // reached the condition, which is then false by construction.
  if (single && first && !first.pattern && first.indexPattern) {
    const implied = explainPattern(first.indexPattern);
    if (!implied.matched) {
      if (condition) condition.result = 'false';
      const why =
        implied.path === null
          ? `the event lies outside the events it can hold for; ${implied.reason}.`
          : describeMismatch(implied).replace(/^The pattern did not match/, 'it needs');
      return {
        ...out,
        verdict: 'condition-false',
        reason: `The condition \`${first.condition?.source}\` is false: ${why}`,
      };
    }
  }
  if (!dispatched) {
    return {
      ...out,
      verdict: 'not-dispatched',
      reason: 'The pattern matches; the event has not been dispatched yet.',
    };
  }
  if (runs.length > 0) {
    if (condition) condition.result = 'true';
    const list = runs.map((r) => `${r.id} (${r.status})`).join(', ');
    return {
      ...out,
      verdict: 'fired',
      reason:
        runs.length === 1 ? `The rule fired: run ${list}.` : `The rule fired ${runs.length} runs: ${list}.`,
      run: { id: runs[0]!.id, status: runs[0]!.status },
      runs: runs.map((r) => ({ id: r.id, status: r.status })),
    };
  }
  const find = (kind: AuditEntry['kind']) => entries.find((entry) => entry.kind === kind);
  const suppressed = find(AuditKind.suppressed);
  if (suppressed) {
    const d = suppressed.detail ?? {};
    const until = d.until ? ` until ${String(d.until)}` : '';
    const how = d.delayed ? 'delayed (queued)' : d.waiting ? 'held back' : 'suppressed';
    return {
      ...out,
      verdict: 'suppressed',
      reason: `The rule matched but was ${how} by ${String(d.by ?? d.stage)} (key ${String(d.key) || '(none)'})${until}.`,
    };
  }
  const held = find(AuditKind.held);
  if (held) {
    const d = held.detail ?? {};
    return {
      ...out,
      verdict: 'held',
      reason: `The event is held by the rule's ${String(d.by ?? d.stage)} (key ${String(d.key) || '(none)'}), waiting: ${describeHeld(d)}.`,
    };
  }
  const ended = find(AuditKind.waitEnded);
  if (ended) {
    const d = ended.detail ?? {};
    return {
      ...out,
      verdict: 'ended-wait',
      reason: `The event is the awaited \`${String(d.slot)}\` and came before the deadline (${String(d.deadline)}), so the wait for key ${String(d.key) || '(none)'} ended without firing.`,
    };
  }
  const keyError = find(AuditKind.keyError);
  if (keyError) {
    const error = keyError.detail?.error as ErrorInfo | undefined;
    return {
      ...out,
      verdict: 'key-error',
      reason: `A key expression (${String(keyError.detail?.stage)}) failed: ${error?.message ?? 'unknown error'}`,
    };
  }
  const conditionError = find(AuditKind.conditionError);
  if (conditionError) {
    const error = conditionError.detail?.error as ErrorInfo | undefined;
    if (condition) {
      condition.result = 'error';
      if (error) out.condition = { ...condition, error };
    }
    return {
      ...out,
      verdict: 'condition-error',
      reason: `The condition could not be evaluated: ${error?.message ?? 'unknown error'}`,
    };
  }
  if (find(AuditKind.conditionFalse)) {
    if (condition) condition.result = 'false';
    const which = single
      ? `the condition \`${first?.condition?.source}\``
      : "no matching sub-condition's `if`";
    return { ...out, verdict: 'condition-false', reason: `The pattern matched but ${which} was false.` };
  }
  const stopped = find(AuditKind.stopped);
  if (stopped) {
    return {
      ...out,
      verdict: 'stopped',
      reason: `The rule matched, but the earlier rule \`${String(stopped.detail?.by)}\` fired with \`stop: true\`.`,
    };
  }
  const tooDeep = find(AuditKind.chainTooDeep);
  if (tooDeep) {
    return {
      ...out,
      verdict: 'chain-too-deep',
      reason: `The event came from a chain of ${String(tooDeep.detail?.depth)} rule outcomes, over the limit of ${String(tooDeep.detail?.limit)}; rules do not fire on it.`,
    };
  }
  if (!single) {
    return {
      ...out,
      verdict: 'ignored',
      reason:
        'A sub-condition matched, but the event did not advance the correlation (e.g. out of order, or the partial match had expired).',
    };
  }
  return {
    ...out,
    verdict: 'no-match',
    reason:
      'The rule matches now but did not when the event was dispatched (facts or the rulebook have changed).',
  };
}

function describeHeld(detail: Record<string, unknown>): string {
  if (Array.isArray(detail.waitingFor)) return `for ${detail.waitingFor.join(', ')}`;
  if (typeof detail.waitingFor === 'string')
    return `for ${detail.waitingFor} until ${String(detail.deadline)}`;
  if (detail.count !== undefined)
    return `${String(detail.count)} of ${String(detail.of)}${detail.until ? ` until ${String(detail.until)}` : ''}`;
  if (detail.step !== undefined)
    return `step ${String(detail.step)} of ${String(detail.of)}, next ${String(detail.next)}`;
  return 'for more events';
}

function describeMismatch(pattern: PatternMismatch | PatternMismatchUnexplained): string {
  if (pattern.path === null) return `The pattern did not match; ${pattern.reason}.`;
  const actual = pattern.present ? JSON.stringify(pattern.actual) : 'absent';
  const excerpt = pattern.truncated ? ' (an excerpt)' : '';
  return `The pattern did not match at \`${pattern.path}\`: expected ${pattern.expected}, the event has ${actual}${excerpt}.`;
}

function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > maxLimit) {
    throw new ReflexError('REFLEX_ERR_API_INVALID_QUERY', {
      param: 'limit',
      reason: `${String(limit)} is not a whole number from 1 to ${maxLimit}`,
      fix: `ask for 1 to ${maxLimit} items.`,
    });
  }
  return limit;
}

/** Where the next page of a listing starts. Events page by seq in either direction; runs by id. */
type Cursor = { after: number } | { before: number } | { run: string };

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

/**
 * Reads back a cursor this API gave out for this listing. Anything else — another listing's cursor, an
 * empty object — is refused: silently restarting the listing would make a client loop forever.
 */
function decodeCursor(text: string, listing: 'events' | 'runs'): Cursor {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const record = value as Record<string, unknown>;
    if (keys.length === 1) {
      if (
        listing === 'events' &&
        (keys[0] === 'after' || keys[0] === 'before') &&
        Number.isInteger(record[keys[0]])
      ) {
        return value as Cursor;
      }
      if (listing === 'runs' && keys[0] === 'run' && typeof record.run === 'string') return value as Cursor;
    }
  }
  throw new ReflexError('REFLEX_ERR_API_INVALID_QUERY', {
    param: 'cursor',
    reason: `it is not a cursor this API gave out for ${listing}`,
    fix: 'pass back the `next` value of the previous page unchanged.',
  });
}
