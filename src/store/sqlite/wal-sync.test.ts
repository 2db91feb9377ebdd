import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDirPerTest } from '../../../test/helpers/temp-dir.js';
import { WalSync } from './wal-sync.js';

describe('WalSync', () => {
  const dir = tempDirPerTest('reflex-wal-sync-');

  it('wal sync - a call during a running sync waits for the next one, which every such call shares', async () => {
    const path = join(dir(), 'reflex.db-wal');
    writeFileSync(path, 'frames');
    const wal = new WalSync(path);
    const first = wal.sync();
    // These callers may have committed after the first sync began: it cannot speak for them.
    const second = wal.sync();
    const third = wal.sync();
    expect(second).not.toBe(first);
    expect(third).toBe(second);
    await Promise.all([first, second, third]);
    // Nothing running any more: the next call starts a sync of its own.
    const fourth = wal.sync();
    expect(fourth).not.toBe(second);
    await fourth;
    await wal.close();
  });

  it('wal sync - a failed sync rejects its callers, and the next call tries again', async () => {
    const path = join(dir(), 'reflex.db-wal');
    const wal = new WalSync(path);
    await expect(wal.sync()).rejects.toMatchObject({ code: 'ENOENT' });
    writeFileSync(path, 'frames');
    await expect(wal.sync()).resolves.toBeUndefined();
    await wal.close();
  });

  it('wal sync - close waits for the syncs in flight', async () => {
    const path = join(dir(), 'reflex.db-wal');
    writeFileSync(path, 'frames');
    const wal = new WalSync(path);
    let synced = 0;
    void wal.sync().then(() => synced++);
    void wal.sync().then(() => synced++);
    await wal.close();
    expect(synced).toBe(2);
  });
});
