import type { TSchema } from 'typebox';
import type { ErrorInfo } from '../errors.js';
import type { AppendResult, CloudEvent, EventLimits } from '../event.js';
import type { Logger } from './logger.js';

/**
 * The Source port: one thing that brings events in — the CloudEvents HTTP endpoint, a webhook, and
 * (issue 11) a broker subscription, a schedule, a tailed file.
 *
 * A source is made from its configuration by its {@link SourceKind}, then started with a
 * {@link SourceContext}. It turns what it receives into CloudEvents and hands them to `context.emit`,
 * which resolves once they are committed to the log: only then does the source acknowledge upstream
 * (answer the HTTP request, ack the broker message, remember the file position). Awaiting `emit` is the
 * back-pressure: when ingest is full, `emit` waits for room, so a source that awaits it before taking
 * the next delivery never buffers more than it holds in hand.
 *
 * Every source has the lifecycle of every long-lived object: `start`, `drain()` (stop taking new
 * deliveries, finish those in hand), `close()` (drain if needed, release connections and routes),
 * `Symbol.asyncDispose`; and a status that can be read and subscribed to, which health and metrics read.
 */
export interface Source extends AsyncDisposable {
  /** The kind that made it, e.g. `webhook`. */
  readonly kind: string;
  /** Its name, unique within its kind, e.g. the webhook's name. */
  readonly name: string;
  /** Where it stands now. */
  readonly status: SourceStatus;
  /** Calls `listener` with every later change of status; the returned function stops it. */
  onStatus(listener: (status: SourceStatus) => void): () => void;
  /**
   * Begins taking deliveries. Resolves once the source is running: up, or reconnecting in the
   * background. Rejects only for what retrying cannot fix (a configuration the source cannot use); the
   * source is then `down`.
   */
  start(context: SourceContext): Promise<void>;
  /** Stops taking new deliveries and resolves once every delivery in hand is committed (and acknowledged) or refused. */
  drain(): Promise<void>;
  /** Drains if needed, then releases everything the source holds; its status becomes `stopped`. */
  close(): Promise<void>;
}

/** What a source is given when it starts, and nothing else. */
export interface SourceContext {
  /**
   * Appends events to the log; resolves with each one's position once they are committed — the moment
   * to acknowledge upstream. An event whose (`source`, `id`) is already in the log comes back with
   * `duplicate: true` (a redelivery is harmless). See {@link EmitOptions} for what happens when ingest
   * is full. Rejects with REFLEX_ERR_INGEST_STOPPED once Reflex stops taking events, with the signal's
   * reason when the source is closed while waiting, and with the store's error when the commit fails:
   * in every case nothing was acknowledged, and the source should let its sender deliver again.
   */
  emit(events: readonly CloudEvent[], options?: EmitOptions): Promise<AppendResult[]>;
  /**
   * Records a delivery that cannot become an event (not JSON where JSON is expected, an invalid
   * CloudEvent, too large) and that has nobody to answer: it is counted, kept as the source's last
   * rejection, and logged. The source then acknowledges or dead-letters it per its own policy. (A
   * source that can answer its sender, as HTTP does with a 4xx, answers instead.)
   */
  reject(delivery: RejectedDelivery): void;
  /** Aborted when the source is closed: stop waiting, connecting and reading. */
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** Limits every incoming event must keep (nesting depth), checked when decoding. */
  readonly limits: EventLimits;
}

/** How one `emit` is taken when ingest is full. */
export interface EmitOptions {
  /**
   * `wait`: wait for room, first come first served (brokers, files, schedules: the natural
   * back-pressure). `refuse`: fail at once with REFLEX_ERR_INGEST_OVERLOADED, for a sender that is told
   * to retry later (HTTP answers 503 with Retry-After).
   * @default 'wait'
   */
  whenFull?: 'wait' | 'refuse';
  /** Gives up waiting for room (the context's own signal always does). */
  signal?: AbortSignal;
}

/** A delivery that could not become an event (see {@link SourceContext.reject}). */
export interface RejectedDelivery {
  /** Why: a coded error, ideally the one decoding threw. */
  error: unknown;
  /** The first bytes received, for the operator (at most 256 are kept). */
  excerpt?: Uint8Array | string;
  /** Where it came from upstream: topic, partition, offset, message id... */
  origin?: Readonly<Record<string, string | number>>;
}

/**
 * Where a source stands: `starting` (made, connecting or mounting its route), `up` (taking deliveries),
 * `reconnecting` (lost its connection and trying again with backoff; nothing acknowledged is lost
 * meanwhile), `down` (not taking deliveries and not trying again, e.g. a configuration it cannot use),
 * `stopped` (drained and closed). `reason` says what went wrong when it is `reconnecting` or `down`.
 */
export type SourceStatus =
  | { type: 'starting' | 'up' | 'stopped' }
  | { type: 'reconnecting' | 'down'; reason: ErrorInfo };

/**
 * One kind of source: makes sources from their configuration. Configurations are plain data (compared
 * as JSON to tell whether a reload changed a source).
 */
export interface SourceKind<Config = unknown> {
  /** The name rulebooks and the registry use, e.g. `webhook`. */
  readonly kind: string;
  /**
   * The JSON Schema (TypeBox) of the configuration as a rulebook's `sources:` block writes it (without
   * the `kind` key). The rulebook loader validates each declared source with it (problems at
   * file:line:column) and the published rulebook schema is made from the kinds' schemas. A kind without
   * one (the `http` endpoint, webhooks) cannot be declared under `sources:`.
   */
  readonly config?: TSchema;
  /**
   * Makes a source (it does nothing until started). Throws a coded error for a configuration it cannot
   * use.
   */
  create(name: string, config: Config): Source;
}

/** The source kinds Reflex can run, by kind. */
export interface SourceRegistry {
  get(kind: string): SourceKind | undefined;
  /** Every registered kind, in registration order. */
  kinds(): string[];
}

/** A source to run: which kind, under which name, with which configuration. */
export interface SourceDeclaration {
  kind: string;
  name: string;
  config?: unknown;
}

/** The kind of the sources that serve a rulebook's `webhooks:` (one per webhook, named as it). */
export const webhookSourceKind = 'webhook';
