import { randomUUID } from 'node:crypto';
import { toErrorInfo } from '../core/errors.js';
import { defaultEventLimits, type EventLimits } from '../core/event.js';
import { createCompiledMatcher } from '../core/pattern/compiled-matcher.js';
import type { Matcher } from '../core/pattern/matcher.js';
import type { Action } from '../core/ports/action.js';
import type { Clock } from '../core/ports/clock.js';
import { type Logger, silentLogger } from '../core/ports/logger.js';
import type { SourceDeclaration, SourceRegistry } from '../core/ports/source.js';
import { AuditKind, type Store } from '../core/ports/store.js';
import { createRuleIndexer } from '../core/rule-index.js';
import { createSecretStore, type Secrets } from '../core/secrets.js';
import type { RulebookFile } from '../rulebook/loader.js';
import { createDiskFullWatch } from './disk-full.js';
import { createDispatcher, type Dispatcher, type defaultMaxChainDepth } from './dispatcher.js';
import { createExecutor, type defaultExecutorSettings, type Executor } from './executor.js';
import { createFacts, type Facts } from './facts.js';
import { runId } from './ids.js';
import { createIngest, type Ingest } from './ingest.js';
import { createQueries, type Queries } from './queries.js';
import { type CompiledVersion, createRulebookVersions, type RulebookVersions } from './rulebook-versions.js';
import { createSourceManager, declaredSources, type SourceManager } from './source-manager.js';
import { systemClock } from './system-clock.js';
import { createTimerService, type TimerService } from './timers.js';

/** How long running steps get to finish when the engine drains (`reflex start --grace`). */
export const defaultGraceMs = 10_000;

export interface EngineOptions {
  store: Store;
  /** The actions rules may use, by kind. */
  actions: { get(kind: string): Action | undefined; kinds(): string[] };
  /** @default the system clock */
  clock?: Clock;
  /** @default a silent logger */
  logger?: Logger;
  /** Limits checked on every incoming event. */
  limits?: Partial<EventLimits>;
  /** @default 20000 — see IngestOptions.maxPending */
  maxPendingEvents?: number;
  /** Runs executed at once. @default {@link defaultExecutorSettings} `.concurrency` */
  concurrency?: number;
  /** @default 30000 — see ExecutorSettings.leaseMs */
  leaseMs?: number;
  /** @default 5 — see ExecutorSettings.maxClaims: claims that die before a run is failed */
  maxClaims?: number;
  /**
   * @default 1048576 — see ExecutorSettings.maxOutputBytes. Outputs, emitted events and fact values an
   * action hands over nest at most `limits.maxDepth` levels, like incoming events.
   */
  maxOutputBytes?: number;
  /** Rules do not fire on events deeper in a chain of rule outcomes. @default {@link defaultMaxChainDepth} */
  maxChainDepth?: number;
  /** @default Math.random — retry jitter */
  random?: () => number;
  /**
   * Makes the matcher all rules' patterns go into.
   * @default the compiled matcher (one automaton for all patterns)
   */
  createMatcher?: () => Matcher;
  /**
   * Where steps read `${{ secrets.NAME }}` from.
   * @default the environment of the process
   */
  secrets?: Secrets;
  /**
   * The kinds of sources the engine can run. With them, every webhook a rulebook declares runs as a
   * `webhook` source, and {@link EngineOptions.sources} run beside them.
   * @default none: events come in only through `ingest.append`
   */
  sourceKinds?: SourceRegistry;
  /**
   * Sources that run whatever the rulebook declares (`reflex start`: the CloudEvents HTTP endpoint).
   * @default []
   */
  sources?: readonly SourceDeclaration[];
}

/**
 * One Reflex node: the ingest path into the log, the dispatcher, the executor, facts and rulebook
 * versions, over one Store. The HTTP server and the CLI drive it; tests drive it directly.
 */
export interface Engine extends AsyncDisposable {
  readonly ingest: Ingest;
  readonly queries: Queries;
  readonly facts: Facts;
  readonly limits: EventLimits;
  /** The sources that bring events in, and their status. */
  readonly sources: SourceManager;
  /** The rulebook version in force, once one is loaded. */
  readonly rulebook: CompiledVersion | undefined;
  /**
   * Compiles and activates rulebook files. Throws a RulebookError (with file:line:column problems) and
   * keeps the rules in force when any file is invalid.
   */
  loadRulebook(files: readonly RulebookFile[]): Promise<CompiledVersion>;
  /** Starts dispatching and executing, then the sources. */
  start(): Promise<void>;
  /** Resolves once everything logged so far (or up to `seq`) has been dispatched. */
  caughtUp(seq?: number): Promise<void>;
  /**
   * Resolves once nothing is left to do at the clock's current time: every event dispatched, no timer
   * and no run due, no run executing. Tests and `reflex test` wait with it between steps of time.
   */
  settled(): Promise<void>;
  /** Runs being executed right now. */
  readonly runsInFlight: number;
  /**
   * Stops intake (sources drain; new appends fail with REFLEX_ERR_INGEST_STOPPED), commits what is queued, finishes the
   * dispatch batch in hand, and lets running steps finish for up to `graceMs` before aborting them.
   */
  drain(graceMs?: number): Promise<void>;
  /** Drains (with no grace) if needed, and closes the sources and the store. */
  close(): Promise<void>;
}

export async function createEngine(options: EngineOptions): Promise<Engine> {
  const { store } = options;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  const limits: EventLimits = { ...defaultEventLimits, ...options.limits };
  let dispatcher: Dispatcher | undefined;
  let timers: TimerService | undefined;
  // One watch for every writer, so an episode of a full disk is logged once, whoever meets it first.
  const diskFull = createDiskFullWatch({ logger, clock });
  const facts = await createFacts(
    store,
    () => clock.now(),
    () => dispatcher?.wake(),
  );
  // Counted for the summary. A change that goes through is not reported as a write: an unchanged value
  // writes nothing (so proves no room), and a real change wakes the dispatcher, whose commit reports it.
  const setFact = facts.set.bind(facts);
  facts.set = async (name, value, chain) => {
    try {
      await setFact(name, value, chain);
    } catch (error) {
      diskFull.refused(error, { factChanges: 1 });
      throw error;
    }
  };
  const versions: RulebookVersions = createRulebookVersions(store, { actions: options.actions });
  let active: CompiledVersion | undefined;
  let executor: Executor | undefined;
  let started = false;
  let drained = false;
  let closed = false;

  const ingest = createIngest({
    log: store,
    clock,
    ...(options.maxPendingEvents === undefined ? {} : { maxPending: options.maxPendingEvents }),
    onAppended: (events) => dispatcher?.offer(events),
    diskFull,
  });
  const queries = createQueries({ store, versions, activeVersion: () => active?.id });
  const sources = createSourceManager({
    registry: options.sourceKinds ?? { get: () => undefined, kinds: () => [] },
    ingest,
    clock,
    logger,
    limits,
  });
  const fixedSources = options.sources ?? [];
  const sourcesOf = (version: CompiledVersion) =>
    options.sourceKinds === undefined ? [] : [...fixedSources, ...declaredSources(version.rulebook)];

  dispatcher = createDispatcher({
    log: store,
    store,
    clock,
    logger,
    runId,
    indexer: createRuleIndexer(options.createMatcher?.() ?? createCompiledMatcher()),
    ...(options.maxChainDepth === undefined ? {} : { maxChainDepth: options.maxChainDepth }),
    onRunsCreated: () => executor?.wake(),
    onTimersChanged: () => timers?.reschedule(),
    diskFull,
  });
  timers = createTimerService({ store, clock, logger, onFired: () => dispatcher?.wake(), diskFull });
  executor = createExecutor({
    store,
    clock,
    logger,
    actions: options.actions,
    versions,
    facts,
    emit: (events) => ingest.append(events, { internal: true }),
    owner: `${process.pid}-${randomUUID()}`,
    onOutcomeLogged: () => dispatcher?.wake(),
    diskFull,
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    ...(options.maxClaims === undefined ? {} : { maxClaims: options.maxClaims }),
    ...(options.maxOutputBytes === undefined ? {} : { maxOutputBytes: options.maxOutputBytes }),
    maxOutputDepth: limits.maxDepth,
    ...(options.random === undefined ? {} : { random: options.random }),
    secrets: options.secrets ?? createSecretStore({ env: process.env }),
  });

  const engine: Engine = {
    ingest,
    queries,
    facts,
    limits,
    sources,
    get rulebook() {
      return active;
    },
    async loadRulebook(files) {
      try {
        const version = await versions.save(files, clock.now());
        // A rulebook whose sources cannot run is refused, and the one in force stays.
        sources.check(sourcesOf(version));
        if (active?.id !== version.id) {
          await store.appendAudit([
            {
              at: clock.now(),
              kind: AuditKind.rulebookLoaded,
              detail: {
                version: version.id,
                files: files.map((f) => f.path),
                rules: version.rulebook.rules.length,
              },
            },
          ]);
        }
        active = version;
        dispatcher?.setRulebook(version);
        await sources.reconcile(sourcesOf(version));
        return version;
      } catch (error) {
        await store
          .appendAudit([
            { at: clock.now(), kind: AuditKind.rulebookRejected, detail: { error: toErrorInfo(error) } },
          ])
          .catch(() => undefined);
        throw error;
      }
    },
    async start() {
      if (!active) await engine.loadRulebook([]);
      await dispatcher!.start();
      executor!.start();
      timers!.start();
      started = true;
      await sources.start();
    },
    caughtUp: (seq) => dispatcher!.caughtUp(seq),
    async settled() {
      for (;;) {
        await dispatcher!.caughtUp();
        const now = clock.now();
        const [runDue, timerDue, last] = await Promise.all([
          store.nextRunDueAt(),
          store.nextTimerDueAt(),
          store.lastSeq(),
        ]);
        const busy =
          executor!.inFlight > 0 ||
          (runDue !== undefined && runDue <= now) ||
          (timerDue !== undefined && timerDue <= now) ||
          dispatcher!.offset < last;
        if (!busy) return;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    },
    get runsInFlight() {
      return executor!.inFlight;
    },
    async drain(graceMs = defaultGraceMs) {
      if (drained) return;
      drained = true;
      await sources.drain();
      await ingest.drain();
      if (!started) return;
      // Events not yet dispatched, and timers not yet due, stay in the store; the next start takes them up.
      await timers!.drain();
      await dispatcher!.drain();
      await executor!.drain(graceMs);
    },
    async close() {
      if (closed) return;
      try {
        await engine.drain(0);
      } finally {
        // Closed even when draining failed: the store holds the data directory's lock.
        closed = true;
        try {
          await sources.close();
        } finally {
          await store.close();
        }
      }
    },
    [Symbol.asyncDispose]() {
      return engine.close();
    },
  };
  return engine;
}
