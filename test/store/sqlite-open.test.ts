import { spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CloudEvent } from '../../src/core/event.js';
import {
  createSqliteStore,
  databaseFileName,
  lockFileName,
  type SqliteStore,
} from '../../src/store/index.js';
import { tempDirPerTest } from '../helpers/temp-dir.js';
import { smallDiskPerTest } from '../helpers/tmpfs.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const ev = (id: string, data?: unknown): CloudEvent => ({
  specversion: '1.0',
  id,
  source: 'test/source',
  type: 'test.happened',
  ...(data === undefined ? {} : { data }),
});

const open_: SqliteStore[] = [];
afterEach(async () => {
  for (const store of open_.splice(0)) await store.close();
});
const openStore = async (options: Parameters<typeof createSqliteStore>[0]) => {
  const store = await createSqliteStore(options);
  open_.push(store);
  return store;
};

/** Overwrites `bytes` bytes of `path` at `offset` with the same pseudo-random garbage every run. */
async function overwrite(path: string, offset: number, bytes: number): Promise<void> {
  const file = await open(path, 'r+');
  let seed = 12345;
  const garbage = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    garbage[i] = seed & 0xff;
  }
  await file.write(garbage, 0, bytes, offset);
  await file.close();
}

describe('sqlite open - damaged files', () => {
  const dir = tempDirPerTest('reflex-open-');
  /** A database of 300 events of 4 KB, closed cleanly (no WAL beside it), copied for each test. */
  let base: string;
  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'reflex-open-base-'));
    const store = await createSqliteStore({ dir: base, durability: 'normal' });
    for (let i = 0; i < 300; i += 50) {
      await store.appendEvents(
        Array.from({ length: 50 }, (_, j) => ev(`e${i + j}`, { pad: 'x'.repeat(4000) })),
        1,
      );
    }
    await store.close();
    expect(readdirSync(base)).toEqual([databaseFileName]);
  });
  afterAll(() => rm(base, { recursive: true, force: true }));

  const data = () => join(dir(), 'data');
  const db = () => join(data(), databaseFileName);
  const copyBase = () => cpSync(base, data(), { recursive: true });
  const refused = async (reason: RegExp, options: { readonly?: boolean } = {}) => {
    const before = readFileSync(db());
    const error = await createSqliteStore({ dir: data(), ...options }).then(
      (store) => {
        open_.push(store);
        throw new Error('the damaged database was opened');
      },
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'REFLEX_ERR_STORE_CORRUPT', statusCode: 500 });
    expect((error as Error).message).toMatch(reason);
    expect((error as Error).message).toContain(
      'To fix: stop Reflex and restore the data directory from a backup',
    );
    // Refused before anything was written, and the lock is given back.
    expect(readFileSync(db()).equals(before)).toBe(true);
    expect(existsSync(join(data(), lockFileName))).toBe(false);
  };

  it('sqlite open - an empty database file is refused, not taken for a new database', async () => {
    copyBase();
    truncateSync(db(), 0);
    await refused(/the file is empty \(0 bytes\).*truncated or replaced/);
    await refused(/the file is empty/, { readonly: true });
  });

  it('sqlite open - a truncated file is refused, whether cut at a page or inside one', async () => {
    copyBase();
    const size = statSync(db()).size;
    truncateSync(db(), Math.floor(size / 2 / 4096) * 4096);
    await refused(/it was truncated: its header counts \d+ pages/);
    truncateSync(db(), 50_000);
    await refused(/not a whole number of 4096-byte pages/);
    truncateSync(db(), 60);
    await refused(/shorter than a SQLite header/);
  });

  it('sqlite open - a file that is not SQLite, or whose pages are garbage, is refused', async () => {
    copyBase();
    await overwrite(db(), 0, 100);
    await refused(/not a SQLite database/);
    copyBase();
    // Pages in the middle: only reading them shows it, which quick_check does at open.
    await overwrite(db(), 4096 * 40, 4096 * 3);
    await refused(/quick_check/);
  });

  it('sqlite open - a garbage write-ahead log is refused; an empty or zeroed one is not', async () => {
    copyBase();
    writeFileSync(`${db()}-wal`, Buffer.alloc(64 * 1024));
    const zeroed = await openStore({ dir: data() });
    expect(await zeroed.lastSeq()).toBe(300);
    await zeroed.close();

    writeFileSync(`${db()}-wal`, '');
    await overwrite(`${db()}-wal`, 0, 64 * 1024);
    await refused(/reflex\.db-wal` is damaged: it is not a SQLite write-ahead log/);
  });

  it('sqlite open - a garbage -shm file is rebuilt by SQLite: nothing is lost', async () => {
    copyBase();
    writeFileSync(`${db()}-shm`, '');
    await overwrite(`${db()}-shm`, 0, 32 * 1024);
    const store = await openStore({ dir: data() });
    expect(await store.lastSeq()).toBe(300);
    expect((await store.getEvent(150))?.event.id).toBe('e149');
  });

  it('sqlite open - a write-ahead log holding commits beside a missing database is refused', async () => {
    const store = await openStore({ dir: data(), durability: 'normal' });
    await store.appendEvents([ev('kept-in-wal')], 1);
    // As if reflex.db had been deleted while its WAL stayed: a new database would take in its frames.
    const wal = readFileSync(`${db()}-wal`);
    await store.close();
    writeFileSync(`${db()}-wal`, wal);
    rmSync(db());
    await expect(createSqliteStore({ dir: data() })).rejects.toMatchObject({
      code: 'REFLEX_ERR_STORE_CORRUPT',
      message: expect.stringMatching(/the file is missing but its write-ahead log/),
    });
    expect(existsSync(db())).toBe(false);
  });

  it('sqlite open - damage found while running is a coded error, not an unexpected one', async () => {
    copyBase();
    // A reader skips the quick_check, so the damage is met on the first read that reaches it.
    await overwrite(db(), 4096 * 40, 4096 * 3);
    const reader = await openStore({ dir: data(), readonly: true });
    await expect(reader.listEvents({ limit: 1000, after: 0 })).rejects.toMatchObject({
      code: 'REFLEX_ERR_STORE_CORRUPT',
    });

    // Stored JSON that no longer parses (a bit flipped inside a row) is damage too.
    copyBase();
    const raw = new Database(db());
    raw.prepare('UPDATE events SET event = \'{"id": broken\' WHERE seq = 7').run();
    raw.close();
    const store = await openStore({ dir: data() });
    await expect(store.getEvent(7)).rejects.toMatchObject({
      code: 'REFLEX_ERR_STORE_CORRUPT',
      message: expect.stringContaining('a stored value is not valid JSON'),
    });
    expect((await store.getEvent(8))?.event.id).toBe('e7');
  });

  it('sqlite open - a database is created whole: a crash half-way leaves no file that a start would refuse', async () => {
    // What a crash while creating leaves: the scratch file, never renamed into place.
    mkdirSync(data());
    writeFileSync(join(data(), `${databaseFileName}.new`), 'half-written');
    const store = await openStore({ dir: data() });
    await store.appendEvents([ev('a')], 1);
    expect(existsSync(join(data(), `${databaseFileName}.new`))).toBe(false);
    expect(store.info().schemaVersion).toBeGreaterThan(0);
  });
});

describe('sqlite open - data directory', () => {
  const dir = tempDirPerTest('reflex-data-dir-');

  it('sqlite open - a data directory that cannot be used is a coded error naming the part that is wrong', async () => {
    const file = join(dir(), 'a-file');
    writeFileSync(file, 'not a directory');
    const fifo = join(dir(), 'a-fifo');
    spawnSync('mkfifo', [fifo]);
    const readOnly = join(dir(), 'read-only');
    mkdirSync(readOnly);
    spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', readOnly]);
    try {
      const cases: Array<[string, RegExp]> = [
        [file, /`.*a-file` is a file/],
        [join(file, 'below', 'deeper'), /`.*a-file` is a file/],
        [fifo, /is a named pipe/],
        ['/dev/null', /`\/dev\/null` is a device/],
        ['/dev/null/x', /`\/dev\/null` is a device/],
        [readOnly, /read-only file system/],
        [join(readOnly, 'below'), /read-only file system/],
        [join(dir(), 'x'.repeat(300)), /too long/],
        [join(dir(), ...Array.from({ length: 30 }, () => 'y'.repeat(200))), /too long/],
      ];
      for (const [path, reason] of cases) {
        const error = await createSqliteStore({ dir: path }).catch((e: unknown) => e);
        expect({ path, code: (error as { code?: string }).code }).toEqual({
          path,
          code: 'REFLEX_ERR_STORE_DATA_DIR_INVALID',
        });
        expect((error as Error).message).toMatch(reason);
        expect((error as Error).message).toContain('To fix: give `--data`');
      }
      // Nothing was created on the way.
      expect(readdirSync(dir()).sort()).toEqual(['a-fifo', 'a-file', 'read-only']);
    } finally {
      spawnSync('umount', [readOnly]);
    }
  });
});

describe('sqlite open - lock', () => {
  const dir = tempDirPerTest('reflex-lock-');
  const lockFile = () => join(dir(), lockFileName);

  it('sqlite open - a lock whose pid was reused by another process is stale and taken over', async () => {
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      // A Reflex that died left its lock; its pid now belongs to `other`, which started at another time.
      const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      writeFileSync(lockFile(), `${other.pid}\n${boot} 1\n`);
      await openStore({ dir: dir() });
      const [pid, identity] = readFileSync(lockFile(), 'utf8').split('\n');
      expect(pid).toBe(String(process.pid));
      // The new lock names this process the same way.
      expect(identity).toMatch(new RegExp(`^${boot} \\d+$`));
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('sqlite open - a lock naming a live process with its own start time still keeps others out', async () => {
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => other.once('spawn', resolve));
      const stat = readFileSync(`/proc/${other.pid}/stat`, 'utf8');
      const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      writeFileSync(lockFile(), `${other.pid}\n${boot} ${startTime}\n`);
      await expect(createSqliteStore({ dir: dir() })).rejects.toMatchObject({
        code: 'REFLEX_ERR_STORE_LOCKED',
        params: { pid: other.pid },
      });
      // An old lock, with the pid alone, is judged by the pid alone.
      writeFileSync(lockFile(), `${other.pid}\n`);
      await expect(createSqliteStore({ dir: dir() })).rejects.toMatchObject({
        code: 'REFLEX_ERR_STORE_LOCKED',
      });
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('sqlite open - a process that exits without closing its store still removes its lock', async () => {
    // process.exit, an uncaught exception or an unsettled top-level await (exit 13): none closes the store.
    for (const ending of ['process.exit(0)', "throw new Error('boom')", 'await new Promise(() => {})']) {
      const script = `
        import { createSqliteStore } from ${JSON.stringify(join(root, 'src/store/index.ts'))};
        await createSqliteStore({ dir: ${JSON.stringify(dir())} });
        process.stdout.write('open\\n');
        ${ending};
      `;
      const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: root,
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect({ ending, stdout: result.stdout }).toEqual({ ending, stdout: 'open\n' });
      expect({ ending, lock: existsSync(lockFile()) }).toEqual({ ending, lock: false });
    }
  });
});

describe('sqlite open - full disk', () => {
  const disk = smallDiskPerTest('1m');

  it('sqlite open - writes on a full disk are REFLEX_ERR_STORE_DISK_FULL, and closing still releases the lock', async () => {
    const data = join(disk().dir, 'data');
    const store = await createSqliteStore({ dir: data });
    let error: unknown;
    for (let i = 0; i < 1000 && error === undefined; i++) {
      await store.appendEvents([ev(`big-${i}`, { pad: 'x'.repeat(8000) })], 1).catch((e: unknown) => {
        error = e;
      });
    }
    expect(error).toMatchObject({ code: 'REFLEX_ERR_STORE_DISK_FULL', statusCode: 503 });
    await disk().fill();
    await expect(store.changeFact('big', 'x'.repeat(8000), 2)).rejects.toMatchObject({
      code: 'REFLEX_ERR_STORE_DISK_FULL',
    });
    await store.close();
    expect(existsSync(join(data, lockFileName))).toBe(false);
    // And a new store cannot start here until there is room.
    await expect(createSqliteStore({ dir: join(disk().dir, 'other') })).rejects.toMatchObject({
      code: 'REFLEX_ERR_STORE_DISK_FULL',
    });
    expect(existsSync(join(disk().dir, 'other', databaseFileName))).toBe(false);
  });
});
