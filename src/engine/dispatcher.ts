import { decideForEvent } from '../core/decide.js';
import { toErrorInfo } from '../core/errors.js';
import { type LoggedEvent, reflexSource } from '../core/event.js';
import type { Clock } from '../core/ports/clock.js';
import type { Logger } from '../core/ports/logger.js';
import type { AuditEntry, DispatchStore, EventLog, FactViewChange, NewRun } from '../core/ports/store.js';
import type { RuleIndex, RuleIndexer } from '../core/rule-index.js';
import type { DiskFullWatch } from './disk-full.js';
import { createFlowStateCache } from './flow-state-cache.js';
import { engineDefaults } from './options.js';
import type { CompiledVersion } from './rulebook-versions.js';

export interface DispatcherOptions {
  /** Where the events come from. */
  log: Pick<EventLog, 'readEvents' | 'readFactChanges' | 'lastSeq'>;
  /** Where the decisions go. */
  store: DispatchStore;
  clock: Clock;
  logger: Logger;
  runId: (t: number, seq: number, ruleIndex: number, ordinal: number) => string;
  /** Keeps the shared matcher in step with the rulebook in force. */
  indexer: RuleIndexer;
  /**
   * The consumer name under which the offset is stored.
   * @default 'dispatcher'
   */
  consumer?: string;
  /**
   * The partition of the log this dispatcher decides.
   * @default 0
   */
  partition?: number;
  /**
   * How many partitions the log has. With more than one, fact changes made in the others are read
   * from the log and applied in seq order among this partition's events.
   * @default 1
   */
  partitions?: number;
  /**
   * Events read and decided per transaction.
   * @default 512
   */
  batchSize?: number;
  /** How many rule outcomes may lead to an event that rules still fire on. @default engineDefaults.maxChainDepth */
  maxChainDepth?: number;
  /** Called after a commit that created runs. */
  onRunsCreated?: () => void;
  /** Called after a commit that set, moved or cancelled timers. */
  onTimersChanged?: () => void;
  /** Told about commits refused for want of space (which are then not logged one by one). */
  diskFull?: DiskFullWatch;
}

/**
 * Reads the log in order and, for each batch of events, decides which rules fire, creates their runs,
 * writes the audit entries and advances its offset — all in one transaction. After a crash it resumes
 * from the last committed offset and decides the same again, so no match is lost or doubled.
 *
 * Conditions read the facts as the log has them at the event: the dispatcher keeps its own view of
 * the facts and applies each `reflex.fact.changed` event, in seq order, after deciding it. The view is
 * committed with the offset, so a dispatcher that resumes (or lags far behind) decides every event with
 * exactly the facts made by the fact changes before it, whatever the facts are now.
 */
export interface Dispatcher {
  /** Starts reading from the stored offset. */
  start(): Promise<void>;
  /** New events are in the log. */
  wake(): void;
  /**
   * Hands over events just committed to the log, so the dispatcher need not read them back. Only a
   * shortcut: whatever is missing or out of order here is read from the store.
   */
  offer(events: readonly LoggedEvent[]): void;
  /** Rulebook used from the next batch on. */
  setRulebook(version: CompiledVersion): void;
  /**
   * Resolves once every event of its partition up to `seq` (default: the log's end now) has been
   * dispatched.
   */
  caughtUp(seq?: number): Promise<void>;
  /** The seq its partition has been dispatched through. */
  readonly offset: number;
  /** Finishes the batch in hand and stops. */
  drain(): Promise<void>;
}

/** Lets I/O callbacks and timers run before the next piece of work. */
export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const { log, store, clock, logger } = options;
  const consumer = options.consumer ?? 'dispatcher';
  const partition = options.partition ?? 0;
  const crossPartition = (options.partitions ?? 1) > 1;
  const batchSize = options.batchSize ?? 512;
  const maxChainDepth = options.maxChainDepth ?? engineDefaults.maxChainDepth;
  /** The version deciding now, with its index; and one waiting to take over at the next batch. */
  let current: { version: CompiledVersion; index: RuleIndex } | undefined;
  let pending: CompiledVersion | undefined;
  let activated: number | undefined;
  let offset = 0;
  // How far a read found nothing more of this partition to decide: beyond `offset` when the other
  // partitions' events came after its last one. Not committed: a restart reads that stretch again.
  let readThrough = 0;
  const position = () => Math.max(offset, readThrough);
  // Log time as the flow stages see it: never earlier than the previous event's, even if the clock was set back.
  let lastT = 0;
  let batches = 0;
  const flowStates = createFlowStateCache();
  // The facts as of `offset` (committed), frozen: conditions hold on to it, so a change makes a new one.
  let facts: Readonly<Record<string, unknown>> = Object.freeze({});
  let stopped = false;
  let dirty = true;
  let wakeUp: (() => void) | undefined;
  let loop: Promise<void> | undefined;
  const waiters: Array<{ seq: number; resolve: () => void }> = [];
  // Recently committed events, ascending; bounded so a dispatcher that falls behind reads from the store.
  const tail: LoggedEvent[] = [];
  const maxTail = 20_000;

  /** The events right after `offset` that the tail holds without a gap, at most a batch. */
  const takeFromTail = (): LoggedEvent[] => {
    let stale = 0;
    while (stale < tail.length && tail[stale]!.seq <= offset) stale++;
    if (stale > 0) tail.splice(0, stale);
    const out: LoggedEvent[] = [];
    for (const event of tail) {
      if (event.seq !== offset + 1 + out.length || out.length >= batchSize) break;
      out.push(event);
    }
    return out;
  };

  const settleWaiters = () => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const waiter = waiters[i]!;
      if (waiter.seq <= position()) {
        waiters.splice(i, 1);
        waiter.resolve();
      }
    }
  };

  const dispatchBatch = async (): Promise<boolean> => {
    // With several partitions the events are read from the log, never taken from the tail: then the
    // log's horizon covers the fact changes of the other partitions before them too.
    let events = crossPartition ? [] : takeFromTail();
    if (events.length === 0) {
      const read = await log.readEvents({ partition, seq: offset }, batchSize);
      events = read.events;
      if (read.through > readThrough) readThrough = read.through;
    }
    if (events.length === 0) return false;
    const last = events[events.length - 1]!.seq;
    const first = events[0]!.seq;
    // Fact changes of every partition before this batch's last event, oldest first.
    const changesFromLog = crossPartition ? await readFactChanges(offset, last) : [];
    let nextChange = 0;
    // A new rulebook takes effect here, between batches and with no await before the decisions, so a
    // whole batch is decided with one version (and the shared matcher is never changed under it).
    if (pending) {
      current = { version: pending, index: options.indexer.index(pending.rulebook.rules) };
      pending = undefined;
    }
    const { version, index } = current!;
    const now = clock.now();
    const factChanges = new Map<string, FactViewChange>();
    const context = {
      index,
      rulebookVersion: version.id,
      facts,
      now,
      maxChainDepth,
      runId: options.runId,
      states: flowStates.view,
    };
    const runs: NewRun[] = [];
    const audit: AuditEntry[] = [];
    let t = lastT;
    const apply = (logged: LoggedEvent) => {
      const change = factChangeOf(logged);
      if (change === undefined) return;
      context.facts = applyFactChange(context.facts, change);
      factChanges.set(change.name, change);
    };
    for (const event of events) {
      while (nextChange < changesFromLog.length && changesFromLog[nextChange]!.seq < event.seq)
        apply(changesFromLog[nextChange++]!);
      t = Math.max(t, event.receivedAt);
      const decision = decideForEvent(event, t, context);
      for (const run of decision.runs) runs.push(run);
      for (const entry of decision.audit) audit.push(entry);
      // With one partition every fact change is in the stream: applied right after it is decided.
      if (!crossPartition) apply(event);
    }
    while (nextChange < changesFromLog.length) apply(changesFromLog[nextChange++]!);
    if (++batches % 64 === 0) flowStates.sweep(t, 1000);
    const changes = flowStates.pending();
    try {
      await store.commitDispatch({
        consumer,
        partition,
        offset: last,
        runs,
        audit,
        ...(activated === version.id ? {} : { activation: { seq: first, version: version.id } }),
        ...(changes.states.length > 0 ? { states: changes.states } : {}),
        ...(changes.timers.length > 0 ? { timers: changes.timers } : {}),
        ...(factChanges.size > 0 ? { facts: [...factChanges.values()] } : {}),
      });
    } catch (error) {
      flowStates.rolledBack();
      throw error;
    }
    flowStates.committed();
    facts = context.facts;
    options.diskFull?.wrote();
    lastT = t;
    activated = version.id;
    offset = last;
    settleWaiters();
    if (runs.length > 0) options.onRunsCreated?.();
    if (changes.timers.length > 0) options.onTimersChanged?.();
    return true;
  };

  const run = async () => {
    let failures = 0;
    while (!stopped) {
      if (!current && !pending) {
        await sleepUntilWoken();
        continue;
      }
      dirty = false;
      try {
        const more = await dispatchBatch();
        failures = 0;
        if (!more && !dirty) {
          settleWaiters();
          await sleepUntilWoken();
        } else {
          // The embedded store answers synchronously, so without this a backlog would be worked off in
          // one chain of microtasks and starve everything else (HTTP requests, timers, the executor).
          await yieldToEventLoop();
        }
      } catch (error) {
        // Nothing was committed: the same batch is decided again after a pause. Never skip an event.
        failures++;
        // Room comes back without anyone telling: look again every few seconds (an append that passes
        // wakes the dispatcher at once anyway).
        const diskFull = options.diskFull?.refused(error) === true;
        const delay = Math.min(diskFull ? 5_000 : 30_000, 100 * 2 ** Math.min(failures, 9));
        if (!diskFull)
          logger.error({ error: toErrorInfo(error), offset, retryInMs: delay }, 'dispatch failed; retrying');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          wakeUp = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        dirty = true;
      }
    }
  };

  /** The fact changes with `after < seq <= through`, in every partition, oldest first. */
  const readFactChanges = async (after: number, through: number): Promise<LoggedEvent[]> => {
    const out: LoggedEvent[] = [];
    for (let from = after; ; ) {
      const page = await log.readFactChanges(from, through, 1000);
      for (const change of page) out.push(change);
      if (page.length < 1000) return out;
      from = page[page.length - 1]!.seq;
    }
  };

  const sleepUntilWoken = () =>
    new Promise<void>((resolve) => {
      if (dirty || stopped) {
        resolve();
        return;
      }
      wakeUp = resolve;
    });

  return {
    async start() {
      offset = await store.getOffset(consumer, partition);
      flowStates.load(await store.loadFlowStates(partition));
      facts = Object.freeze(await store.loadFactsView(consumer, partition));
      activated = offset > 0 ? await store.rulebookVersionAt({ partition, seq: offset }) : undefined;
      loop = run();
    },
    wake() {
      dirty = true;
      const resolve = wakeUp;
      wakeUp = undefined;
      resolve?.();
    },
    offer(events) {
      if (tail.length + events.length > maxTail) tail.length = 0;
      else for (const event of events) tail.push(event);
      this.wake();
    },
    setRulebook(version) {
      pending = version;
      this.wake();
    },
    async caughtUp(seq) {
      const target = seq ?? (await log.lastSeq());
      if (position() >= target) return;
      const reached = new Promise<void>((resolve) => waiters.push({ seq: target, resolve }));
      // Only a read tells how far a partition that got none of the latest events has come.
      this.wake();
      await reached;
    },
    get offset() {
      return position();
    },
    async drain() {
      stopped = true;
      this.wake();
      await loop;
    },
  };
}

/** The change a `reflex.fact.changed` event logged (Reflex's own: outsiders cannot use the type). */
function factChangeOf(logged: LoggedEvent): FactViewChange | undefined {
  const { event } = logged;
  if (event.type !== 'reflex.fact.changed' || event.source !== reflexSource) return undefined;
  const data = event.data as { name?: unknown; value?: unknown; removed?: unknown } | undefined;
  if (typeof data?.name !== 'string') return undefined;
  return { name: data.name, value: data.removed === true ? undefined : data.value };
}

function applyFactChange(
  facts: Readonly<Record<string, unknown>>,
  change: FactViewChange,
): Readonly<Record<string, unknown>> {
  const next: Record<string, unknown> = { ...facts };
  if (change.value === undefined) delete next[change.name];
  // defineProperty, so a fact named `__proto__` stays a fact.
  else
    Object.defineProperty(next, change.name, {
      value: change.value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return Object.freeze(next);
}
