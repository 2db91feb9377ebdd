import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ReflexError } from '../core/errors.js';
import { type AppendResult, type CloudEvent, defaultEventLimits } from '../core/event.js';
import { createTestClock, type TestClock } from '../core/ports/clock.js';
import type { Logger } from '../core/ports/logger.js';
import type { Source, SourceContext, SourceKind, SourceStatus } from '../core/ports/source.js';
import type { Store } from '../core/ports/store.js';
import { createSourceStatus } from '../sources/source-status.js';
import { createSqliteStore } from '../store/index.js';
import { gateAppends, track, until } from './gated-store.test-helpers.js';
import { createIngest, type Ingest } from './ingest.js';
import { createSourceManager, type SourceInfo, type SourceManager } from './source-manager.js';

/**
 * A real source, as small as one can be: it takes deliveries from `deliver` (as a broker client would
 * from its connection), emits each one, and acks it only once `emit` resolved. What happened is kept in
 * `journal`, shared by every source the kind makes.
 */
function createQueueKind(journal: string[]) {
  const made: Array<{
    source: Source;
    deliver(event: CloudEvent): Promise<AppendResult[]>;
    context(): SourceContext;
  }> = [];
  const kind: SourceKind<{ version: number; failStart?: boolean; failCreate?: boolean }> = {
    kind: 'queue',
    create(name, config) {
      if (config.failCreate)
        throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', { option: name, reason: 'x', fix: 'y' });
      const status = createSourceStatus();
      let context: SourceContext | undefined;
      let accepting = false;
      const inHand = new Set<Promise<unknown>>();
      const label = `${name}@${config.version}`;
      const source: Source = {
        kind: 'queue',
        name,
        get status() {
          return status.current;
        },
        onStatus: status.onStatus,
        async start(ctx) {
          journal.push(`start ${label}`);
          if (config.failStart) throw new Error('cannot connect: no such broker');
          context = ctx;
          accepting = true;
          status.set({ type: 'up' });
        },
        async drain() {
          if (accepting) journal.push(`drain ${label}`);
          accepting = false;
          await Promise.allSettled([...inHand]);
        },
        async close() {
          await source.drain();
          journal.push(`close ${label}`);
          status.set({ type: 'stopped' });
        },
        [Symbol.asyncDispose]: () => source.close(),
      };
      made.push({
        source,
        context: () => context!,
        async deliver(event) {
          if (!accepting || context === undefined) throw new Error(`${label} takes no deliveries`);
          const emitting = context.emit([event]);
          inHand.add(emitting);
          try {
            const results = await emitting;
            journal.push(`ack ${label} ${event.id}`);
            return results;
          } finally {
            inHand.delete(emitting);
          }
        },
      });
      return source;
    },
  };
  return { kind, made };
}

/** A logger that keeps what it is told. */
function recordingLogger() {
  const lines: Array<{ level: string; obj: object; msg: string | undefined }> = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj, msg });
    };
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { logger, lines };
}

let dir: string;
let store: Store;
let gate: ReturnType<typeof gateAppends>;
let ingest: Ingest;
let clock: TestClock;
let journal: string[];
let queue: ReturnType<typeof createQueueKind>;
let log: ReturnType<typeof recordingLogger>;
let manager: SourceManager;
let counter = 0;

const event = (tag = 'm'): CloudEvent => ({
  specversion: '1.0',
  id: `${tag}-${++counter}`,
  source: 'queue',
  type: tag,
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'reflex-sources-'));
  store = await createSqliteStore({ dir });
  gate = gateAppends(store);
  clock = createTestClock(Date.parse('2026-11-27T10:00:00Z'));
  ingest = createIngest({ log: gate.store, clock, maxPending: 1 });
  journal = [];
  queue = createQueueKind(journal);
  log = recordingLogger();
  manager = createSourceManager({
    registry: {
      get: (kind) => (kind === 'queue' ? (queue.kind as SourceKind) : undefined),
      kinds: () => ['queue'],
    },
    ingest,
    clock,
    logger: log.logger,
    limits: defaultEventLimits,
  });
});

afterEach(async () => {
  gate.open();
  await manager.close();
  await ingest.drain();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('source manager', () => {
  it('source manager - starts the declared sources and reports each one up, stamped with the clock', async () => {
    await manager.reconcile([
      { kind: 'queue', name: 'orders', config: { version: 1 } },
      { kind: 'queue', name: 'alerts', config: { version: 1 } },
    ]);
    expect(journal).toEqual([]);
    expect(manager.list()).toEqual([]);
    await manager.start();
    expect(journal).toEqual(['start orders@1', 'start alerts@1']);
    expect(manager.list()).toEqual([
      { kind: 'queue', name: 'orders', status: { type: 'up' }, since: clock.now(), inFlight: 0, rejected: 0 },
      { kind: 'queue', name: 'alerts', status: { type: 'up' }, since: clock.now(), inFlight: 0, rejected: 0 },
    ]);
  });

  it('source manager - emit resolves once the events are committed, so the source acks after the commit', async () => {
    await manager.reconcile([{ kind: 'queue', name: 'orders', config: { version: 1 } }]);
    await manager.start();
    gate.hold();
    const delivered = track(queue.made[0]!.deliver(event('order')));
    await until(() => gate.waiting === 1);
    expect(delivered.settled).toBe(false);
    expect(journal).not.toContain(`ack orders@1 order-${counter}`);
    expect(manager.list()[0]?.inFlight).toBe(1);
    gate.open();
    await until(() => delivered.settled);
    expect(journal).toContain(`ack orders@1 order-${counter}`);
    expect((await store.getEvent(delivered.value![0]!.seq))?.event.id).toBe(`order-${counter}`);
    expect(manager.list()[0]?.inFlight).toBe(0);
  });

  it('source manager - emit waits for room when ingest is full, instead of failing', async () => {
    await manager.reconcile([{ kind: 'queue', name: 'orders', config: { version: 1 } }]);
    await manager.start();
    const { deliver } = queue.made[0]!;
    gate.hold();
    const first = track(deliver(event()));
    await until(() => gate.waiting === 1);
    const second = track(deliver(event()));
    const third = track(deliver(event()));
    await until(() => ingest.waiting === 1);
    expect([first.settled, second.settled, third.settled]).toEqual([false, false, false]);
    gate.open();
    await until(() => first.settled && second.settled && third.settled);
    expect([first.error, second.error, third.error]).toEqual([undefined, undefined, undefined]);
    expect(await store.lastSeq()).toBe(3);
  });

  it('source manager - closing a source aborts its emits still waiting for room: nothing of them is appended', async () => {
    await manager.reconcile([{ kind: 'queue', name: 'orders', config: { version: 1 } }]);
    await manager.start();
    const { context } = queue.made[0]!;
    gate.hold();
    const writing = track(context().emit([event('writing')]));
    await until(() => gate.waiting === 1);
    const queued = track(context().emit([event('queued')]));
    const waiting = track(context().emit([event('late')]));
    await until(() => ingest.waiting === 1);

    await manager.close();
    await until(() => waiting.settled);
    expect(waiting.error).toMatchObject({ code: 'REFLEX_ERR_INGEST_STOPPED' });
    expect(manager.list()[0]?.status).toEqual({ type: 'stopped' });
    expect(journal.at(-1)).toBe('close orders@1');

    gate.open();
    await until(() => writing.settled && queued.settled);
    const types = (await store.readEvents({ partition: 0, seq: 0 }, 10)).events.map(
      (logged) => logged.event.type,
    );
    expect(types).toEqual(['writing', 'queued']);
  });

  it('source manager - a delivery that cannot become an event is counted, kept and logged', async () => {
    await manager.reconcile([{ kind: 'queue', name: 'orders', config: { version: 1 } }]);
    await manager.start();
    clock.advance(5_000);
    queue.made[0]!.context().reject({
      error: new ReflexError('REFLEX_ERR_EVENT_INVALID_JSON', { reason: 'Unexpected token' }),
      excerpt: Buffer.from(`not json ${'x'.repeat(1_000)}`),
      origin: { topic: 'orders', offset: 41 },
    });
    const [info] = manager.list();
    expect(info?.rejected).toBe(1);
    expect(info?.lastRejection).toMatchObject({
      at: clock.now(),
      error: { code: 'REFLEX_ERR_EVENT_INVALID_JSON' },
      origin: { topic: 'orders', offset: 41 },
    });
    expect(info?.lastRejection?.excerpt).toHaveLength(256);
    expect(log.lines).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        msg: 'a delivery could not become an event and was rejected',
      }),
    );
  });

  it('source manager - a source that cannot be made or started is down with the reason, and the others run', async () => {
    const seen: SourceInfo[] = [];
    manager.onStatus((info) => seen.push(info));
    await manager.reconcile([
      { kind: 'queue', name: 'broken', config: { version: 1, failCreate: true } },
      { kind: 'queue', name: 'unreachable', config: { version: 1, failStart: true } },
      { kind: 'queue', name: 'fine', config: { version: 1 } },
    ]);
    await manager.start();
    const status = Object.fromEntries(manager.list().map((info) => [info.name, info.status]));
    expect(status['broken']).toMatchObject({ type: 'down', reason: { code: 'REFLEX_ERR_CONFIG_INVALID' } });
    expect(status['unreachable']).toMatchObject({
      type: 'down',
      reason: { message: 'cannot connect: no such broker' },
    });
    expect(status['fine']).toEqual({ type: 'up' });
    expect(
      seen
        .filter((info) => info.status.type === 'down')
        .map((info) => info.name)
        .sort(),
    ).toEqual(['broken', 'unreachable']);
    expect(log.lines.filter((line) => line.msg === 'source down')).toHaveLength(2);
    await queue.made.find((m) => m.source.name === 'fine')!.deliver(event());
  });

  it('source manager - a reload keeps unchanged sources, replaces changed ones new-first, and closes removed ones', async () => {
    await manager.reconcile([
      { kind: 'queue', name: 'kept', config: { version: 1 } },
      { kind: 'queue', name: 'changed', config: { version: 1 } },
      { kind: 'queue', name: 'removed', config: { version: 1 } },
    ]);
    await manager.start();
    const kept = queue.made[0]!.source;
    journal.length = 0;

    await manager.reconcile([
      { kind: 'queue', name: 'kept', config: { version: 1 } },
      { kind: 'queue', name: 'changed', config: { version: 2 } },
      { kind: 'queue', name: 'added', config: { version: 1 } },
    ]);
    await until(() => journal.length === 6);
    // Both new sources are up before either old one lets go.
    expect(journal.slice(0, 2)).toEqual(['start changed@2', 'start added@1']);
    expect(journal.slice(2).sort()).toEqual([
      'close changed@1',
      'close removed@1',
      'drain changed@1',
      'drain removed@1',
    ]);
    expect(manager.list().map((info) => [info.name, info.status.type])).toEqual([
      ['kept', 'up'],
      ['changed', 'up'],
      ['added', 'up'],
    ]);
    expect(queue.made.filter((m) => m.source === kept)).toHaveLength(1);
    expect(kept.status).toEqual({ type: 'up' });
  });

  it('source manager - refuses declarations of a kind nobody registered', () => {
    expect(() => manager.check([{ kind: 'kafka', name: 'orders' }])).toThrow(
      expect.objectContaining({ code: 'REFLEX_ERR_SOURCE_UNKNOWN_KIND' }),
    );
    expect(() => manager.check([{ kind: 'kafka', name: 'orders' }])).toThrow(/it knows `queue`/);
  });

  it('source manager - draining stops intake and lets the deliveries in hand finish', async () => {
    await manager.reconcile([{ kind: 'queue', name: 'orders', config: { version: 1 } }]);
    await manager.start();
    const { deliver } = queue.made[0]!;
    gate.hold();
    const inHand = track(deliver(event()));
    await until(() => gate.waiting === 1);
    const drained = track(manager.drain());
    await until(() => journal.includes('drain orders@1'));
    await expect(deliver(event())).rejects.toThrow('takes no deliveries');
    expect(drained.settled).toBe(false);
    gate.open();
    await until(() => drained.settled && inHand.settled);
    expect(inHand.error).toBeUndefined();
    const statuses: SourceStatus[] = manager.list().map((info) => info.status);
    expect(statuses).toEqual([{ type: 'up' }]);
  });
});
