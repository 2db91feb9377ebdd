import type { TSchema } from 'typebox';
import { type AppendResult, defaultEventLimits } from '../event.js';
import type { JsonLimits } from '../json-value.js';
import type { Logger } from './logger.js';

/**
 * The Action port: one kind of thing a rule can do (`http`, `exec`, `emit`, `fact`, `log`, ...).
 *
 * The executor renders the step's templates, then calls `run` with the resulting parameters. `run`
 * returns the step's output (stored with the attempt, readable by later steps as `steps.<id>.output`)
 * or throws: a `NonRetriableError` fails the run at once, a `RetryAfterError` asks for a later retry,
 * anything else is retried with backoff.
 */
export interface Action<Params = unknown> {
  /** The key under which a step names this action in a rulebook, e.g. `http`. */
  readonly kind: string;
  /**
   * The JSON Schema (TypeBox) of the step's parameters as a rulebook writes them, where a template
   * (`${{ … }}`) may stand for any value that is typed loosely here. The rulebook loader validates steps
   * with it (problems at file:line:column) and the published rulebook schema is made from the actions'
   * schemas, so the shape of the parameters is checked once, at load; `parse` checks what only the
   * rendered values can show.
   */
  readonly params: TSchema;
  /** How the loader compiles the parameters' templates. @default { secrets: false } */
  readonly templates?: ActionTemplates;
  /**
   * Checks and normalises rendered parameters. Throws REFLEX_ERR_ACTION_INVALID_PARAMS (not retried).
   * Called before every attempt, because templates make parameters depend on the event.
   */
  parse(params: unknown): Params;
  run(params: Params, context: ActionContext): Promise<unknown>;
  /**
   * Releases what the action keeps between runs (a broker connection shared by its steps, say). The
   * engine calls it once, when it closes, after every run in hand has finished.
   */
  close?(): Promise<void>;
}

/** How the loader compiles an action's templates. */
export interface ActionTemplates {
  /**
   * Parameters that are URLs: values of `${{ }}` are encoded for the part of the URL they land in, and
   * the host must be written out or listed in {@link ActionTemplates.hostsParam}.
   */
  urls?: readonly string[];
  /** The parameter listing the hosts a URL built from data may have. */
  hostsParam?: string;
  /**
   * Whether the parameters may read `${{ secrets.NAME }}`. An action whose parameters end up stored (an
   * emitted event, a fact, a log line) may not: the secret would be written down with them.
   */
  secrets: boolean;
}

/** What an action may use while it runs. */
export interface ActionContext {
  runId: string;
  rule: string;
  stepId: string;
  /** 1 for the first try. */
  attempt: number;
  /** Stable across attempts of one step (`<run id>:<step id>`): send it so targets can drop repeats. */
  idempotencyKey: string;
  /** The step's deadline; aborted on timeout and when the engine stops. */
  signal: AbortSignal;
  /** Milliseconds the step has in all. */
  timeoutMs: number;
  /**
   * How deep and how large (as JSON) the output may be; the executor fails the step with
   * REFLEX_ERR_ACTION_OUTPUT_INVALID otherwise. An action that reads an answer from elsewhere uses it to
   * keep that answer within bounds (the `http` action leaves too deep a JSON body as text).
   */
  outputLimits: JsonLimits;
  logger: Logger;
  /**
   * Appends a new event to the log. `id` defaults to one derived from the idempotency key and a key of
   * the store (so a retried step does not emit twice, and nobody can post an event under that id first);
   * `source` defaults to `reflex`. Refuses (REFLEX_ERR_ACTION_INVALID_PARAMS) a `reflex.*` type, and an
   * `id` chosen for source `reflex`: Reflex's own events and ids are not for actions to make.
   */
  emit(event: EmittedEvent): Promise<AppendResult>;
  /** Sets (or with `undefined`, removes) a durable fact. */
  setFact(name: string, value: unknown): Promise<void>;
}

/** An event an action puts into the log: a CloudEvent whose `specversion`, `id` and `source` may be left out. */
export interface EmittedEvent {
  type: string;
  id?: string;
  source?: string;
  subject?: string;
  time?: string;
  datacontenttype?: string;
  data?: unknown;
  [extension: string]: unknown;
}

/**
 * What an action may hand to Reflex by default — its output, an event it emits, a fact value it sets:
 * nested no deeper than an incoming event's `data` may be, and at most 1 MiB of JSON (the default body
 * limit of an incoming request).
 */
export const defaultOutputLimits: Readonly<JsonLimits> = Object.freeze({
  maxDepth: defaultEventLimits.maxDepth,
  maxBytes: 1_048_576,
});
