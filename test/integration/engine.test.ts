import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RulebookError } from '../../src/core/ports/rulebook-compiler.js';
import type { Run } from '../../src/core/ports/store.js';
import { createEngineHarness, type EngineHarness, eventually } from '../helpers/engine-harness.js';
import { createHttpTarget, type HttpTarget } from '../helpers/http-target.js';

let harness: EngineHarness | undefined;
let target: HttpTarget | undefined;
let scratch: string | undefined;

afterEach(async () => {
  await harness?.close();
  await target?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
  harness = undefined;
  target = undefined;
  scratch = undefined;
});

async function runsOf(rule?: string): Promise<Run[]> {
  return harness!.store.listRuns({ limit: 1000, ...(rule ? { rule } : {}) });
}

async function finishedRun(rule: string): Promise<Run> {
  return eventually(async () =>
    (await runsOf(rule)).find((r) => r.status === 'succeeded' || r.status === 'failed'),
  );
}

describe('engine', () => {
  it('engine - a matching event runs the http action and records the run, its attempt and its outcome event', async () => {
    target = await createHttpTarget();
    harness = await createEngineHarness(`
rules:
  - name: restart-on-critical
    when:
      pattern: { type: [alertmanager.alert], data: { labels: { severity: [critical] } } }
      if: event.data.value > 90
    then:
      - id: restart
        http: { url: "${target.url}/restart", json: { host: "\${{ event.data.labels.instance }}", value: "\${{ event.data.value }}" } }
`);
    const [seq] = await harness.send({
      type: 'alertmanager.alert',
      data: { labels: { severity: 'critical', instance: 'web-1' }, value: 95 },
    });
    const run = await finishedRun('restart-on-critical');
    expect(run.status).toBe('succeeded');
    expect(run.trigger.seq).toBe(seq);
    expect(target.requests).toHaveLength(1);
    const request = target.requests[0]!;
    expect(request.method).toBe('POST');
    expect(request.url).toBe('/restart');
    expect(request.json).toEqual({ host: 'web-1', value: 95 });
    expect(request.headers['idempotency-key']).toBe(`${run.id}:restart`);
    const detail = await harness.store.getRun(run.id);
    expect(detail!.attempts).toHaveLength(1);
    expect(detail!.attempts[0]).toMatchObject({
      stepId: 'restart',
      action: 'http',
      attempt: 1,
      status: 'succeeded',
    });
    expect(detail!.outputs.restart).toMatchObject({ status: 200, body: { ok: true } });
    const outcome = await eventually(
      async () => (await harness!.store.findEventsById(`${run.id}.succeeded`))[0],
    );
    expect(outcome.event).toMatchObject({
      type: 'reflex.run.succeeded',
      source: 'reflex',
      subject: 'restart-on-critical',
    });
    expect(outcome.event.data).toMatchObject({
      runId: run.id,
      rule: 'restart-on-critical',
      trigger: { seq },
    });
  });

  it('engine - an event that does not match, or whose condition is false, creates no run', async () => {
    harness = await createEngineHarness(`
rules:
  - name: hot
    when: { pattern: { type: [reading] }, if: event.data.celsius > 30 }
    then: [ { log: hot } ]
`);
    await harness.send({ type: 'other', data: { celsius: 40 } }, { type: 'reading', data: { celsius: 20 } });
    await harness.engine.caughtUp();
    expect(await runsOf()).toEqual([]);
    const [seq] = await harness.send({ type: 'reading', data: { celsius: 35 } });
    const run = await finishedRun('hot');
    expect(run.trigger.seq).toBe(seq);
  });

  it('engine - a failing step is retried with backoff under the same idempotency key, then succeeds', async () => {
    target = await createHttpTarget();
    target.respond({ status: 500 }, { status: 503 });
    harness = await createEngineHarness(`
rules:
  - name: flaky
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "${target.url}/x", method: POST }
        retry: { attempts: 3, backoff: 1s, maxDelay: 10s }
`);
    await harness.send({ type: 'go' });
    // First try fails; the run waits, pending, for its next attempt. Jitter is fixed at 0.5 here:
    // delay = 1s/2 + 1s/2 * 0.5 = 750ms.
    const waiting = await eventually(async () =>
      (await runsOf('flaky')).find((r) => r.status === 'pending' && r.attempt === 1),
    );
    expect(waiting.nextAttemptAt).toBe(harness.clock.now() + 750);
    expect(target.requests).toHaveLength(1);
    harness.clock.advance(749);
    await harness.engine.caughtUp();
    expect(target.requests).toHaveLength(1);
    harness.clock.advance(1);
    await eventually(async () =>
      (await runsOf('flaky')).find((r) => r.status === 'pending' && r.attempt === 2),
    );
    expect(target.requests).toHaveLength(2);
    // Second delay doubles: 2s/2 + 2s/2 * 0.5 = 1500ms.
    harness.clock.advance(1500);
    const run = await finishedRun('flaky');
    expect(run.status).toBe('succeeded');
    expect(target.requests).toHaveLength(3);
    const keys = new Set(target.requests.map((r) => r.headers['idempotency-key']));
    expect(keys).toEqual(new Set([`${run.id}:0`]));
    const detail = await harness.store.getRun(run.id);
    expect(detail!.attempts.map((a) => [a.attempt, a.status])).toEqual([
      [1, 'failed'],
      [2, 'failed'],
      [3, 'succeeded'],
    ]);
    expect(detail!.attempts[0]!.error!.code).toBe('REFLEX_ERR_ACTION_HTTP_STATUS');
  });

  it('engine - after the last attempt the run fails, is dead-lettered, and reflex.run.failed fires other rules', async () => {
    target = await createHttpTarget();
    target.fallback = { status: 500, body: { error: 'boom' } };
    harness = await createEngineHarness(`
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "${target.url}/x" }
        retry: { attempts: 2, backoff: 100ms }
  - name: page-on-failure
    when:
      pattern: { type: [reflex.run.failed], data: { rule: [call] } }
    then:
      - log: "run \${{ event.data.runId }} failed: \${{ event.data.error.code }}"
`);
    await harness.send({ type: 'go' });
    await eventually(async () =>
      (await runsOf('call')).find((r) => r.attempt === 1 && r.status === 'pending'),
    );
    harness.clock.advance(100);
    const failed = await finishedRun('call');
    expect(failed.status).toBe('failed');
    expect(failed.error!.code).toBe('REFLEX_ERR_ACTION_HTTP_STATUS');
    const dead = await harness.store.listDeadLetters(10);
    expect(dead).toEqual([expect.objectContaining({ runId: failed.id, rule: 'call', step: 0 })]);
    const page = await finishedRun('page-on-failure');
    expect(page.status).toBe('succeeded');
    const detail = await harness.store.getRun(page.id);
    expect(detail!.outputs['0']).toEqual({
      message: `run ${failed.id} failed: REFLEX_ERR_ACTION_HTTP_STATUS`,
    });
  });

  it('engine - a 4xx answer is not retried', async () => {
    target = await createHttpTarget();
    target.fallback = { status: 404 };
    harness = await createEngineHarness(`
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "${target.url}/missing" }
        retry: { attempts: 5 }
`);
    await harness.send({ type: 'go' });
    const run = await finishedRun('call');
    expect(run.status).toBe('failed');
    expect(target.requests).toHaveLength(1);
  });

  it('engine - a step that outlives its timeout fails with REFLEX_ERR_ACTION_TIMEOUT', async () => {
    target = await createHttpTarget();
    target.fallback = 'hang';
    harness = await createEngineHarness(`
rules:
  - name: slow
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "${target.url}/slow" }
        timeout: 200ms
        retry: { attempts: 1 }
`);
    await harness.send({ type: 'go' });
    const run = await finishedRun('slow');
    expect(run.status).toBe('failed');
    expect(run.error!.code).toBe('REFLEX_ERR_ACTION_TIMEOUT');
  });

  it('engine - facts set by one rule are read by the condition of another, and survive a restart', async () => {
    harness = await createEngineHarness(`
rules:
  - name: maintenance
    when: { pattern: { type: [maintenance] } }
    then: [ { fact: { set: maintenance, value: "\${{ event.data.hosts }}" } } ]
  - name: restart
    when:
      pattern: { type: [alert] }
      if: '!(has(facts.maintenance) && event.data.host in facts.maintenance)'
    then: [ { log: "restart \${{ event.data.host }}" } ]
`);
    await harness.send({ type: 'maintenance', data: { hosts: ['web-2'] } });
    await finishedRun('maintenance');
    expect(harness.engine.facts.snapshot()).toEqual({ maintenance: ['web-2'] });
    await harness.restart();
    expect(harness.engine.facts.snapshot()).toEqual({ maintenance: ['web-2'] });
    const [kept, skipped] = await harness.send(
      { type: 'alert', data: { host: 'web-1' } },
      { type: 'alert', data: { host: 'web-2' } },
    );
    await finishedRun('restart');
    const runs = await runsOf('restart');
    expect(runs.map((r) => r.trigger.seq)).toEqual([kept]);
    const explanation = await harness.engine.queries.explain(String(skipped));
    expect(explanation.rules.find((r) => r.rule === 'restart')).toMatchObject({ verdict: 'condition-false' });
  });

  it('engine - all matching rules fire in order, until a rule says stop', async () => {
    harness = await createEngineHarness(`
rules:
  - { name: first, when: { pattern: { type: [x] } }, then: [ { log: one } ] }
  - { name: second, when: { pattern: { type: [x] } }, then: [ { log: two } ], stop: true }
  - { name: third, when: { pattern: { type: [x] } }, then: [ { log: three } ] }
`);
    const [seq] = await harness.send({ type: 'x' });
    const runs = await harness.store.runsForEvent(seq!);
    expect(runs.map((r) => r.rule).sort()).toEqual(['first', 'second']);
    const explanation = await harness.engine.queries.explain(String(seq));
    expect(explanation.rules.map((r) => [r.rule, r.verdict])).toEqual([
      ['first', 'fired'],
      ['second', 'fired'],
      ['third', 'stopped'],
    ]);
    expect(explanation.rules[2]!.reason).toContain('`second`');
  });

  it('engine - a repeated event is logged once and dispatched once', async () => {
    harness = await createEngineHarness(`
rules:
  - { name: once, when: { pattern: { type: [x] } }, then: [ { log: hi } ] }
`);
    const first = await harness.engine.ingest.append([
      { specversion: '1.0', id: 'same', source: 's', type: 'x' },
    ]);
    const again = await harness.engine.ingest.append([
      { specversion: '1.0', id: 'same', source: 's', type: 'x' },
    ]);
    expect(again[0]).toEqual({ ...first[0], duplicate: true });
    await harness.engine.caughtUp();
    await finishedRun('once');
    expect(await runsOf('once')).toHaveLength(1);
  });

  it('engine - a rule reacting to its own outcome stops at the chain depth limit', async () => {
    harness = await createEngineHarness(
      `
rules:
  - name: echo
    when: { pattern: { type: [start, reflex.run.succeeded] } }
    then: [ { log: again } ]
`,
      { maxChainDepth: 3 },
    );
    await harness.send({ type: 'start' });
    // start → run 1 → succeeded(depth 1) → run 2 → succeeded(2) → run 3 → succeeded(3) → run 4 →
    // succeeded(4): deeper than 3, so no fifth run.
    await eventually(async () => {
      const runs = await runsOf('echo');
      return runs.length === 4 && runs.every((r) => r.status === 'succeeded') ? runs : undefined;
    });
    const last = await eventually(async () => {
      const events = await harness!.store.listEvents({ limit: 1, type: 'reflex.run.succeeded' });
      const depth = (events[0]?.event as { reflexchain?: number } | undefined)?.reflexchain;
      return depth === 4 ? events[0] : undefined;
    });
    await harness.engine.caughtUp();
    expect(await runsOf('echo')).toHaveLength(4);
    const explanation = await harness.engine.queries.explain(String(last.seq));
    expect(explanation.rules[0]).toMatchObject({ verdict: 'chain-too-deep' });
  });

  it('engine - an invalid rulebook is refused and the rules in force stay', async () => {
    harness = await createEngineHarness(`
rules:
  - { name: keep, when: { pattern: { type: [x] } }, then: [ { log: kept } ] }
`);
    const before = harness.engine.rulebook!.id;
    await expect(
      harness.engine.loadRulebook([
        { path: 'rules.yaml', content: 'rules:\n  - name: broken\n    when: {}\n' },
      ]),
    ).rejects.toBeInstanceOf(RulebookError);
    expect(harness.engine.rulebook!.id).toBe(before);
    await harness.send({ type: 'x' });
    expect((await finishedRun('keep')).status).toBe('succeeded');
  });

  it('engine - a reloaded rulebook applies to later events; earlier events are explained with their own version', async () => {
    harness = await createEngineHarness(`
rules:
  - { name: old, when: { pattern: { type: [x] } }, then: [ { log: old } ] }
`);
    const [early] = await harness.send({ type: 'x' });
    await harness.engine.loadRulebook([
      {
        path: 'rules.yaml',
        content: 'rules:\n  - { name: new, when: { pattern: { type: [x] } }, then: [ { log: new } ] }\n',
      },
    ]);
    const [late] = await harness.send({ type: 'x' });
    expect((await harness.store.runsForEvent(early!)).map((r) => r.rule)).toEqual(['old']);
    expect((await harness.store.runsForEvent(late!)).map((r) => r.rule)).toEqual(['new']);
    const first = await harness.engine.queries.explain(String(early));
    expect(first.rules.map((r) => r.rule)).toEqual(['old']);
  });

  it('engine - exec runs a real process with the rendered argv', async () => {
    scratch = await mkdtemp(join(tmpdir(), 'reflex-exec-'));
    const file = join(scratch, 'out.txt');
    harness = await createEngineHarness(`
rules:
  - name: write
    when: { pattern: { type: [x] } }
    then:
      - exec:
          command: [node, -e, "require('fs').writeFileSync(process.argv[1], process.argv[2])", "${file}", "\${{ event.data.word }}"]
`);
    await harness.send({ type: 'x', data: { word: 'hello; rm -rf /' } });
    const run = await finishedRun('write');
    expect(run.status).toBe('succeeded');
    expect(await readFile(file, 'utf8')).toBe('hello; rm -rf /');
  });

  it('engine - draining lets a running step finish within the grace period', async () => {
    target = await createHttpTarget();
    target.respond('hang');
    harness = await createEngineHarness(`
rules:
  - { name: slow, when: { pattern: { type: [x] } }, then: [ { http: { url: "${target.url}/slow" }, timeout: 10s } ] }
`);
    await harness.send({ type: 'x' });
    await eventually(() => target!.requests.length === 1);
    // The step is now running; drain with no grace aborts it without recording an attempt.
    await harness.engine.drain(0);
    const [run] = await runsOf('slow');
    expect(run).toMatchObject({ status: 'pending', attempt: 0 });
    // After a restart the step runs again, under the same idempotency key.
    await harness.restart();
    const done = await finishedRun('slow');
    expect(done.status).toBe('succeeded');
    expect(target.requests.map((r) => r.headers['idempotency-key'])).toEqual([
      `${run!.id}:0`,
      `${run!.id}:0`,
    ]);
  });
});

describe('engine - retries and shutdown', () => {
  it('engine - a Retry-After longer than the step allows waits only maxDelay', async () => {
    target = await createHttpTarget();
    target.respond({ status: 429, headers: { 'retry-after': '86400' } });
    harness = await createEngineHarness(`
rules:
  - name: call
    when: { pattern: { type: [go] } }
    then:
      - http: { url: "${target.url}/x" }
        retry: { attempts: 3, backoff: 100ms, maxDelay: 5s }
`);
    await harness.send({ type: 'go' });
    const waiting = await eventually(async () =>
      (await runsOf('call')).find((r) => r.status === 'pending' && r.attempt === 1),
    );
    expect(waiting.nextAttemptAt).toBe(harness.clock.now() + 5000);
  });

  it('engine - a step that emits while Reflex drains still gets its event into the log', async () => {
    scratch = await mkdtemp(join(tmpdir(), 'reflex-drain-'));
    harness = await createEngineHarness(`
rules:
  - name: slow-then-emit
    when: { pattern: { type: [go] } }
    then:
      - exec: { command: [node, -e, "setTimeout(() => {}, 300)"] }
      - emit: { type: done }
`);
    await harness.send({ type: 'go' });
    await eventually(async () => (await runsOf('slow-then-emit')).find((r) => r.status === 'running'));
    await harness.engine.drain(10_000);
    const [run] = await runsOf('slow-then-emit');
    expect(run!.status).toBe('succeeded');
    expect(await harness.store.listEvents({ limit: 5, type: 'done' })).toHaveLength(1);
  });
});

describe('engine - indexing', () => {
  it('engine - a condition-only rule is indexed by what its condition implies, and explained', async () => {
    harness = await createEngineHarness(`
rules:
  - name: big-orders
    when: { if: 'event.type == "order.created" && event.data.total > 100' }
    then: [ { log: big } ]
`);
    const [big, small, other] = await harness.send(
      { type: 'order.created', data: { total: 250 } },
      { type: 'order.created', data: { total: 50 } },
      { type: 'order.paid', data: { total: 250 } },
    );
    await harness.engine.settled();
    expect((await runsOf('big-orders')).map((r) => r.trigger.seq)).toEqual([big]);
    const notIndexed = await harness.engine.queries.explain(String(other));
    expect(notIndexed.rules[0]).toMatchObject({ verdict: 'condition-false' });
    expect(notIndexed.rules[0]!.reason).toContain('`type`');
    const indexedButFalse = await harness.engine.queries.explain(String(small));
    expect(indexedButFalse.rules[0]).toMatchObject({ verdict: 'condition-false' });
  });
});
