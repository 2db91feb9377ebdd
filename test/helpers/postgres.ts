import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The PostgreSQL server the tests use: REFLEX_TEST_POSTGRES_URL, else the local one (trust auth,
 * database `test`). Each test run makes schemas of its own in it and drops them afterwards.
 */
export const testPostgresUrl =
  process.env.REFLEX_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Why PostgreSQL cannot be used by the tests, or undefined when it can. */
async function unreachableReason(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: testPostgresUrl, connectionTimeoutMillis: 5000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Whether the PostgreSQL tests should be skipped: only when the server cannot be reached AND this is not
 * CI (the reason is printed). With CI=true an unreachable server fails the tests instead of hiding them.
 */
export async function skipWithoutPostgres(): Promise<boolean> {
  const reason = await unreachableReason();
  if (reason === undefined) return false;
  if (process.env.CI === 'true' || process.env.CI === '1') {
    throw new Error(`PostgreSQL at ${testPostgresUrl} is unreachable (${reason}); CI requires it.`);
  }
  console.warn(`skipping the PostgreSQL tests: ${testPostgresUrl} is unreachable (${reason})`);
  return true;
}

/** A schema name no other test run uses. */
export function uniqueSchema(prefix = 'reflex_test'): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** `testPostgresUrl` with `schema` as the store's schema. */
export function postgresUrlFor(schema: string): string {
  const url = new URL(testPostgresUrl);
  url.searchParams.set('schema', schema);
  return url.href;
}

/** Drops `schema` and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: testPostgresUrl });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}
