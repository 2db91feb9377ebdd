import { type ErrorInfo, ReflexError, toErrorInfo } from '../core/errors.js';
import type { CloudEvent, EventLimits } from '../core/event.js';
import type { Clock } from '../core/ports/clock.js';
import type { Logger } from '../core/ports/logger.js';
import {
  type RejectedDelivery,
  type Source,
  type SourceContext,
  type SourceDeclaration,
  type SourceRegistry,
  type SourceStatus,
  webhookSourceKind,
} from '../core/ports/source.js';
import type { Rulebook } from '../core/rule.js';
import type { Ingest } from './ingest.js';

/** What health, metrics and the console read about one source. */
export interface SourceInfo {
  kind: string;
  name: string;
  status: SourceStatus;
  /** When the status last changed, in milliseconds since the epoch. */
  since: number;
  /** Events the source has emitted that are not committed yet (waiting for room or for their commit). */
  inFlight: number;
  /** Deliveries the source could not turn into events (see `SourceContext.reject`). */
  rejected: number;
  /** The last of them. */
  lastRejection?: {
    at: number;
    error: ErrorInfo;
    /** The first bytes received, as text (invalid UTF-8 shows as U+FFFD). */
    excerpt?: string;
    origin?: Readonly<Record<string, string | number>>;
  };
}

/** What the source manager runs sources with. */
export interface SourceManagerOptions {
  /** The kinds it can make sources of. */
  registry: SourceRegistry;
  /** Where the sources' `emit` appends. */
  ingest: Ingest;
  /** Stamps status changes and rejections. */
  clock: Clock;
  logger: Logger;
  /** Given to every source to check incoming events with. */
  limits: EventLimits;
}

/**
 * Runs the sources: makes them from their declarations, starts them with a context whose `emit` is the
 * ingest, follows their status, and drains and closes them. One failing source never stops the others:
 * a source that cannot be made or started is `down`, with the reason, and the rest run.
 */
export interface SourceManager extends AsyncDisposable {
  /**
   * Throws REFLEX_ERR_SOURCE_UNKNOWN_KIND when a declaration names a kind the registry lacks; starts
   * nothing. Called before a rulebook is activated, so a rulebook whose sources cannot run is refused.
   */
  check(declarations: readonly SourceDeclaration[]): void;
  /**
   * Makes the running sources those declared: a new one starts, one no longer declared is drained and
   * closed, one whose kind and configuration are unchanged keeps running (and its connection and
   * position). A changed one is replaced: the new source starts before the old one drains, so an HTTP
   * route never goes missing (a broker source overlaps its replacement for as long as the old one
   * drains; dedup by (`source`, `id`) makes a message both take harmless). Resolves once the declared
   * sources run; those that leave finish what they hold in the background (`drain` and `close` wait
   * for them). Before `start`, only records the declarations.
   */
  reconcile(declarations: readonly SourceDeclaration[]): Promise<void>;
  /** Starts the declared sources. */
  start(): Promise<void>;
  /** Every declared source, in declaration order. */
  list(): SourceInfo[];
  /** Calls `listener` with a source's info whenever its status changes; the returned function stops it. */
  onStatus(listener: (info: SourceInfo) => void): () => void;
  /** Drains every source: no new deliveries; those in hand are committed and acknowledged, or refused. */
  drain(): Promise<void>;
  /** Drains, then closes every source and aborts what still waits. */
  close(): Promise<void>;
}

/** How much of a rejected delivery is kept for the operator. */
const excerptBytes = 256;

/** The identity of a declared source: its kind and name. */
const keyOf = (declaration: { kind: string; name: string }) => `${declaration.kind}\u0000${declaration.name}`;

interface Running {
  declaration: SourceDeclaration;
  /** The configuration as JSON, to tell whether a reload changed it. */
  config: string;
  source: Source | undefined;
  controller: AbortController;
  info: SourceInfo;
  stopListening: () => void;
  /** Resolves once `start` has settled. */
  started: Promise<void>;
}

/**
 * Makes the source manager of one engine; it runs nothing until `start`.
 *
 * @example
 * const sources = createSourceManager({ registry, ingest, clock, logger, limits });
 * await sources.reconcile([{ kind: 'http', name: 'events' }]);
 * await sources.start();
 */
export function createSourceManager(options: SourceManagerOptions): SourceManager {
  const { registry, ingest, clock, logger, limits } = options;
  const running = new Map<string, Running>();
  // Sources a reload replaced or removed, still finishing what they hold; drain and close wait for them.
  const retiring = new Set<Promise<void>>();
  let declared: readonly SourceDeclaration[] = [];
  const listeners = new Set<(info: SourceInfo) => void>();
  let started = false;
  let closed = false;
  // Reconciliations, drains and closes run one after another: a reload never races a shutdown.
  let chain: Promise<void> = Promise.resolve();
  const serially = (work: () => Promise<void>): Promise<void> => {
    const next = chain.then(work);
    chain = next.catch(() => undefined);
    return next;
  };

  const tell = (entry: Running) => {
    for (const listener of [...listeners]) listener({ ...entry.info });
  };

  const setStatus = (entry: Running, status: SourceStatus) => {
    const before = entry.info.status;
    entry.info = { ...entry.info, status, since: clock.now() };
    const where = { source: entry.info.name, kind: entry.info.kind };
    if (status.type === 'reconnecting' || status.type === 'down') {
      logger.warn({ ...where, status: status.type, reason: status.reason }, `source ${status.type}`);
    } else if (status.type === 'up' && (before.type === 'reconnecting' || before.type === 'down')) {
      logger.info(where, 'source up again');
    }
    tell(entry);
  };

  const contextFor = (entry: Running): SourceContext => ({
    emit(events: readonly CloudEvent[], emitOptions) {
      const signal =
        emitOptions?.signal === undefined
          ? entry.controller.signal
          : AbortSignal.any([entry.controller.signal, emitOptions.signal]);
      entry.info.inFlight += events.length;
      return ingest.append(events, { whenFull: emitOptions?.whenFull ?? 'wait', signal }).finally(() => {
        entry.info.inFlight -= events.length;
      });
    },
    reject(delivery: RejectedDelivery) {
      const error = toErrorInfo(delivery.error);
      const excerpt =
        delivery.excerpt === undefined
          ? undefined
          : typeof delivery.excerpt === 'string'
            ? delivery.excerpt.slice(0, excerptBytes)
            : Buffer.from(delivery.excerpt.subarray(0, excerptBytes)).toString('utf8');
      entry.info.rejected += 1;
      entry.info.lastRejection = {
        at: clock.now(),
        error,
        ...(excerpt === undefined ? {} : { excerpt }),
        ...(delivery.origin === undefined ? {} : { origin: { ...delivery.origin } }),
      };
      logger.warn(
        { source: entry.info.name, kind: entry.info.kind, error, ...(delivery.origin ?? {}) },
        'a delivery could not become an event and was rejected',
      );
    },
    signal: entry.controller.signal,
    logger,
    limits,
  });

  /** Makes and starts one source; never throws (a failure leaves it `down`). */
  const launch = (declaration: SourceDeclaration): Running => {
    const entry: Running = {
      declaration,
      config: JSON.stringify(declaration.config ?? null),
      source: undefined,
      controller: new AbortController(),
      info: {
        kind: declaration.kind,
        name: declaration.name,
        status: { type: 'starting' },
        since: clock.now(),
        inFlight: 0,
        rejected: 0,
      },
      stopListening: () => {},
      started: Promise.resolve(),
    };
    const down = (error: unknown) => {
      if (entry.info.status.type !== 'down') setStatus(entry, { type: 'down', reason: toErrorInfo(error) });
    };
    try {
      const kind = registry.get(declaration.kind);
      if (kind === undefined) throw unknownKind(declaration);
      const source = kind.create(declaration.name, declaration.config);
      entry.source = source;
      entry.stopListening = source.onStatus((status) => setStatus(entry, status));
      if (source.status.type !== 'starting') setStatus(entry, source.status);
      entry.started = source.start(contextFor(entry)).catch(down);
    } catch (error) {
      down(error);
    }
    return entry;
  };

  /** Drains and closes one source; logs rather than throws, so one source cannot stop the others. */
  const retire = async (entry: Running): Promise<void> => {
    try {
      await entry.started;
      await entry.source?.close();
    } catch (error) {
      logger.error(
        { source: entry.info.name, kind: entry.info.kind, error: toErrorInfo(error) },
        'source failed to close',
      );
    } finally {
      entry.controller.abort(new ReflexError('REFLEX_ERR_INGEST_STOPPED'));
      entry.stopListening();
      if (entry.info.status.type !== 'stopped') setStatus(entry, { type: 'stopped' });
    }
  };

  const unknownKind = (declaration: SourceDeclaration) =>
    new ReflexError('REFLEX_ERR_SOURCE_UNKNOWN_KIND', {
      name: declaration.name,
      kind: declaration.kind,
      kinds:
        registry.kinds().length === 0
          ? 'none'
          : registry
              .kinds()
              .map((k) => `\`${k}\``)
              .join(', '),
    });

  const apply = async () => {
    const wanted = new Map(declared.map((d) => [keyOf(d), d]));
    const leaving: Running[] = [];
    for (const [key, entry] of running) {
      if (!wanted.has(key)) {
        running.delete(key);
        leaving.push(entry);
      }
    }
    const next = new Map<string, Running>();
    for (const [key, declaration] of wanted) {
      const current = running.get(key);
      if (current !== undefined && current.config === JSON.stringify(declaration.config ?? null)) {
        next.set(key, current);
        continue;
      }
      // The replacement starts first: its route takes over before the old source lets go of it.
      next.set(key, launch(declaration));
      if (current !== undefined) leaving.push(current);
    }
    running.clear();
    for (const [key, entry] of next) running.set(key, entry);
    await Promise.all([...next.values()].map((entry) => entry.started));
    // The old sources finish what they hold in the background: a slow request does not hold up a reload.
    for (const entry of leaving) {
      const done = retire(entry).finally(() => retiring.delete(done));
      retiring.add(done);
    }
  };

  const manager: SourceManager = {
    check(declarations) {
      for (const declaration of declarations) {
        if (registry.get(declaration.kind) === undefined) throw unknownKind(declaration);
      }
    },
    reconcile(declarations) {
      return serially(async () => {
        declared = [...declarations];
        if (started && !closed) await apply();
      });
    },
    start() {
      return serially(async () => {
        if (started || closed) return;
        started = true;
        await apply();
      });
    },
    list() {
      const infos: SourceInfo[] = [];
      for (const declaration of declared) {
        const entry = running.get(keyOf(declaration));
        if (entry !== undefined) infos.push({ ...entry.info });
      }
      return infos;
    },
    onStatus(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    drain() {
      return serially(async () => {
        await Promise.all([...retiring]);
        await Promise.all(
          [...running.values()].map(async (entry) => {
            try {
              await entry.started;
              await entry.source?.drain();
            } catch (error) {
              logger.error(
                { source: entry.info.name, kind: entry.info.kind, error: toErrorInfo(error) },
                'source failed to drain',
              );
            }
          }),
        );
      });
    },
    close() {
      return serially(async () => {
        if (closed) return;
        closed = true;
        await Promise.all([...running.values()].map(retire));
        await Promise.all([...retiring]);
      });
    },
    [Symbol.asyncDispose]() {
      return manager.close();
    },
  };
  return manager;
}

/**
 * The sources a rulebook declares: one `webhook` source per entry of `webhooks:`, configured with the
 * webhook (without where it was written, so moving it in its file does not restart it).
 */
export function declaredSources(rulebook: Rulebook): SourceDeclaration[] {
  return [...rulebook.webhooks.values()].map(({ location: _location, ...config }) => ({
    kind: webhookSourceKind,
    name: config.name,
    config,
  }));
}
