/**
 * Store backends. The port itself lives in `core/ports/store.ts`; this is where its implementations are
 * picked from.
 */

export { checkStoreOption, type OpenStoreOptions, openStore, sqliteStoreName } from './open-store.js';
export {
  createPostgresStore,
  type PostgresStore,
  type PostgresStoreInfo,
  type PostgresStoreOptions,
} from './postgres/postgres-store.js';
export {
  defaultSchema,
  isPostgresUrl,
  type PostgresLocation,
  parsePostgresUrl,
} from './postgres/postgres-url.js';
export { lockFileName } from './sqlite/data-dir-lock.js';
export {
  createSqliteStore,
  databaseFileName,
  defaultDurability,
  type SqliteStore,
  type SqliteStoreInfo,
  type SqliteStoreOptions,
} from './sqlite/sqlite-store.js';
