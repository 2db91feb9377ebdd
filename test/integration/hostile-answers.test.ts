import Type from 'typebox';
import { afterEach, describe, expect, it } from 'vitest';
import { emitAction } from '../../src/actions/emit-action.js';
import { execAction } from '../../src/actions/exec-action.js';
import { factAction } from '../../src/actions/fact-action.js';
import { httpAction } from '../../src/actions/http-action.js';
import { createActionRegistry } from '../../src/actions/registry.js';
import { RetryAfterError } from '../../src/core/errors.js';
import type { Action, ActionContext } from '../../src/core/ports/action.js';
import type { Run, RunDetail } from '../../src/core/ports/store.js';
import { createEngineHarness, type EngineHarness, eventually } from '../helpers/engine-harness.js';
import { createHttpTarget, type HttpTarget } from '../helpers/http-target.js';

/**
 * Issue 9, defect 5: whatever an action hands back — its answer, its error, the events and facts it
 * writes — cannot poison a run. Each run here ends with its attempts recorded and the normal
 * retry/dead-letter outcome, instead of staying `running` and being claimed again forever.
 */

let harness: EngineHarness | undefined;
let target: HttpTarget | undefined;

afterEach(async () => {
  await harness?.close();
  await target?.close();
  harness = undefined;
  target = undefined;
});

async function finishedRun(rule: string): Promise<RunDetail> {
  const run = await eventually(async () =>
    (await harness!.store.listRuns({ limit: 10, rule })).find(
      (r) => r.status === 'succeeded' || r.status === 'failed',
    ),
  );
  return (await harness!.store.getRun(run.id))!;
}

/** The run of `rule` once it waits for its attempt number `attempt + 1`. */
async function waitingRun(rule: string, attempt: number): Promise<Run> {
  return eventually(async () =>
    (await harness!.store.listRuns({ limit: 10, rule })).find(
      (r) => r.status === 'pending' && r.attempt === attempt,
    ),
  );
}

/** Checks the end of a failed run: its error, a dead letter, and reflex.run.failed in the log. */
async function expectDeadLettered(run: RunDetail, code: string): Promise<void> {
  expect(run.status).toBe('failed');
  expect(run.error?.code).toBe(code);
  expect(await harness!.store.listDeadLetters(10)).toEqual([
    expect.objectContaining({ runId: run.id, error: expect.objectContaining({ code }) }),
  ]);
  const [outcome] = await harness!.store.findEventsById(`${run.id}.failed`, 'reflex');
  expect(outcome?.event).toMatchObject({ type: 'reflex.run.failed', data: { error: { code } } });
}

const nestedArrays = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

/** A value nested `levels` deep, built without recursion. */
function deepValue(levels: number): unknown {
  let value: unknown = [];
  for (let i = 1; i < levels; i++) value = [value];
  return value;
}

/**
 * Stands in for a plugin action: under the `log` kind, in place of the built-in one, whose message
 * picks what it returns or throws.
 */
function pluginAction(behaviour: (name: string, context: ActionContext) => Promise<unknown>): Action {
  return {
    kind: 'log',
    params: Type.String(),
    parse: (params) => String(params),
    run: (params, context) => behaviour(params as string, context),
  };
}

function withPlugin(plugin: Action) {
  return createActionRegistry([httpAction, execAction, emitAction, factAction, plugin]);
}

describe('executor - hostile http answers', () => {
  it('executor - an http answer nested 32 000 levels deep in 64 KB is kept as text and the run succeeds', async () => {
    target = await createHttpTarget();
    const deep = nestedArrays(32_000);
    target.respond({ status: 200, raw: deep });
    harness = await createEngineHarness(`
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - id: call
        http: { url: "${target.url}/deep" }
      - log: "after: \${{ size(steps.call.output.body) }}"
`);
    await harness.send({ type: 'go' });
    const run = await finishedRun('call');
    expect(run.status).toBe('succeeded');
    expect(run.attempts.map((a) => [a.stepId, a.status])).toEqual([
      ['call', 'succeeded'],
      ['1', 'succeeded'],
    ]);
    expect(run.outputs.call).toMatchObject({ status: 200, body: deep });
    expect(run.outputs['1']).toEqual({ message: `after: ${deep.length}` });
  });

  it('executor - a deeply nested error answer is retried and dead-lettered like any failed step', async () => {
    target = await createHttpTarget();
    target.fallback = { status: 500, raw: nestedArrays(32_000) };
    harness = await createEngineHarness(`
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "${target.url}/deep" }
        retry: { attempts: 2, backoff: 1s }
`);
    await harness.send({ type: 'go' });
    await waitingRun('call', 1);
    harness.clock.advance(1000);
    const run = await finishedRun('call');
    expect(run.attempts.map((a) => [a.attempt, a.status, a.error?.code])).toEqual([
      [1, 'failed', 'REFLEX_ERR_ACTION_HTTP_STATUS'],
      [2, 'failed', 'REFLEX_ERR_ACTION_HTTP_STATUS'],
    ]);
    await expectDeadLettered(run, 'REFLEX_ERR_ACTION_HTTP_STATUS');
    expect(target.requests).toHaveLength(2);
  });

  it('executor - answers with thousands of keys, long strings, deep objects or a __proto__ key end in a recorded attempt', async () => {
    target = await createHttpTarget();
    const manyKeys = `{${Array.from({ length: 4000 }, (_, i) => `"k${i}":${i}`).join(',')}}`;
    const longString = JSON.stringify('x'.repeat(60_000));
    const deepObjects = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
    const proto = '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"ok":1}';
    target.respond(
      { status: 200, raw: manyKeys },
      { status: 200, raw: longString },
      { status: 200, raw: deepObjects },
      { status: 200, raw: proto },
    );
    harness = await createEngineHarness(`
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - { id: keys, http: { url: "${target.url}/keys" } }
      - { id: long, http: { url: "${target.url}/long" } }
      - { id: deep, http: { url: "${target.url}/deep" } }
      - { id: proto, http: { url: "${target.url}/proto" } }
`);
    await harness.send({ type: 'go' });
    const run = await finishedRun('call');
    expect(run.status).toBe('succeeded');
    expect(run.attempts.map((a) => a.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    const outputs = run.outputs as Record<string, { body: unknown }>;
    expect(Object.keys(outputs.keys!.body as object)).toHaveLength(4000);
    expect(outputs.long!.body).toBe('x'.repeat(60_000));
    expect(outputs.deep!.body).toBe(deepObjects);
    const body = outputs.proto!.body as Record<string, unknown>;
    expect(Object.hasOwn(body, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(body)).toBe(Object.prototype);
    expect(body.ok).toBe(1);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('executor - hostile plugin outputs', () => {
  const cyclic: Record<string, unknown> = { name: 'loop' };
  cyclic.self = cyclic;
  /** 2^24 leaves through shared references: small in memory, 32 MiB as JSON. */
  let shared: unknown = 'leaf';
  for (let i = 0; i < 24; i++) shared = [shared, shared];
  const outputs: Record<string, () => unknown> = {
    deep: () => deepValue(50_000),
    'deeper than the event limit': () => deepValue(33),
    cyclic: () => cyclic,
    bigint: () => ({ count: 10n }),
    huge: () => 'x'.repeat(2 * 1024 * 1024),
    'shared references': () => shared,
    'throwing getter': () => ({
      get boom() {
        throw new Error('getter says no');
      },
    }),
    'throwing toJSON': () => ({
      toJSON() {
        throw new Error('toJSON says no');
      },
    }),
    // `then` reads as absent, so the promise resolves with the proxy; every other read throws.
    'hostile proxy': () =>
      new Proxy(
        {},
        {
          ownKeys() {
            throw new Error('trap');
          },
          get(_target, key) {
            if (key === 'then') return undefined;
            throw new Error('trap');
          },
        },
      ),
  };

  it.each(Object.keys(outputs))(
    'executor - an output that is %s fails the step with REFLEX_ERR_ACTION_OUTPUT_INVALID, without retries',
    async (name) => {
      harness = await createEngineHarness(
        `
rules:
  - name: plugin
    when: { pattern: { type: [go] } }
    then:
      - log: "${name}"
        retry: { attempts: 3, backoff: 1s }
`,
        { actions: withPlugin(pluginAction(async (which) => outputs[which]!())) },
      );
      await harness.send({ type: 'go' });
      const run = await finishedRun('plugin');
      expect(run.attempts).toEqual([
        expect.objectContaining({
          attempt: 1,
          status: 'failed',
          error: expect.objectContaining({ code: 'REFLEX_ERR_ACTION_OUTPUT_INVALID' }),
        }),
      ]);
      expect(run.attempts[0]!.error!.message).toMatch(
        /^The `log` action returned an output that Reflex cannot store: /,
      );
      await expectDeadLettered(run, 'REFLEX_ERR_ACTION_OUTPUT_INVALID');
    },
  );

  it('executor - an output within the limits is stored as plain JSON: a Date as its text, undefined fields left out', async () => {
    const at = new Date('2026-11-27T10:00:00Z');
    harness = await createEngineHarness(
      `
rules:
  - name: plugin
    when: { pattern: { type: [go] } }
    then: [ { id: p, log: fine } ]
`,
      {
        actions: withPlugin(
          pluginAction(async () => ({ at, missing: undefined, list: [1, undefined], deep: deepValue(31) })),
        ),
      },
    );
    await harness.send({ type: 'go' });
    const run = await finishedRun('plugin');
    expect(run.status).toBe('succeeded');
    expect(run.outputs.p).toEqual({ at: at.toISOString(), list: [1, null], deep: deepValue(31) });
  });
});

describe('executor - hostile thrown values', () => {
  const hostileError = (patch: (error: Error) => void) => {
    const error = new Error('plain');
    patch(error);
    return error;
  };
  const cyclicDetails: Record<string, unknown> = {};
  cyclicDetails.again = cyclicDetails;
  const thrown: Record<string, () => unknown> = {
    'an object without a prototype': () => Object.create(null),
    'a symbol': () => Symbol('odd'),
    'a proxy whose every trap throws': () =>
      new Proxy(
        {},
        {
          get() {
            throw new Error('trap');
          },
          getPrototypeOf() {
            throw new Error('trap');
          },
          ownKeys() {
            throw new Error('trap');
          },
        },
      ),
    'an error whose message getter throws': () =>
      hostileError((e) =>
        Object.defineProperty(e, 'message', {
          get() {
            throw new Error('no message');
          },
        }),
      ),
    'an error with cyclic details': () =>
      hostileError((e) => Object.assign(e, { code: 'PLUGIN_CYCLE', details: cyclicDetails })),
    'an error with a BigInt in its details': () =>
      hostileError((e) => Object.assign(e, { code: 'PLUGIN_BIGINT', details: { n: 1n } })),
    'an error with deep details': () =>
      hostileError((e) => Object.assign(e, { details: { d: deepValue(40_000) } })),
    'an error with a 5 MB message': () => new Error('m'.repeat(5_000_000)),
    'an error that is its own cause': () => hostileError((e) => Object.assign(e, { cause: e })),
    'a RetryAfterError asking for NaN ms': () => new RetryAfterError('later', Number.NaN),
  };

  it.each(Object.keys(thrown))(
    'executor - an action that throws %s records failed attempts and is retried, then dead-lettered',
    async (name) => {
      harness = await createEngineHarness(
        `
rules:
  - name: plugin
    when: { pattern: { type: [go] } }
    then:
      - log: "${name}"
        retry: { attempts: 2, backoff: 1s }
`,
        {
          actions: withPlugin(
            pluginAction(async (which) => {
              throw thrown[which]!();
            }),
          ),
        },
      );
      await harness.send({ type: 'go' });
      await waitingRun('plugin', 1);
      harness.clock.advance(1000);
      const run = await finishedRun('plugin');
      expect(run.attempts.map((a) => [a.attempt, a.status])).toEqual([
        [1, 'failed'],
        [2, 'failed'],
      ]);
      const error = run.attempts[1]!.error!;
      expect(typeof error.code).toBe('string');
      expect(typeof error.message).toBe('string');
      // Every stored failure is bounded, whatever was thrown.
      expect(JSON.stringify(error).length).toBeLessThan(200_000);
      await expectDeadLettered(run, error.code);
    },
  );
});

describe('executor - what plugins write', () => {
  it('executor - an event a plugin emits that Reflex cannot store fails the step, and events committed with it still go in', async () => {
    harness = await createEngineHarness(
      `
rules:
  - name: plugin
    when: { pattern: { type: [go] } }
    then: [ { log: emit, retry: { attempts: 1 } } ]
`,
      {
        actions: withPlugin(
          pluginAction(async (_name, context) => {
            // Both in one turn of the event loop: one group commit, unless the bad one is refused first.
            const [bad, good] = await Promise.allSettled([
              context.emit({ type: 'bad', data: { d: deepValue(20_000) } }),
              context.emit({ id: 'good-1', source: 'urn:plugin', type: 'good', data: { fine: true } }),
            ]);
            if (good.status === 'rejected') throw good.reason;
            if (bad.status === 'rejected') throw bad.reason;
            return 'both stored';
          }),
        ),
      },
    );
    await harness.send({ type: 'go' });
    const run = await finishedRun('plugin');
    expect(run.attempts[0]!.error?.code).toBe('REFLEX_ERR_ACTION_OUTPUT_INVALID');
    expect(run.attempts[0]!.error?.message).toMatch(
      /^The `log` action emitted an event that Reflex cannot store: /,
    );
    expect(await harness.store.findEventsById('good-1')).toHaveLength(1);
    expect(await harness.store.listEvents({ limit: 5, type: 'bad' })).toEqual([]);
  });

  it('executor - a fact value a plugin sets that Reflex cannot store fails the step and changes no fact', async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    harness = await createEngineHarness(
      `
rules:
  - name: plugin
    when: { pattern: { type: [go] } }
    then: [ { log: fact, retry: { attempts: 1 } } ]
`,
      {
        actions: withPlugin(
          pluginAction(async (_name, context) => {
            await context.setFact('circle', cyclic);
            return 'set';
          }),
        ),
      },
    );
    await harness.send({ type: 'go' });
    const run = await finishedRun('plugin');
    expect(run.attempts[0]!.error?.code).toBe('REFLEX_ERR_ACTION_OUTPUT_INVALID');
    expect(run.attempts[0]!.error?.message).toMatch(
      /^The `log` action set fact `circle` to a value that Reflex cannot store: /,
    );
    expect(await harness.store.getFacts()).toEqual({});
    expect(harness.engine.facts.snapshot()).toEqual({});
  });
});
