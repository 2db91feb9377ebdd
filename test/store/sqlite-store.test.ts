import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CloudEvent } from '../../src/core/event.js';
import {
  createSqliteStore,
  databaseFileName,
  lockFileName,
  type SqliteStore,
} from '../../src/store/index.js';
import { describeStoreConformance } from './conformance.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const newDir = () => mkdtemp(join(tmpdir(), 'reflex-store-'));

describeStoreConformance('sqlite', async () => {
  const dir = await newDir();
  let store = await createSqliteStore({ dir });
  return {
    store,
    async reopen() {
      await store.close();
      store = await createSqliteStore({ dir });
      return store;
    },
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

const ev = (id: string): CloudEvent => ({
  specversion: '1.0',
  id,
  source: 'test/source',
  type: 'test.happened',
});

/** Starts a second process holding a store on `dir`; resolves once it has written to it. */
async function holdInChild(dir: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(root, 'test/store/hold-sqlite-store.ts'), dir],
    {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`the child exited with ${code}: ${stderr}`)));
  });
  return child;
}

const exited = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.on('exit', () => resolve());
  });

describe('sqlite store', () => {
  let dir: string;
  const open: SqliteStore[] = [];
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    dir = await newDir();
  });
  afterEach(async () => {
    for (const child of children.splice(0)) {
      child.kill('SIGKILL');
      await exited(child);
    }
    for (const store of open.splice(0)) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const openStore = async (options: Parameters<typeof createSqliteStore>[0]) => {
    const store = await createSqliteStore(options);
    open.push(store);
    return store;
  };
  const lockFile = () => join(dir, lockFileName);

  it('sqlite store - creates the data directory, a database and a lock file holding the pid', async () => {
    const nested = join(dir, 'a', 'b');
    const store = await openStore({ dir: nested });
    expect(existsSync(join(nested, databaseFileName))).toBe(true);
    expect(readFileSync(join(nested, lockFileName), 'utf8').trim()).toBe(String(process.pid));
    // Events, outputs and rulebooks (inline secrets too) are for the owner only.
    expect(statSync(nested).mode & 0o777).toBe(0o700);
    expect(statSync(join(nested, databaseFileName)).mode & 0o777).toBe(0o600);
    expect(store.info()).toMatchObject({
      path: join(nested, databaseFileName),
      readonly: false,
      schemaVersion: 1,
    });
  });

  it('sqlite store - a second store on the same directory fails with REFLEX_ERR_STORE_LOCKED until the first closes', async () => {
    const first = await openStore({ dir });
    await first.appendEvents([ev('a')], 1);
    await expect(createSqliteStore({ dir })).rejects.toMatchObject({
      code: 'REFLEX_ERR_STORE_LOCKED',
      params: { dir, pid: process.pid },
    });
    // The refused store touched nothing: the first one still holds the lock and works.
    expect(readFileSync(lockFile(), 'utf8').trim()).toBe(String(process.pid));
    expect(await first.lastSeq()).toBe(1);
    await first.close();
    expect(existsSync(lockFile())).toBe(false);
    const second = await openStore({ dir });
    expect(await second.lastSeq()).toBe(1);
  });

  it('sqlite store - a writer in another process holds the lock until it dies, then its lock is taken over', async () => {
    const child = await holdInChild(dir);
    children.push(child);
    await expect(createSqliteStore({ dir })).rejects.toMatchObject({
      code: 'REFLEX_ERR_STORE_LOCKED',
      params: { pid: child.pid },
    });
    child.kill('SIGKILL');
    await exited(child);
    // The killed process could not remove its lock: it is stale now.
    expect(readFileSync(lockFile(), 'utf8').trim()).toBe(String(child.pid));
    const store = await openStore({ dir });
    expect(readFileSync(lockFile(), 'utf8').trim()).toBe(String(process.pid));
    expect((await store.findEventsById('from-child'))[0]?.event.type).toBe('test.held');
  });

  it('sqlite store - a stale lock whose pid is dead is taken over, and an unreadable one too', async () => {
    const gone = spawnSync(process.execPath, ['-e', '']).pid!;
    writeFileSync(lockFile(), `${gone}\n`);
    const store = await openStore({ dir });
    expect(readFileSync(lockFile(), 'utf8').trim()).toBe(String(process.pid));
    await store.close();

    writeFileSync(lockFile(), 'garbage');
    await openStore({ dir });
    expect(readFileSync(lockFile(), 'utf8').trim()).toBe(String(process.pid));
  });

  it('sqlite store - close is idempotent, and asyncDispose closes and releases the lock', async () => {
    const store = await createSqliteStore({ dir });
    await store.close();
    await store.close();
    expect(existsSync(lockFile())).toBe(false);
    {
      await using disposable = await createSqliteStore({ dir });
      await disposable.appendEvents([ev('a')], 1);
      expect(existsSync(lockFile())).toBe(true);
    }
    expect(existsSync(lockFile())).toBe(false);
  });

  it('sqlite store - durability picks the synchronous pragma, always in WAL mode', async () => {
    const full = await openStore({ dir });
    expect(full.info()).toMatchObject({ journalMode: 'wal', synchronous: 'full' });
    await full.close();
    const normal = await openStore({ dir, durability: 'normal' });
    expect(normal.info()).toMatchObject({ journalMode: 'wal', synchronous: 'normal' });
    await normal.close();
    const explicit = await openStore({ dir, durability: 'full' });
    expect(explicit.info().synchronous).toBe('full');
  });

  it("sqlite store - readonly reads a live writer's data without taking its lock", async () => {
    const writer = await openStore({ dir });
    await writer.appendEvents([ev('a'), ev('b')], 1);
    await writer.setFact('mode', 'on', 1);
    const reader = await openStore({ dir, readonly: true });
    expect(reader.info()).toMatchObject({ readonly: true, journalMode: 'wal' });
    expect(await reader.lastSeq()).toBe(2);
    expect(await reader.getFacts()).toEqual({ mode: 'on' });

    await writer.appendEvents([ev('c')], 2);
    expect((await reader.listEvents({ limit: 10 })).map((e) => e.event.id)).toEqual(['c', 'b', 'a']);
    await expect(reader.appendEvents([ev('d')], 3)).rejects.toThrow(/readonly/);
    await reader.close();
    // The reader leaves the writer's lock alone.
    expect(readFileSync(lockFile(), 'utf8').trim()).toBe(String(process.pid));
    expect(await writer.appendEvents([ev('d')], 3)).toMatchObject([{ seq: 4, duplicate: false }]);

    // A stopped instance's data reads the same, and the writer can come back after the reader.
    await writer.close();
    const late = await openStore({ dir, readonly: true });
    expect(await late.lastSeq()).toBe(4);
    await late.close();
    const again = await openStore({ dir });
    expect(await again.getFacts()).toEqual({ mode: 'on' });
  });

  it('sqlite store - readonly needs an existing, current database', async () => {
    const missing = join(dir, 'missing');
    await expect(createSqliteStore({ dir: missing, readonly: true })).rejects.toMatchObject({
      code: 'REFLEX_ERR_STORE_NOT_FOUND',
    });
    expect(existsSync(missing)).toBe(false);

    new Database(join(dir, databaseFileName)).close(); // an empty database, never migrated
    await expect(createSqliteStore({ dir, readonly: true })).rejects.toMatchObject({
      code: 'REFLEX_ERR_STORE_OLDER_SCHEMA',
      params: { found: 0, known: 1 },
    });
  });

  it('sqlite store - refuses a database from a newer schema, and leaves it and the lock alone', async () => {
    const store = await createSqliteStore({ dir });
    await store.appendEvents([ev('a')], 1);
    await store.close();
    const db = new Database(join(dir, databaseFileName));
    db.pragma('user_version = 99');
    db.close();

    await expect(createSqliteStore({ dir })).rejects.toMatchObject({
      code: 'REFLEX_ERR_STORE_NEWER_SCHEMA',
      params: { found: 99, known: 1 },
    });
    await expect(createSqliteStore({ dir, readonly: true })).rejects.toMatchObject({
      code: 'REFLEX_ERR_STORE_NEWER_SCHEMA',
    });
    expect(existsSync(lockFile())).toBe(false);
    const check = new Database(join(dir, databaseFileName), { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(99);
    check.close();
  });
});
