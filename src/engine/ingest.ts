import { ReflexError } from '../core/errors.js';
import type { AppendResult, CloudEvent, LoggedEvent } from '../core/event.js';
import type { Clock } from '../core/ports/clock.js';
import type { Store } from '../core/ports/store.js';
import type { DiskFullWatch } from './disk-full.js';

export interface IngestOptions {
  store: Store;
  clock: Clock;
  /**
   * Events waiting for a commit beyond which new requests are refused (503, Retry-After) instead of
   * queued: back-pressure rather than unbounded memory.
   * @default 20000
   */
  maxPending?: number;
  /** Called after every commit that appended at least one new event, with those events in log order. */
  onAppended?: (events: LoggedEvent[]) => void;
  /** Told about appends refused for want of space, and about those that pass again. */
  diskFull?: DiskFullWatch;
}

/**
 * The way into the log. Concurrent `append` calls are group-committed: everything that arrives while a
 * commit is being prepared or written goes into the next single transaction, so one fsync serves many
 * requests. A call resolves only after its events are committed.
 */
export interface Ingest {
  /**
   * Queues events for the next group commit and resolves after it. `internal` appends (events that
   * runs emit) are taken even while draining, so a step finishing in its grace period can still emit.
   */
  append(events: readonly CloudEvent[], options?: { internal?: boolean }): Promise<AppendResult[]>;
  /** Events queued and not yet committed. */
  readonly pending: number;
  /** Refuses new events and waits until everything queued is committed. */
  drain(): Promise<void>;
}

interface Waiting {
  events: readonly CloudEvent[];
  resolve: (results: AppendResult[]) => void;
  reject: (error: unknown) => void;
}

export function createIngest(options: IngestOptions): Ingest {
  const maxPending = options.maxPending ?? 20_000;
  let queue: Waiting[] = [];
  let queued = 0;
  let flushing: Promise<void> | undefined;
  let scheduled = false;
  let stopped = false;

  const flush = async (): Promise<void> => {
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      queued = 0;
      const all: CloudEvent[] = [];
      for (const waiting of batch) for (const event of waiting.events) all.push(event);
      try {
        const receivedAt = options.clock.now();
        const results = await options.store.appendEvents(all, receivedAt);
        let offset = 0;
        for (const waiting of batch) {
          const mine = results.slice(offset, offset + waiting.events.length);
          offset += waiting.events.length;
          waiting.resolve(mine);
        }
        const appended: LoggedEvent[] = [];
        results.forEach((result, i) => {
          if (!result.duplicate) appended.push({ seq: result.seq, receivedAt, event: all[i]! });
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

  const schedule = () => {
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
  };

  return {
    append(events, appendOptions) {
      if (stopped && appendOptions?.internal !== true)
        return Promise.reject(new ReflexError('REFLEX_ERR_INGEST_STOPPED'));
      if (events.length === 0) return Promise.resolve([]);
      if (queued + events.length > maxPending && queued > 0) {
        return Promise.reject(new ReflexError('REFLEX_ERR_INGEST_OVERLOADED', { pending: queued }));
      }
      return new Promise<AppendResult[]>((resolve, reject) => {
        queue.push({ events, resolve, reject });
        queued += events.length;
        schedule();
      });
    },
    get pending() {
      return queued;
    },
    async drain() {
      stopped = true;
      while (flushing || scheduled || queue.length > 0) {
        if (flushing) await flushing;
        else await new Promise<void>((resolve) => setImmediate(resolve));
      }
    },
  };
}
