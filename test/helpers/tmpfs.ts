import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';

/**
 * A small real file system (tmpfs) that fills up, for tests of what Reflex does when the disk is full.
 * Mounting needs root (CI and the development machine run tests as root).
 */
export interface SmallDisk {
  /** The mount point. */
  readonly dir: string;
  /** Changes the size of the file system, e.g. `'8m'`: more room, as when an operator frees space. */
  resize(size: string): void;
  /** Fills what is left with a file, so that the next write needs a block there is not. */
  fill(): Promise<void>;
}

function mount(dir: string, size: string): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'ignore' });
  } catch {
    // Something (a child that is still dying) holds a file open: detach now, freed when it lets go.
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
  }
}

/**
 * Gives every test of the enclosing `describe` its own tmpfs of `size`, unmounted after the test (after
 * the test's own `afterEach` hooks, which should stop what uses it). The returned function answers the
 * current test's disk.
 *
 * @example
 * const disk = smallDiskPerTest('3m');
 * it('...', async () => { await disk().fill(); ... });
 */
export function smallDiskPerTest(size: string): () => SmallDisk {
  let current: SmallDisk | undefined;
  let parent: string | undefined;
  beforeEach(async () => {
    parent = await mkdtemp(join(tmpdir(), 'reflex-disk-'));
    const dir = join(parent, 'mnt');
    execFileSync('mkdir', [dir]);
    mount(dir, size);
    current = {
      dir,
      resize: (next) => execFileSync('mount', ['-o', `remount,size=${next}`, dir]),
      async fill() {
        // Writes in chunks until the file system refuses: exactly full, whatever was there already.
        const chunk = Buffer.alloc(64 * 1024, 1);
        for (let i = 0; ; i++) {
          try {
            await writeFile(join(dir, `filler-${i}`), chunk);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
            throw error;
          }
        }
        // The last chunk may have been cut short; fill the remaining blocks one page at a time.
        const page = Buffer.alloc(4096, 1);
        for (let i = 0; ; i++) {
          try {
            await writeFile(join(dir, `filler-page-${i}`), page);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
            throw error;
          }
        }
      },
    };
  });
  afterEach(async () => {
    if (current !== undefined) unmount(current.dir);
    if (parent !== undefined) await rm(parent, { recursive: true, force: true });
    current = undefined;
    parent = undefined;
  });
  return () => {
    if (current === undefined) throw new Error('the small disk exists only while a test runs');
    return current;
  };
}
