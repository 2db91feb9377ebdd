import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createActionRegistry } from '../../src/actions/registry.js';
import type { CloudEvent } from '../../src/core/event.js';
import { createTestClock } from '../../src/core/ports/clock.js';
import type { Logger } from '../../src/core/ports/logger.js';
import type { Store } from '../../src/core/ports/store.js';
import { createEngine, type Engine } from '../../src/engine/engine.js';
import { yamlRulebookCompiler } from '../../src/rulebook/yaml-rulebook-compiler.js';
import { createSqliteStore } from '../../src/store/index.js';
import { eventually } from '../helpers/engine-harness.js';
import { smallDiskPerTest } from '../helpers/tmpfs.js';

/** A log line as the engine wrote it. */
interface Line {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  obj: Record<string, unknown>;
}

function recordingLogger(lines: Line[]): Logger {
  const at =
    (level: Line['level']) =>
    (obj: object, msg = '') =>
      lines.push({ level, msg, obj: obj as Record<string, unknown> });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** The real store, with every call that writes counted: how often the engine tries while it cannot. */
function countingWrites(store: Store, calls: string[]): Store {
  const writes = new Set([
    'appendEvents',
    'changeFact',
    'commitDispatch',
    'claimRuns',
    'extendLeases',
    'releaseLeases',
    'completeAttempt',
    'fireDueTimers',
    'appendAudit',
    'saveRulebookVersion',
  ]);
  return new Proxy(store, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (typeof key === 'string' && writes.has(key)) calls.push(key);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/** Lets the event loop go round `turns` times: long enough for a loop that does not wait to spin. */
async function turns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

const rulebook = `
rules:
  - name: call
    when:
      pattern: { type: [t.call] }
    then:
      - http: { url: "http://127.0.0.1:1/" }
        retry: { attempts: 10, backoff: 1s, maxDelay: 1s }
  - name: quiet
    when:
      pattern: { type: [t.quiet] }
    debounce: { quiet: 10s }
    then:
      - log: "quiet now"
`;

let counter = 0;
const event = (type: string, data?: unknown): CloudEvent => ({
  specversion: '1.0',
  id: `e-${++counter}`,
  source: 'test',
  type,
  ...(data === undefined ? {} : { data }),
});

describe('disk full', () => {
  const disk = smallDiskPerTest('2m');
  let engine: Engine | undefined;

  afterEach(async () => {
    await engine?.close().catch(() => undefined);
    engine = undefined;
  });

  it('disk full - every writer gets a coded error, the episode is logged once, nothing spins, and writes resume when there is room', async () => {
    const lines: Line[] = [];
    const calls: string[] = [];
    const clock = createTestClock(Date.parse('2026-11-27T10:00:00Z'));
    const store = await createSqliteStore({ dir: join(disk().dir, 'data') });
    engine = await createEngine({
      store: countingWrites(store, calls),
      actions: createActionRegistry(),
      compilers: [yamlRulebookCompiler],
      clock,
      logger: recordingLogger(lines),
      random: () => 0.5,
    });
    await engine.loadRulebook([{ path: 'rules.yaml', content: rulebook }]);
    await engine.start();

    // A run waiting for its retry, and a timer waiting for its time, when the disk fills up.
    await engine.ingest.append([event('t.call'), event('t.quiet')]);
    await engine.caughtUp();
    await eventually(async () => (await store.listRuns({ limit: 10, status: 'pending' })).length === 1);

    const acknowledged: string[] = [];
    const pad = 'x'.repeat(8_000);
    let refusal: unknown;
    for (let i = 0; i < 1_000 && refusal === undefined; i++) {
      const e = event('t.fill', { pad });
      try {
        await engine.ingest.append([e]);
        acknowledged.push(e.id);
      } catch (error) {
        refusal = error;
      }
    }
    expect(refusal).toMatchObject({ code: 'REFLEX_ERR_STORE_DISK_FULL', statusCode: 503 });
    await disk().fill();

    // Requests keep coming: each is refused with the code, none is logged on its own. (They are large:
    // a small commit may still fit where a checkpoint let SQLite start its WAL file over.)
    for (let i = 0; i < 20; i++) {
      await expect(engine.ingest.append([event('t.more', { pad })])).rejects.toMatchObject({
        code: 'REFLEX_ERR_STORE_DISK_FULL',
      });
    }
    await expect(engine.facts.set('mode', pad)).rejects.toMatchObject({
      code: 'REFLEX_ERR_STORE_DISK_FULL',
    });

    // The dispatcher (events acknowledged but not decided), the executor (the retry falls due) and the
    // timers (the debounce falls due) all meet the full disk. Time passes: they retry, with pauses.
    const before = calls.length;
    await turns(2_000);
    for (let s = 0; s < 60; s++) {
      clock.advance(1_000);
      await turns(50);
    }
    const background = calls.slice(before);
    expect(background).toContain('claimRuns');
    expect(background).toContain('fireDueTimers');
    // A loop that does not wait would call thousands of times over 5 000 turns of the event loop.
    expect(background.length).toBeLessThan(150);

    // The first attempt of `call` failed before the disk filled up (its retry is what meets the full disk).
    const episode = lines.slice(lines.findIndex((l) => l.msg.startsWith('disk full')));
    const loud = episode.filter((l) => l.level === 'error' || l.level === 'warn');
    expect(loud.map((l) => l.msg)).toEqual([
      'disk full: writes are refused (503 REFLEX_ERR_STORE_DISK_FULL) until there is room again; logged once until then',
    ]);
    expect(loud[0]!.obj.error).toMatchObject({ code: 'REFLEX_ERR_STORE_DISK_FULL' });

    // The operator frees space: writes go through again, and once they have for a while the episode
    // ends with its summary.
    disk().resize('64m');
    await engine.ingest.append([event('t.after')]);
    expect(lines.some((l) => l.msg.startsWith('disk has room again'))).toBe(false);
    clock.advance(10_000);
    const resumed = lines.find((l) => l.msg === 'disk has room again: writes resumed');
    expect(resumed?.obj).toMatchObject({ refused: { appends: 21, events: 21, factChanges: 1 } });
    expect(episode.filter((l) => l.level === 'error')).toHaveLength(1);

    // Nothing acknowledged was lost, and the backlog is worked off: the debounced rule fires.
    await engine.facts.set('mode', 'calm');
    await engine.caughtUp();
    clock.advance(1_000);
    await eventually(
      async () => (await store.listRuns({ limit: 10, rule: 'quiet' }))[0]?.status === 'succeeded',
    );
    for (const id of acknowledged) expect(await store.findEventsById(id, 'test')).toHaveLength(1);
    expect(engine.facts.snapshot()).toEqual({ mode: 'calm' });
  });
});
