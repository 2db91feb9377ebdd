import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { CloudEvent } from '../../src/core/event.js';
import { createPostgresStore } from '../../src/store/index.js';
import { dropSchema, postgresUrlFor, skipWithoutPostgres, uniqueSchema } from '../helpers/postgres.js';

const skip = await skipWithoutPostgres();
const schema = uniqueSchema('reflex_cli');

afterAll(async () => {
  if (!skip) await dropSchema(schema);
});

/** Runs the CLI in this process and returns its exit code and output. */
async function run(argv: string[]) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await main(argv, { stdout: (t) => stdout.push(t), stderr: (t) => stderr.push(t), env: {} });
  return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n') };
}

describe('cli --store', () => {
  it('cli --store - a value that is neither sqlite nor a postgres URL is a usage error that says what to give', async () => {
    const result = await run(['start', '--store', 'mysql://127.0.0.1/reflex']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('REFLEX_ERR_CONFIG_INVALID');
    expect(result.stderr).toContain('postgres://');
  });

  it.skipIf(skip)('cli --store - events ls reads a PostgreSQL store directly', async () => {
    const url = postgresUrlFor(schema);
    const store = await createPostgresStore({ url });
    const event: CloudEvent = { specversion: '1.0', id: 'cli-1', source: 'test/cli', type: 'cli.happened' };
    await store.appendEvents([event], Date.now());
    await store.close();
    const result = await run(['events', 'ls', '--store', url, '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ seq: 1, event: { id: 'cli-1', source: 'test/cli' } });
  });
});
