import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createActionRegistry } from '../../src/actions/registry.js';
import { createTestClock, type TestClock } from '../../src/core/ports/clock.js';
import type { AttemptCompletion, RunDetail, Store } from '../../src/core/ports/store.js';
import { createEngine, type Engine, type EngineOptions } from '../../src/engine/engine.js';
import { compileExecutorOptions } from '../../src/engine/executor.js';
import { yamlRulebookCompiler } from '../../src/rulebook/yaml-rulebook-compiler.js';
import { createSqliteStore, type SqliteStore } from '../../src/store/index.js';
import { createEngineHarness, type EngineHarness, eventually } from '../helpers/engine-harness.js';
import { createHttpTarget, type HttpTarget } from '../helpers/http-target.js';

/**
 * Issue 9, defect 5: a crash inside an attempt is recorded as a failed attempt, and a run whose
 * executing process keeps dying (so that nothing can be recorded) is failed after `maxClaims` claims.
 * The real kill -9 version is in test/e2e/crash-safety.test.ts.
 */

const t0 = Date.parse('2026-11-27T10:00:00Z');

let target: HttpTarget | undefined;
let harness: EngineHarness | undefined;
let opened: { engine: Engine; store: SqliteStore; dir: string } | undefined;

afterEach(async () => {
  await harness?.close();
  await target?.close();
  if (opened) {
    await opened.engine.close();
    await rm(opened.dir, { recursive: true, force: true });
  }
  harness = undefined;
  target = undefined;
  opened = undefined;
});

/**
 * An engine over a real SQLite store that is not started yet, with `wrap` around the store (to make some
 * of its writes fail, as a full or broken disk would).
 */
async function openEngine(
  rulebook: string,
  options: Partial<EngineOptions> & { wrap?: (store: SqliteStore) => Store } = {},
): Promise<{ engine: Engine; store: SqliteStore; clock: TestClock; version: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'reflex-executor-'));
  const store = await createSqliteStore({ dir });
  const clock = createTestClock(t0);
  const { wrap, ...engineOptions } = options;
  const engine = await createEngine({
    actions: createActionRegistry(),
    clock,
    random: () => 0.5,
    ...engineOptions,
    compilers: [yamlRulebookCompiler],
    store: wrap ? wrap(store) : store,
  });
  opened = { engine, store, dir };
  const version = await engine.loadRulebook([{ path: 'rules.yaml', content: rulebook }]);
  return { engine, store, clock, version: version.id };
}

/**
 * The real store, except that `completeAttempt` throws the error `refuse` gives for a completion (and
 * records nothing), as a store does when its disk fails or a record cannot be written.
 */
function refusingCompletions(
  real: SqliteStore,
  refuse: (completion: AttemptCompletion) => Error | undefined,
): Store {
  return new Proxy(real, {
    get(target, key) {
      if (key === 'completeAttempt') {
        return async (completion: AttemptCompletion) => {
          const error = refuse(completion);
          if (error) throw error;
          return target.completeAttempt(completion);
        };
      }
      const value: unknown = Reflect.get(target, key, target);
      // The store's methods use private fields, which only the store itself (not a proxy) has.
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Puts a trigger event and its run for `rule` into the store, as the dispatcher would have. */
async function seedRun(store: SqliteStore, version: number, rule: string, at: number): Promise<string> {
  const [trigger] = await store.appendEvents(
    [{ specversion: '1.0', id: 'trigger-1', source: 'test', type: 'go' }],
    at,
  );
  await store.commitDispatch({
    consumer: 'dispatcher',
    partition: 0,
    offset: trigger!.seq,
    runs: [
      {
        id: 'run-1',
        rule,
        rulebookVersion: version,
        trigger: { seq: trigger!.seq, partition: 0, id: 'trigger-1', source: 'test', type: 'go' },
        ordinal: 0,
        context: { event: trigger!.seq },
        createdAt: at,
      },
    ],
    audit: [],
  });
  return 'run-1';
}

async function finished(store: Store, runId: string): Promise<RunDetail> {
  return eventually(async () => {
    const run = await store.getRun(runId);
    return run && (run.status === 'succeeded' || run.status === 'failed') ? run : undefined;
  });
}

describe('executor - runs whose process keeps dying', () => {
  it('executor - a run claimed more than maxClaims times without a recorded attempt fails with REFLEX_ERR_RUN_ABANDONED', async () => {
    target = await createHttpTarget();
    const { engine, store, clock, version } = await openEngine(
      `
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - id: call
        http: { url: "${target.url}/x" }
        retry: { attempts: 5 }
`,
      { maxClaims: 3, leaseMs: 10_000 },
    );
    const runId = await seedRun(store, version, 'call', clock.now());
    // Three executors claimed the run and died during its step: nothing recorded, their leases ran out.
    for (const owner of ['dead-1', 'dead-2', 'dead-3']) {
      expect(await store.claimRuns({ owner, now: clock.now(), leaseMs: 10_000, limit: 1 })).toHaveLength(1);
      clock.advance(10_000);
    }
    await engine.start();
    const run = await finished(store, runId);
    expect(target.requests).toEqual([]);
    expect(run).toMatchObject({ status: 'failed', claims: 4, error: { code: 'REFLEX_ERR_RUN_ABANDONED' } });
    expect(run.error!.message).toContain('was claimed 3 times for step `call`');
    expect(run.attempts).toEqual([
      expect.objectContaining({
        step: 0,
        stepId: 'call',
        action: 'http',
        attempt: 1,
        status: 'failed',
        error: expect.objectContaining({
          code: 'REFLEX_ERR_RUN_ABANDONED',
          details: { claims: 3, maxClaims: 3 },
        }),
      }),
    ]);
    expect(await store.listDeadLetters(10)).toEqual([
      expect.objectContaining({ runId, rule: 'call', step: 0, error: run.error }),
    ]);
    const [outcome] = await store.findEventsById(`${runId}.failed`, 'reflex');
    expect(outcome?.event).toMatchObject({
      type: 'reflex.run.failed',
      data: { runId, failedStep: 'call', error: { code: 'REFLEX_ERR_RUN_ABANDONED' } },
    });
  });

  it('executor - a run claimed exactly maxClaims times still runs its step', async () => {
    target = await createHttpTarget();
    const { engine, store, clock, version } = await openEngine(
      `
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then: [ { http: { url: "${target.url}/x" } } ]
`,
      { maxClaims: 3, leaseMs: 10_000 },
    );
    const runId = await seedRun(store, version, 'call', clock.now());
    for (const owner of ['dead-1', 'dead-2']) {
      await store.claimRuns({ owner, now: clock.now(), leaseMs: 10_000, limit: 1 });
      clock.advance(10_000);
    }
    await engine.start();
    expect(await finished(store, runId)).toMatchObject({ status: 'succeeded', claims: 3 });
    expect(target.requests).toHaveLength(1);
  });

  it('executor - steps aborted by a drain do not count as claims that died', async () => {
    target = await createHttpTarget();
    target.respond('hang', 'hang');
    harness = await createEngineHarness(
      `
rules:
  - { name: slow, when: { pattern: { type: [x] } }, then: [ { http: { url: "${target.url}/slow" }, timeout: 1h } ] }
`,
      { maxClaims: 1 },
    );
    await harness.send({ type: 'x' });
    for (let stop = 1; stop <= 2; stop++) {
      await eventually(() => target!.requests.length === stop);
      await harness.engine.drain(0);
      const [run] = await harness.store.listRuns({ limit: 1 });
      expect(run).toMatchObject({ status: 'pending', claims: 0, attempt: 0 });
      await harness.restart();
    }
    const [run] = await harness.store.listRuns({ limit: 1 });
    expect(await finished(harness.store, run!.id)).toMatchObject({ status: 'succeeded', claims: 1 });
    expect(target.requests).toHaveLength(3);
  });

  it('executor - a run whose attempts cannot be recorded at all is failed once it has had maxClaims claims', async () => {
    // Every completion but a failure's is refused, as a store might refuse a record it cannot write.
    const refused: AttemptCompletion[] = [];
    const { engine, store, clock } = await openEngine(
      `
rules:
  - name: note
    when: { pattern: { type: [go] } }
    then: [ { log: noted, retry: { attempts: 3, backoff: 1s } } ]
`,
      {
        maxClaims: 2,
        leaseMs: 10_000,
        wrap: (real) =>
          refusingCompletions(real, (completion) => {
            if (completion.outcome.type === 'failed') return undefined;
            refused.push(completion);
            return new Error('disk I/O error');
          }),
      },
    );
    await engine.start();
    await engine.ingest.append([{ specversion: '1.0', id: 'go-1', source: 'test', type: 'go' }]);
    await engine.caughtUp();
    const [created] = await eventually(async () => {
      const runs = await store.listRuns({ limit: 1 });
      return runs.length === 1 && refused.length === 2 ? runs : undefined;
    });
    // The success could not be recorded, nor the crash recorded in its place (a retry): left running.
    expect(refused.map((c) => [c.attempt.status, c.attempt.error?.code, c.outcome.type])).toEqual([
      ['succeeded', undefined, 'succeeded'],
      ['failed', 'REFLEX_ERR_RUN_STEP_CRASHED', 'retry'],
    ]);
    expect(created).toMatchObject({ status: 'running', claims: 1 });
    clock.advance(10_000);
    await eventually(() => refused.length === 4);
    expect((await store.getRun(created!.id))?.claims).toBe(2);
    clock.advance(10_000);
    const run = await finished(store, created!.id);
    expect(run).toMatchObject({ status: 'failed', claims: 3, error: { code: 'REFLEX_ERR_RUN_ABANDONED' } });
    expect(run.attempts.map((a) => [a.attempt, a.status, a.error?.code])).toEqual([
      [1, 'failed', 'REFLEX_ERR_RUN_ABANDONED'],
    ]);
    expect(await store.listDeadLetters(10)).toHaveLength(1);
  });
});

describe('executor - crashes inside an attempt', () => {
  it('executor - an attempt whose record fails is recorded as failed with REFLEX_ERR_RUN_STEP_CRASHED and retried', async () => {
    target = await createHttpTarget();
    let refusals = 1;
    const { engine, store, clock } = await openEngine(
      `
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - id: call
        http: { url: "${target.url}/x" }
        retry: { attempts: 3, backoff: 1s }
`,
      {
        wrap: (real) =>
          refusingCompletions(real, () =>
            refusals-- > 0 ? new RangeError('Maximum call stack size exceeded') : undefined,
          ),
      },
    );
    await engine.start();
    await engine.ingest.append([{ specversion: '1.0', id: 'go-1', source: 'test', type: 'go' }]);
    const [waiting] = await eventually(async () => {
      const runs = await store.listRuns({ limit: 1, status: 'pending' });
      return runs[0]?.attempt === 1 ? runs : undefined;
    });
    expect(waiting!.error).toMatchObject({
      code: 'REFLEX_ERR_RUN_STEP_CRASHED',
      cause: { code: 'REFLEX_ERR_INTERNAL_UNEXPECTED', message: 'Maximum call stack size exceeded' },
    });
    expect(waiting!.error!.message).toMatch(
      /^Step `call` of run `\S+` failed inside Reflex, not in its action: Maximum call stack size exceeded\./,
    );
    // 1s/2 + 1s/2 * 0.5: the step's own retry policy.
    expect(waiting!.nextAttemptAt).toBe(clock.now() + 750);
    clock.advance(750);
    const run = await finished(store, waiting!.id);
    expect(run.status).toBe('succeeded');
    expect(run.attempts.map((a) => [a.attempt, a.status])).toEqual([
      [1, 'failed'],
      [2, 'succeeded'],
    ]);
    expect(target.requests).toHaveLength(2);
  });
});

describe('executor - options', () => {
  it('executor - options out of range are refused with REFLEX_ERR_CONFIG_INVALID, and defaults are filled in', () => {
    const base = { owner: 'x' } as Parameters<typeof compileExecutorOptions>[0];
    expect(compileExecutorOptions(base)).toMatchObject({
      concurrency: 128,
      leaseMs: 30_000,
      maxClaims: 5,
      maxOutputDepth: 32,
      maxOutputBytes: 1_048_576,
    });
    for (const bad of [
      { maxClaims: 0 },
      { leaseMs: 999 },
      { concurrency: 1.5 },
      { maxOutputBytes: Number.NaN },
    ]) {
      expect(() => compileExecutorOptions({ ...base, ...bad })).toThrow(
        expect.objectContaining({
          code: 'REFLEX_ERR_CONFIG_INVALID',
          params: expect.objectContaining({ option: Object.keys(bad)[0] }),
        }),
      );
    }
  });
});
