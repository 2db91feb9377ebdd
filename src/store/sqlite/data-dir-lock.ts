import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ReflexError } from '../../core/errors.js';
import { dataDirError } from './data-dir.js';

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
 * Lock files this process holds, with how to release each. The pid alone cannot tell "another store in
 * this process" from "a lock left by an earlier process that had our pid" (a container restarts with
 * pid 1 every time).
 */
const heldByThisProcess = new Map<string, () => void>();

/**
 * Releases what is still held when the process exits by any path that lets it run code: a normal end, an
 * uncaught exception, `process.exit`, an unsettled top-level await (exit 13). Only SIGKILL and power loss
 * leave a lock behind; the next start finds it stale (see {@link acquireDataDirLock}).
 */
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const release of [...heldByThisProcess.values()]) {
      try {
        release();
      } catch {
        // Exiting anyway: a lock left behind is found stale by the next start.
      }
    }
  });
}

/** What a lock file says: the pid, and (when the writer could tell) which process had that pid. */
interface LockContent {
  pid: number;
  /** `<boot id> <start time>` of the process; absent in locks written where /proc is missing. */
  identity?: string;
}

/**
 * The identity of a running process: the boot it runs in and its start time in clock ticks since boot
 * (Linux `/proc/<pid>/stat`, field 22). A pid is reused; a pid with its start time in one boot is not.
 * Undefined where /proc cannot tell (other systems, or a process gone meanwhile).
 */
function processIdentity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTime = fields[19];
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return startTime === undefined || !/^\d+$/.test(startTime) ? undefined : `${boot} ${startTime}`;
  } catch {
    return undefined;
  }
}

function readLock(path: string): LockContent | 'unreadable' | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const [first = '', second = ''] = text.split('\n');
  const pid = Number.parseInt(first.trim(), 10);
  if (!Number.isSafeInteger(pid) || pid <= 0) return 'unreadable';
  const identity = second.trim();
  return identity === '' ? { pid } : { pid, identity };
}

/** Whether the process that wrote `lock` still runs (and not merely another one that got its pid). */
function holderAlive(lock: LockContent): boolean {
  try {
    process.kill(lock.pid, 0);
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (lock.identity === undefined) return true;
  const now = processIdentity(lock.pid);
  // When /proc cannot say, the pid is all there is to go by.
  return now === undefined || now === lock.identity;
}

/**
 * Takes the lock on `dir` for this process: creates `reflex.lock` holding our pid and our process
 * identity (boot and start time), or takes over a lock whose process is gone. Throws
 * REFLEX_ERR_STORE_LOCKED while another live process (or another store in this process) holds it.
 *
 * A lock is stale when its pid no longer runs, or now belongs to another process than the one that wrote
 * it (its start time differs): a pid reused after a crash does not keep the directory locked.
 *
 * The lock file appears with its content in one step (written aside, then hard-linked into place), so a
 * reader never sees it empty. Two processes taking over the same stale lock at the same instant can
 * still race; the window is a few system calls wide.
 */
export function acquireDataDirLock(dir: string): DataDirLock {
  const path = join(dir, lockFileName);
  const scratch = `${path}.${process.pid}`;
  const identity = processIdentity(process.pid);
  try {
    writeFileSync(scratch, `${process.pid}\n${identity ?? ''}\n`);
    for (let tries = 0; ; tries++) {
      try {
        linkSync(scratch, path);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || tries >= 5) throw error;
      }
      const lock = readLock(path);
      if (lock === undefined) continue; // released in the meantime
      if (lock !== 'unreadable') {
        const ours = lock.pid === process.pid && !heldByThisProcess.has(path);
        if (!ours && holderAlive(lock)) {
          throw new ReflexError(
            'REFLEX_ERR_STORE_LOCKED',
            { dir, pid: lock.pid },
            { details: { lockFile: path } },
          );
        }
      }
      // Stale: its process is gone, or the file is unreadable. Look again just before removing it, so a
      // lock another process took over meanwhile is left alone.
      const again = readLock(path);
      if (
        again === 'unreadable' ||
        (again !== undefined && lock !== 'unreadable' && again.pid === lock.pid)
      ) {
        try {
          unlinkSync(path);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
      }
    }
  } catch (error) {
    if (error instanceof ReflexError) throw error;
    throw dataDirError(dir, error, 'take the lock');
  } finally {
    try {
      unlinkSync(scratch);
    } catch {
      // Never written (the disk refused it), or already gone.
    }
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    heldByThisProcess.delete(path);
    try {
      const lock = readLock(path);
      if (lock !== undefined && lock !== 'unreadable' && lock.pid === process.pid) unlinkSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  };
  heldByThisProcess.set(path, release);
  installExitHook();
  return { path, release };
}
