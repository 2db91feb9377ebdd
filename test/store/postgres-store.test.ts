import { afterAll } from 'vitest';
import { createPostgresStore, type PostgresStore } from '../../src/store/index.js';
import { dropSchema, postgresUrlFor, skipWithoutPostgres, uniqueSchema } from '../helpers/postgres.js';
import { describeStoreConformance } from './conformance.js';

const skip = await skipWithoutPostgres();
const schemas = new Set<string>();

afterAll(async () => {
  // A test that failed before its cleanup leaves its schema: every one this file made goes here.
  for (const schema of schemas) await dropSchema(schema);
});

if (!skip) {
  describeStoreConformance('postgres', async () => {
    const schema = uniqueSchema();
    schemas.add(schema);
    const url = postgresUrlFor(schema);
    let store: PostgresStore = await createPostgresStore({ url });
    return {
      store,
      async reopen() {
        await store.close();
        store = await createPostgresStore({ url });
        return store;
      },
      async cleanup() {
        await store.close();
        await dropSchema(schema);
        schemas.delete(schema);
      },
    };
  });
}
