import { ReflexError } from '../core/errors.js';
import type { AppendResult, CloudEvent, LoggedEvent } from '../core/event.js';
import type { Clock } from '../core/ports/clock.js';
import type { EventLog } from '../core/ports/store.js';
import type { DiskFullWatch } from './disk-full.js';
import { engineDefaults } from './options.js';

export interface IngestOptions {
  log: Pick<EventLog, 'appendEvents'>;
  clock: Clock;
  /**
   * The partition each event goes to.
   * @default every event to partition 0
   */
  partitionOf?: (event: CloudEvent) => number;
  /**
   * Events waiting for a commit beyond which new requests are refused (503, Retry-After) instead of
   * queued: back-pressure rather than unbounded memory.
   * @default engineDefaults.maxPendingEvents (20000)
   */
  maxPending?: number;
  /** Called after every commit that appended at least one new event, with those events in log order. */
  onAppended?: (events: LoggedEvent[]) => void;
  /** Told about appends refused for want of space, and about those that pass again. */
  diskFull?: DiskFullWatch;
}

/** How one `append` is taken. */
export interface AppendOptions {
  /**
   * Events that runs emit: taken even while draining, so a step finishing in its grace period can still
   * emit.
   * @default false
   */
  internal?: boolean;
  /**
   * What happens when the queue is full (`maxPending`): `refuse` rejects at once with
   * REFLEX_ERR_INGEST_OVERLOADED (HTTP answers 503 with Retry-After, and the sender retries); `wait`
   * waits for room, behind every append already waiting, which is how a source that reads from a broker
   * is slowed down instead of buffering. Appends that wait are taken first come, first served, and an
   * append that would not wait is refused while any does, so nobody overtakes them.
   * @default 'refuse'
   */
  whenFull?: 'refuse' | 'wait';
  /**
   * Stops waiting for room: the append rejects with the signal's reason and nothing of it is appended.
   * Once its events are queued for a commit they are committed whatever the signal does.
   */
  signal?: AbortSignal;
}

/**
 * The way into the log. Concurrent `append` calls are group-committed: everything that arrives while a
 * commit is being prepared or written goes into the next single transaction, so one fsync serves many
 * requests. A call resolves only after its events are committed.
 */
export interface Ingest {
  /** Queues events for the next group commit and resolves after it (see {@link AppendOptions}). */
  append(events: readonly CloudEvent[], options?: AppendOptions): Promise<AppendResult[]>;
  /** Events queued and not yet committed. */
  readonly pending: number;
  /** Events of appends waiting for room in the queue (`whenFull: 'wait'`). */
  readonly waiting: number;
  /**
   * Refuses new events, refuses the appends still waiting for room (REFLEX_ERR_INGEST_STOPPED; internal
   * ones excepted), and waits until everything queued is committed.
   */
  drain(): Promise<void>;
}

interface Waiting {
  events: readonly CloudEvent[];
  resolve: (results: AppendResult[]) => void;
  reject: (error: unknown) => void;
}

/** An append waiting for room, in arrival order. */
interface WaitingForRoom extends Waiting {
  internal: boolean;
  /** Stops listening to the append's signal. */
  forget: () => void;
}

export function createIngest(options: IngestOptions): Ingest {
  const maxPending = options.maxPending ?? engineDefaults.maxPendingEvents;
  let queue: Waiting[] = [];
  let queued = 0;
  // Bounded by the callers: each waiting append is one caller awaiting it (a source awaits its emit).
  let waitingForRoom: WaitingForRoom[] = [];
  let waitingEvents = 0;
  let flushing: Promise<void> | undefined;
  let scheduled = false;
  let stopped = false;

  // A batch larger than the whole queue still goes through, alone.
  const fits = (count: number) => queued === 0 || queued + count <= maxPending;

  const enqueue = (waiting: Waiting) => {
    queue.push(waiting);
    queued += waiting.events.length;
    schedule();
  };

  /** Moves appends waiting for room into the queue, in arrival order, while they fit. */
  const admit = () => {
    while (waitingForRoom.length > 0 && fits(waitingForRoom[0]!.events.length)) {
      const next = waitingForRoom.shift()!;
      waitingEvents -= next.events.length;
      next.forget();
      enqueue(next);
    }
  };

  const flush = async (): Promise<void> => {
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      queued = 0;
      // Room again: the appends waiting for it join the next commit while this one is written.
      admit();
      const all: CloudEvent[] = [];
      for (const waiting of batch) for (const event of waiting.events) all.push(event);
      try {
        const receivedAt = options.clock.now();
        const partitionOf = options.partitionOf;
        const results =
          partitionOf === undefined
            ? await options.log.appendEvents(all, receivedAt)
            : await options.log.appendEvents(all, receivedAt, all.map(partitionOf));
        let offset = 0;
        for (const waiting of batch) {
          const mine = results.slice(offset, offset + waiting.events.length);
          offset += waiting.events.length;
          waiting.resolve(mine);
        }
        const appended: LoggedEvent[] = [];
        results.forEach((result, i) => {
          if (!result.duplicate)
            appended.push({ seq: result.seq, partition: result.partition, receivedAt, event: all[i]! });
        });
        if (appended.length > 0) {
          options.diskFull?.wrote();
          options.onAppended?.(appended);
        }
      } catch (error) {
        options.diskFull?.refused(error, { appends: batch.length, events: all.length });
        for (const waiting of batch) waiting.reject(error);
      }
    }
  };

  function schedule() {
    if (scheduled || flushing) return;
    scheduled = true;
    // setImmediate lets every request parsed in this turn of the event loop join the same commit.
    setImmediate(() => {
      scheduled = false;
      flushing = flush().finally(() => {
        flushing = undefined;
        if (queue.length > 0) schedule();
      });
    });
  }

  return {
    append(events, appendOptions) {
      const internal = appendOptions?.internal === true;
      if (stopped && !internal) return Promise.reject(new ReflexError('REFLEX_ERR_INGEST_STOPPED'));
      if (events.length === 0) return Promise.resolve([]);
      const signal = appendOptions?.signal;
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (waitingForRoom.length === 0 && fits(events.length)) {
        return new Promise<AppendResult[]>((resolve, reject) => enqueue({ events, resolve, reject }));
      }
      if (appendOptions?.whenFull !== 'wait') {
        return Promise.reject(
          new ReflexError('REFLEX_ERR_INGEST_OVERLOADED', { pending: queued + waitingEvents }),
        );
      }
      return new Promise<AppendResult[]>((resolve, reject) => {
        const waiter: WaitingForRoom = { events, resolve, reject, internal, forget: () => {} };
        if (signal !== undefined) {
          const onAbort = () => {
            const at = waitingForRoom.indexOf(waiter);
            if (at === -1) return;
            waitingForRoom.splice(at, 1);
            waitingEvents -= events.length;
            reject(signal.reason);
            // The one that gave up may have been first in line: those behind it may fit now.
            admit();
          };
          signal.addEventListener('abort', onAbort, { once: true });
          waiter.forget = () => signal.removeEventListener('abort', onAbort);
        }
        waitingForRoom.push(waiter);
        waitingEvents += events.length;
      });
    },
    get pending() {
      return queued;
    },
    get waiting() {
      return waitingEvents;
    },
    async drain() {
      stopped = true;
      const refused = waitingForRoom.filter((waiter) => !waiter.internal);
      waitingForRoom = waitingForRoom.filter((waiter) => waiter.internal);
      for (const waiter of refused) {
        waitingEvents -= waiter.events.length;
        waiter.forget();
        waiter.reject(new ReflexError('REFLEX_ERR_INGEST_STOPPED'));
      }
      while (flushing || scheduled || queue.length > 0 || waitingForRoom.length > 0) {
        if (flushing) await flushing;
        else await new Promise<void>((resolve) => setImmediate(resolve));
      }
    },
  };
}
