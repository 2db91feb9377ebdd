import { ReflexError, toErrorInfo } from '../core/errors.js';
import type { Clock } from '../core/ports/clock.js';
import type { Logger } from '../core/ports/logger.js';

/** Whether `error` is the store saying the disk is full. */
export function isDiskFull(error: unknown): error is ReflexError {
  return error instanceof ReflexError && error.code === 'REFLEX_ERR_STORE_DISK_FULL';
}

/** What a refused write was, for the summary at the end of an episode. */
export interface RefusedWrites {
  /** Appends refused: HTTP requests and `emit` steps. */
  appends?: number;
  /** Events in those appends. */
  events?: number;
  /** Fact changes refused (API requests and `fact` steps). */
  factChanges?: number;
}

/**
 * Follows episodes of a full disk, so that they are logged once instead of once per refused request:
 * one `error` line when the first write is refused, one `info` line — how long it lasted and what was
 * refused meanwhile — once writes have gone through for {@link DiskFullWatchOptions.settleMs}. Near the
 * edge of full, small commits pass while large ones fail (a checkpoint lets SQLite write its WAL from the
 * start again); such flapping stays one episode instead of a pair of lines per flap. The dispatcher,
 * executor and timers report their refused writes here and stay quiet about them; they retry with a
 * pause.
 */
export interface DiskFullWatch {
  /** Whether writes are being refused for want of space right now. */
  readonly full: boolean;
  /**
   * Reports a failed write. Returns true (and counts `what`) when it failed for want of space — the
   * caller then logs nothing itself — and false for any other error.
   */
  refused(error: unknown, what?: RefusedWrites): boolean;
  /** Reports a write that went through (one that wrote something: an empty commit proves no room). */
  wrote(): void;
}

/** Options of {@link createDiskFullWatch}. */
export interface DiskFullWatchOptions {
  logger: Logger;
  clock: Clock;
  /**
   * How long writes must go through, without a refusal, before the episode is over and logged as such.
   * @default 10000
   */
  settleMs?: number;
}

export function createDiskFullWatch(options: DiskFullWatchOptions): DiskFullWatch {
  const { logger, clock } = options;
  const settleMs = options.settleMs ?? 10_000;
  /** When the episode began; undefined outside one. */
  let since: number | undefined;
  let full = false;
  /** When the writes that are settling began to go through. */
  let resumedAt = 0;
  let settling: (() => void) | undefined;
  let counts: Required<RefusedWrites> = { appends: 0, events: 0, factChanges: 0 };
  const settled = () => {
    settling = undefined;
    if (since === undefined || full) return;
    const durationMs = Math.max(0, resumedAt - since);
    since = undefined;
    logger.info({ durationMs, refused: counts }, 'disk has room again: writes resumed');
  };
  return {
    get full() {
      return full;
    },
    refused(error, what = {}) {
      if (!isDiskFull(error)) return false;
      full = true;
      settling?.();
      settling = undefined;
      if (since === undefined) {
        since = clock.now();
        counts = { appends: 0, events: 0, factChanges: 0 };
        logger.error(
          { error: toErrorInfo(error) },
          'disk full: writes are refused (503 REFLEX_ERR_STORE_DISK_FULL) until there is room again; logged once until then',
        );
      }
      counts.appends += what.appends ?? 0;
      counts.events += what.events ?? 0;
      counts.factChanges += what.factChanges ?? 0;
      return true;
    },
    wrote() {
      if (!full) return;
      full = false;
      resumedAt = clock.now();
      settling = clock.schedule(clock.now() + settleMs, settled);
    },
  };
}
