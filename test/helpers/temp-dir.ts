import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';

/**
 * Gives every test of the enclosing `describe` a fresh temporary folder, removed after the test.
 * Call it inside `describe`; the returned function answers the current test's folder.
 *
 * @example
 * const dir = tempDirPerTest('reflex-wal-sync-');
 * it('...', () => writeFileSync(join(dir(), 'x'), ''));
 */
export function tempDirPerTest(prefix: string): () => string {
  let dir: string | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });
  return () => {
    if (dir === undefined) throw new Error('the temporary folder exists only while a test runs');
    return dir;
  };
}
