import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { eventually } from '../helpers/engine-harness.js';
import {
  type ApiError,
  type ApiEvent,
  type ApiPage,
  type ApiRun,
  type ApiRunDetail,
  allEvents,
  type HttpApi,
  type HttpApiOptions,
  startHttpApi,
  waitForRuns,
} from '../helpers/http-api-server.js';

// Reflex's own events (run outcomes, timers, fact changes) and their ids belong to Reflex: nothing from
// outside may pose as one, nor take its id before Reflex appends it.

let api: HttpApi | undefined;
let target: HeldTarget | undefined;

afterEach(async () => {
  await api?.close();
  await target?.close();
  api = undefined;
  target = undefined;
});

async function start(options: HttpApiOptions): Promise<HttpApi> {
  api = await startHttpApi(options);
  return api;
}

/** A real HTTP server that holds each request until the test answers it. */
interface HeldTarget {
  url: string;
  /** Resolves when a request has arrived and is being held. */
  arrived(): Promise<void>;
  /** Answers the held requests (and all later ones) with `status`. */
  release(status: number): void;
  close(): Promise<void>;
}

async function createHeldTarget(): Promise<HeldTarget> {
  let status: number | undefined;
  const held: Array<() => void> = [];
  let onArrive: (() => void) | undefined;
  const server: Server = createServer((req, res) => {
    req.resume();
    const answer = () => {
      res.writeHead(status!, { 'content-type': 'application/json' });
      res.end('{"ok":false}');
    };
    if (status !== undefined) answer();
    else {
      held.push(answer);
      onArrive?.();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrived: () =>
      held.length > 0
        ? Promise.resolve()
        : new Promise((resolve) => {
            onArrive = resolve;
          }),
    release(answer) {
      status = answer;
      for (const fn of held.splice(0)) fn();
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function post(server: HttpApi, body: unknown, contentType = 'application/cloudevents+json') {
  return server.call<ApiError>('/api/v1/events', {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: JSON.stringify(body),
  });
}

const ce = (fields: Record<string, unknown>) => ({ specversion: '1.0', ...fields });

async function theRun(server: HttpApi, rule: string): Promise<ApiRun> {
  return eventually(async () => {
    const page = await server.call<ApiPage<ApiRun>>(`/api/v1/runs?rule=${rule}`);
    return page.body.items[0];
  });
}

describe('reserved events - from outside', () => {
  const onFailure = `
rules:
  - name: on-failure
    when: { pattern: { type: [{ prefix: reflex. }] } }
    then:
      - log: "saw \${{ event.type }}"
`;

  it.each([
    ['a forged run failure', { id: 'x.failed', source: 'reflex', type: 'reflex.run.failed' }, 'source'],
    ['a forged timer', { id: 'r/when/"k"@1', source: 'reflex', type: 'reflex.timer' }, 'source'],
    ['a reflex type from another source', { id: 'f', source: 'ci', type: 'reflex.run.failed' }, 'type'],
    ['a look-alike in capitals', { id: 'f', source: 'REFLEX', type: 'Reflex.Run.Failed' }, 'source'],
    ['a fact change', { id: 'fact/x/1', source: 'ops', type: 'reflex.fact.changed' }, 'type'],
  ])(
    'reserved events - %s is refused with a coded 400 in every mode, stored nowhere, and fires no rule',
    async (_what, fields, attribute) => {
      const server = await start({ rulebook: onFailure });
      const expectReserved = (res: { status: number; body: ApiError | undefined }) => {
        expect({ status: res.status, code: res.body?.error.code }).toEqual({
          status: 400,
          code: 'REFLEX_ERR_EVENT_RESERVED',
        });
        expect(res.body?.error.message).toContain(attribute);
        expect(res.body?.error.message).toContain('To fix');
      };
      expectReserved(await post(server, ce(fields)));
      expectReserved(await post(server, ce(fields), 'application/json'));
      const batch = await post(
        server,
        [ce({ id: 'ok', source: 'ci', type: 'ci.done' }), ce(fields)],
        'application/cloudevents-batch+json',
      );
      expectReserved(batch);
      expect(batch.body?.error.message).toContain('batch item 1');
      expectReserved(
        await server.call<ApiError>('/api/v1/events', {
          method: 'POST',
          headers: {
            'ce-specversion': '1.0',
            'ce-id': fields.id,
            'ce-source': fields.source,
            'ce-type': fields.type,
          },
        }),
      );
      expect(await allEvents(server)).toEqual([]);
      expect((await server.call<ApiPage<ApiRun>>('/api/v1/runs')).body.items).toEqual([]);
    },
  );

  it('reserved events - `reflex emit` of a reflex.* type or source reflex fails with the coded error (exit 2)', async () => {
    const server = await start({ rulebook: onFailure });
    for (const args of [
      ['--type', 'reflex.run.failed'],
      ['--type', 'ci.done', '--source', 'reflex'],
    ]) {
      const err: string[] = [];
      const code = await main(['emit', ...args, '--url', server.url], {
        stdout: () => {},
        stderr: (t) => err.push(t),
        env: {},
      });
      expect(code).toBe(2);
      expect(err.join('\n')).toContain('REFLEX_ERR_EVENT_RESERVED');
    }
    expect(await allEvents(server)).toEqual([]);
  });
});

describe('reserved events - ids Reflex appends later', () => {
  it('reserved events - an outcome id posted in advance cannot suppress the real outcome: it is refused, the outcome is logged and rules fire on it', async () => {
    target = await createHeldTarget();
    const server = await start({
      rulebook: `
rules:
  - name: flaky
    when: { pattern: { type: [deploy.requested] } }
    then:
      - id: call
        http: { url: "${target.url}/deploy", method: POST }
        retry: { attempts: 1 }
  - name: on-failure
    when: { pattern: { type: [reflex.run.failed], subject: [flaky] } }
    then:
      - log: "flaky failed: \${{ event.data.runId }}"
`,
    });
    expect((await post(server, ce({ id: 'd-1', source: 'ci', type: 'deploy.requested' }))).status).toBe(202);
    await target.arrived();
    const run = await theRun(server, 'flaky');
    // The attacker knows the run id (or predicts it: it is made from the trigger's time and seq).
    const forged = await post(
      server,
      ce({
        id: `${run.id}.failed`,
        source: 'reflex',
        type: 'reflex.run.failed',
        subject: 'flaky',
        data: { runId: run.id },
      }),
    );
    expect(forged.status).toBe(400);
    expect(forged.body?.error.code).toBe('REFLEX_ERR_EVENT_RESERVED');

    target.release(500);
    const [reaction] = await waitForRuns(server, 'on-failure');
    const outcome = (await server.call<ApiEvent>(`/api/v1/events/${encodeURIComponent(`${run.id}.failed`)}`))
      .body;
    expect(outcome.event).toMatchObject({
      source: 'reflex',
      type: 'reflex.run.failed',
      reflexchain: 1,
      data: { runId: run.id, error: { code: 'REFLEX_ERR_ACTION_HTTP_STATUS' } },
    });
    expect(reaction?.trigger).toEqual({
      partition: 0,
      seq: outcome.seq,
      id: `${run.id}.failed`,
      source: 'reflex',
      type: 'reflex.run.failed',
    });
    const events = await allEvents(server);
    expect(events.filter((e) => e.event.type === 'reflex.run.failed')).toHaveLength(1);
  });

  it("reserved events - an event posted in advance under an emit step's own source cannot take the emitted event's id", async () => {
    target = await createHeldTarget();
    const server = await start({
      rulebook: `
rules:
  - name: flag
    when: { pattern: { type: [order.created] } }
    then:
      - id: check
        http: { url: "${target.url}/check", method: POST }
      - id: flag
        emit: { source: "urn:shop", type: order.flagged, data: { order: "\${{ event.id }}" } }
  - name: on-flagged
    when: { pattern: { type: [order.flagged], data: { order: [{ exists: true }] } } }
    then:
      - log: "flagged \${{ event.data.order }}"
`,
    });
    expect((await post(server, ce({ id: 'o-1', source: 'urn:shop', type: 'order.created' }))).status).toBe(
      202,
    );
    await target.arrived();
    const run = await theRun(server, 'flag');
    // Anyone who may post to urn:shop can post under the id the step would have used before:
    // its idempotency key `<run id>:<step id>`.
    for (const id of [`${run.id}:flag`, `${run.id}:1`]) {
      expect((await post(server, ce({ id, source: 'urn:shop', type: 'order.flagged' }))).status).toBe(202);
    }
    target.release(200);
    const [done] = await waitForRuns(server, 'flag');
    const detail = (await server.call<ApiRunDetail>(`/api/v1/runs/${done!.id}`)).body;
    const emitted = detail.attempts.find((a) => a.stepId === 'flag')?.output as {
      id: string;
      duplicate: boolean;
    };
    expect(emitted.duplicate).toBe(false);
    expect(emitted.id).toMatch(new RegExp(`^${run.id}:flag:[0-9a-f]{20}$`));
    const [reaction] = await waitForRuns(server, 'on-flagged');
    expect(reaction?.trigger.id).toBe(emitted.id);
  });

  it('reserved events - an emit step cannot choose an id in source reflex, nor emit a reflex.* type, whatever the event says', async () => {
    const server = await start({
      rulebook: `
rules:
  - name: echo-id
    when: { pattern: { type: [note.requested] } }
    then:
      - emit: { type: note.taken, id: "\${{ event.data.id }}" }
  - name: echo-type
    when: { pattern: { type: [note.requested] } }
    then:
      - emit: { type: "\${{ event.data.kind }}", data: { rule: r, stage: when, key: k, due: 1 } }
  - name: own-source
    when: { pattern: { type: [note.requested] } }
    then:
      - emit: { source: "urn:notes", type: note.taken, id: "\${{ event.data.id }}" }
`,
    });
    const victim = '01ABCDEFGHJKMNPQRSTVWXYZ012.failed';
    expect(
      (
        await post(
          server,
          ce({
            id: 'n-1',
            source: 'notes',
            type: 'note.requested',
            data: { id: victim, kind: 'reflex.timer' },
          }),
        )
      ).status,
    ).toBe(202);
    for (const rule of ['echo-id', 'echo-type']) {
      const [failed] = await waitForRuns(server, rule, { status: 'failed' });
      expect(failed?.error).toMatchObject({ code: 'REFLEX_ERR_ACTION_INVALID_PARAMS' });
    }
    const [ok] = await waitForRuns(server, 'own-source');
    expect(ok?.status).toBe('succeeded');
    const events = await allEvents(server);
    expect(events.filter((e) => e.event.id === victim).map((e) => e.event.source)).toEqual(['urn:notes']);
    expect(events.filter((e) => e.event.type === 'reflex.timer')).toEqual([]);
  });
});
