import { randomUUID } from 'node:crypto';
import { toErrorInfo } from '../core/errors.js';
import { type CloudEvent, type EventLimits, reflexSource } from '../core/event.js';
import { partitionOf } from '../core/partition.js';
import { createCompiledMatcher } from '../core/pattern/compiled-matcher.js';
import { silentLogger } from '../core/ports/logger.js';
import type { RulebookFile } from '../core/ports/rulebook-compiler.js';
import { AuditKind } from '../core/ports/store.js';
import { createRuleIndexer } from '../core/rule-index.js';
import { createSecretStore } from '../core/secrets.js';
import { createDiskFullWatch } from './disk-full.js';
import { createDispatcher, type Dispatcher } from './dispatcher.js';
import { createExecutor, type Executor } from './executor.js';
import { createFacts, type Facts } from './facts.js';
import { runId } from './ids.js';
import { createIngest, type Ingest } from './ingest.js';
import { compileEngineOptions, type EngineOptions } from './options.js';
import { createQueries, type Queries } from './queries.js';
import { type CompiledVersion, createRulebookVersions, type RulebookVersions } from './rulebook-versions.js';
import { createSourceManager, declaredSources, type SourceManager } from './source-manager.js';
import { systemClock } from './system-clock.js';
import { createTimerService, type TimerService } from './timers.js';

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
   * dispatch batch in hand, and lets running steps finish for up to `graceMs` (default: the engine's
   * `graceMs`) before aborting them.
   */
  drain(graceMs?: number): Promise<void>;
  /** Drains (with no grace) if needed, and closes the sources and the store. */
  close(): Promise<void>;
}

export type { EngineOptions } from './options.js';

/**
 * Makes an engine over `options.store`. Throws REFLEX_ERR_CONFIG_INVALID for a setting out of range
 * (see {@link compileEngineOptions}).
 */
export async function createEngine(given: EngineOptions): Promise<Engine> {
  const options = compileEngineOptions(given);
  const { store, limits } = options;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  const { partitions } = options;
  // Before anything is read or written: a count the data was not written with is refused.
  await store.keepPartitionCount(partitions);
  // One dispatcher per partition, by partition.
  const dispatchers: Dispatcher[] = [];
  const wakeDispatchers = () => {
    for (const dispatcher of dispatchers) dispatcher.wake();
  };
  let timers: TimerService | undefined;
  // One watch for every writer, so an episode of a full disk is logged once, whoever meets it first.
  const diskFull = createDiskFullWatch({ logger, clock });
  const facts = await createFacts(
    store,
    () => clock.now(),
    // Every dispatcher applies every fact change, so all of them look.
    wakeDispatchers,
    partitionOf({ source: reflexSource }, partitions),
  );
  // Counted for the summary. A change that goes through is not reported as a write: an unchanged value
  // writes nothing (so proves no room), and a real change wakes the dispatcher, whose commit reports it.
  const setFact = facts.set.bind(facts);
  facts.set = async (name, value, chain, partition) => {
    try {
      await setFact(name, value, chain, partition);
    } catch (error) {
      diskFull.refused(error, { factChanges: 1 });
      throw error;
    }
  };
  const versions: RulebookVersions = createRulebookVersions(store, {
    actions: options.actions,
    compilers: options.compilers,
  });
  let active: CompiledVersion | undefined;
  let executor: Executor | undefined;
  let started = false;
  let drained = false;
  let closed = false;

  const ingest = createIngest({
    log: store,
    clock,
    maxPending: options.maxPendingEvents,
    ...(partitions > 1 ? { partitionOf: (event: CloudEvent) => partitionOf(event, partitions) } : {}),
    onAppended: (events) => {
      if (partitions === 1) dispatchers[0]?.offer(events);
      else wakeDispatchers();
    },
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

  // The dispatchers share one matcher: each indexes the same rulebook into it between its batches.
  const indexer = createRuleIndexer(options.createMatcher?.() ?? createCompiledMatcher());
  for (let partition = 0; partition < partitions; partition++) {
    dispatchers.push(
      createDispatcher({
        log: store,
        store,
        clock,
        logger,
        runId,
        indexer,
        partition,
        partitions,
        maxChainDepth: options.maxChainDepth,
        onRunsCreated: () => executor?.wake(),
        onTimersChanged: () => timers?.reschedule(),
        diskFull,
      }),
    );
  }
  timers = createTimerService({ store, clock, logger, onFired: wakeDispatchers, diskFull });
  executor = createExecutor({
    store,
    clock,
    logger,
    actions: options.actions,
    versions,
    facts,
    emit: (events) => ingest.append(events, { internal: true }),
    owner: `${process.pid}-${randomUUID()}`,
    onOutcomeLogged: wakeDispatchers,
    diskFull,
    concurrency: options.concurrency,
    leaseMs: options.leaseMs,
    maxClaims: options.maxClaims,
    maxOutputBytes: options.maxOutputBytes,
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
        for (const dispatcher of dispatchers) dispatcher.setRulebook(version);
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
      for (const dispatcher of dispatchers) await dispatcher.start();
      executor!.start();
      // Overdue timers first: a deadline that passed while Reflex was down is logged before the first
      // new event, so both backends settle it the same way (an event that came first would settle it too).
      await timers!.start();
      started = true;
      await sources.start();
    },
    async caughtUp(seq) {
      const target = seq ?? (await store.lastSeq());
      await Promise.all(dispatchers.map((dispatcher) => dispatcher.caughtUp(target)));
    },
    async settled() {
      for (;;) {
        await engine.caughtUp();
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
          dispatchers.some((dispatcher) => dispatcher.offset < last);
        if (!busy) return;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    },
    get runsInFlight() {
      return executor!.inFlight;
    },
    async drain(graceMs = options.graceMs) {
      if (drained) return;
      drained = true;
      await sources.drain();
      await ingest.drain();
      if (!started) return;
      // Events not yet dispatched, and timers not yet due, stay in the store; the next start takes them up.
      await timers!.drain();
      await Promise.all(dispatchers.map((dispatcher) => dispatcher.drain()));
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
          await closeActions(options.actions);
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

/** Closes every action that keeps something between runs; one that fails to close does not stop the others. */
async function closeActions(actions: EngineOptions['actions']): Promise<void> {
  const failures: unknown[] = [];
  for (const kind of actions.kinds()) {
    try {
      await actions.get(kind)?.close?.();
    } catch (error) {
      failures.push(error);
    }
  }
  if (failures.length > 0) throw new AggregateError(failures, 'actions failed to close');
}
