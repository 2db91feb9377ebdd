import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { createSqliteStore } from '../../src/store/index.js';

// Data stored before ingest refused control characters (or written by another tool) is still printed
// safely: the CLI escapes whatever a terminal would act on.

let dir: string | undefined;

afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Control characters a terminal acts on, and the bidirectional override that reverses text. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const unsafe = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { stdout: (t) => out.push(t), stderr: (t) => err.push(t), env: {} });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

describe('cli escaping', () => {
  it('cli - events ls, events show and explain print stored control characters escaped', async () => {
    dir = await mkdtemp(join(tmpdir(), 'reflex-cli-escape-'));
    const store = await createSqliteStore({ dir });
    await store.appendEvents(
      [
        {
          specversion: '1.0',
          id: 'evil\u001b]0;pwned\u0007\u001b[2J',
          source: 'shop\u009b31m',
          type: 'order.created\nFAKE LINE',
          subject: 'abc\u202edcba',
          data: { note: 'tab\there\u2028x' },
        },
      ],
      Date.parse('2026-11-27T10:00:00Z'),
    );
    await store.close();

    const ls = await run(['events', 'ls', '--data', dir]);
    expect(ls.code).toBe(0);
    expect(ls.stdout).not.toMatch(unsafe);
    expect(ls.stdout.split('\n')).toHaveLength(2);
    expect(ls.stdout).toContain('evil\\x1b]0;pwned\\x07\\x1b[2J');
    expect(ls.stdout).toContain('order.created\\nFAKE LINE');
    expect(ls.stdout).toContain('shop\\x9b31m');

    for (const args of [
      ['events', 'ls', '--json', '--data', dir],
      ['events', 'show', '1', '--data', dir],
      ['explain', '1', '--data', dir],
      ['explain', '1', '--json', '--data', dir],
    ]) {
      const result = await run(args);
      expect([args.join(' '), result.code]).toEqual([args.join(' '), 0]);
      expect(result.stdout).not.toMatch(unsafe);
    }
    // The JSON forms still read back as the stored values.
    const show = await run(['events', 'show', '1', '--data', dir]);
    expect(JSON.parse(show.stdout).event.subject).toBe('abc\u202edcba');
  });
});
