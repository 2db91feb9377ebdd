import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createActionRegistry } from '../../src/actions/registry.js';
import type { CloudEvent } from '../../src/core/event.js';
import { createTestClock, type TestClock } from '../../src/core/ports/clock.js';
import { createEngine, type Engine, type EngineOptions } from '../../src/engine/engine.js';
import { yamlRulebookCompiler } from '../../src/rulebook/yaml-rulebook-compiler.js';
import { createSqliteStore, type SqliteStore } from '../../src/store/index.js';

/** A real engine over a real SQLite store in a temp dir, driven by a test clock. */
export interface EngineHarness {
  engine: Engine;
  store: SqliteStore;
  clock: TestClock;
  dir: string;
  /** Appends events through the ingest path and waits until they are dispatched. */
  send(...events: Array<Partial<CloudEvent> & { type: string }>): Promise<number[]>;
  /** Stops and removes everything. */
  close(): Promise<void>;
  /** Closes the engine (not the dir) and opens a new one on the same data: a restart. */
  restart(): Promise<void>;
}

let counter = 0;

export async function createEngineHarness(
  rulebook: string,
  options: Partial<Omit<EngineOptions, 'store' | 'clock'>> & { start?: number } = {},
): Promise<EngineHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'reflex-engine-'));
  const clock = createTestClock(options.start ?? Date.parse('2026-11-27T10:00:00Z'));
  const open = async () => {
    const store = await createSqliteStore({ dir });
    const engine = await createEngine({
      store,
      actions: createActionRegistry(),
      clock,
      random: () => 0.5,
      ...options,
      compilers: [yamlRulebookCompiler],
    });
    await engine.loadRulebook([{ path: 'rules.yaml', content: rulebook }]);
    await engine.start();
    return { store, engine };
  };
  let current = await open();
  const harness: EngineHarness = {
    get engine() {
      return current.engine;
    },
    get store() {
      return current.store;
    },
    clock,
    dir,
    async send(...events) {
      const full = events.map(
        (e) => ({ specversion: '1.0', id: `e-${++counter}`, source: 'test', ...e }) as CloudEvent,
      );
      const results = await current.engine.ingest.append(full);
      await current.engine.caughtUp();
      return results.map((r) => r.seq);
    },
    async close() {
      await current.engine.close();
      await rm(dir, { recursive: true, force: true });
    },
    async restart() {
      await current.engine.close();
      current = await open();
    },
  };
  return harness;
}

/**
 * Waits until `check` returns a value that is not undefined/false, polling; fails after `timeoutMs`
 * with the last value seen. For waiting on asynchronous work (an action, a commit), not on time.
 */
export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    last = await check();
    if (last !== undefined && last !== false) return last as T;
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
