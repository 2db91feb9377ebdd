import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createEngineHarness, type EngineHarness, eventually } from '../helpers/engine-harness.js';

/**
 * A run is executed once at a time, and each try of a step is recorded once (found by the chaos loop's
 * brief, test/chaos/): the executor must hold the lease of a run for as long as it executes it, so that
 * neither it nor another executor claims the run again meanwhile.
 */

let harness: EngineHarness | undefined;

afterEach(async () => {
  await harness?.close();
  await gate?.close();
  harness = undefined;
  gate = undefined;
});

/**
 * An HTTP target that holds each request open until the test answers it: `calls` lists each call by its
 * idempotency key.
 */
async function createGateTarget() {
  const calls: Array<{ key: string; finish: () => void }> = [];
  let held = true;
  const server = createServer((req, res) => {
    req.resume();
    const finish = () => {
      if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    };
    calls.push({ key: String(req.headers['idempotency-key']), finish });
    if (!held) finish();
  });
  /** Answers every call held so far, and every later one at once. */
  const release = () => {
    held = false;
    for (const call of calls) call.finish();
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { url, calls, release, close };
}

let gate: Awaited<ReturnType<typeof createGateTarget>> | undefined;

const rulebook = (url: string) => `
rules:
  - name: steps
    when: { pattern: { type: [go] } }
    then:
      - { id: one, http: { url: "${url}/one" } }
      - { id: two, http: { url: "${url}/two" } }
      - { id: three, http: { url: "${url}/three" } }
  - name: marker
    when: { pattern: { type: [marker] } }
    then: [ { log: marker } ]
`;

describe('executor - leases of runs being executed', () => {
  it('executor - a run whose steps together outlast the lease is not claimed again while it runs', async () => {
    const target = await createGateTarget();
    gate = target;
    const leaseMs = 1000;
    harness = await createEngineHarness(rulebook(target.url), { leaseMs });
    const { clock, store } = harness;
    await harness.send({ type: 'go' });
    await eventually(() => target.calls.length === 1);
    const runId = target.calls[0]!.key.split(':')[0]!;

    // Each step takes a little over half the lease: none is long enough for a renewal within it, all
    // together are longer than the lease.
    clock.advance(leaseMs * 0.6);
    target.calls[0]!.finish();
    await eventually(() => target.calls.length === 2);
    clock.advance(leaseMs * 0.6);
    // A marker run: once it has succeeded, the executor has claimed at the clock's new time, when the
    // first claim of `steps` would have run out.
    const [markerSeq] = await harness.send({ type: 'marker' });
    await eventually(async () => (await store.runsForEvent(markerSeq!))[0]?.status === 'succeeded');

    target.release();
    const run = await eventually(async () => {
      const found = await store.getRun(runId);
      return (found?.status === 'succeeded' || found?.status === 'failed') && found;
    });
    expect(target.calls.map((c) => c.key)).toEqual([`${runId}:one`, `${runId}:two`, `${runId}:three`]);
    expect(run.claims).toBe(1);
    expect(run.attempts.map((a) => [a.stepId, a.attempt, a.status])).toEqual([
      ['one', 1, 'succeeded'],
      ['two', 1, 'succeeded'],
      ['three', 1, 'succeeded'],
    ]);
  });

  it('executor - the lease of a run is renewed while its step runs, so another executor cannot take it', async () => {
    const target = await createGateTarget();
    gate = target;
    const leaseMs = 1000;
    harness = await createEngineHarness(rulebook(target.url), { leaseMs });
    const { clock, store } = harness;
    await harness.send({ type: 'go' });
    await eventually(() => target.calls.length === 1);
    const runId = target.calls[0]!.key.split(':')[0]!;
    // The step runs for five leases: the renewals (every third of the lease) keep it held.
    clock.advance(leaseMs * 5);
    const db = new Database(join(harness.dir, 'reflex.db'), { readonly: true });
    try {
      const leaseUntil = () =>
        (db.prepare('SELECT lease_until AS until FROM runs WHERE id = ?').get(runId) as { until: number })
          .until;
      await eventually(() => leaseUntil() > clock.now());
    } finally {
      db.close();
    }
    expect(await store.claimRuns({ owner: 'another-node', now: clock.now(), leaseMs, limit: 10 })).toEqual(
      [],
    );
    target.release();
    const run = await eventually(async () => {
      const found = await store.getRun(runId);
      return found?.status === 'succeeded' && found;
    });
    expect(run.attempts.map((a) => [a.stepId, a.attempt])).toEqual([
      ['one', 1],
      ['two', 1],
      ['three', 1],
    ]);
  });
});
