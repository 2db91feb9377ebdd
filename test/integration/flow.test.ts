import { afterEach, describe, expect, it } from 'vitest';
import type { Run } from '../../src/core/ports/store.js';
import { createEngineHarness, type EngineHarness, eventually } from '../helpers/engine-harness.js';
import { createHttpTarget, type HttpTarget } from '../helpers/http-target.js';

/**
 * Correlation, storm control, timers and facts through the whole engine (real SQLite store, test clock):
 * the pure stages are tested in src/core/flow; this shows they are wired, durable and explained.
 */

let harness: EngineHarness | undefined;
let target: HttpTarget | undefined;

afterEach(async () => {
  await harness?.close();
  await target?.close();
  harness = undefined;
  target = undefined;
});

const min = 60_000;

async function settledRuns(rule?: string): Promise<Run[]> {
  await harness!.engine.settled();
  const runs = await harness!.store.listRuns({ limit: 1000, ...(rule ? { rule } : {}) });
  return runs.reverse();
}

describe('flow through the engine', () => {
  it('all - a deploy and an error of the same service within the window fire one run that sees both', async () => {
    harness = await createEngineHarness(`
rules:
  - name: deploy-then-errors
    when:
      all:
        - name: deploy
          pattern: { type: [deploy.finished] }
        - name: errors
          pattern: { type: [alert.error_rate] }
          if: event.data.version == events.deploy.data.version
      within: 10m
      by: event.data.service
    then:
      - log: "\${{ events.deploy.data.version }} of \${{ event.data.service }} broke: \${{ events.errors.data.rate }}"
`);
    await harness.send({ type: 'deploy.finished', data: { service: 'cart', version: 'v2' } });
    harness.clock.advance(2 * min);
    await harness.send({ type: 'alert.error_rate', data: { service: 'shop', version: 'v2', rate: 0.5 } });
    const [, errorSeq] = await harness.send(
      { type: 'alert.error_rate', data: { service: 'cart', version: 'v1', rate: 0.1 } },
      { type: 'alert.error_rate', data: { service: 'cart', version: 'v2', rate: 0.3 } },
    );
    const runs = await settledRuns('deploy-then-errors');
    expect(runs).toHaveLength(1);
    expect(runs[0]!.trigger.seq).toBe(errorSeq);
    const detail = await harness.store.getRun(runs[0]!.id);
    expect(detail!.outputs['0']).toEqual({ message: 'v2 of cart broke: 0.3' });
    const explanation = await harness.engine.queries.explain('1');
    expect(explanation.rules[0]).toMatchObject({ verdict: 'held' });
    expect(explanation.rules[0]!.reason).toContain('errors');
  });

  it('absence - a missing heartbeat fires at its deadline through a logged timer event, once', async () => {
    harness = await createEngineHarness(`
rules:
  - name: heartbeat-missing
    when:
      absence:
        after: { pattern: { type: [heartbeat] } }
        expect: { pattern: { type: [heartbeat] } }
        within: 2m
      by: event.data.host
    then:
      - log: "no heartbeat from \${{ event.data.host }}"
`);
    await harness.send(
      { type: 'heartbeat', data: { host: 'a' } },
      { type: 'heartbeat', data: { host: 'b' } },
    );
    harness.clock.advance(1.5 * min);
    await harness.send({ type: 'heartbeat', data: { host: 'b' } });
    harness.clock.advance(0.5 * min - 1);
    expect(await settledRuns()).toEqual([]);
    harness.clock.advance(1); // 2m after a's heartbeat
    const runs = await settledRuns();
    expect(runs.map((r) => r.trigger.type)).toEqual(['reflex.timer']);
    const detail = await harness.store.getRun(runs[0]!.id);
    expect(detail!.outputs['0']).toEqual({ message: 'no heartbeat from a' });
    harness.clock.advance(10 * min); // b's deadline passes too
    expect((await settledRuns()).length).toBe(2);
    harness.clock.advance(10 * min);
    expect((await settledRuns()).length).toBe(2);
  });

  it('absence - explain says which wait an awaited event ended, and that a late one ended none', async () => {
    harness = await createEngineHarness(`
rules:
  - name: deploy-stuck
    when:
      absence:
        after: { name: started, pattern: { type: [deploy.started] } }
        expect: { name: finished, pattern: { type: [deploy.finished] } }
        within: 10m
      by: event.data.service
    then:
      - log: "deploy of \${{ event.data.service }} never finished"
`);
    await harness.send({ type: 'deploy.started', data: { service: 'cart' } });
    harness.clock.advance(3 * min);
    const [finished] = await harness.send({ type: 'deploy.finished', data: { service: 'cart' } });
    const [stray] = await harness.send({ type: 'deploy.finished', data: { service: 'shop' } });
    harness.clock.advance(20 * min);
    expect(await settledRuns()).toEqual([]);
    const ended = (await harness.engine.queries.explain(String(finished))).rules[0]!;
    expect(ended.verdict, ended.reason).toBe('ended-wait');
    expect(ended.reason).toBe(
      'The event is the awaited `finished` and came before the deadline (2026-11-27T10:10:00.000Z), so the wait for key "cart" ended without firing.',
    );
    // No deploy of shop was waiting: its finish changes nothing.
    expect((await harness.engine.queries.explain(String(stray))).rules[0]!.verdict).toBe('ignored');
  });

  it('count - five failures from one address within a minute fire once, with the five events as batch', async () => {
    harness = await createEngineHarness(`
rules:
  - name: brute-force
    when:
      count: { pattern: { type: [auth.failed] }, atLeast: 5, within: 1m }
      by: event.data.ip
    then:
      - log: "\${{ size(batch) }} failures from \${{ event.data.ip }}"
`);
    for (let i = 0; i < 6; i++) {
      await harness.send({ type: 'auth.failed', data: { ip: i === 2 ? '10.0.0.8' : '10.0.0.7' } });
      harness.clock.advance(10_000);
    }
    const runs = await settledRuns('brute-force');
    expect(runs).toHaveLength(1);
    const detail = await harness.store.getRun(runs[0]!.id);
    expect(detail!.outputs['0']).toEqual({ message: '5 failures from 10.0.0.7' });
    expect(runs[0]!.context.batch).toHaveLength(5);
  });

  it('throttle - the storm is cut per key, and explain says by what and until when', async () => {
    harness = await createEngineHarness(`
rules:
  - name: restart
    when: { pattern: { type: [alert] } }
    throttle: { key: event.data.host, window: 10m }
    then: [ { log: "restart \${{ event.data.host }}" } ]
`);
    const [first] = await harness.send({ type: 'alert', data: { host: 'web-1' } });
    harness.clock.advance(3 * min);
    const [dropped] = await harness.send({ type: 'alert', data: { host: 'web-1' } });
    const [other] = await harness.send({ type: 'alert', data: { host: 'web-2' } });
    harness.clock.advance(7 * min);
    const [again] = await harness.send({ type: 'alert', data: { host: 'web-1' } });
    const runs = await settledRuns('restart');
    expect(runs.map((r) => r.trigger.seq)).toEqual([first, other, again]);
    const explanation = await harness.engine.queries.explain(String(dropped));
    expect(explanation.rules[0]).toMatchObject({ verdict: 'suppressed' });
    expect(explanation.rules[0]!.reason).toContain('throttle');
    expect(explanation.rules[0]!.reason).toContain('"web-1"');
    expect(explanation.rules[0]!.reason).toContain('2026-11-27T10:10:00.000Z');
  });

  it('debounce - one run after the quiet time, for the last event, through a timer', async () => {
    harness = await createEngineHarness(`
rules:
  - name: settle
    when: { pattern: { type: [config.changed] } }
    debounce: { quiet: 30s }
    then: [ { log: "apply \${{ event.data.n }}" } ]
`);
    for (let n = 1; n <= 3; n++) {
      await harness.send({ type: 'config.changed', data: { n } });
      harness.clock.advance(10_000);
    }
    expect(await settledRuns()).toEqual([]);
    harness.clock.advance(20_000);
    const runs = await settledRuns();
    expect(runs).toHaveLength(1);
    expect((await harness.store.getRun(runs[0]!.id))!.outputs['0']).toEqual({ message: 'apply 3' });
  });

  it('state survives a restart in the middle of a window: the correlation still fires exactly once', async () => {
    harness = await createEngineHarness(`
rules:
  - name: pair
    when:
      all:
        - { name: a, pattern: { type: [a] } }
        - { name: b, pattern: { type: [b] } }
      within: 5m
    then: [ { log: pair } ]
  - name: once
    when: { pattern: { type: [x] } }
    throttle: { window: 1h }
    then: [ { log: x } ]
`);
    await harness.send({ type: 'a' }, { type: 'x' });
    await harness.restart();
    harness.clock.advance(min);
    await harness.send({ type: 'b' }, { type: 'x' }, { type: 'b' });
    const runs = await settledRuns();
    expect(runs.map((r) => r.rule).sort()).toEqual(['once', 'pair']);
  });

  it('facts - a change is an event rules can react to, and the API path sets and removes facts', async () => {
    harness = await createEngineHarness(`
rules:
  - name: on-maintenance
    when: { pattern: { type: [reflex.fact.changed], data: { name: [maintenance] } } }
    then: [ { log: "maintenance now \${{ event.data.value }}" } ]
`);
    await harness.engine.facts.set('maintenance', ['web-2']);
    await harness.engine.facts.set('maintenance', ['web-2']); // the same value: no change, no event
    await harness.engine.facts.set('maintenance', undefined);
    const runs = await settledRuns('on-maintenance');
    expect(runs).toHaveLength(2);
    const events = await harness.store.listEvents({ limit: 10, type: 'reflex.fact.changed' });
    expect(events.map((e) => e.event.data).reverse()).toEqual([
      { name: 'maintenance', value: ['web-2'], previous: null, added: true, removed: false },
      { name: 'maintenance', value: null, previous: ['web-2'], added: false, removed: true },
    ]);
  });

  it('concurrency - runs of one key execute one at a time, in order', async () => {
    target = await createHttpTarget();
    target.respond('hang');
    harness = await createEngineHarness(`
rules:
  - name: deploy
    when: { pattern: { type: [deploy] } }
    concurrency: { key: event.data.service }
    then: [ { http: { url: "${target.url}/deploy", json: { n: "\${{ event.data.n }}" } }, timeout: 1s, retry: { attempts: 1 } } ]
`);
    await harness.send(
      { type: 'deploy', data: { service: 'a', n: 1 } },
      { type: 'deploy', data: { service: 'a', n: 2 } },
      { type: 'deploy', data: { service: 'b', n: 3 } },
    );
    await eventually(() => target!.requests.length === 2);
    expect(target.requests.map((r) => (r.json as { n: number }).n).sort()).toEqual([1, 3]);
    // The first times out (1s of real time), then the second of service a may start.
    await eventually(() => target!.requests.length === 3, 5000);
    expect((target.requests[2]!.json as { n: number }).n).toBe(2);
  });
});

describe('facts and loops', () => {
  it('facts - a rule that changes a fact whenever a fact changes stops at the chain depth limit', async () => {
    harness = await createEngineHarness(
      `
rules:
  - name: bump
    when: { pattern: { type: [reflex.fact.changed], data: { name: [counter] } } }
    then: [ { fact: { set: counter, value: "\${{ event.data.value + 1 }}" } } ]
`,
      { maxChainDepth: 3 },
    );
    await harness.engine.facts.set('counter', 0);
    await settledRuns();
    // The API's change is depth 0; each bump is one deeper; depth 4 is past the limit of 3.
    expect(harness.engine.facts.snapshot()).toEqual({ counter: 4 });
    expect(await settledRuns('bump')).toHaveLength(4);
  });
});
