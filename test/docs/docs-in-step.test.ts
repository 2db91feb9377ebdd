import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { createActionRegistry } from '../../src/actions/registry.js';
import { main } from '../../src/cli/main.js';
import { errorRegistry } from '../../src/core/errors.js';
import { engineDefaults } from '../../src/engine/options.js';
import { compileRulebook } from '../../src/rulebook/rule-compiler.js';
import { parseRuleTest } from '../../src/rulebook/rule-test-schema.js';

/**
 * Keeps what the documentation says in step with what the code does: a doc that contradicts the code is
 * a bug. Option defaults and environment variables are read from `reflex <command> --help` (commander
 * prints the defaults the code uses), error codes from the registry, rulebooks are compiled.
 */

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** Every Markdown page users read: the README, docs/, and the examples' READMEs. */
const pages = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
  ...readdirSync(join(root, 'examples')).map((name) => `examples/${name}/README.md`),
].filter((path) => {
  try {
    read(path);
    return true;
  } catch {
    return false;
  }
});

interface HelpOption {
  default: string | undefined;
  env: string | undefined;
}

/** The options of `reflex <command>` as its --help shows them, by long name. */
async function helpOptions(command: readonly string[]): Promise<Map<string, HelpOption>> {
  const out: string[] = [];
  await main([...command, '--help'], { stdout: (text) => out.push(text), stderr: () => {}, env: {} });
  const text = out.join('\n');
  const section = text.slice(text.indexOf('Options:'));
  // One entry per option: a line starting with the flags, and the lines it wraps onto.
  const entries = section.split(/\n(?= {2}-)/).slice(1);
  const options = new Map<string, HelpOption>();
  for (const entry of entries) {
    const flat = entry.replace(/\s+/g, ' ').trim();
    const long = /--[\w-]+/.exec(flat)?.[0];
    if (long === undefined || long === '--help') continue;
    // Commander ends the entry with `(choices: ..., default: ..., env: ...)`, any part left out.
    const added =
      /\(((?:choices: [^)]*?, )?(?:default: (?:"[^"]*"|[^,)]+))?(?:, )?(?:env:? REFLEX_\w+)?)\)$/.exec(
        flat,
      )?.[1] ?? '';
    const defaultValue = /default: ("[^"]*"|[^,)]+)/.exec(added)?.[1]?.replace(/^"|"$/g, '');
    const env = /env:? (REFLEX_\w+)/.exec(added)?.[1];
    options.set(long, { default: defaultValue, env });
  }
  return options;
}

/** The `## ` sections of a page, by heading. */
function sections(page: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const part of read(page).split(/^## /m).slice(1)) {
    const newline = part.indexOf('\n');
    found.set(part.slice(0, newline).trim(), part.slice(newline + 1));
  }
  return found;
}

/** The rows of the first Markdown table in `text` whose header has all of `columns`, as cell maps. */
function tableRows(text: string, columns: readonly string[]): Array<Record<string, string>> {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const header = cells(lines[i]!);
    if (header === undefined || !columns.every((c) => header.includes(c))) continue;
    const rows: Array<Record<string, string>> = [];
    for (let j = i + 2; j < lines.length; j++) {
      const row = cells(lines[j]!);
      if (row === undefined) break;
      rows.push(Object.fromEntries(header.map((name, k) => [name, row[k] ?? ''])));
    }
    return rows;
  }
  return [];
}

function cells(line: string): string[] | undefined {
  if (!line.startsWith('|')) return undefined;
  return line
    .slice(1, line.endsWith('|') ? -1 : undefined)
    .split('|')
    .map((cell) => cell.trim());
}

/**
 * What a docs "default" cell says, as commander would print it: a value in backticks; nothing for
 * `off`, "required", "none", prose, or an environment variable the value comes from.
 */
function documentedDefault(cell: string): string | undefined {
  const value = /^`([^`]+)`/.exec(cell)?.[1];
  if (value !== undefined) return /^REFLEX_\w+$/.test(value) ? undefined : value;
  return undefined;
}

describe('docs', () => {
  it('docs - every option table in cli.md lists the options --help shows, with their defaults and variables', async () => {
    const checked: string[] = [];
    for (const [heading, text] of sections('docs/cli.md')) {
      const rows = tableRows(text, ['option', 'default', 'meaning']);
      if (rows.length === 0) continue;
      const help = await helpOptions(heading.split(' '));
      const documented = rows.map((row) => /--[\w-]+/.exec(row.option ?? '')?.[0]);
      expect({ heading, options: documented.sort() }).toEqual({ heading, options: [...help.keys()].sort() });
      for (const row of rows) {
        const option = /--[\w-]+/.exec(row.option ?? '')![0];
        const shown = help.get(option)!;
        // A flag is off unless given, whether commander prints `default: false` or nothing.
        const off = (value: string | undefined) => (value === 'false' ? undefined : value);
        const fromDocs = off(documentedDefault(row.default ?? ''));
        const fromHelp = off(shown.default);
        expect({ heading, option, default: fromDocs }).toEqual({ heading, option, default: fromHelp });
        if ('env' in row) {
          const env = /REFLEX_\w+/.exec(row.env ?? '')?.[0];
          expect({ heading, option, env }).toEqual({ heading, option, env: shown.env });
        }
        checked.push(`${heading} ${option}`);
      }
    }
    expect(checked).toContain('start --concurrency');
    expect(checked).toContain('emit --source');
  });

  it('docs - the engine defaults cli.md gives for reflex start are engineDefaults, the one place that states them', () => {
    const fromEngine: Record<string, number> = {
      '--concurrency': engineDefaults.concurrency,
      '--lease': engineDefaults.leaseMs,
      '--max-claims': engineDefaults.maxClaims,
      '--max-chain-depth': engineDefaults.maxChainDepth,
      '--grace': engineDefaults.graceMs,
      '--max-depth': engineDefaults.limits.maxDepth,
    };
    const rows = tableRows(sections('docs/cli.md').get('start')!, ['option', 'default', 'meaning']);
    const documented = Object.fromEntries(
      rows
        .map((row) => [/--[\w-]+/.exec(row.option ?? '')?.[0], documentedDefault(row.default ?? '')] as const)
        .filter(([option]) => option !== undefined && option in fromEngine)
        .map(([option, value]) => [option, Number(value)]),
    );
    expect(documented).toEqual(fromEngine);
  });

  it('docs - a default given in prose next to an option is the default the command uses', async () => {
    let checked = 0;
    for (const [heading, text] of sections('docs/cli.md')) {
      for (const match of text.matchAll(/`(--[\w-]+)`[^`()\n]*\(default ([^)]+)\)/g)) {
        const help = await helpOptions(heading.split(' '));
        expect({ heading, option: match[1], default: match[2] }).toEqual({
          heading,
          option: match[1],
          default: help.get(match[1]!)?.default,
        });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(0);
  });

  it('docs - the limits in operations.md that an option sets are that option’s defaults', async () => {
    const help = await helpOptions(['start']);
    const units: Record<string, number> = { MiB: 1_048_576, KiB: 1024, s: 1000, ms: 1 };
    const rows = tableRows(read('docs/operations.md'), ['limit', 'default', 'set with']);
    let checked = 0;
    for (const row of rows) {
      // A row set with a Reflex option names it first; one set otherwise (Node's own flags) is skipped.
      const option = /^`(--[\w-]+)/.exec(row['set with'] ?? '')?.[1];
      if (option === undefined) continue;
      const [, digits, unit] = /^([\d ]+)\s*(MiB|KiB|ms|s)?\b/.exec(row.default ?? '') ?? [];
      const documented = Number(digits?.replace(/ /g, '')) * (unit === undefined ? 1 : units[unit]!);
      expect({ limit: row.limit, option, value: documented }).toEqual({
        limit: row.limit,
        option,
        value: Number(help.get(option)?.default),
      });
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(4);
  });

  it('docs - every environment variable the docs name is read by the code, and every one read is documented', () => {
    const source = readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' })
      .filter((path) => path.endsWith('.ts') && !path.endsWith('.test.ts'))
      .map((path) => read(`src/${path}`))
      .join('\n');
    for (const page of pages) {
      for (const [name] of read(page).matchAll(/\bREFLEX_(?!ERR_)[A-Z_]+\b/g)) {
        expect({ page, name, read: source.includes(name) }).toEqual({ page, name, read: true });
      }
    }
    const environment = tableRows(sections('docs/cli.md').get('Environment')!, ['variable', 'used by']).map(
      (row) => /REFLEX_\w+/.exec(row.variable ?? '')?.[0],
    );
    const cli = ['main.ts', 'start.ts', 'client.ts'].map((file) => read(`src/cli/${file}`)).join('\n');
    const readByCli = new Set([...cli.matchAll(/\b(REFLEX_(?!ERR_)[A-Z_]+)\b/g)].map((m) => m[1]!));
    expect([...readByCli].sort()).toEqual([...new Set(environment)].sort());
  });

  it('docs - every error code the docs name exists, with the status they give it', () => {
    let checked = 0;
    for (const page of pages) {
      const text = read(page);
      // `REFLEX_ERR_EVENT_*` names a family, not a code.
      for (const [code] of text.matchAll(/\bREFLEX_ERR_[A-Z_]*[A-Z](?![A-Z_]*\*)\b/g)) {
        expect({ page, code, exists: code in errorRegistry }).toEqual({ page, code, exists: true });
        checked++;
      }
      // "503 `REFLEX_ERR_...`" in prose, and rows that begin "| 503 | `REFLEX_ERR_...`" in tables.
      const statuses = [
        ...text.matchAll(/\b([1-5]\d\d) `(REFLEX_ERR_[A-Z_]*[A-Z])`/g),
        ...text.matchAll(/^\| ([1-5]\d\d) \| `(REFLEX_ERR_[A-Z_]*[A-Z])`/gm),
      ];
      for (const [, status, code] of statuses) {
        const registered = errorRegistry[code as keyof typeof errorRegistry]?.status;
        expect({ page, code, status: Number(status) }).toEqual({ page, code, status: registered });
      }
    }
    expect(checked).toBeGreaterThan(50);
  });

  it('docs - every YAML example is a valid rulebook or rule test, unless marked `yaml invalid`', () => {
    const actions = createActionRegistry();
    let checked = 0;
    for (const page of pages) {
      const text = read(page);
      for (const match of text.matchAll(/^```yaml([^\n]*)\n([\s\S]*?)^```/gm)) {
        const line = text.slice(0, match.index).split('\n').length;
        const where = `${page}:${line}`;
        const invalid = match[1]!.trim() === 'invalid';
        let error: unknown;
        try {
          const value: unknown = parse(match[2]!);
          if (isTest(value)) {
            // A rule test's `rulebook` is a path beside it; an example without one reads as if given.
            parseRuleTest({
              path: 'example.test.yaml',
              content: stringify({ rulebook: './rulebook.yaml', ...value }),
            });
          } else {
            const rulebook = asRulebook(value);
            if (rulebook === undefined) throw new Error(`${where}: neither a rulebook nor a part of one`);
            compileRulebook([{ path: where, content: stringify(rulebook) }], { actions });
          }
        } catch (e) {
          error = e;
        }
        if (invalid) expect({ where, refused: error !== undefined }).toEqual({ where, refused: true });
        else
          expect({ where, error: (error as Error | undefined)?.message }).toEqual({
            where,
            error: undefined,
          });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(40);
  });
});

const ruleKeys = new Set(['name', 'description', 'enabled', 'when', 'then', 'stop', 'ttl']);
const stormControl = ['dedupe', 'throttle', 'debounce', 'rateLimit', 'batch', 'concurrency'];
for (const key of stormControl) ruleKeys.add(key);
const actionKinds = ['http', 'exec', 'emit', 'fact', 'log'];

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function isTest(value: unknown): value is Record<string, unknown> {
  return isObject(value) && 'cases' in value;
}

/**
 * An example as a whole rulebook: a rulebook as it is; a list of rules, a rule's keys (`when`, `then`,
 * storm control), a pattern, a list of steps, webhooks or a webhook's `auth` inside the least around
 * them.
 */
function asRulebook(value: unknown): Record<string, unknown> | undefined {
  const rule = (parts: Record<string, unknown>) => ({
    rules: [
      { name: 'example', when: { pattern: { type: ['example'] } }, then: [{ log: 'example' }], ...parts },
    ],
  });
  if (Array.isArray(value)) {
    if (value.every((item) => isObject(item) && ('when' in item || 'then' in item))) return { rules: value };
    if (value.every((item) => isObject(item) && actionKinds.some((kind) => kind in item)))
      return rule({ then: value });
    return undefined;
  }
  if (!isObject(value)) return undefined;
  if ('rules' in value) return value;
  if ('webhooks' in value) return { ...value, rules: [] };
  if ('auth' in value)
    return { webhooks: { example: { type: 'example', source: 'example', ...value } }, rules: [] };
  if ('pattern' in value && Object.keys(value).length === 1) return rule({ when: value });
  if (Object.keys(value).every((key) => ruleKeys.has(key))) return rule(value);
  return undefined;
}
