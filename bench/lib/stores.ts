import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The `--store` dimension of the benchmarks: which store backends a run measures Reflex on. `bench/run.ts`
 * passes `--store=sqlite,postgres` (the default) to each benchmark as REFLEX_BENCH_STORES.
 */
export const benchStoreKinds = ['sqlite', 'postgres'] as const;
export type BenchStoreKind = (typeof benchStoreKinds)[number];

/** The environment variable that carries the chosen stores to the benchmark's child process. */
export const benchStoresVariable = 'REFLEX_BENCH_STORES';

/** The PostgreSQL server the benchmarks use (REFLEX_BENCH_POSTGRES_URL; default the local one, database `test`). */
export const benchPostgresUrl =
  process.env.REFLEX_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Reads a `--store` list (`sqlite,postgres`); undefined when it names something else. */
export function parseBenchStores(value: string): BenchStoreKind[] | undefined {
  const kinds = value.split(',').map((k) => k.trim());
  if (kinds.length === 0 || kinds.some((k) => !(benchStoreKinds as readonly string[]).includes(k)))
    return undefined;
  return benchStoreKinds.filter((k) => kinds.includes(k));
}

/** The stores this benchmark run measures. */
export function benchStores(): BenchStoreKind[] {
  return parseBenchStores(process.env[benchStoresVariable] ?? 'sqlite,postgres') ?? ['sqlite'];
}

/** A fresh PostgreSQL schema for one run of Reflex: `reflex start` arguments, and how to drop it after. */
export interface BenchPostgresSchema {
  schema: string;
  /** `['--store', url]`. */
  args: string[];
  url: string;
  drop(): Promise<void>;
}

/** Makes a unique schema name (the store creates the schema when Reflex starts). */
export function benchPostgresSchema(label: string): BenchPostgresSchema {
  const schema = `reflex_bench_${label.replace(/[^a-z0-9_]/g, '_')}_${randomBytes(4).toString('hex')}`;
  const url = new URL(benchPostgresUrl);
  url.searchParams.set('schema', schema);
  return {
    schema,
    args: ['--store', url.href],
    url: url.href,
    async drop() {
      const client = new pg.Client({ connectionString: benchPostgresUrl });
      client.on('error', () => {});
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    },
  };
}
