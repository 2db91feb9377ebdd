import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { type LatencySummary, summarize } from './percentiles.js';

/** What {@link measureFdatasync} found. */
export interface FdatasyncCost {
  /** Bytes written before each `fdatasync`. */
  bytes: number;
  /** How many write + sync pairs were timed. */
  count: number;
  /** Milliseconds per pair (the write and the `fdatasync` together). */
  latency: LatencySummary;
}

/**
 * Times `count` × (append `bytes` to a file + `fdatasync`) in `dir`, the cost the durable ingest pays
 * per group commit on that file system: the figure to read the ingest ratio against. The file grows
 * like a WAL does (each write appends), and is removed afterwards.
 * @default count 200
 * @default bytes 16384 (16 KiB: a group commit of some 30 events of 300 bytes, with its index pages)
 */
export function measureFdatasync(dir: string, count = 200, bytes = 16_384): FdatasyncCost {
  const path = join(dir, 'fdatasync-probe');
  const chunk = Buffer.alloc(bytes, 0x61);
  const fd = openSync(path, 'w');
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const started = process.hrtime.bigint();
      writeSync(fd, chunk);
      fdatasyncSync(fd);
      times.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
  return { bytes, count, latency: summarize(times) };
}
