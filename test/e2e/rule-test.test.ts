import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupReflex, jsonLines, makeTempDir, runReflex } from '../helpers/reflex-process.js';

/**
 * `reflex test` as a user runs it: the real `./bin/reflex` as a child process, judged by its exit code
 * and what it prints.
 */

afterEach(cleanupReflex);

const examplesDir = fileURLToPath(new URL('../../examples', import.meta.url));

const rulebook = `
rules:
  - name: page-on-disk-full
    when:
      pattern: { type: [disk.usage] }
      if: event.data.percent >= 95
    then:
      - id: page
        http:
          url: https://pager.example.internal/api/v1/incidents
          json: { summary: "\${{ event.data.host }} disk at \${{ event.data.percent }}%" }
`;

describe('reflex test (e2e)', () => {
  it('rule test e2e - every example ships with tests, and they all pass (exit 0)', async () => {
    const examples = (await readdir(examplesDir, { withFileTypes: true })).filter((e) => e.isDirectory());
    for (const example of examples) {
      const files = await readdir(join(examplesDir, example.name));
      expect(files, `examples/${example.name}`).toEqual(
        expect.arrayContaining(['rulebook.yaml', 'rulebook.test.yaml', 'README.md']),
      );
    }
    const result = await runReflex(['test', 'examples'], { timeoutMs: 120_000 });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    for (const example of examples)
      expect(result.stdout).toContain(`examples/${example.name}/rulebook.test.yaml\n  ✓ `);
    expect(result.stdout).not.toContain('✗');
    expect(result.stdout).toMatch(
      new RegExp(`\\n\\d+ passed, 0 failed \\(${examples.length} file\\(s\\), \\d+ms\\)\\n$`),
    );
  }, 150_000);

  it('rule test e2e - a failing case exits 1 with a readable expected/got diff', async () => {
    const dir = await makeTempDir();
    await writeFile(join(dir, 'rulebook.yaml'), rulebook);
    await writeFile(
      join(dir, 'rulebook.test.yaml'),
      `rulebook: ./rulebook.yaml
cases:
  - name: a full disk pages
    events:
      - { at: 0s, type: disk.usage, data: { host: db-1, percent: 97 } }
    expect:
      runs:
        - rule: page-on-disk-full
          params:
            page: { json: { summary: db-1 disk at 95% } }
  - name: a half-full disk does not page
    events:
      - { at: 0s, type: disk.usage, data: { host: db-1, percent: 50 } }
    expect:
      runs: []
`,
    );
    const result = await runReflex(['test', dir]);
    expect(result.code).toBe(1);
    const file = join(dir, 'rulebook.test.yaml');
    expect(result.stdout.startsWith(`${file}\n`)).toBe(true);
    expect(result.stdout).toMatch(/ {2}✗ a full disk pages \(\d+ms\)\n/);
    expect(result.stdout).toContain(
      [
        `      run 1 (page-on-disk-full), step page (http): params.page.json.summary  [${file}:10:19]`,
        '        expected: "db-1 disk at 95%"',
        '        got:      "db-1 disk at 97%"',
        '      runs of the case:',
        '        1. page-on-disk-full at 0s on disk.usage: succeeded [http]',
      ].join('\n'),
    );
    expect(result.stdout).toMatch(/ {2}✓ a half-full disk does not page/);
    expect(result.stdout).toMatch(/\n1 passed, 1 failed \(1 file\(s\), \d+ms\)\n$/);

    const json = await runReflex(['test', '--json', dir]);
    expect(json.code).toBe(1);
    const lines = jsonLines(json.stdout);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({
      file,
      case: 'a full disk pages',
      ok: false,
      failures: [
        {
          rule: 'page-on-disk-full',
          step: 'page (http)',
          field: 'params.page.json.summary',
          expected: 'db-1 disk at 95%',
          got: 'db-1 disk at 97%',
          location: `${file}:10:19`,
        },
      ],
    });
    expect(lines[1]).toMatchObject({
      case: 'a half-full disk does not page',
      ok: true,
      failures: [],
      runs: [],
    });
    expect(lines[2]).toMatchObject({ summary: { passed: 1, failed: 1, files: 1 } });
  }, 60_000);

  it('rule test e2e - an invalid test file exits 2 with file:line:column, and nothing runs', async () => {
    const dir = await makeTempDir();
    await writeFile(join(dir, 'rulebook.yaml'), rulebook);
    await writeFile(
      join(dir, 'rulebook.test.yaml'),
      `rulebook: ./rulebook.yaml
cases:
  - name: a full disk pages
    events:
      - { at: 0s, type: disk.usage, data: { host: db-1, percent: 97 } }
    expect:
      runs:
        - rule: page-on-full-disk
`,
    );
    const result = await runReflex(['test', dir]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(
      [
        'error REFLEX_ERR_RULETEST_INVALID: The rule tests have 1 problem(s); fix each at the file:line:column given, then run them again:',
        `${join(dir, 'rulebook.test.yaml')}:8:17: the rulebook has no rule named \`page-on-full-disk\`. To fix: use one of \`page-on-disk-full\`.`,
        '          - rule: page-on-full-disk',
        '                  ^',
      ].join('\n'),
    );
  }, 60_000);
});
