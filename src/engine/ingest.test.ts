import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CloudEvent } from '../core/event.js';
import { createTestClock } from '../core/ports/clock.js';
import type { Store } from '../core/ports/store.js';
import { createSqliteStore } from '../store/index.js';
import { gateAppends, track, until } from './gated-store.test-helpers.js';
import { createIngest, type Ingest } from './ingest.js';

let dir: string;
let store: Store;
let gate: ReturnType<typeof gateAppends>;
let ingest: Ingest;
let counter = 0;

const events = (n: number, tag: string): CloudEvent[] =>
  Array.from({ length: n }, () => ({
    specversion: '1.0',
    id: `${tag}-${++counter}`,
    source: 'test',
    type: tag,
  }));

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'reflex-ingest-'));
  store = await createSqliteStore({ dir });
  gate = gateAppends(store);
  ingest = createIngest({ log: gate.store, clock: createTestClock(1_000), maxPending: 2 });
});

afterEach(async () => {
  gate.open();
  await ingest.drain();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** Holds the store and fills ingest: one event in the commit being written, two queued behind it. */
async function fill() {
  gate.hold();
  const writing = ingest.append(events(1, 'writing'));
  await until(() => gate.waiting === 1);
  const queued = ingest.append(events(2, 'queued'));
  expect(ingest.pending).toBe(2);
  return { writing, queued };
}

describe('ingest', () => {
  it('ingest - an append that may wait waits for room instead of failing, and resolves once committed', async () => {
    const { writing, queued } = await fill();
    await expect(ingest.append(events(1, 'refused'))).rejects.toMatchObject({
      code: 'REFLEX_ERR_INGEST_OVERLOADED',
    });
    const waiting = track(ingest.append(events(1, 'waiting'), { whenFull: 'wait' }));
    await until(() => ingest.waiting === 1);
    expect(waiting.settled).toBe(false);

    gate.open();
    await Promise.all([writing, queued]);
    await until(() => waiting.settled);
    expect(waiting.error).toBeUndefined();
    const [result] = waiting.value!;
    expect(result).toMatchObject({ duplicate: false });
    // Resolved means committed: the event is in the log.
    expect((await store.getEvent(result!.seq))?.event.type).toBe('waiting');
    expect(ingest.waiting).toBe(0);
  });

  it('ingest - appends waiting for room are taken first come, first served, and nobody overtakes them', async () => {
    await fill();
    const first = track(ingest.append(events(1, 'first'), { whenFull: 'wait' }));
    const second = track(ingest.append(events(2, 'second'), { whenFull: 'wait' }));
    await until(() => ingest.waiting === 3);

    // The commit in hand finishes: the queued pair goes to the store, `first` moves into the queue, and
    // `second` (two events) does not fit beside it.
    gate.step();
    await until(() => gate.waiting === 1 && ingest.pending === 1);
    expect(ingest.waiting).toBe(2);
    // There is room for one event, but it is promised to `second`: a newcomer is refused or waits behind.
    await expect(ingest.append(events(1, 'newcomer'))).rejects.toMatchObject({
      code: 'REFLEX_ERR_INGEST_OVERLOADED',
    });
    const third = track(ingest.append(events(1, 'third'), { whenFull: 'wait' }));
    await until(() => ingest.waiting === 3);
    expect(ingest.pending).toBe(1);

    gate.open();
    await until(() => first.settled && second.settled && third.settled);
    const seqs = [first, second, third].map((t) => t.value!.map((r) => r.seq));
    expect(seqs.flat()).toEqual([...seqs.flat()].sort((a, b) => a - b));
    const types = (await store.readEvents({ partition: 0, seq: 0 }, 100)).events.map(
      (logged) => logged.event.type,
    );
    expect(types).toEqual(['writing', 'queued', 'queued', 'first', 'second', 'second', 'third']);
  });

  it('ingest - a waiting append gives up when its signal aborts, and the ones behind it move up', async () => {
    const { writing, queued } = await fill();
    const controller = new AbortController();
    const gaveUp = track(
      ingest.append(events(1, 'gave-up'), { whenFull: 'wait', signal: controller.signal }),
    );
    const behind = track(ingest.append(events(1, 'behind'), { whenFull: 'wait' }));
    await until(() => ingest.waiting === 2);

    controller.abort(new Error('the source is closing'));
    await until(() => gaveUp.settled);
    expect((gaveUp.error as Error).message).toBe('the source is closing');
    expect(ingest.waiting).toBe(1);

    gate.open();
    await Promise.all([writing, queued]);
    await until(() => behind.settled);
    expect(behind.error).toBeUndefined();
    const types = (await store.readEvents({ partition: 0, seq: 0 }, 100)).events.map(
      (logged) => logged.event.type,
    );
    expect(types).toEqual(['writing', 'queued', 'queued', 'behind']);
  });

  it('ingest - an already aborted signal refuses at once, and nothing is appended', async () => {
    const controller = new AbortController();
    controller.abort(new Error('gone'));
    await expect(
      ingest.append(events(1, 'never'), { whenFull: 'wait', signal: controller.signal }),
    ).rejects.toThrow('gone');
    expect((await store.readEvents({ partition: 0, seq: 0 }, 10)).events).toEqual([]);
  });

  it('ingest - draining refuses the appends still waiting for room and commits those already queued', async () => {
    const { writing, queued } = await fill();
    const waiting = track(ingest.append(events(1, 'waiting'), { whenFull: 'wait' }));
    await until(() => ingest.waiting === 1);

    const drained = ingest.drain();
    await until(() => waiting.settled);
    expect(waiting.error).toMatchObject({ code: 'REFLEX_ERR_INGEST_STOPPED' });
    gate.open();
    await Promise.all([writing, queued, drained]);
    const types = (await store.readEvents({ partition: 0, seq: 0 }, 100)).events.map(
      (logged) => logged.event.type,
    );
    expect(types).toEqual(['writing', 'queued', 'queued']);
  });
});
