import { toErrorInfo } from './errors.js';
import type { CloudEvent, LoggedEvent } from './event.js';
import type { ExpressionContext } from './expression.js';
import { type FlowStates, flowEvent, flowTimer, isStageName, type stormStages } from './flow/rule-flow.js';
import type { Firing, Held, StageNote } from './flow/stage.js';
import { type AuditEntry, AuditKind, type NewRun, type RunContext } from './ports/store.js';
import type { Rule } from './rule.js';
import type { RuleIndex } from './rule-index.js';

/** Extension attribute that counts how many rule outcomes led to an event (0 or absent: from outside). */
export const chainExtension = 'reflexchain';

/** The type of the internal events that due timers become. */
export const timerEventType = 'reflex.timer';

/** How deep an event stands in a chain of rule outcomes: 0 for events from outside. */
export function chainDepth(event: CloudEvent): number {
  const depth = event[chainExtension];
  return typeof depth === 'number' && Number.isInteger(depth) && depth > 0 ? depth : 0;
}

/** A rule's flow states while one event is decided: kept with `commit`, dropped with `discard`. */
export interface RuleStates extends FlowStates {
  commit(): void;
  discard(): void;
}

/** Everything `decideForEvent` reads besides the event. It reads nothing else, so a replay decides the same. */
export interface DecisionContext {
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
  /**
   * Names a run after what made it: the same event, rule and ordinal always give the same id, so a batch
   * decided again after a crash creates the same runs, with the same idempotency keys.
   */
  runId: (t: number, seq: number, ruleIndex: number, ordinal: number) => string;
  /** The state view of a stateful rule for the event being decided. */
  states(rule: Rule, t: number): RuleStates;
}

export interface Decision {
  runs: NewRun[];
  audit: AuditEntry[];
}

/** A `by`/`key` expression failed: the rule skips the event. */
class KeyError extends Error {
  constructor(
    readonly stage: string,
    readonly failure: unknown,
  ) {
    super('key expression failed');
  }
}

/**
 * Decides what one event causes: for every candidate rule in order, its flow (condition, correlation,
 * storm control) yields firings, and each firing becomes a run — until a rule with `stop: true` fires.
 * `t` is the event's log time (never earlier than the previous event's): windows and conditions read it
 * as `now`, so the decision is the same when the event is replayed. A `reflex.timer` event is first
 * handed to the stage that set it.
 */
export function decideForEvent(logged: LoggedEvent, t: number, ctx: DecisionContext): Decision {
  const event = logged.event;
  const timer = event.type === timerEventType && event.source === 'reflex';
  const candidates = timer ? [] : ctx.index.candidates(event);
  // Most events concern no rule: they are decided without making the closures and maps below.
  if (!timer && candidates.length === 0) return { runs: [], audit: [] };
  const runs: NewRun[] = [];
  const audit: AuditEntry[] = [];
  const at = ctx.now;
  const here: Held = { seq: logged.seq, t, event };
  const record = (kind: AuditEntry['kind'], rule: string, detail?: Record<string, unknown>) => {
    const entry: AuditEntry = { at, kind, seq: logged.seq, rule };
    if (detail) entry.detail = detail;
    audit.push(entry);
  };
  // Runs of one rule caused by one event are numbered, so several (a timer and a match) never collide.
  const ordinals = new Map<string, number>();
  const fire = (rule: Rule, firings: Firing[]) => {
    for (const firing of firings) {
      const ordinal = ordinals.get(rule.name) ?? 0;
      ordinals.set(rule.name, ordinal + 1);
      const run = toRun(rule, firing, ordinal, logged, ctx, at, t);
      runs.push(run);
      audit.push({ at, kind: AuditKind.runCreated, seq: logged.seq, rule: rule.name, runId: run.id });
    }
  };

  // A timer event is internal: it settles the stage that set it, and user rules do not see it.
  if (timer) {
    routeTimer(logged, t, ctx, fire, record);
    return { runs, audit };
  }

  const tooDeep = chainDepth(event) > ctx.maxChainDepth;
  let stoppedBy: string | undefined;
  for (const candidate of candidates) {
    const rule = ctx.index.rules[candidate.rule]!;
    if (!rule.enabled) continue;
    if (stoppedBy !== undefined) {
      record(AuditKind.stopped, rule.name, { by: stoppedBy });
      continue;
    }
    if (tooDeep) {
      record(AuditKind.chainTooDeep, rule.name, { depth: chainDepth(event), limit: ctx.maxChainDepth });
      continue;
    }
    const conditionErrors: unknown[] = [];
    // Whether some `if` said no, and none said yes: only then is "the condition was false" the reason.
    let accepted = false;
    let refused = false;
    const check = checker(rule, ctx, conditionErrors, (holds) => {
      if (holds) accepted = true;
      else refused = true;
    });
    let firings: Firing[];
    if (!rule.stateful) {
      // The fast path: no state, so a single-event rule is its condition.
      firings =
        rule.flow.when.type === 'any'
          ? anyFirings(rule, here, candidate.subs, check)
          : check(0, here, {})
            ? [{ event: here }]
            : [];
    } else {
      const states = ctx.states(rule, t);
      try {
        const outcome = flowEvent(rule.flow, here, candidate.subs, states, expressionsFor(rule, ctx, check));
        states.commit();
        firings = outcome.firings;
        for (const { stage, key, note } of outcome.notes)
          record(noteKind(note.kind), rule.name, noteDetail(stage, key, note));
      } catch (error) {
        states.discard();
        if (!(error instanceof KeyError)) throw error;
        record(AuditKind.keyError, rule.name, { stage: error.stage, error: toErrorInfo(error.failure) });
        continue;
      }
    }
    for (const error of conditionErrors)
      record(AuditKind.conditionError, rule.name, { error: toErrorInfo(error) });
    if (firings.length === 0) {
      if (conditionErrors.length === 0 && refused && !accepted) record(AuditKind.conditionFalse, rule.name);
      continue;
    }
    fire(rule, firings);
    if (rule.stop) stoppedBy = rule.name;
  }
  return { runs, audit };
}

function anyFirings(
  rule: Rule,
  here: Held,
  subs: readonly number[],
  check: ReturnType<typeof checker>,
): Firing[] {
  const events: Record<string, Held> = {};
  for (const sub of subs) if (check(sub, here, {})) events[rule.subs[sub]!.name] = here;
  return Object.keys(events).length === 0 ? [] : [{ event: here, events }];
}

/** A `reflex.timer` event: the stage that set the timer settles its deadline. */
function routeTimer(
  logged: LoggedEvent,
  t: number,
  ctx: DecisionContext,
  fire: (rule: Rule, firings: Firing[]) => void,
  record: (kind: AuditEntry['kind'], rule: string, detail?: Record<string, unknown>) => void,
) {
  const data = logged.event.data as { rule?: unknown; stage?: unknown; key?: unknown } | undefined;
  if (
    !data ||
    typeof data.rule !== 'string' ||
    typeof data.stage !== 'string' ||
    typeof data.key !== 'string'
  )
    return;
  const rule = ctx.index.rules.find((r) => r.name === data.rule);
  // A timer of a rule that has since been removed or disabled has nothing left to settle.
  if (!rule?.enabled || !rule.stateful) return;
  const stage = data.stage;
  // `dedupe` sets no timer: a timer naming it is not Reflex's.
  if (!isStageName(stage) || stage === 'dedupe') return;
  const check = checker(rule, ctx, []);
  const states = ctx.states(rule, t);
  try {
    const outcome = flowTimer(rule.flow, stage, data.key, t, states, expressionsFor(rule, ctx, check));
    states.commit();
    for (const { stage: s, key, note } of outcome.notes)
      record(noteKind(note.kind), rule.name, noteDetail(s, key, note));
    // The timer event itself is depth 0; what a timer releases is as deep as the event it carries.
    const allowed = outcome.firings.filter((firing) => {
      const depth = firing.event.event ? chainDepth(firing.event.event) : 0;
      if (depth <= ctx.maxChainDepth) return true;
      record(AuditKind.chainTooDeep, rule.name, { depth, limit: ctx.maxChainDepth });
      return false;
    });
    if (allowed.length > 0) fire(rule, allowed);
  } catch (error) {
    states.discard();
    if (!(error instanceof KeyError)) throw error;
    record(AuditKind.keyError, rule.name, { stage: error.stage, error: toErrorInfo(error.failure) });
  }
}

function noteKind(kind: StageNote['kind']): AuditEntry['kind'] {
  switch (kind) {
    case 'held':
      return AuditKind.held;
    case 'suppressed':
      return AuditKind.suppressed;
    case 'ended':
      return AuditKind.waitEnded;
  }
}

function noteDetail(
  stage: string,
  key: string,
  note: { until?: number | null; detail: Record<string, unknown> },
) {
  const detail: Record<string, unknown> = { stage, key, ...note.detail };
  if (note.until !== undefined && note.until !== null) detail.until = new Date(note.until).toISOString();
  return detail;
}

/** The data of held events by name, for `events.<name>` (held events without kept content are left out). */
function eventsOf(held: Record<string, Held>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, h] of Object.entries(held)) if (h.event) out[name] = h.event;
  return out;
}

/**
 * Evaluates sub-conditions' `if`: a failing one counts as false and its error is collected for the audit;
 * `onChecked` hears every `if` that gave an answer.
 */
function checker(
  rule: Rule,
  ctx: DecisionContext,
  errors: unknown[],
  onChecked: (holds: boolean) => void = () => {},
) {
  return (sub: number, event: Held, held: Record<string, Held>): boolean => {
    const condition = rule.subs[sub]?.condition;
    if (!condition) return true;
    const context: ExpressionContext = {
      event: event.event,
      facts: ctx.facts,
      vars: rule.vars,
      now: event.t,
      events: eventsOf(held),
    };
    let holds: boolean;
    try {
      holds = condition.evaluate(context);
    } catch (error) {
      errors.push(error);
      return false;
    }
    onChecked(holds);
    return holds;
  };
}

function expressionsFor(rule: Rule, ctx: DecisionContext, check: ReturnType<typeof checker>) {
  const keyOf = (
    stage: string,
    expression: { evaluate(c: ExpressionContext): unknown } | undefined,
    c: ExpressionContext,
  ) => {
    if (!expression) return '';
    try {
      return JSON.stringify(expression.evaluate(c)) ?? 'null';
    } catch (error) {
      throw new KeyError(stage, error);
    }
  };
  return {
    keyOf: (stage: 'when' | 'dedupe', event: Held, sub: number) =>
      keyOf(stage, stage === 'dedupe' ? rule.keys.dedupe : rule.subs[sub]?.by, {
        event: event.event,
        facts: ctx.facts,
        vars: rule.vars,
        now: event.t,
      }),
    firingKey: (stage: (typeof stormStages)[number], firing: Firing) =>
      keyOf(stage, rule.keys[stage], {
        event: firing.event.event,
        events: eventsOf(firing.events ?? {}),
        facts: ctx.facts,
        vars: rule.vars,
        now: firing.event.t,
      }),
    check,
  };
}

function toRun(
  rule: Rule,
  firing: Firing,
  ordinal: number,
  logged: LoggedEvent,
  ctx: DecisionContext,
  at: number,
  t: number,
): NewRun {
  const context: RunContext = { event: firing.event.seq };
  if (firing.events)
    context.events = Object.fromEntries(Object.entries(firing.events).map(([name, h]) => [name, h.seq]));
  if (firing.batch) context.batch = firing.batch.map((h) => h.seq);
  const run: NewRun = {
    id: ctx.runId(t, logged.seq, rule.index, ordinal),
    rule: rule.name,
    rulebookVersion: ctx.rulebookVersion,
    trigger: {
      seq: logged.seq,
      partition: logged.partition,
      id: logged.event.id,
      source: logged.event.source,
      type: logged.event.type,
    },
    ordinal,
    context,
    createdAt: at,
  };
  if (rule.concurrency) {
    let key = '';
    const expression = rule.keys.concurrency;
    if (expression) {
      try {
        key = JSON.stringify(
          expression.evaluate({
            event: firing.event.event,
            events: eventsOf(firing.events ?? {}),
            facts: ctx.facts,
            vars: rule.vars,
            now: t,
          }),
        );
      } catch {
        // A run is never lost to a failing key: it takes the rule's shared slot instead.
        key = '';
      }
    }
    run.concurrency = { key: `${rule.name}/${key}`, max: rule.concurrency.max };
  }
  return run;
}
