import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createActionRegistry } from '../../src/actions/registry.js';
import { silentLogger } from '../../src/core/ports/logger.js';
import { type SourceKind, webhookSourceKind } from '../../src/core/ports/source.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { gateAppends, track, until } from '../../src/engine/gated-store.test-helpers.js';
import { newSortableId } from '../../src/engine/ids.js';
import { yamlRulebookCompiler } from '../../src/rulebook/yaml-rulebook-compiler.js';
import { createServer } from '../../src/server/server.js';
import { createHttpRoutes, type HttpRoutes } from '../../src/sources/http-routes.js';
import { cloudEventsEndpoint, createHttpSourceKind } from '../../src/sources/http-source.js';
import { createSourceRegistry, httpSourceKinds } from '../../src/sources/registry.js';
import type { WebhookSpec } from '../../src/sources/webhook-request.js';
import { createSqliteStore } from '../../src/store/index.js';
import { type DeliveryOutcome, describeSourceConformance, type SourceFixture } from './conformance.js';

/**
 * The sender's view of an answer: 2xx acknowledges, anything else carries a coded error. A 503 must
 * say when to come back (Retry-After), or the sender could not tell "later" from "never".
 */
async function outcome(response: Response): Promise<DeliveryOutcome> {
  const body = (await response.json()) as { duplicate?: boolean; error?: { code: string } };
  if (response.status === 503 && !/^\d+$/.test(response.headers.get('retry-after') ?? '')) {
    throw new Error(`a 503 (${body.error?.code}) without Retry-After`);
  }
  if (response.status === 202 || response.status === 200)
    return { acked: true, duplicate: body.duplicate === true };
  return { acked: false, code: body.error?.code ?? `HTTP ${response.status}` };
}

/** The transport of both HTTP sources: the real server on 127.0.0.1, serving the routes they mount. */
function httpTransport() {
  const routes: HttpRoutes = createHttpRoutes();
  let app: FastifyInstance | undefined;
  let url = '';
  return {
    routes,
    url: () => url,
    async attach(engine: Engine) {
      app = await createServer({ engine, routes, logger: silentLogger });
      url = await app.listen({ host: '127.0.0.1', port: 0 });
    },
    async close() {
      await app?.close();
    },
  };
}

describeSourceConformance('http source', (): SourceFixture => {
  const transport = httpTransport();
  const post = (body: string) =>
    fetch(`${transport.url()}/api/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body,
    });
  return {
    kinds: httpSourceKinds({
      routes: transport.routes,
      newEventId: () => newSortableId(Date.now()),
      env: {},
    }),
    declaration: cloudEventsEndpoint,
    whenFull: 'refuse',
    badMessages: 'refused',
    attach: transport.attach,
    close: transport.close,
    identity: (key) => ({ source: '/conformance', id: key }),
    deliver: async (key) =>
      outcome(
        await post(JSON.stringify({ specversion: '1.0', id: key, source: '/conformance', type: 'c.t' })),
      ),
    deliverBad: async () => outcome(await post('{"specversion": "1.0", "id": ')),
  };
});

describeSourceConformance('webhook source', (): SourceFixture => {
  const transport = httpTransport();
  const secret = 'conformance-secret';
  const webhook: WebhookSpec = {
    name: 'conformance',
    type: { value: 'conformance.delivery' },
    source: 'hooks/conformance',
    id: { header: 'X-Delivery' },
    auth: { type: 'hmac', header: 'X-Signature', prefix: 'sha256=', secret: { value: secret } },
  };
  const post = (body: string, delivery: string) =>
    fetch(`${transport.url()}/hooks/conformance`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-delivery': delivery,
        'x-signature': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
      },
      body,
    });
  return {
    kinds: httpSourceKinds({
      routes: transport.routes,
      newEventId: () => newSortableId(Date.now()),
      env: {},
    }),
    declaration: { kind: webhookSourceKind, name: 'conformance', config: webhook },
    whenFull: 'refuse',
    badMessages: 'refused',
    attach: transport.attach,
    close: transport.close,
    identity: (key) => ({ source: 'hooks/conformance', id: key }),
    deliver: async (key) => outcome(await post(JSON.stringify({ n: key }), key)),
    deliverBad: async () => outcome(await post('{"unfinished": ', 'bad-1')),
  };
});

/** A whole node wired as `reflex start` wires it, over a store whose appends the test can hold. */
async function startNode(rulebook: string, kinds?: (routes: HttpRoutes) => SourceKind[]) {
  const dir = await mkdtemp(join(tmpdir(), 'reflex-http-sources-'));
  const store = await createSqliteStore({ dir });
  const gate = gateAppends(store);
  const transport = httpTransport();
  const engine = await createEngine({
    store: gate.store,
    actions: createActionRegistry(),
    compilers: [yamlRulebookCompiler],
    sourceKinds: createSourceRegistry(
      kinds?.(transport.routes) ??
        httpSourceKinds({ routes: transport.routes, newEventId: () => newSortableId(Date.now()), env: {} }),
    ),
    sources: [cloudEventsEndpoint],
  });
  const load = (content: string) => engine.loadRulebook([{ path: 'rules.yaml', content }]);
  await load(rulebook);
  await engine.start();
  await transport.attach(engine);
  const hook = (name: string, body: unknown = {}) =>
    fetch(`${transport.url()}/hooks/${name}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  return {
    engine,
    store,
    gate,
    load,
    hook,
    url: transport.url,
    async close() {
      gate.open();
      await transport.close();
      await engine.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const hooks = (...entries: string[]) => `webhooks:\n${entries.join('')}rules: []\n`;
const hook = (name: string, type: string) => `  ${name}:\n    type: ${type}\n    source: hooks/${name}\n`;

describe('http sources', () => {
  let node: Awaited<ReturnType<typeof startNode>> | undefined;
  afterEach(async () => {
    await node?.close();
    node = undefined;
  });

  it('http sources - a webhook a reload adds is served at once, and one it removes answers 404', async () => {
    node = await startNode(hooks(hook('alerts', 'alert.fired')));
    expect((await node.hook('deploys')).status).toBe(404);
    await node.load(hooks(hook('deploys', 'deploy.done')));
    expect((await node.hook('deploys')).status).toBe(202);
    const gone = await node.hook('alerts');
    expect(gone.status).toBe(404);
    expect(((await gone.json()) as { error: { code: string } }).error.code).toBe(
      'REFLEX_ERR_WEBHOOK_NOT_FOUND',
    );
    await until(() => node!.engine.sources.list().every((s) => s.name !== 'alerts'));
  });

  it('http sources - a reload that changes a webhook hands its route over without a gap', async () => {
    node = await startNode(hooks(hook('alerts', 'alert.v1')));
    node.gate.hold();
    // A request in hand when the reload comes finishes with the webhook it was sent to...
    const before = track(node.hook('alerts', { n: 1 }));
    await until(() => node!.gate.waiting === 1);
    await node.load(hooks(hook('alerts', 'alert.v2')));
    // ...and the next one, sent while the old source still holds the first, is the new webhook's.
    const after = track(node.hook('alerts', { n: 2 }));
    await until(() => node!.gate.waiting === 2 || node!.engine.ingest.pending === 1);
    node.gate.open();
    await until(() => before.settled && after.settled);
    expect([before.value?.status, after.value?.status]).toEqual([202, 202]);
    const types = (await node.store.readEvents({ partition: 0, seq: 0 }, 10)).events.map(
      (logged) => logged.event.type,
    );
    expect(types).toEqual(['alert.v1', 'alert.v2']);
  });

  it('http sources - an unchanged webhook keeps running across a reload, even moved in its file', async () => {
    node = await startNode(hooks(hook('alerts', 'alert.fired')));
    const changes: string[] = [];
    node.engine.sources.onStatus((info) => changes.push(`${info.name} ${info.status.type}`));
    await node.load(`# a comment moves the webhook down a line\n${hooks(hook('alerts', 'alert.fired'))}`);
    expect(changes).toEqual([]);
    expect((await node.hook('alerts')).status).toBe(202);
  });

  it('http sources - health lists every source with its status', async () => {
    node = await startNode(hooks(hook('alerts', 'alert.fired')));
    const health = (await (await fetch(`${node.url()}/api/v1/health`)).json()) as { sources: unknown[] };
    expect(health.sources).toEqual([
      { kind: 'http', name: 'events', status: 'up', since: expect.any(String), inFlight: 0, rejected: 0 },
      { kind: 'webhook', name: 'alerts', status: 'up', since: expect.any(String), inFlight: 0, rejected: 0 },
    ]);
  });

  it('http sources - a rulebook whose webhooks no registered kind serves is refused, and the rules in force stay', async () => {
    node = await startNode('rules: []\n', (routes) => [createHttpSourceKind({ routes })]);
    const before = node.engine.rulebook?.id;
    await expect(node.load(hooks(hook('alerts', 'alert.fired')))).rejects.toMatchObject({
      code: 'REFLEX_ERR_SOURCE_UNKNOWN_KIND',
      message: expect.stringContaining('it knows `http`'),
    });
    expect(node.engine.rulebook?.id).toBe(before);
    expect(node.engine.sources.list().map((s) => s.name)).toEqual(['events']);
  });
});
