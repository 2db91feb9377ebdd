import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createActionRegistry } from '../../src/actions/registry.js';
import { createCompiledMatcher } from '../../src/core/pattern/compiled-matcher.js';
import { createTestClock } from '../../src/core/ports/clock.js';
import { silentLogger } from '../../src/core/ports/logger.js';
import type { DispatchCommit, DispatchStore } from '../../src/core/ports/store.js';
import { createRuleIndexer } from '../../src/core/rule-index.js';
import { createDispatcher } from '../../src/engine/dispatcher.js';
import { runId } from '../../src/engine/ids.js';
import { createRulebookVersions } from '../../src/engine/rulebook-versions.js';
import { yamlRulebookCompiler } from '../../src/rulebook/yaml-rulebook-compiler.js';
import { createSqliteStore, type SqliteStore } from '../../src/store/index.js';

const rulebook = `
rules:
  - name: while-on
    when:
      pattern: { type: [ping] }
      if: 'has(facts.mode) && facts.mode == "on"'
    then:
      - log: "on"
  - name: in-list
    when:
      pattern: { type: [ping] }
      if: 'has(facts.hosts) && event.data.host in facts.hosts'
    then:
      - log: "listed"
`;

/** The log, in order: pings interleaved with fact changes. */
type Step = { ping: string } | { fact: string; value: unknown };
const script: Step[] = [
  { ping: 'a' },
  { fact: 'mode', value: 'on' },
  { ping: 'a' },
  { fact: 'hosts', value: ['a'] },
  { ping: 'a' },
  { ping: 'b' },
  { fact: 'mode', value: 'off' },
  { ping: 'a' },
  { fact: 'hosts', value: ['b'] },
  { fact: 'mode', value: undefined },
  { ping: 'b' },
  { fact: 'mode', value: 'on' },
  { ping: 'a' },
];

/**
 * What each ping must fire, computed by walking the script: the facts made by the changes before it.
 * A dispatcher that read the facts of now (all changes made) would fire `while-on` and `in-list` for
 * `b` on every ping.
 */
function expectedFirings(): string[] {
  const facts: Record<string, unknown> = {};
  const firings: string[] = [];
  script.forEach((step, i) => {
    if ('fact' in step) {
      if (step.value === undefined) delete facts[step.fact];
      else facts[step.fact] = step.value;
      return;
    }
    const seq = i + 1;
    if (facts.mode === 'on') firings.push(`${seq}:while-on`);
    if (Array.isArray(facts.hosts) && facts.hosts.includes(step.ping)) firings.push(`${seq}:in-list`);
  });
  return firings;
}

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

const t0 = Date.parse('2026-12-06T08:00:00Z');

/** A store holding the whole script in its log, nothing dispatched yet. */
async function loggedStore(): Promise<SqliteStore> {
  const dir = await mkdtemp(join(tmpdir(), 'reflex-facts-order-'));
  dirs.push(dir);
  const store = await createSqliteStore({ dir });
  let n = 0;
  for (const step of script) {
    const at = t0 + ++n;
    if ('ping' in step) {
      await store.appendEvents(
        [{ specversion: '1.0', id: `ping-${n}`, source: 'test', type: 'ping', data: { host: step.ping } }],
        at,
      );
    } else {
      await store.changeFact(step.fact, step.value, at);
    }
  }
  return store;
}

/** Dispatches the store's log; with `crashAfter`, every commit past that offset fails (the process died). */
async function dispatch(store: SqliteStore, batchSize: number, crashAfter?: number): Promise<void> {
  const clock = createTestClock(t0 + 1000);
  const dispatchStore: DispatchStore =
    crashAfter === undefined
      ? store
      : new Proxy(store, {
          get(target, name) {
            if (name !== 'commitDispatch') return Reflect.get(target, name);
            return async (commit: DispatchCommit) => {
              if (commit.offset > crashAfter) throw new Error('crashed');
              await target.commitDispatch(commit);
            };
          },
        });
  const versions = createRulebookVersions(store, {
    actions: createActionRegistry(),
    compilers: [yamlRulebookCompiler],
  });
  const version = await versions.save([{ path: 'rules.yaml', content: rulebook }], t0);
  const dispatcher = createDispatcher({
    log: store,
    store: dispatchStore,
    clock,
    logger: silentLogger,
    runId,
    indexer: createRuleIndexer(createCompiledMatcher()),
    batchSize,
  });
  dispatcher.setRulebook(version);
  await dispatcher.start();
  await dispatcher.caughtUp(crashAfter ?? script.length);
  await dispatcher.drain();
}

/** The decisions the store holds: runs and audit entries about the pings. */
async function decisions(store: SqliteStore) {
  const runs = (await store.listRuns({ limit: 1000 })).map((run) => ({
    id: run.id,
    firing: `${run.trigger.seq}:${run.rule}`,
  }));
  const audit = [];
  for (let seq = 1; seq <= script.length; seq++) {
    for (const entry of await store.auditForEvent(seq))
      audit.push({ seq, kind: entry.kind, rule: entry.rule });
  }
  return { runs: runs.sort((a, b) => a.firing.localeCompare(b.firing)), audit };
}

describe('facts in log order', () => {
  // Failed before facts became a projection of the log: the dispatcher decided with the facts of now
  // (runs for `b` on every ping, `while-on` for the pings after `mode: off`).
  it('facts - a dispatcher that runs behind the fact changes decides each event with the facts of its place in the log', async () => {
    const store = await loggedStore();
    try {
      await dispatch(store, 4);
      const { runs } = await decisions(store);
      expect(runs.map((run) => run.firing).sort()).toEqual(expectedFirings().sort());
    } finally {
      await store.close();
    }
  });

  it('facts - decided again from every offset after a crash, the log gives the same runs and audit', async () => {
    const reference = await loggedStore();
    let expected: Awaited<ReturnType<typeof decisions>>;
    try {
      await dispatch(reference, 1);
      expected = await decisions(reference);
      expect(expected.runs.map((run) => run.firing).sort()).toEqual(expectedFirings().sort());
    } finally {
      await reference.close();
    }
    for (let offset = 0; offset < script.length; offset++) {
      const store = await loggedStore();
      try {
        // Decided one event per batch up to `offset`, then the process dies; a new one resumes with
        // larger batches (so fact changes fall inside them).
        if (offset > 0) await dispatch(store, 1, offset);
        expect(await store.getOffset('dispatcher', 0)).toBe(offset);
        await dispatch(store, 5);
        expect(await decisions(store), `resumed from offset ${offset}`).toEqual(expected);
      } finally {
        await store.close();
      }
    }
  });
});
