import type { Condition } from './condition.js';
import type { Expression } from './expression.js';
import type { FlowSpec } from './flow/rule-flow.js';
import type { Pattern } from './pattern/pattern.js';
import type { Template } from './template.js';

/** Where something was written in a rulebook file (1-based line and column). */
export interface SourceLocation {
  file: string;
  line: number;
  column: number;
}

/** How often, and how far apart, a failed step is tried again. */
export interface RetryPolicy {
  /**
   * Tries in all, the first included.
   * @default 3
   */
  attempts: number;
  /**
   * Delay before the second try; it doubles for each further try.
   * @default 1000 (1s)
   */
  backoffMs: number;
  /**
   * Upper bound of a delay.
   * @default 60000 (1m)
   */
  maxDelayMs: number;
}

export const defaultRetryPolicy: RetryPolicy = Object.freeze({
  attempts: 3,
  backoffMs: 1000,
  maxDelayMs: 60_000,
});

/** One step of a rule's `then`: an action with its (templated) parameters. */
export interface ActionStep {
  /** Unique within the rule: the `id` given in the rulebook, else the step's index. */
  id: string;
  /** The action kind, e.g. `http`. */
  kind: string;
  params: Template;
  /**
   * @default 30000 (30s)
   */
  timeoutMs: number;
  retry: RetryPolicy;
  location: SourceLocation;
}

/**
 * One event a rule looks for: a single-event rule has one, a correlation one per sub-condition. Its
 * pattern goes into the shared matcher; its condition is evaluated for the events the pattern let through.
 */
export interface SubCondition {
  /** `events.<name>` in expressions; `event` for a single-event rule. */
  name: string;
  pattern?: Pattern;
  condition?: Condition;
  /**
   * What the matcher indexes the sub-condition by: its pattern, or for a condition-only sub the
   * pattern its condition implies (a necessary condition; the condition still decides). Absent: the
   * sub is a candidate for every event.
   */
  indexPattern?: Pattern;
  /** The correlation key of a matching event (the sub's own `by`, else the rule's). */
  by?: Expression;
}

/** The storm-control stages whose key is an expression, plus `concurrency` (applied to runs). */
export type KeyedStage = 'dedupe' | 'throttle' | 'debounce' | 'rateLimit' | 'batch' | 'concurrency';

/** A compiled rule, ready for the dispatcher and the executor. */
export interface Rule {
  name: string;
  description?: string;
  /** Position among all loaded rules: rules fire in this order. */
  index: number;
  /** What the rule looks for: one sub-condition for a single-event rule, several for a correlation. */
  subs: SubCondition[];
  /** How events become firings: the `when` combination and the storm-control stages. */
  flow: FlowSpec;
  /** Whether the flow keeps state (a correlation, or any storm control). */
  stateful: boolean;
  /**
   * Whether an expression of the rule reads `events` (the content of events held in a partial match);
   * if none does, partial matches keep only where and when their events are, not their content.
   */
  readsHeldEvents: boolean;
  /** Key expressions of the storm-control stages; a stage without one keys everything alike. */
  keys: Partial<Record<KeyedStage, Expression>>;
  /** At most this many runs per concurrency key at once. */
  concurrency?: { max: number };
  /**
   * Identifies the rule's `when` and storm control as written: state kept for another definition of a
   * rule with the same name is not reused.
   */
  flowHash: string;
  then: ActionStep[];
  /** When this rule fires, later rules do not see the event. */
  stop: boolean;
  /** A disabled rule is loaded and explained, but never fires. */
  enabled: boolean;
  /** The `vars` of the rulebook file the rule is in, readable as `vars.<name>`. */
  vars: Record<string, unknown>;
  location: SourceLocation;
}

/** How a webhook request proves it comes from the sender. */
export type WebhookAuth =
  | { type: 'none' }
  /** A static token in a header, compared in constant time. */
  | { type: 'token'; header: string; prefix: string; secret: SecretRef }
  /** An HMAC-SHA256 of the raw body, hex, in a header after a prefix (GitHub: `X-Hub-Signature-256`, `sha256=`). */
  | { type: 'hmac'; header: string; prefix: string; secret: SecretRef }
  /**
   * A provider's timestamped signature (`stripe`: `Stripe-Signature: t=…,v1=…`; `slack`:
   * `X-Slack-Request-Timestamp` + `X-Slack-Signature: v0=…`; `standard`: Standard Webhooks'
   * `webhook-id`/`webhook-timestamp`/`webhook-signature`). A delivery signed more than `replayWindowMs`
   * away from Reflex's clock is refused, so a captured delivery cannot be replayed later.
   */
  | { type: TimestampedScheme; secret: SecretRef; replayWindowMs: number };

/** The providers' timestamped signature schemes a webhook can check. */
export type TimestampedScheme = 'stripe' | 'slack' | 'standard';

/** A secret given inline, or read from an environment variable when the request arrives. */
export type SecretRef = { value: string } | { env: string };

/** Where a webhook takes an event attribute from. */
export type AttributeSource = { value: string } | { header: string; prefix: string; fallback?: string };

/** A webhook declared in a rulebook: `POST /hooks/<name>` turns its JSON body into a CloudEvent. */
export interface Webhook {
  name: string;
  type: AttributeSource;
  source: string;
  /** Where the event id comes from; a fresh id is made when absent. */
  id?: { header: string };
  subject?: AttributeSource;
  auth: WebhookAuth;
  location: SourceLocation;
}

/** Everything loaded from a set of rulebook files, compiled. */
export interface Rulebook {
  /** All rules of all files, in firing order (files in path order, rules in file order). */
  rules: Rule[];
  webhooks: Map<string, Webhook>;
}
