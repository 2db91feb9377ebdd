/**
 * Store backends. The port itself lives in `core/ports/store.ts`; this is where its implementations are
 * picked from.
 */

export { lockFileName } from './sqlite/data-dir-lock.js';
export {
  createSqliteStore,
  databaseFileName,
  defaultDurability,
  type SqliteStore,
  type SqliteStoreInfo,
  type SqliteStoreOptions,
} from './sqlite/sqlite-store.js';
