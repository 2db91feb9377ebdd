import type { LoggedEvent } from '../event.js';
import type { DeadLetter, Run, RunDetail, RunStatus } from './run-queue.js';

/**
 * The ReadModel port: the listings and lookups the API, the CLI and `explain` read. Nothing in it
 * changes anything.
 */
export interface ReadModel {
  /** A page of events that pass the filters, in the cursor's direction. */
  listEvents(query: EventQuery): Promise<LoggedEvent[]>;
  /**
   * A page as {@link listEvents} gives it, that also ends before the events' stored JSON text would
   * pass `maxBytes` in total (a first event larger than that is a page of its own); `more` says whether
   * another event passes the filters after the page. An event that does not fit is not parsed.
   */
  pageEvents(query: EventQuery, maxBytes: number): Promise<StorePage<LoggedEvent>>;
  getRun(id: string): Promise<RunDetail | undefined>;
  listRuns(query: RunQuery): Promise<Run[]>;
  /**
   * A page as {@link listRuns} gives it, that also ends before the runs' stored JSON (context, outputs,
   * error) would pass `maxBytes` in total (a first run larger than that is a page of its own); `more`
   * says whether another run passes the filters after the page.
   */
  pageRuns(query: RunQuery, maxBytes: number): Promise<StorePage<Run>>;
  /** Runs that the event at `seq` triggered. */
  runsForEvent(seq: number): Promise<Run[]>;
  listDeadLetters(limit: number): Promise<DeadLetter[]>;
}

/** One page of a listing bounded by size (`ReadModel.pageEvents`, `ReadModel.pageRuns`). */
export interface StorePage<T> {
  items: T[];
  /** Whether more items pass the filters after this page. */
  more: boolean;
}

/** Filters and position for `ReadModel.listEvents`. */
export interface EventQuery {
  type?: string;
  source?: string;
  /** Oldest first from just after this seq (tailing). */
  after?: number;
  /** Newest first from just before this seq (browsing back). Used when `after` is absent. */
  before?: number;
  limit: number;
}

/** Filters and position for `ReadModel.listRuns`. */
export interface RunQuery {
  rule?: string;
  status?: RunStatus;
  /** Newest first from just before this run id. */
  before?: string;
  limit: number;
}
