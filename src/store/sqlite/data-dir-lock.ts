import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ReflexError } from '../../core/errors.js';

/** The name of the lock file inside a data directory. */
export const lockFileName = 'reflex.lock';

/** A held lock on a data directory. */
export interface DataDirLock {
  /** The lock file's path. */
  readonly path: string;
  /** Removes the lock file if it is still ours. Safe to call more than once. */
  release(): void;
}

/**
 * Lock files this process holds. The pid alone cannot tell "another store in this process" from "a lock
 * left by an earlier process that had our pid" (a container restarts with pid 1 every time).
 */
const heldByThisProcess = new Set<string>();

function readPid(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : Number.NaN;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the lock on `dir` for this process: creates `reflex.lock` holding our pid, or takes over a lock
 * whose process is gone. Throws REFLEX_ERR_STORE_LOCKED while another live process (or another store in
 * this process) holds it.
 *
 * The lock file appears with its content in one step (written aside, then hard-linked into place), so a
 * reader never sees it empty. Two processes taking over the same stale lock at the same instant can
 * still race; the window is a few system calls wide.
 */
export function acquireDataDirLock(dir: string): DataDirLock {
  const path = join(dir, lockFileName);
  const scratch = `${path}.${process.pid}`;
  writeFileSync(scratch, `${process.pid}\n`);
  try {
    for (let tries = 0; ; tries++) {
      try {
        linkSync(scratch, path);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || tries >= 5) throw error;
      }
      const pid = readPid(path);
      if (pid === undefined) continue; // released in the meantime
      const ours = pid === process.pid && !heldByThisProcess.has(path);
      if (!ours && !Number.isNaN(pid) && isAlive(pid)) {
        throw new ReflexError('REFLEX_ERR_STORE_LOCKED', { dir, pid }, { details: { lockFile: path } });
      }
      // Stale: its process is dead, or the file is unreadable. Look again just before removing it, so a
      // lock another process took over meanwhile is left alone.
      if (readPid(path) === pid || Number.isNaN(pid)) {
        try {
          unlinkSync(path);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
      }
    }
  } finally {
    unlinkSync(scratch);
  }
  heldByThisProcess.add(path);
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      heldByThisProcess.delete(path);
      try {
        if (readPid(path) === process.pid) unlinkSync(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    },
  };
}
