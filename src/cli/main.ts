import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { parseHttpDeny } from '../actions/http-deny.js';
import { createActionRegistry } from '../actions/registry.js';
import { parseDuration } from '../core/duration.js';
import { ReflexError } from '../core/errors.js';
import { type CloudEvent, defaultEventLimits } from '../core/event.js';
import { testPattern } from '../core/pattern/pattern-test.js';
import { compileRulebookFiles, RulebookError } from '../core/ports/rulebook-compiler.js';
import { RunStatus } from '../core/ports/store.js';
import { newSortableId } from '../engine/ids.js';
import { engineDefaults } from '../engine/options.js';
import { createQueries } from '../engine/queries.js';
import { createRulebookVersions } from '../engine/rulebook-versions.js';
import { readRulebookFiles } from '../rulebook/discovery.js';
import { defaultServerTimeouts } from '../server/front-door.js';
import { defaultBodyLimit } from '../server/server.js';
import { checkStoreOption, defaultDurability, openStore, sqliteStoreName } from '../store/index.js';
import { createHttpClient, createLocalClient, type ReflexClient, RemoteError } from './client.js';
import {
  formatEvents,
  formatExplanation,
  formatRun,
  formatRuns,
  printable,
  printableJson,
} from './format.js';
import { runRuleTests } from './rule-test.js';
import { rulebookCompilers } from './rulebook-compilers.js';
import { runStart, secretsOf } from './start.js';

/**
 * Up to `limit` items of a listing, following its cursor: the API ends a page at about 1 MiB whatever its
 * `limit`, so one page of big events may hold fewer than asked while more remain. `next` continues after
 * the last item returned.
 */
async function fillPage<T>(
  limit: number,
  cursor: string | undefined,
  fetchPage: (limit: number, cursor: string | undefined) => Promise<{ items: T[]; next: string | null }>,
): Promise<{ items: T[]; next: string | null }> {
  const items: T[] = [];
  let next: string | null = cursor ?? null;
  do {
    const page = await fetchPage(limit - items.length, next ?? undefined);
    items.push(...page.items);
    next = page.next;
  } while (next !== null && items.length < limit);
  return { items, next };
}

/** Exit codes: 0 success; 1 a runtime failure (or `match` found no match); 2 invalid input or usage. */
export const ExitCode = { ok: 0, failure: 1, invalid: 2 } as const;

const defaultPort = 7070;

interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Record<string, string | undefined>;
}

/**
 * Writes lines to a standard stream until its reader goes away. `reflex ... | head` closes the pipe
 * after a few lines; the next write fails with EPIPE, which Node reports as an 'error' event that would
 * crash the process with a stack trace. What nobody reads any more is dropped instead, and the command
 * ends with its own exit code.
 */
function lineWriter(stream: NodeJS.WriteStream): (text: string) => void {
  let closed = false;
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    closed = true;
  });
  return (text) => {
    if (!closed) stream.write(`${text}\n`);
  };
}

const processIo: Io = {
  stdout: lineWriter(process.stdout),
  stderr: lineWriter(process.stderr),
  env: process.env,
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function integer(name: string, min: number) {
  return (value: string) => {
    if (!/^\d+$/.test(value) || Number(value) < min)
      throw new InvalidArgumentError(`${name} must be a whole number ≥ ${min}.`);
    return Number(value);
  };
}

function duration(value: string) {
  try {
    return parseDuration(value);
  } catch {
    throw new InvalidArgumentError('write a duration like 500ms, 10s or 1m.');
  }
}

/** Reads `--pattern`/`--event`: inline JSON, or the path of a JSON file. */
function jsonArgument(what: string, value: string): unknown {
  const text =
    value.trimStart().startsWith('{') || value.trimStart().startsWith('[')
      ? value
      : readJsonFile(what, value);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
      option: what,
      reason: `not valid JSON (${(error as Error).message})`,
      fix: 'give inline JSON or the path of a JSON file.',
    });
  }
}

function readJsonFile(what: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
      option: what,
      reason: `${JSON.stringify(path)} is neither JSON nor a readable file`,
      fix: 'give inline JSON or the path of a JSON file.',
    });
  }
}

/**
 * Runs the `reflex` command line with `argv` (without node and the script) and resolves with the exit
 * code. Output goes through `io`, so tests can run it in-process.
 */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const env = io.env;
  const url = () => env.REFLEX_URL ?? `http://127.0.0.1:${env.REFLEX_PORT ?? defaultPort}`;
  let exitCode: number = ExitCode.ok;

  const clientFor = async (options: {
    url?: string;
    data?: string;
    store?: string;
  }): Promise<ReflexClient> => {
    if (options.data || options.store) {
      const store = await openStore({
        ...(options.store === undefined ? {} : { store: options.store }),
        dataDir: resolve(options.data ?? '.reflex'),
        readonly: true,
      });
      const versions = createRulebookVersions(store, {
        actions: createActionRegistry(),
        compilers: rulebookCompilers,
      });
      return createLocalClient(store, createQueries({ store, versions }));
    }
    return createHttpClient(options.url ?? url(), env.REFLEX_API_TOKEN);
  };

  const withClient = async (
    options: { url?: string; data?: string; store?: string },
    fn: (client: ReflexClient) => Promise<void>,
  ) => {
    const client = await clientFor(options);
    try {
      await fn(client);
    } finally {
      await client.close();
    }
  };

  /** A listing: a table (or JSON lines, with stdout kept pure and the way on given on stderr). */
  const printPage = <T>(
    page: { items: T[]; next: string | null },
    json: boolean,
    table: (items: T[]) => string,
  ) => {
    if (json) for (const item of page.items) io.stdout(printableJson(item));
    else io.stdout(table(page.items));
    if (page.next) (json ? io.stderr : io.stdout)(`more: --cursor ${page.next}`);
  };

  const sourceOptions = (command: Command) =>
    command
      .option('--url <url>', 'a running Reflex (env REFLEX_URL)', undefined)
      .option('--data <dir>', 'read a data directory directly instead (works while Reflex is stopped)')
      .option('--store <url>', 'read a PostgreSQL store (postgres://…?schema=…) directly instead');

  const program = new Command('reflex')
    .description('Reflex: events in, rules, actions out — durable, explainable, replayable.')
    .version(version())
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout(s.trimEnd()), writeErr: (s) => io.stderr(s.trimEnd()) });

  program
    .command('start')
    .description('start Reflex with rulebook files or folders')
    .argument('[rulebooks...]', 'rulebook files or folders of them')
    .addOption(new Option('--host <host>', 'interface to listen on').env('REFLEX_HOST').default('127.0.0.1'))
    .addOption(
      new Option('--port <port>', 'port to listen on')
        .env('REFLEX_PORT')
        .default(defaultPort)
        .argParser(integer('port', 0)),
    )
    .addOption(
      new Option('--data <dir>', 'data directory (holds the SQLite database)')
        .env('REFLEX_DATA')
        .default('.reflex'),
    )
    .addOption(
      new Option(
        '--store <store>',
        '`sqlite` (the database in --data) or postgres://user@host/db?schema=name',
      )
        .env('REFLEX_STORE')
        .default(sqliteStoreName)
        .argParser((value: string) => {
          checkStoreOption(value);
          return value;
        }),
    )
    .option('--watch', 'reload rulebooks when their files change', false)
    .addOption(
      new Option('--durability <level>', 'full: commits survive power loss; normal: survive a crash, faster')
        .choices(['full', 'normal'])
        .env('REFLEX_DURABILITY')
        .default(defaultDurability),
    )
    .addOption(
      new Option('--body-limit <bytes>', 'largest request body')
        .env('REFLEX_BODY_LIMIT')
        .default(defaultBodyLimit)
        .argParser(integer('body limit', 1)),
    )
    .addOption(
      new Option('--max-depth <levels>', 'deepest nesting in an event')
        .env('REFLEX_MAX_DEPTH')
        .default(engineDefaults.limits.maxDepth)
        .argParser(integer('max depth', 1)),
    )
    .addOption(
      new Option('--grace <duration>', 'time in-flight actions get on SIGTERM')
        .env('REFLEX_GRACE')
        .default(engineDefaults.graceMs)
        .argParser(duration),
    )
    .addOption(
      new Option('--concurrency <n>', 'runs executed at once')
        .env('REFLEX_CONCURRENCY')
        .default(engineDefaults.concurrency)
        .argParser(integer('concurrency', 1)),
    )
    .addOption(
      new Option(
        '--lease <duration>',
        'how long a claimed run stays reserved; runs of a node that died resume after it',
      )
        .env('REFLEX_LEASE')
        .default(engineDefaults.leaseMs)
        .argParser(duration),
    )
    .addOption(
      new Option('--max-claims <n>', 'claims that die (kill -9, out of memory) before a run is failed')
        .env('REFLEX_MAX_CLAIMS')
        .default(engineDefaults.maxClaims)
        .argParser(integer('max claims', 1)),
    )
    .addOption(
      new Option(
        '--max-chain-depth <n>',
        'rules do not fire on events derived from longer chains of rule outcomes',
      )
        .env('REFLEX_MAX_CHAIN_DEPTH')
        .default(engineDefaults.maxChainDepth)
        .argParser(integer('max chain depth', 0)),
    )
    .addOption(
      new Option(
        '--allowed-hosts <names>',
        'more names requests may address, comma-separated (`*.example.com` for a domain, `*` for any)',
      ).env('REFLEX_ALLOWED_HOSTS'),
    )
    .addOption(
      new Option('--headers-timeout <duration>', 'time a client has to send the request headers')
        .env('REFLEX_HEADERS_TIMEOUT')
        .default(defaultServerTimeouts.headersMs)
        .argParser(duration),
    )
    .addOption(
      new Option('--request-timeout <duration>', 'time a client has to send the whole request, body included')
        .env('REFLEX_REQUEST_TIMEOUT')
        .default(defaultServerTimeouts.requestMs)
        .argParser(duration),
    )
    .addOption(
      new Option('--keep-alive-timeout <duration>', 'idle time after which a keep-alive connection is closed')
        .env('REFLEX_KEEP_ALIVE_TIMEOUT')
        .default(defaultServerTimeouts.keepAliveMs)
        .argParser(duration),
    )
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(['debug', 'info', 'warn', 'error'])
        .env('REFLEX_LOG_LEVEL')
        .default('info'),
    )
    .addOption(
      new Option(
        '--http-deny <list>',
        'addresses and names http steps never call: CIDR blocks, addresses, host names; `default` is the built-in list (link-local, cloud metadata), `none` nothing',
      )
        .env('REFLEX_HTTP_DENY')
        .default('default')
        .argParser((value: string) => {
          parseHttpDeny(value);
          return value;
        }),
    )
    .addOption(
      new Option(
        '--secrets <path>',
        'where ${{ secrets.NAME }} is read from first: a file of NAME=value lines, or a folder of one file per secret (then the environment)',
      ).env('REFLEX_SECRETS'),
    )
    .action(async (rulebooks: string[], o) => {
      exitCode = await runStart(
        {
          rulebooks,
          host: o.host,
          port: Number(o.port),
          dataDir: o.data,
          store: o.store,
          watch: o.watch,
          durability: o.durability,
          bodyLimit: Number(o.bodyLimit),
          maxDepth: Number(o.maxDepth),
          graceMs: Number(o.grace),
          concurrency: Number(o.concurrency),
          leaseMs: Number(o.lease),
          maxClaims: Number(o.maxClaims),
          maxChainDepth: Number(o.maxChainDepth),
          logLevel: o.logLevel,
          apiToken: env.REFLEX_API_TOKEN,
          httpDeny: o.httpDeny,
          secrets: o.secrets,
          allowedHosts: String(o.allowedHosts ?? '')
            .split(',')
            .map((name) => name.trim())
            .filter((name) => name !== ''),
          headersTimeoutMs: Number(o.headersTimeout),
          requestTimeoutMs: Number(o.requestTimeout),
          keepAliveTimeoutMs: Number(o.keepAliveTimeout),
        },
        { stdout: io.stdout },
      );
    });

  program
    .command('validate')
    .description('check rulebooks without starting (exit 2 when invalid)')
    .argument('<rulebooks...>', 'rulebook files or folders')
    .action(async (paths: string[]) => {
      const files = await readRulebookFiles(paths);
      const rulebook = compileRulebookFiles(rulebookCompilers, files, { actions: createActionRegistry() });
      io.stdout(
        `ok: ${files.length} file(s), ${rulebook.rules.length} rule(s), ${rulebook.webhooks.size} webhook(s)`,
      );
      const secrets = secretsOf(rulebook);
      if (secrets.length > 0) io.stdout(`secrets the steps read: ${secrets.join(', ')}`);
    });

  program
    .command('test')
    .description(
      'run rule tests (*.test.yaml) offline: no real time passes, no real action runs (exit 1 when a case fails, 2 when a file is invalid)',
    )
    .argument('[paths...]', 'test files or folders (default: the current directory)')
    .option('--json', 'one JSON object per case per line, then a summary object')
    .action(async (paths: string[], o) => {
      exitCode = await runRuleTests({ paths, json: o.json === true, stdout: io.stdout, stderr: io.stderr });
    });

  program
    .command('emit')
    .description('send one event to a running Reflex')
    .requiredOption('--type <type>', 'CloudEvents type')
    .option('--source <source>', 'CloudEvents source', 'reflex-cli')
    .option('--data <json>', 'event data as JSON (or @file.json)')
    .option('--id <id>', 'event id; a new one when not given')
    .option('--subject <subject>', 'CloudEvents subject')
    .option('--url <url>', 'a running Reflex (env REFLEX_URL)')
    .option('--json', 'print the answer as JSON')
    .action(async (o) => {
      let data: unknown;
      if (o.data !== undefined) {
        const text = String(o.data).startsWith('@')
          ? readJsonFile('--data', String(o.data).slice(1))
          : String(o.data);
        try {
          data = JSON.parse(text);
        } catch (error) {
          throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
            option: '--data',
            reason: `not valid JSON (${(error as Error).message})`,
            fix: `quote it for the shell, e.g. --data '{"host":"web-1"}', or give @file.json.`,
          });
        }
      }
      const event: CloudEvent = {
        specversion: '1.0',
        id: o.id ?? newSortableId(Date.now()),
        source: o.source,
        type: o.type,
        time: new Date().toISOString(),
        ...(o.subject ? { subject: o.subject } : {}),
        ...(data === undefined ? {} : { datacontenttype: 'application/json', data }),
      };
      const client = createHttpClient(o.url ?? url(), env.REFLEX_API_TOKEN);
      const answer = await client.emit(event);
      if (o.json) io.stdout(printableJson(answer));
      else
        io.stdout(
          answer.duplicate
            ? `duplicate of seq ${answer.seq} (id ${printable(answer.id)})`
            : `seq ${answer.seq} (id ${printable(answer.id)})`,
        );
    });

  const events = program.command('events').description('look at the event log');
  sourceOptions(
    events
      .command('ls')
      .description('list events, newest first (oldest first with --after)')
      .option('--type <type>', 'only this type')
      .option('--source <source>', 'only this source')
      .option('--after <seq>', 'oldest first, after this seq', integer('after', 0))
      .option('--limit <n>', 'how many', integer('limit', 1), 50)
      .option('--cursor <cursor>', 'continue a listing')
      .option('--json', 'one JSON object per line'),
  ).action(async (o) => {
    await withClient(o, async (client) => {
      const page = await fillPage(o.limit, o.cursor, (limit, cursor) =>
        client.listEvents({
          ...(o.type ? { type: o.type } : {}),
          ...(o.source ? { source: o.source } : {}),
          ...(o.after !== undefined ? { after: o.after } : {}),
          ...(cursor ? { cursor } : {}),
          limit,
        }),
      );
      printPage(page, o.json === true, formatEvents);
    });
  });
  sourceOptions(events.command('show').description('show one event').argument('<seq-or-id>')).action(
    async (ref: string, o) => {
      await withClient(o, async (client) => io.stdout(printableJson(await client.getEvent(ref), 2)));
    },
  );

  const runs = program.command('runs').description('look at runs (executions of rules)');
  sourceOptions(
    runs
      .command('ls')
      .description('list runs, newest first')
      .option('--rule <name>', 'only this rule')
      .addOption(new Option('--status <status>', 'only this status').choices(Object.values(RunStatus)))
      .option('--limit <n>', 'how many', integer('limit', 1), 50)
      .option('--cursor <cursor>', 'continue a listing')
      .option('--json', 'one JSON object per line'),
  ).action(async (o) => {
    await withClient(o, async (client) => {
      const page = await fillPage(o.limit, o.cursor, (limit, cursor) =>
        client.listRuns({
          ...(o.rule ? { rule: o.rule } : {}),
          ...(o.status ? { status: o.status } : {}),
          ...(cursor ? { cursor } : {}),
          limit,
        }),
      );
      printPage(page, o.json === true, formatRuns);
    });
  });
  sourceOptions(
    runs
      .command('show')
      .description('show a run with its attempts')
      .argument('<id>')
      .option('--json', 'as JSON'),
  ).action(async (id: string, o) => {
    await withClient(o, async (client) => {
      const run = await client.getRun(id);
      io.stdout(o.json ? printableJson(run, 2) : formatRun(run));
    });
  });

  sourceOptions(
    program
      .command('explain')
      .description('why each rule did or did not fire on an event')
      .argument('<seq-or-id>')
      .option('--json', 'as JSON'),
  ).action(async (ref: string, o) => {
    await withClient(o, async (client) => {
      const explanation = await client.explain(ref);
      io.stdout(o.json ? printableJson(explanation, 2) : formatExplanation(explanation));
    });
  });

  program
    .command('match')
    .description('test an EventBridge pattern against an event (exit 0 match, 1 no match, 2 invalid)')
    .requiredOption('--pattern <json-or-file>', 'the pattern, inline JSON or a file')
    .requiredOption('--event <json-or-file>', 'the event, inline JSON or a file')
    .option('--json', 'print {"match": true|false}')
    .action(async (o) => {
      const pattern = jsonArgument('--pattern', o.pattern);
      const matched = testPattern(pattern, jsonArgument('--event', o.event), defaultEventLimits);
      io.stdout(o.json ? JSON.stringify({ match: matched }) : matched ? 'match' : 'no match');
      exitCode = matched ? ExitCode.ok : ExitCode.failure;
    });

  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return exitCode;
  } catch (error) {
    return report(error, io);
  }
}

function report(error: unknown, io: Io): number {
  if (error instanceof CommanderError) {
    // Commander has already printed its message (or the help/version text).
    return error.exitCode === 0 ? ExitCode.ok : ExitCode.invalid;
  }
  if (error instanceof RulebookError) {
    io.stderr(error.message);
    return ExitCode.invalid;
  }
  if (error instanceof ReflexError || error instanceof RemoteError) {
    // A message may quote what a server or a file holds; its own line breaks stay.
    io.stderr(`error ${printable(error.code)}: ${error.message.split('\n').map(printable).join('\n')}`);
    const status = error instanceof ReflexError ? error.statusCode : error.status;
    return status >= 400 && status < 500 ? ExitCode.invalid : ExitCode.failure;
  }
  io.stderr(`error: ${(error as Error)?.stack ?? String(error)}`);
  return ExitCode.failure;
}
