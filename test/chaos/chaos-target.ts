import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One request the chaos target received, by the step's idempotency key. */
export interface Delivery {
  key: string;
  path: string;
  /** The status the target answered, or undefined when the caller went away before the answer. */
  status: number | undefined;
  at: number;
}

/** Options of {@link createChaosTarget}. */
export interface ChaosTargetOptions {
  /** Whether the first request for `key` is answered 503 (so the step is retried). */
  failsFirst(key: string): boolean;
  /** How long the target holds the request before answering, in milliseconds. */
  delayMs(): number;
}

/**
 * The HTTP target of the chaos loop's actions: it answers after a delay (so steps are in flight when
 * Reflex is killed), fails the first request of some idempotency keys with 503 (so retries are in flight
 * too), counts every request by key, and notes when two requests of one key were in flight at once —
 * one step executed twice at the same time, which a single executor must never do.
 */
export interface ChaosTarget {
  readonly url: string;
  readonly deliveries: readonly Delivery[];
  /** Keys that had two requests in flight at the same time, with when it was seen. */
  readonly overlaps: ReadonlyArray<{ key: string; at: number }>;
  close(): Promise<void>;
}

export async function createChaosTarget(options: ChaosTargetOptions): Promise<ChaosTarget> {
  const deliveries: Delivery[] = [];
  const overlaps: Array<{ key: string; at: number }> = [];
  const inFlight = new Map<string, number>();
  const seen = new Set<string>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const key = String(req.headers['idempotency-key'] ?? '');
    const delivery: Delivery = { key, path: req.url ?? '', status: undefined, at: Date.now() };
    deliveries.push(delivery);
    const running = (inFlight.get(key) ?? 0) + 1;
    inFlight.set(key, running);
    if (running > 1) overlaps.push({ key, at: delivery.at });
    let done = false;
    // Until answered or until the caller's connection is gone (kill -9 closes it), the request is in flight.
    const finish = () => {
      if (done) return;
      done = true;
      const left = (inFlight.get(key) ?? 1) - 1;
      if (left === 0) inFlight.delete(key);
      else inFlight.set(key, left);
    };
    res.on('close', finish);
    req.resume();
    req.on('end', () => {
      const status = !seen.has(key) && options.failsFirst(key) ? 503 : 200;
      seen.add(key);
      setTimeout(() => {
        if (res.destroyed) return;
        delivery.status = status;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: status === 200 }));
        finish();
      }, options.delayMs());
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    deliveries,
    overlaps,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
