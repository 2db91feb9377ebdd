// Run by sqlite-store.test.ts in a child process: a second Reflex process that opens the store in the
// data directory given as argument, appends one event, says "ready" and holds the store until killed.
import { createSqliteStore } from '../../src/store/index.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: hold-sqlite-store.ts <data dir>');
const store = await createSqliteStore({ dir });
await store.appendEvents(
  [{ specversion: '1.0', id: 'from-child', source: 'test/child', type: 'test.held' }],
  1,
);
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', () => {
  void store.close().then(() => process.exit(0));
});
