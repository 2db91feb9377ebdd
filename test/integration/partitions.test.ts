import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createActionRegistry } from '../../src/actions/registry.js';
import type { CloudEvent } from '../../src/core/event.js';
import { partitionOf } from '../../src/core/partition.js';
import type { Run } from '../../src/core/ports/store.js';
import { createEngine } from '../../src/engine/engine.js';
import { yamlRulebookCompiler } from '../../src/rulebook/yaml-rulebook-compiler.js';
import { createSqliteStore } from '../../src/store/index.js';
import { createEngineHarness, type EngineHarness, eventually } from '../helpers/engine-harness.js';

let harness: EngineHarness | undefined;

afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

const rulebook = `
rules:
  - name: every
    when: { pattern: { type: [ping] } }
    then: [ { log: "\${{ event.source }}" } ]
  - name: first-per-source
    when: { pattern: { type: [ping] } }
    throttle: { key: event.source, window: 1h }
    then: [ { log: first } ]
  - name: pair
    when:
      all:
        - { name: open, pattern: { type: [open] } }
        - { name: close, pattern: { type: [close] } }
      within: 5m
      by: event.source
    then: [ { log: "\${{ events.open.source }}" } ]
  - name: while-on
    when:
      pattern: { type: [probe] }
      if: 'has(facts.mode) && facts.mode == "on"'
    then: [ { log: on } ]
`;

const sources = Array.from({ length: 8 }, (_, i) => `host-${i}`);
let counter = 0;
const ping = (source: string): CloudEvent => ({
  specversion: '1.0',
  id: `p-${++counter}`,
  source,
  type: 'ping',
});

async function runsOf(rule: string): Promise<Run[]> {
  return harness!.store.listRuns({ rule, limit: 10_000 });
}

describe('partitions', () => {
  it('partitions - with 4, every event is decided once, in order within its partition, and correlations work', async () => {
    harness = await createEngineHarness(rulebook, { partitions: 4 });
    const { engine, store } = harness;
    const sent: number[] = [];
    // Interleaved sources, several appends per commit.
    for (let round = 0; round < 10; round++) {
      const results = await engine.ingest.append(sources.map(ping));
      for (const result of results) sent.push(result.seq);
    }
    await engine.caughtUp();
    const partitionsUsed = new Set<number>();
    for (const seq of sent) {
      const logged = (await store.getEvent(seq))!;
      expect(logged.partition).toBe(partitionOf(logged.event, 4));
      partitionsUsed.add(logged.partition);
    }
    expect(partitionsUsed.size).toBeGreaterThan(1);

    const every = await runsOf('every');
    expect(every.map((run) => run.trigger.seq).sort((a, b) => a - b)).toEqual(sent);
    for (const run of every)
      expect(run.trigger.partition).toBe((await store.getEvent(run.trigger.seq))!.partition);
    // Throttled per source: only the first ping of each source fires, which needs its partition's order.
    const first = await runsOf('first-per-source');
    const firstSeqOf = new Map<string, number>();
    for (const seq of sent) {
      const source = (await store.getEvent(seq))!.event.source;
      if (!firstSeqOf.has(source)) firstSeqOf.set(source, seq);
    }
    expect(first.map((run) => run.trigger.seq).sort((a, b) => a - b)).toEqual(
      [...firstSeqOf.values()].sort((a, b) => a - b),
    );

    await harness.send({ type: 'open', source: 'host-1' }, { type: 'open', source: 'host-2' });
    await harness.send({ type: 'close', source: 'host-2' });
    const pairs = await runsOf('pair');
    expect(pairs.map((run) => run.trigger.source)).toEqual(['host-2']);
  });

  it('partitions - a fact changed in one partition is seen by events after it in every partition', async () => {
    harness = await createEngineHarness(rulebook, { partitions: 4 });
    const before = await harness.send(...sources.map((source) => ({ type: 'probe', source })));
    await harness.engine.facts.set('mode', 'on');
    const after = await harness.send(...sources.map((source) => ({ type: 'probe', source })));
    const fired = (await runsOf('while-on')).map((run) => run.trigger.seq).sort((a, b) => a - b);
    expect(fired).toEqual(after);
    expect(fired.some((seq) => before.includes(seq))).toBe(false);
  });

  it('partitions - after a restart each partition resumes from its own offset: nothing lost, nothing doubled', async () => {
    harness = await createEngineHarness(rulebook, { partitions: 4 });
    const sent: number[] = [];
    for (const result of await harness.engine.ingest.append(sources.map(ping))) sent.push(result.seq);
    await harness.engine.caughtUp();
    const offsets = [];
    for (const partition of [0, 1, 2, 3])
      offsets.push(await harness.store.getOffset('dispatcher', partition));
    await harness.restart();
    // Each partition's offset survived the restart on its own (outcome events may have moved it on).
    for (const partition of [0, 1, 2, 3]) {
      expect(await harness.store.getOffset('dispatcher', partition)).toBeGreaterThanOrEqual(
        offsets[partition]!,
      );
    }
    expect(offsets.filter((offset) => offset > 0).length).toBeGreaterThan(1);
    for (const result of await harness.engine.ingest.append(sources.map(ping))) sent.push(result.seq);
    await harness.engine.caughtUp();
    const every = await eventually(async () => {
      const runs = await runsOf('every');
      return runs.length >= sent.length && runs;
    });
    expect(every.map((run) => run.trigger.seq).sort((a, b) => a - b)).toEqual(sent);
  });

  it('partitions - the engine refuses a partition count that is not a whole number from 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'reflex-partitions-'));
    const store = await createSqliteStore({ dir });
    try {
      for (const partitions of [0, 1.5, -1]) {
        await expect(
          createEngine({
            store,
            actions: createActionRegistry(),
            compilers: [yamlRulebookCompiler],
            partitions,
          }),
        ).rejects.toMatchObject({
          code: 'REFLEX_ERR_CONFIG_INVALID',
        });
      }
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
