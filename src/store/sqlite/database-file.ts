import { closeSync, fsyncSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { ReflexError } from '../../core/errors.js';
import { migrate } from './migrations.js';

/**
 * Checks of a database file made before SQLite opens it, and the one way Reflex creates one. SQLite opens
 * almost anything without complaint — an empty file becomes a new database, a truncated one fails on
 * the first query that reaches a missing page — so what it would take silently is refused here, with
 * a message that says what is wrong and what to do.
 */

const sqliteMagic = Buffer.from('SQLite format 3\0', 'latin1');
const walMagics = new Set([0x377f0682, 0x377f0683]);
const walHeaderBytes = 32;

function corrupt(path: string, reason: string, cause?: unknown): ReflexError {
  return new ReflexError('REFLEX_ERR_STORE_CORRUPT', { path, reason }, cause === undefined ? {} : { cause });
}

function readHead(path: string, bytes: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    const read = readSync(fd, buffer, 0, bytes, 0);
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

function sizeOf(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** The page size a header gives (1 stands for 65536), or undefined when it is not one SQLite uses. */
function pageSizeOf(header: Buffer): number | undefined {
  const raw = header.readUInt16BE(16);
  const size = raw === 1 ? 65_536 : raw;
  return size >= 512 && size <= 65_536 && (size & (size - 1)) === 0 ? size : undefined;
}

/**
 * What the write-ahead log beside a database holds: nothing (absent, or shorter than its header, which
 * SQLite reads as empty), frames behind a valid header, or something that is not a WAL. A header of
 * zeros is empty too: SQLite never writes one, but a file system may leave one after a power cut, and
 * SQLite then ignores the file — as it would a WAL whose every frame was already copied back.
 */
function inspectWal(walPath: string): 'empty' | 'frames' {
  const size = sizeOf(walPath);
  if (size === undefined || size < walHeaderBytes) return 'empty';
  const header = readHead(walPath, walHeaderBytes);
  if (header.every((byte) => byte === 0)) return 'empty';
  if (!walMagics.has(header.readUInt32BE(0)) || header.readUInt32BE(4) !== 3_007_000) {
    throw corrupt(
      walPath,
      'it is not a SQLite write-ahead log (its header is neither valid nor empty); moving it away loses the commits made since the last checkpoint',
    );
  }
  return size > walHeaderBytes ? 'frames' : 'empty';
}

/**
 * Looks at `path` (a Reflex database, with its `-wal` beside it) before SQLite opens it. Returns
 * `missing` when there is none yet, and throws REFLEX_ERR_STORE_CORRUPT when the file cannot be a
 * database Reflex wrote: empty, shorter than its header says, not a SQLite file, or its WAL garbage.
 *
 * Reflex creates a database whole (see {@link createDatabaseFile}), so an empty `reflex.db` was truncated
 * or replaced, never left by a crash; it is refused rather than taken as a new database, which would
 * throw away the log. Cost: a `stat` and two reads of at most 100 bytes.
 */
export function inspectDatabaseFile(path: string): 'missing' | 'present' {
  const walPath = `${path}-wal`;
  let size: number | undefined;
  try {
    const info = statSync(path);
    if (!info.isFile()) throw corrupt(path, 'it is not a regular file');
    size = info.size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const wal = inspectWal(walPath);
  if (size === undefined) {
    if (wal === 'frames') {
      throw corrupt(
        path,
        `the file is missing but its write-ahead log \`${walPath}\` holds commits; a new database would take them in as garbage`,
      );
    }
    return 'missing';
  }
  if (size === 0) {
    // A database that was never checkpointed lives in its WAL alone; SQLite recovers it from there.
    if (wal === 'frames') return 'present';
    throw corrupt(
      path,
      'the file is empty (0 bytes); Reflex never leaves an empty database, so it was truncated or replaced',
    );
  }
  const header = readHead(path, 100);
  if (header.length < 100 || !header.subarray(0, 16).equals(sqliteMagic)) {
    throw corrupt(
      path,
      header.length < 100
        ? `the file is ${size} bytes, shorter than a SQLite header`
        : 'it is not a SQLite database (its first bytes are not the SQLite header)',
    );
  }
  const pageSize = pageSizeOf(header);
  if (pageSize === undefined) throw corrupt(path, 'its header gives an impossible page size');
  if (wal === 'empty') {
    // With frames in the WAL, a checkpoint may have been cut short: SQLite finishes it from the WAL.
    if (size % pageSize !== 0) {
      throw corrupt(
        path,
        `its size (${size} bytes) is not a whole number of ${pageSize}-byte pages: it was truncated`,
      );
    }
    // The page count in the header is valid while the "version valid for" number equals the change counter.
    const pages = header.readUInt32BE(28);
    if (pages > 0 && header.readUInt32BE(92) === header.readUInt32BE(24) && size < pages * pageSize) {
      throw corrupt(
        path,
        `it was truncated: its header counts ${pages} pages (${pages * pageSize} bytes), the file holds ${size} bytes`,
      );
    }
  }
  return 'present';
}

/**
 * Runs SQLite's `PRAGMA quick_check` on an open database (every page of every table and index is read
 * and its structure checked; the cost grows with the file: about 0.7 s per GB with the file in the page
 * cache, several seconds per GB read cold — see docs/operations.md) and throws REFLEX_ERR_STORE_CORRUPT
 * with its first findings when it finds anything.
 */
export function quickCheck(db: Database.Database, path: string): void {
  let rows: Array<{ quick_check: string }>;
  try {
    rows = db.pragma('quick_check(10)') as Array<{ quick_check: string }>;
  } catch (error) {
    throw corrupt(path, `SQLite's quick_check stopped: ${(error as Error).message}`, error);
  }
  const findings = rows.map((row) => row.quick_check);
  if (findings.length === 1 && findings[0] === 'ok') return;
  throw corrupt(path, `SQLite's quick_check found: ${findings.slice(0, 3).join('; ')}`);
}

/**
 * Creates the database at `path` whole: initialised and migrated under a scratch name, synced, then
 * renamed into place. A crash leaves either no database or a complete one, never an empty file that
 * the next start could not tell from a truncated log.
 */
export function createDatabaseFile(path: string): void {
  const scratch = `${path}.new`;
  const removeScratch = () => {
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${scratch}${suffix}`, { force: true });
  };
  removeScratch();
  try {
    // SQLite gives the -wal and -shm files the database file's mode, so create that one first.
    closeSync(openSync(scratch, 'wx', 0o600));
    const db = new Database(scratch);
    try {
      db.pragma('journal_mode = WAL');
      migrate(db, path);
    } finally {
      // Closing the only connection copies the WAL into the file and removes it.
      db.close();
    }
    const fd = openSync(scratch, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(scratch, path);
    syncDirectory(dirname(path));
  } catch (error) {
    removeScratch();
    throw error;
  }
}

/** Makes a rename in `dir` durable. Some systems cannot open a directory for syncing; they journal renames. */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Best effort.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
