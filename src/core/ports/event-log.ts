import type { AppendResult, CloudEvent, LoggedEvent, LogPosition } from '../event.js';

/**
 * The EventLog port: the append-only log of events, split into partitions.
 *
 * **Dedup rule.** (`source`, `id`) is unique across the whole log, all partitions together: an event
 * whose identity is already logged is never appended again, whichever partition it would go to.
 *
 * **Positions.** `seq` is one sequence for the whole log, assigned in commit order: an event at seq s
 * was committed after every event with a lower seq, in any partition. Within one partition seqs rise
 * with gaps. Run ids, idempotency keys, audit entries and API references name an event by its seq.
 */
export interface EventLog {
  /**
   * Appends events in one transaction (a group commit) and returns, in order, each one's position; an
   * event whose (`source`, `id`) is already in the log (or earlier in the same batch) is not appended
   * again and comes back with `duplicate: true` and the original's position. `partitions[i]` is the
   * partition `events[i]` goes to (the engine's partitioner chose it); absent, every event goes to 0.
   */
  appendEvents(
    events: readonly CloudEvent[],
    receivedAt: number,
    partitions?: readonly number[],
  ): Promise<AppendResult[]>;
  /**
   * Events of `after.partition` with `seq > after.seq`, oldest first, at most `limit`. The dispatchers
   * read with this, so it stops short of any event whose append (by `appendEvents`, `changeFact`,
   * `completeAttempt`, `fireDueTimers`) has committed but not yet returned: nothing is decided before
   * its sender could have been told it is stored. `through` says how far the partition has been read:
   * every event of the partition with a seq up to it is in `events` or before `after.seq`, and no event
   * will later appear below it — the caller may take it as its position even when `events` is empty.
   */
  readEvents(after: LogPosition, limit: number): Promise<LogRead>;
  /**
   * The `reflex.fact.changed` events of every partition with `afterSeq < seq <= throughSeq`, oldest
   * first, at most `limit`, under the same horizon as {@link readEvents}. Facts are a projection of the
   * log: each dispatcher applies these in seq order. (Fact changes are events, and with the log in
   * another place than the state, only the log has them in order: that is why this is the log's.)
   */
  readFactChanges(afterSeq: number, throughSeq: number, limit: number): Promise<LoggedEvent[]>;
  getEvent(seq: number): Promise<LoggedEvent | undefined>;
  /** Events with this id (one per source that used it), oldest first. */
  findEventsById(id: string, source?: string): Promise<LoggedEvent[]>;
  /** The highest `seq` in the log (any partition), 0 when it is empty. */
  lastSeq(): Promise<number>;
}

/** What {@link EventLog.readEvents} read. */
export interface LogRead {
  events: LoggedEvent[];
  /** The seq the partition has been read through (see `readEvents`); at least the last event's. */
  through: number;
}
