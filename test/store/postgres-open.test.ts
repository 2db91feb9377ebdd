import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { ReflexError } from '../../src/core/errors.js';
import type { CloudEvent } from '../../src/core/event.js';
import { createPostgresStore, lockFileName, openStore, parsePostgresUrl } from '../../src/store/index.js';
import { migratePostgres, postgresSchemaVersion } from '../../src/store/postgres/migrations.js';
import {
  dropSchema,
  postgresUrlFor,
  skipWithoutPostgres,
  testPostgresUrl,
  uniqueSchema,
} from '../helpers/postgres.js';

const skip = await skipWithoutPostgres();
const schemas = new Set<string>();
const newSchema = () => {
  const schema = uniqueSchema('reflex_open');
  schemas.add(schema);
  return schema;
};

afterAll(async () => {
  if (!skip) for (const schema of schemas) await dropSchema(schema);
});

const ev = (id: string): CloudEvent => ({
  specversion: '1.0',
  id,
  source: 'test/source',
  type: 'test.happened',
});

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ReflexError) return error.code;
    throw error;
  }
  throw new Error('expected a coded error');
}

describe('postgres url', () => {
  it('postgres url - the schema comes from ?schema=, reflex by default, and the password is hidden', () => {
    const location = parsePostgresUrl(
      'postgres://me:secret@db.example:6543/ops?schema=reflex_a&sslmode=disable',
    );
    expect(location).toMatchObject({
      schema: 'reflex_a',
      host: 'db.example',
      port: 6543,
      database: 'ops',
      user: 'me',
    });
    expect(location.connectionString).not.toContain('schema=');
    expect(location.connectionString).toContain('sslmode=disable');
    expect(location.display).not.toContain('secret');
    expect(parsePostgresUrl('postgresql://127.0.0.1/test').schema).toBe('reflex');
  });

  it.each([
    ['mysql://127.0.0.1/test', 'postgres://'],
    ['postgres://127.0.0.1', 'names no database'],
    ['postgres://127.0.0.1/test?schema=Reflex', 'lower-case'],
    ['postgres://127.0.0.1/test?schema=x;drop', 'lower-case'],
    ['postgres://127.0.0.1/test?schema=a&schema=b', 'more than once'],
  ])('postgres url - %s is refused as a config error that says why', (url, reason) => {
    try {
      parsePostgresUrl(url);
      expect.unreachable();
    } catch (error) {
      expect((error as ReflexError).code).toBe('REFLEX_ERR_CONFIG_INVALID');
      expect((error as ReflexError).message).toContain(reason);
      expect((error as ReflexError).message).toContain('--store');
    }
  });
});

describe.skipIf(skip)('postgres open', () => {
  it('postgres open - an unreachable server is a coded error naming host and port', async () => {
    const error = await createPostgresStore({ url: 'postgres://postgres@127.0.0.1:1/test' }).catch((e) => e);
    expect(error).toBeInstanceOf(ReflexError);
    expect(error.code).toBe('REFLEX_ERR_STORE_UNREACHABLE');
    expect(error.message).toContain('127.0.0.1:1');
  });

  it('postgres open - a database that does not exist is a coded error naming it', async () => {
    const url = new URL(testPostgresUrl);
    url.pathname = '/reflex_no_such_database';
    const error = await createPostgresStore({ url: url.href }).catch((e) => e);
    expect(error.code).toBe('REFLEX_ERR_STORE_UNREACHABLE');
    expect(error.message).toContain('reflex_no_such_database');
  });

  it('postgres open - one writer per schema: a second one is refused until the first closes', async () => {
    const url = postgresUrlFor(newSchema());
    const first = await createPostgresStore({ url });
    expect(await codeOf(createPostgresStore({ url }))).toBe('REFLEX_ERR_STORE_SCHEMA_IN_USE');
    await first.appendEvents([ev('a')], 1);
    await first.close();
    const second = await createPostgresStore({ url });
    expect(await second.lastSeq()).toBe(1);
    await second.close();
  });

  it('postgres open - two processes migrating one new schema at once both end on the same schema', async () => {
    const schema = newSchema();
    const clients = [0, 1, 2].map(() => new pg.Client({ connectionString: testPostgresUrl }));
    await Promise.all(clients.map((c) => c.connect()));
    try {
      const found = await Promise.all(clients.map((c) => migratePostgres(c, schema, schema)));
      // Exactly one of them found an empty schema; the others found it done.
      expect(found.sort()).toEqual([0, postgresSchemaVersion, postgresSchemaVersion]);
      const rows = await clients[0]!.query(`SELECT version FROM "${schema}".schema_migrations`);
      expect(rows.rows.map((r) => r.version)).toEqual([postgresSchemaVersion]);
      const keys = await clients[0]!.query(`SELECT count(*)::int AS n FROM "${schema}".instance_keys`);
      expect(keys.rows[0].n).toBe(1);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it('postgres open - a reader needs an existing schema, sees the data and cannot write', async () => {
    const schema = newSchema();
    const url = postgresUrlFor(schema);
    expect(await codeOf(createPostgresStore({ url, readonly: true }))).toBe('REFLEX_ERR_STORE_NOT_FOUND');
    const writer = await createPostgresStore({ url });
    await writer.appendEvents([ev('a'), ev('b')], 1);
    // A reader takes no lock: it opens while the writer runs.
    const reader = await createPostgresStore({ url, readonly: true });
    try {
      expect((await reader.readEvents({ partition: 0, seq: 0 }, 10)).events.map((e) => e.event.id)).toEqual([
        'a',
        'b',
      ]);
      await expect(reader.appendEvents([ev('c')], 2)).rejects.toThrow(/read-only/);
      expect(await writer.lastSeq()).toBe(2);
    } finally {
      await reader.close();
      await writer.close();
    }
  });

  it('postgres open - a schema from a newer Reflex is refused, not guessed at', async () => {
    const schema = newSchema();
    const url = postgresUrlFor(schema);
    await (await createPostgresStore({ url })).close();
    const client = new pg.Client({ connectionString: testPostgresUrl });
    await client.connect();
    await client.query(
      `INSERT INTO "${schema}".schema_migrations (version, description) VALUES (${postgresSchemaVersion + 1}, 'future')`,
    );
    await client.end();
    expect(await codeOf(createPostgresStore({ url }))).toBe('REFLEX_ERR_STORE_NEWER_SCHEMA');
  });

  it('postgres open - with a data directory the instance also holds its lock file, released on close', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'reflex-pg-'));
    try {
      const store = await openStore({ store: postgresUrlFor(newSchema()), dataDir: dir });
      const other = postgresUrlFor(newSchema());
      expect(await codeOf(openStore({ store: other, dataDir: dir }))).toBe('REFLEX_ERR_STORE_LOCKED');
      await store.close();
      await (await openStore({ store: other, dataDir: dir })).close();
      const { existsSync } = await import('node:fs');
      expect(existsSync(join(dir, lockFileName))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('postgres log - concurrent appends get seqs in commit order: readers following each partition miss none', async () => {
    const store = await createPostgresStore({ url: postgresUrlFor(newSchema()), poolSize: 8 });
    try {
      const writers = 8;
      const appendsEach = 15;
      const partitions = [0, 1];
      let writing = true;
      const appended = partitions.map(() => [] as number[]);
      const seen = partitions.map(() => [] as number[]);
      // Each reader moves to `through`, as a dispatcher does: an event committed below it later would be lost.
      const follow = async (partition: number) => {
        let after = 0;
        for (;;) {
          const done = !writing;
          const read = await store.readEvents({ partition, seq: after }, 7);
          for (const e of read.events) seen[partition]!.push(e.seq);
          expect(read.through).toBeGreaterThanOrEqual(after);
          after = read.through;
          if (read.events.length === 0 && done) return;
        }
      };
      const readers = partitions.map(follow);
      await Promise.all(
        Array.from({ length: writers }, async (_, w) => {
          for (let i = 0; i < appendsEach; i++) {
            const results = await store.appendEvents([ev(`w${w}-${i}-a`), ev(`w${w}-${i}-b`)], i, [
              w % 2,
              (w + i) % 2,
            ]);
            for (const r of results) appended[r.partition]!.push(r.seq);
          }
        }),
      );
      writing = false;
      await Promise.all(readers);
      for (const p of partitions) expect(seen[p]).toEqual([...appended[p]!].sort((a, b) => a - b));
      expect(seen[0]!.length + seen[1]!.length).toBe(writers * appendsEach * 2);
      expect(await store.lastSeq()).toBe(writers * appendsEach * 2);
    } finally {
      await store.close();
    }
  });

  it('postgres runs - completions handed in together are recorded together, each with its own answer', async () => {
    const store = await createPostgresStore({ url: postgresUrlFor(newSchema()) });
    try {
      const version = await store.saveRulebookVersion({ hash: 'h', files: [], createdAt: 1 });
      const triggers = await store.appendEvents([ev('t1'), ev('t2'), ev('t3'), ev('t4')], 1, [0, 1, 0, 1]);
      await store.commitDispatch({
        consumer: 'dispatcher',
        partition: 0,
        offset: 4,
        audit: [],
        runs: triggers.map((t, i) => ({
          id: `run-${i + 1}`,
          rule: 'r',
          rulebookVersion: version,
          trigger: { seq: t.seq, partition: t.partition, id: t.id, source: t.source, type: 'test.happened' },
          ordinal: 0,
          context: { event: t.seq },
          createdAt: 1,
        })),
      });
      expect(await store.claimRuns({ owner: 'me', now: 10, leaseMs: 1000, limit: 3 })).toHaveLength(3);
      const attempt = (runId: string, status: 'succeeded' | 'failed') => ({
        runId,
        step: 0,
        stepId: 's',
        action: 'log',
        attempt: 1,
        startedAt: 10,
        finishedAt: 11,
        status,
      });
      const outcome = (runId: string) => ({
        ...ev(`${runId}.done`),
        source: 'reflex/runs',
        type: 'reflex.run.succeeded',
      });
      const error = { code: 'REFLEX_ERR_INTERNAL_UNEXPECTED', message: 'boom' };
      // All in one turn of the event loop: one batch. run-4 was never claimed; run-1 comes twice.
      const answers = await Promise.all([
        store.completeAttempt({
          owner: 'me',
          at: 12,
          attempt: attempt('run-1', 'succeeded'),
          outcome: { type: 'succeeded', output: 1, event: outcome('run-1') },
        }),
        store.completeAttempt({
          owner: 'me',
          at: 12,
          attempt: attempt('run-2', 'failed'),
          outcome: { type: 'failed', error, event: { ...outcome('run-2'), type: 'reflex.run.failed' } },
        }),
        store.completeAttempt({
          owner: 'me',
          at: 12,
          attempt: { ...attempt('run-3', 'failed'), error },
          outcome: { type: 'retry', at: 50 },
        }),
        store.completeAttempt({
          owner: 'me',
          at: 12,
          attempt: attempt('run-4', 'succeeded'),
          outcome: { type: 'succeeded', output: 1, event: outcome('run-4') },
        }),
        store.completeAttempt({
          owner: 'me',
          at: 13,
          attempt: attempt('run-1', 'succeeded'),
          outcome: { type: 'succeeded', output: 2, event: outcome('run-1b') },
        }),
      ]);
      expect(answers).toEqual([true, true, true, false, false]);
      expect(await store.getRun('run-1')).toMatchObject({ status: 'succeeded', step: 1, outputs: { s: 1 } });
      expect(await store.getRun('run-2')).toMatchObject({ status: 'failed', error });
      expect(await store.getRun('run-3')).toMatchObject({ status: 'pending', attempt: 1, nextAttemptAt: 50 });
      expect(await store.getRun('run-4')).toMatchObject({ status: 'pending' });
      // Outcome events went to their triggers' partitions, audited with their seqs.
      const [done1] = await store.findEventsById('run-1.done');
      const [done2] = await store.findEventsById('run-2.done');
      expect([done1?.partition, done2?.partition]).toEqual([0, 1]);
      expect(await store.findEventsById('run-4.done')).toEqual([]);
      expect(await store.auditForEvent(triggers[1]!.seq)).toMatchObject([
        { kind: 'run.failed', runId: 'run-2', detail: { step: 0, error: error.code, eventSeq: done2!.seq } },
      ]);
      expect((await store.listDeadLetters(10)).map((d) => d.runId)).toEqual(['run-2']);
    } finally {
      await store.close();
    }
  });
});
