import autocannon from 'autocannon';
import { Pool } from 'undici';
import { createSamples, type LatencySummary } from './percentiles.js';

/** What one load run measured. Latencies are in milliseconds. */
export interface LoadResult {
  /** 2xx answers. */
  ok: number;
  /** Non-2xx answers, connection errors and timeouts. */
  failed: number;
  /** Seconds from the first request sent to the last answer counted. */
  durationS: number;
  /** 2xx answers per second over `durationS`. */
  throughput: number;
  /** Of the 2xx answers only. */
  latency: LatencySummary;
}

/** Options of {@link closedLoop}. */
export interface ClosedLoopOptions {
  /** Full URL of the endpoint, e.g. `http://127.0.0.1:7070/api/v1/events`. */
  url: string;
  /** Each connection sends its next request as soon as the previous one is answered. */
  connections: number;
  durationS: number;
  contentType: string;
  /** A fresh body per request (so every event has a unique id). */
  body: () => string;
}

/**
 * Closed-loop maximum throughput with autocannon: `connections` connections, each with one request in
 * flight, for `durationS` seconds. The body is made per request in `setupRequest` (autocannon's `-I`
 * id replacement gets Content-Length wrong), and latencies are taken from autocannon's per-response
 * timings in full precision (its own histogram rounds to whole milliseconds).
 */
export function closedLoop(options: ClosedLoopOptions): Promise<LoadResult> {
  const latencies = createSamples(1 << 18);
  let ok = 0;
  let failed = 0;
  const startedAt = process.hrtime.bigint();
  return new Promise<LoadResult>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        duration: options.durationS,
        pipelining: 1,
        timeout: 30,
        method: 'POST',
        headers: { 'content-type': options.contentType },
        requests: [{ setupRequest: (request) => ({ ...request, body: options.body() }) }],
      },
      (error, result) => {
        if (error) {
          reject(error);
          return;
        }
        const durationS = Number(process.hrtime.bigint() - startedAt) / 1e9;
        failed += result.errors + result.timeouts;
        resolve({ ok, failed, durationS, throughput: ok / durationS, latency: latencies.summarize() });
      },
    );
    instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      if (statusCode >= 200 && statusCode < 300) {
        ok++;
        latencies.add(responseTimeMs);
      } else {
        failed++;
      }
    });
  });
}

/** Options of {@link openLoop}. */
export interface OpenLoopOptions {
  /** `http://H:P`. */
  origin: string;
  path: string;
  /** Connections in the undici pool; a request waits for a free one (and that wait is latency). */
  connections: number;
  /** Requests per second, sent on a fixed schedule whatever the answers do. */
  ratePerS: number;
  durationS: number;
  contentType: string;
  /** The body of the `i`-th request (0-based). */
  body: (i: number) => string;
  /**
   * Called when the answer's headers to the `i`-th request arrive; `receivedAt` is
   * `process.hrtime.bigint()` at that moment.
   */
  onResponse?: (i: number, statusCode: number, receivedAt: bigint) => void;
  /**
   * Requests sent and not yet answered beyond which due sends are skipped (and counted) instead of
   * queued without bound; only reached when the server has all but stopped.
   * @default 100000
   */
  maxOutstanding?: number;
  /**
   * After the last request was sent, the wait for the answers still outstanding ends once no answer at
   * all has arrived for this long; those still missing are counted as `unanswered`. A server that is
   * merely slow keeps answering and is waited for; one that stalled must not hang the bench.
   * @default 30000
   */
  stallTimeoutMs?: number;
}

/** What an open-loop run measured. */
export interface OpenLoopResult extends LoadResult {
  /** The rate asked for. */
  targetRate: number;
  /** Requests sent. */
  sent: number;
  /** Requests not sent because `maxOutstanding` was reached. */
  skipped: number;
  /** Requests given up on after `stallTimeoutMs` without any answer (included in `failed`). */
  unanswered: number;
  /**
   * How late the generator itself sent requests after their scheduled time (timer granularity and its
   * own event loop): the floor under every latency it reports.
   */
  sendLag: LatencySummary;
}

/**
 * Open-loop load at a fixed rate over an undici Pool. Request `i` is due at `start + i / rate`; its
 * latency runs from that scheduled moment to the arrival of the answer's headers. A server that stalls
 * therefore shows the full wait of every request scheduled during the stall (coordinated omission is
 * accounted for), not just the one request that was in flight.
 *
 * @example
 * const run = await openLoop({ origin, path: '/api/v1/events', connections: 50, ratePerS: 5000,
 *   durationS: 10, contentType: cloudEventType, body: (i) => benchEventBody(`e-${i}`) });
 */
export async function openLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const maxOutstanding = options.maxOutstanding ?? 100_000;
  const stallTimeoutMs = options.stallTimeoutMs ?? 30_000;
  const pool = new Pool(options.origin, {
    connections: options.connections,
    pipelining: 1,
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  });
  const total = Math.round(options.ratePerS * options.durationS);
  const intervalNs = 1e9 / options.ratePerS;
  const latencies = createSamples(Math.max(1024, total));
  const sendLag = createSamples(Math.max(1024, total));
  let ok = 0;
  let failed = 0;
  let skipped = 0;
  let outstanding = 0;
  let unanswered = 0;
  let gaveUp = false;
  let lastAnswerNs = 0;
  let lastProgressNs = 0;
  // Times relative to t0 in ns fit a double exactly; absolute hrtime values may not.
  const t0 = process.hrtime.bigint();
  const relNow = () => Number(process.hrtime.bigint() - t0);
  const startNs = relNow() + 5e6;
  let settleAll: (() => void) | undefined;
  let allSent = false;

  const fire = (i: number, dueNs: number, nowNs: number) => {
    if (outstanding >= maxOutstanding) {
      skipped++;
      return;
    }
    sendLag.add((nowNs - dueNs) / 1e6);
    outstanding++;
    pool
      .request({
        path: options.path,
        method: 'POST',
        headers: { 'content-type': options.contentType },
        body: options.body(i),
      })
      .then(async (response) => {
        const receivedAt = process.hrtime.bigint();
        const at = Number(receivedAt - t0);
        lastProgressNs = at;
        lastAnswerNs = Math.max(lastAnswerNs, at);
        if (response.statusCode >= 200 && response.statusCode < 300) {
          ok++;
          latencies.add((at - dueNs) / 1e6);
        } else {
          failed++;
        }
        options.onResponse?.(i, response.statusCode, receivedAt);
        await response.body.dump();
      })
      .catch(() => {
        if (gaveUp) unanswered++;
        failed++;
      })
      .finally(() => {
        outstanding--;
        if (allSent && outstanding === 0) settleAll?.();
      });
  };

  const done = new Promise<void>((resolve) => {
    settleAll = resolve;
  });
  await new Promise<void>((resolve) => {
    let next = 0;
    const tick = () => {
      const now = relNow();
      while (next < total) {
        const due = startNs + next * intervalNs;
        if (due > now) break;
        fire(next, due, now);
        next++;
      }
      if (next >= total) {
        resolve();
        return;
      }
      const waitMs = (startNs + next * intervalNs - relNow()) / 1e6;
      setTimeout(tick, Math.max(0, waitMs));
    };
    tick();
  });
  allSent = true;
  lastProgressNs = Math.max(lastProgressNs, relNow());
  while (outstanding > 0 && relNow() - lastProgressNs < stallTimeoutMs * 1e6) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, 100)))]);
    clearTimeout(timer);
  }
  if (outstanding > 0) {
    gaveUp = true;
    // Destroying the pool fails every request still waiting; their handlers count them as unanswered.
    await pool.destroy();
    if (outstanding > 0) await done;
  } else {
    await pool.close();
  }
  const durationS = Math.max(lastAnswerNs - startNs, 1) / 1e9;
  return {
    ok,
    failed,
    durationS,
    throughput: ok / durationS,
    latency: latencies.summarize(),
    targetRate: options.ratePerS,
    sent: total - skipped,
    skipped,
    unanswered,
    sendLag: sendLag.summarize(),
  };
}
