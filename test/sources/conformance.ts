import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createActionRegistry } from '../../src/actions/registry.js';
import type { SourceDeclaration, SourceKind } from '../../src/core/ports/source.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { gateAppends, track, until } from '../../src/engine/gated-store.test-helpers.js';
import { yamlRulebookCompiler } from '../../src/rulebook/yaml-rulebook-compiler.js';
import { createSourceRegistry } from '../../src/sources/registry.js';
import { createSqliteStore, type SqliteStore } from '../../src/store/index.js';

/** How the sender of one delivery saw it end. */
export type DeliveryOutcome =
  /** Acknowledged (HTTP: 2xx; a broker: acked): the event is in the log. */
  | { acked: true; duplicate: boolean }
  /** Not acknowledged: the sender still holds the message (HTTP: an error answer, with its code). */
  | { acked: false; code: string };

/**
 * One adapter under test, with the transport around it: the sender side (a client of the HTTP server,
 * a publisher to the broker) and the facts the suite needs to judge it.
 */
export interface SourceFixture {
  /** The kinds to register: the adapter's, and any it needs. */
  kinds: SourceKind[];
  /** The source under test. */
  declaration: SourceDeclaration;
  /**
   * When ingest is full: `refuse`, the sender is told to come back (HTTP 503 with Retry-After); `wait`,
   * the delivery stays unacknowledged until there is room (brokers).
   */
  whenFull: 'refuse' | 'wait';
  /**
   * A delivery that cannot become an event: `refused`, its sender is told (HTTP 4xx); `rejected`, it is
   * recorded through `SourceContext.reject` and then acked or dead-lettered (brokers).
   */
  badMessages: 'refused' | 'rejected';
  /** Sets up the transport once the engine runs (e.g. the HTTP server serving the sources' routes). */
  attach(engine: Engine): Promise<void>;
  /** Sends message `key`; resolves when the sender knows how it ended. */
  deliver(key: string): Promise<DeliveryOutcome>;
  /** Sends a message that cannot become an event (malformed JSON, say). */
  deliverBad(): Promise<DeliveryOutcome>;
  /** The (`source`, `id`) of the event that message `key` becomes. */
  identity(key: string): { source: string; id: string };
  /**
   * For a source that holds a connection: cuts it (through a `TcpProxy` from test/helpers/tcp-proxy.ts the fixture puts between
   * the source and its server) and lets it back. The suite then proves that the source reports itself
   * `reconnecting` while cut, comes back `up` by itself, and loses nothing the sender published.
   */
  outage?: {
    cut(): Promise<void>;
    restore(): void;
    /**
     * `kept`: a message published while the connection is cut reaches the log after it comes back (the
     * broker holds it). `lost`: the transport is at-most-once (NATS core), so only later messages count.
     */
    whileCut: 'kept' | 'lost';
  };
  /** Tears the transport down. */
  close(): Promise<void>;
}

/**
 * The conformance suite of the Source port: every adapter passes it, against a real engine over a real
 * SQLite store whose appends the suite can hold at a gate (so it decides when a commit finishes, without
 * sleeping), with room in ingest for one queued event.
 *
 * It proves: the source comes up and says so; a delivery is acknowledged only once its event is
 * committed; a redelivery is harmless; a full ingest is refused or waited for, never buffered past its
 * bound and never lost once acknowledged; a bad message changes nothing and the source stays up;
 * draining finishes what is in hand and takes nothing new; closing stops the source.
 */
export function describeSourceConformance(name: string, makeFixture: () => SourceFixture): void {
  describe(`source conformance: ${name}`, () => {
    let dir: string;
    let store: SqliteStore;
    let gate: ReturnType<typeof gateAppends>;
    let engine: Engine;
    let fixture: SourceFixture;
    let keys = 0;
    const key = () => `msg-${++keys}`;

    const logged = async (k: string) => {
      const { source, id } = fixture.identity(k);
      return store.findEventsById(id, source);
    };
    const info = () => engine.sources.list().find((s) => s.name === fixture.declaration.name);

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'reflex-source-conformance-'));
      store = await createSqliteStore({ dir });
      gate = gateAppends(store);
      fixture = makeFixture();
      engine = await createEngine({
        store: gate.store,
        actions: createActionRegistry(),
        compilers: [yamlRulebookCompiler],
        sourceKinds: createSourceRegistry(fixture.kinds),
        sources: [fixture.declaration],
        maxPendingEvents: 1,
      });
      await engine.loadRulebook([{ path: 'rules.yaml', content: 'rules: []\n' }]);
      await engine.start();
      await fixture.attach(engine);
    });

    afterEach(async () => {
      gate.open();
      await fixture.close();
      await engine.close();
      await rm(dir, { recursive: true, force: true });
    });

    it(`${name} - comes up and says so`, () => {
      expect(info()).toMatchObject({ kind: fixture.declaration.kind, status: { type: 'up' }, inFlight: 0 });
    });

    it(`${name} - acknowledges a delivery only once its event is committed to the log`, async () => {
      gate.hold();
      const k = key();
      const delivery = track(fixture.deliver(k));
      await until(() => gate.waiting === 1);
      expect(delivery.settled).toBe(false);
      expect(info()?.inFlight).toBe(1);
      gate.open();
      await until(() => delivery.settled);
      expect(delivery.value).toEqual({ acked: true, duplicate: false });
      expect(await logged(k)).toHaveLength(1);
    });

    it(`${name} - takes a redelivery as a duplicate: acknowledged, logged once`, async () => {
      const k = key();
      expect(await fixture.deliver(k)).toEqual({ acked: true, duplicate: false });
      expect(await fixture.deliver(k)).toEqual({ acked: true, duplicate: true });
      expect(await logged(k)).toHaveLength(1);
    });

    it(`${name} - when ingest is full, ${makeFixture().whenFull === 'refuse' ? 'tells the sender to come back' : 'waits for room'}, and loses nothing acknowledged`, async () => {
      gate.hold();
      const [first, second, third] = [key(), key(), key()];
      const writing = track(fixture.deliver(first));
      await until(() => gate.waiting === 1);
      const queued = track(fixture.deliver(second));
      await until(() => engine.ingest.pending === 1);
      const extra = track(fixture.deliver(third));
      if (fixture.whenFull === 'refuse') {
        await until(() => extra.settled);
        expect(extra.value).toEqual({ acked: false, code: 'REFLEX_ERR_INGEST_OVERLOADED' });
      } else {
        await until(() => engine.ingest.waiting === 1);
        expect(extra.settled).toBe(false);
      }
      gate.open();
      await until(() => writing.settled && queued.settled && extra.settled);
      for (const [k, delivery] of [
        [first, writing],
        [second, queued],
        [third, extra],
      ] as const) {
        expect((await logged(k)).length).toBe(delivery.value?.acked ? 1 : 0);
      }
      expect(writing.value).toEqual({ acked: true, duplicate: false });
      expect(queued.value).toEqual({ acked: true, duplicate: false });
    });

    it(`${name} - a message that cannot become an event changes nothing, and the source stays up`, async () => {
      const before = await store.lastSeq();
      const outcome = await fixture.deliverBad();
      if (fixture.badMessages === 'refused') {
        expect(outcome.acked).toBe(false);
        expect(outcome).toMatchObject({ code: expect.stringMatching(/^REFLEX_ERR_/) });
      } else {
        expect(info()?.rejected).toBe(1);
      }
      expect(await store.lastSeq()).toBe(before);
      expect(info()?.status).toEqual({ type: 'up' });
      const k = key();
      expect(await fixture.deliver(k)).toEqual({ acked: true, duplicate: false });
    });

    it(`${name} - draining finishes the deliveries in hand and takes no new one`, async () => {
      gate.hold();
      const inHand = key();
      const delivery = track(fixture.deliver(inHand));
      await until(() => gate.waiting === 1);
      const drained = track(engine.sources.drain());
      // Draining begins within this turn of the event loop (it waits on promises only).
      await new Promise((resolve) => setImmediate(resolve));
      const late = key();
      const refused = await fixture.deliver(late);
      expect(refused).toEqual({ acked: false, code: 'REFLEX_ERR_INGEST_STOPPED' });
      expect(drained.settled).toBe(false);
      gate.open();
      await until(() => drained.settled && delivery.settled);
      expect(delivery.value).toEqual({ acked: true, duplicate: false });
      expect(await logged(inHand)).toHaveLength(1);
      expect(await logged(late)).toHaveLength(0);
    });

    it.runIf(makeFixture().outage !== undefined)(
      `${name} - reconnects by itself after an outage, saying so meanwhile, and loses nothing published`,
      async () => {
        const outage = fixture.outage;
        if (outage === undefined) throw new Error('the fixture has no outage');
        const before = key();
        expect(await fixture.deliver(before)).toEqual({ acked: true, duplicate: false });
        await outage.cut();
        await until(() => info()?.status.type === 'reconnecting', 15_000);
        expect(info()?.status).toMatchObject({ reason: { code: expect.stringMatching(/^REFLEX_ERR_/) } });
        const during = key();
        const cutDelivery = outage.whileCut === 'kept' ? track(fixture.deliver(during)) : undefined;
        outage.restore();
        await until(() => info()?.status.type === 'up', 15_000);
        if (cutDelivery !== undefined) {
          await until(() => cutDelivery.settled, 15_000);
          expect(cutDelivery.value).toMatchObject({ acked: true });
          expect(await logged(during)).toHaveLength(1);
        }
        const after = key();
        expect(await fixture.deliver(after)).toEqual({ acked: true, duplicate: false });
        expect(await logged(after)).toHaveLength(1);
        expect(await logged(before)).toHaveLength(1);
      },
      45_000,
    );

    it(`${name} - closing stops the source: status stopped, nothing taken`, async () => {
      await engine.sources.close();
      expect(info()?.status).toEqual({ type: 'stopped' });
      const k = key();
      expect((await fixture.deliver(k)).acked).toBe(false);
      expect(await logged(k)).toHaveLength(0);
    });
  });
}
