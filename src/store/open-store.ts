import { resolve } from 'node:path';
import { ReflexError } from '../core/errors.js';
import type { Store } from '../core/ports/store.js';
import { createPostgresStore } from './postgres/postgres-store.js';
import { isPostgresUrl, parsePostgresUrl } from './postgres/postgres-url.js';
import { createSqliteStore } from './sqlite/sqlite-store.js';

/** The `--store` value that keeps the default: the SQLite file in the data directory. */
export const sqliteStoreName = 'sqlite';

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /**
   * Which backend: `sqlite` (the file in `dataDir`) or a `postgres://…?schema=…` URL.
   * @default 'sqlite'
   */
  store?: string;
  /** The data directory: the SQLite database, or (with PostgreSQL) just the instance's lock. */
  dataDir: string;
  /** Open for reading only (the CLI's `--data` / `--store` reads). @default false */
  readonly?: boolean;
  /** See `SqliteStoreOptions.durability` and `PostgresStoreOptions.durability`. */
  durability?: 'full' | 'normal';
  /** SQLite only: see `SqliteStoreOptions.onSyncFailure`. */
  onSyncFailure?: (error: ReflexError) => void;
}

/** Checks a `--store` value without opening anything; throws REFLEX_ERR_CONFIG_INVALID when unusable. */
export function checkStoreOption(value: string): void {
  if (value === sqliteStoreName) return;
  if (!isPostgresUrl(value)) {
    throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
      option: '--store',
      reason: `${JSON.stringify(value)} is neither \`sqlite\` nor a postgres:// URL`,
      fix: 'give `sqlite` (the default: the database file in --data) or postgres://user@host:5432/database?schema=reflex.',
    });
  }
  parsePostgresUrl(value);
}

/**
 * Opens the store `options.store` names: the default SQLite database in the data directory, or a
 * PostgreSQL schema (the data directory then holds only the lock that makes it one instance).
 */
export async function openStore(options: OpenStoreOptions): Promise<Store & AsyncDisposable> {
  const store = options.store ?? sqliteStoreName;
  checkStoreOption(store);
  if (isPostgresUrl(store)) {
    return createPostgresStore({
      url: store,
      ...(options.readonly === true ? { readonly: true } : { dataDir: options.dataDir }),
      ...(options.durability === undefined ? {} : { durability: options.durability }),
    });
  }
  return createSqliteStore({
    dir: resolve(options.dataDir),
    ...(options.readonly === true ? { readonly: true } : {}),
    ...(options.durability === undefined ? {} : { durability: options.durability }),
    ...(options.onSyncFailure === undefined ? {} : { onSyncFailure: options.onSyncFailure }),
  });
}
