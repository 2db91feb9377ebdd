import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { closedLoop, openLoop } from './load.js';

const servers: Server[] = [];

/** A real HTTP server on 127.0.0.1:0 that reads the whole body before calling `handle`. */
async function serve(handle: (body: string, response: ServerResponse, request: IncomingMessage) => void) {
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => handle(Buffer.concat(chunks).toString('utf8'), response, request));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('no address');
  return `http://127.0.0.1:${address.port}`;
}

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe('load', () => {
  it('openLoop - a stall shows in every request scheduled during it, not just the ones in flight', async () => {
    const stallUntil = Date.now() + 300;
    const heldResponses: ServerResponse[] = [];
    const origin = await serve((_body, response) => {
      if (Date.now() < stallUntil) {
        heldResponses.push(response);
        if (heldResponses.length === 1) {
          setTimeout(() => {
            for (const held of heldResponses) held.writeHead(202).end();
          }, stallUntil - Date.now());
        }
        return;
      }
      response.writeHead(202).end();
    });
    const result = await openLoop({
      origin,
      path: '/',
      connections: 5,
      ratePerS: 200,
      durationS: 1,
      contentType: 'application/json',
      body: (i) => JSON.stringify({ i }),
    });
    expect(result.sent).toBe(200);
    expect(result.ok).toBe(200);
    // Requests scheduled in the first ~270 ms (about a quarter) waited at least 30 ms; measured from the
    // moment a connection took them, only the 5 in flight would have.
    expect(result.latency.p90).toBeGreaterThan(30);
    expect(result.latency.max).toBeGreaterThan(250);
    expect(result.latency.p50).toBeLessThan(result.latency.p90);
  });

  it('openLoop - requests a stalled server never answers are counted as unanswered once nothing moves', async () => {
    const origin = await serve(() => {
      // Never answers.
    });
    const startedAt = Date.now();
    const result = await openLoop({
      origin,
      path: '/',
      connections: 5,
      ratePerS: 50,
      durationS: 0.2,
      contentType: 'application/json',
      body: () => '{}',
      stallTimeoutMs: 300,
    });
    expect(result.ok).toBe(0);
    expect(result.unanswered).toBe(10);
    expect(result.failed).toBe(10);
    expect(Date.now() - startedAt).toBeLessThan(5_000);
  });

  it('openLoop - a slow server that keeps answering is waited for past the stall timeout', async () => {
    // Answers one request every 40 ms, so the last of 20 comes about 800 ms after the last send.
    let queue = Promise.resolve();
    const origin = await serve((_body, response) => {
      queue = queue
        .then(() => new Promise((resolve) => setTimeout(resolve, 40)))
        .then(() => {
          response.writeHead(202).end();
        });
    });
    const result = await openLoop({
      origin,
      path: '/',
      connections: 20,
      ratePerS: 200,
      durationS: 0.1,
      contentType: 'application/json',
      body: () => '{}',
      stallTimeoutMs: 300,
    });
    expect(result.unanswered).toBe(0);
    expect(result.ok).toBe(20);
    expect(result.latency.max).toBeGreaterThan(500);
  });

  it('openLoop - calls onResponse with the request index and the status', async () => {
    const origin = await serve((body, response) =>
      response.writeHead(JSON.parse(body).i % 2 ? 202 : 500).end(),
    );
    const seen = new Map<number, number>();
    const result = await openLoop({
      origin,
      path: '/',
      connections: 2,
      ratePerS: 100,
      durationS: 0.1,
      contentType: 'application/json',
      body: (i) => JSON.stringify({ i }),
      onResponse: (i, status) => seen.set(i, status),
    });
    expect([...seen.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(seen.get(1)).toBe(202);
    expect(seen.get(2)).toBe(500);
    expect(result.ok).toBe(5);
    expect(result.failed).toBe(5);
  });

  it('closedLoop - every request carries its own body with a correct Content-Length', async () => {
    const ids = new Set<string>();
    let bad = 0;
    const origin = await serve((body, response, request) => {
      try {
        const { id } = JSON.parse(body) as { id: string };
        if (Number(request.headers['content-length']) !== Buffer.byteLength(body)) bad++;
        ids.add(id);
        response.writeHead(202).end();
      } catch {
        bad++;
        response.writeHead(400).end();
      }
    });
    let n = 0;
    const result = await closedLoop({
      url: `${origin}/events`,
      connections: 4,
      durationS: 1,
      contentType: 'application/json',
      body: () => JSON.stringify({ id: `e-${n++}`, pad: 'x'.repeat(n % 7) }),
    });
    expect(bad).toBe(0);
    expect(result.failed).toBe(0);
    expect(result.ok).toBeGreaterThan(100);
    // Every answered request had an id of its own (the last few sent may be cut off by the end of the run).
    expect(ids.size).toBeGreaterThanOrEqual(result.ok);
    expect(result.latency.count).toBe(result.ok);
    expect(result.throughput).toBeGreaterThan(0);
  });
});
