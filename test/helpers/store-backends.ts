import type { Store } from '../../src/core/ports/store.js';
import { createPostgresStore, createSqliteStore } from '../../src/store/index.js';
import { dropSchema, postgresUrlFor, skipWithoutPostgres, uniqueSchema } from './postgres.js';

/** One store of an end-to-end test: how `reflex start` is pointed at it, and how the test opens it. */
export interface E2eStore {
  /** Arguments for `reflex start` beside `--data <dataDir>`: none for SQLite, `--store <url>` for PostgreSQL. */
  startArgs: string[];
  /** Opens the store the way the test reads or seeds it (`readonly` while Reflex runs on it). */
  open(dataDir: string, options?: { readonly?: boolean }): Promise<Store>;
}

/** A backend the end-to-end tests run against: `make` gives each test a store of its own. */
export interface E2eBackend {
  name: 'sqlite' | 'postgres';
  make(): E2eStore;
}

const schemas = new Set<string>();

const sqlite: E2eBackend = {
  name: 'sqlite',
  make: () => ({
    startArgs: [],
    open: (dataDir, options) =>
      createSqliteStore({ dir: dataDir, ...(options?.readonly === true ? { readonly: true } : {}) }),
  }),
};

const postgres: E2eBackend = {
  name: 'postgres',
  make() {
    const schema = uniqueSchema('reflex_e2e');
    schemas.add(schema);
    const url = postgresUrlFor(schema);
    return {
      startArgs: ['--store', url],
      open: (_dataDir, options) =>
        createPostgresStore({ url, ...(options?.readonly === true ? { readonly: true } : {}) }),
    };
  },
};

/**
 * The backends to run end-to-end tests against: SQLite always, PostgreSQL when it can be reached (with
 * CI=true an unreachable PostgreSQL fails instead; see `skipWithoutPostgres`).
 */
export async function e2eBackends(): Promise<E2eBackend[]> {
  return (await skipWithoutPostgres()) ? [sqlite] : [sqlite, postgres];
}

/** Drops the PostgreSQL schemas the tests made (for `afterAll`). */
export async function dropE2eSchemas(): Promise<void> {
  for (const schema of schemas) await dropSchema(schema);
  schemas.clear();
}
