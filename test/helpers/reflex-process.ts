import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * End-to-end helpers: run the real `./bin/reflex` as a child process, the way a user does from a checkout.
 * Nothing here imports the project's sources, so these tests see only what a user sees: exit codes,
 * stdout, stderr (pino's JSON lines) and the HTTP API.
 */

/** The CLI launcher of this checkout. */
export const reflexBin: string = fileURLToPath(new URL('../../bin/reflex', import.meta.url));

/** How a process ended: an exit code, or the signal that ended it. */
export interface ReflexExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A finished CLI command: its exit code and everything it printed. */
export interface ReflexResult extends ReflexExit {
  stdout: string;
  stderr: string;
}

/** One JSON line of Reflex's log (pino). */
export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** Options of {@link spawnReflex}, {@link startReflex} and {@link runReflex}. */
export interface ReflexProcessOptions {
  /**
   * Environment added to the inherited one. `REFLEX_*` variables of the test runner are never inherited,
   * so a test only sees the ones it sets here.
   */
  env?: Record<string, string>;
  /** @default the checkout's root */
  cwd?: string;
  /** The program and first arguments to run instead of `./bin/reflex`. @default [reflexBin] */
  launcher?: readonly string[];
}

/** A `reflex` child process, with its output captured as it arrives. */
export interface ReflexProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The base URL from the `reflex listening on ...` line; empty until {@link ReflexProcess.ready}. */
  readonly url: string;
  /** Everything written to stdout so far. */
  readonly stdout: string;
  /** Everything written to stderr so far. */
  readonly stderr: string;
  /** The JSON log lines on stderr so far (other stderr lines are skipped). */
  logs(): LogLine[];
  /**
   * Waits for the `reflex listening on http://H:P` line and resolves with `http://H:P`. Rejects, with
   * stderr, when the process exits first or `timeoutMs` passes.
   * @default timeoutMs 15000
   */
  ready(timeoutMs?: number): Promise<string>;
  /**
   * Waits for a log line that `predicate` accepts among those written after the first `from` lines, and
   * resolves with it. Rejects when the process exits first or `timeoutMs` passes.
   * @default from 0, timeoutMs 10000
   */
  waitForLog(
    predicate: (line: LogLine) => boolean,
    options?: { from?: number; timeoutMs?: number },
  ): Promise<LogLine>;
  signal(signal: NodeJS.Signals): void;
  /** Settles when the process has exited. */
  readonly exited: Promise<ReflexExit>;
  /** Whether the process has exited. */
  readonly running: boolean;
  /**
   * Waits for the process to exit; rejects after `timeoutMs` (the process is left running).
   * @default 15000
   */
  waitForExit(timeoutMs?: number): Promise<ReflexExit>;
  /** SIGKILLs the process if it still runs and waits until it is gone. Safe to call more than once. */
  kill(): Promise<ReflexExit>;
}

const live = new Set<ReflexProcess>();
const tempDirs = new Set<string>();

function childEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('REFLEX_')) env[name] = value;
  }
  return { ...env, ...extra };
}

function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what()} (after ${timeoutMs} ms)`)), timeoutMs);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

const listening = /^reflex listening on (http:\/\/\S+)$/m;

/**
 * Spawns `./bin/reflex <args>` without waiting for anything. The process is tracked, so
 * {@link cleanupReflex} ends it even when a test fails half-way.
 *
 * @example
 * const reflex = spawnReflex(['start', rulebook, '--port', '0', '--data', dir]);
 * const url = await reflex.ready();
 */
export function spawnReflex(args: readonly string[], options: ReflexProcessOptions = {}): ReflexProcess {
  const [program, ...first] = options.launcher ?? [reflexBin];
  const child = spawn(program!, [...first, ...args], {
    cwd: options.cwd ?? fileURLToPath(new URL('../..', import.meta.url)),
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let url = '';
  let running = true;
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<ReflexExit>((resolve, reject) => {
    child.once('error', reject);
    // 'close', not 'exit': by then both pipes are read to the end, so no output is missed.
    child.once('close', (code, signal) => {
      running = false;
      live.delete(handle);
      resolve({ code, signal });
    });
  });
  // A test that never awaits `exited` must not see an unhandled rejection from a failed spawn.
  exited.catch(() => {});

  const describe = () => `reflex ${args.join(' ')}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;

  const parseLogs = (): LogLine[] => {
    const lines: LogLine[] = [];
    for (const text of stderr.split('\n')) {
      if (!text.startsWith('{')) continue;
      try {
        const line = JSON.parse(text) as LogLine;
        if (typeof line.level === 'number') lines.push(line);
      } catch {
        // A line still being written, or not a log line: skip it.
      }
    }
    return lines;
  };

  /** Resolves when `found()` gives a value; rejects when the process exits first or time runs out. */
  const waitFor = <T>(found: () => T | undefined, timeoutMs: number, what: string): Promise<T> => {
    const seen = found();
    if (seen !== undefined) return Promise.resolve(seen);
    return withDeadline(
      new Promise<T>((resolve, reject) => {
        const check = () => {
          const value = found();
          if (value === undefined) return;
          stop();
          resolve(value);
        };
        const onClose = () => {
          const value = found();
          stop();
          if (value !== undefined) resolve(value);
          else reject(new Error(`reflex exited before ${what}\n${describe()}`));
        };
        const stop = () => {
          child.stdout!.off('data', check);
          child.stderr!.off('data', check);
          child.off('close', onClose);
        };
        // Listeners added after the capturing ones, so the captured text already holds the new chunk.
        child.stdout!.on('data', check);
        child.stderr!.on('data', check);
        child.once('close', onClose);
        if (!running) onClose();
      }),
      timeoutMs,
      () => `timed out waiting for ${what}\n${describe()}`,
    );
  };

  const handle: ReflexProcess = {
    child,
    pid: child.pid ?? -1,
    get url() {
      return url;
    },
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    get running() {
      return running;
    },
    logs: parseLogs,
    async ready(timeoutMs = 15_000) {
      url = await waitFor(() => listening.exec(stdout)?.[1], timeoutMs, 'the listening line');
      return url;
    },
    waitForLog(predicate, options = {}) {
      const from = options.from ?? 0;
      return waitFor(
        () => parseLogs().slice(from).find(predicate),
        options.timeoutMs ?? 10_000,
        'a matching log line',
      );
    },
    signal(signal) {
      if (running) child.kill(signal);
    },
    exited,
    waitForExit(timeoutMs = 15_000) {
      return withDeadline(exited, timeoutMs, () => `reflex did not exit\n${describe()}`);
    },
    async kill() {
      if (running) child.kill('SIGKILL');
      return exited;
    },
  };
  live.add(handle);
  return handle;
}

/**
 * Spawns `./bin/reflex <args>` (usually `start ... --port 0`) and waits until it listens.
 * Kills the process and rejects, with its output, when it does not get there.
 */
export async function startReflex(
  args: readonly string[],
  options: ReflexProcessOptions & { readyTimeoutMs?: number } = {},
): Promise<ReflexProcess> {
  const reflex = spawnReflex(args, options);
  try {
    await reflex.ready(options.readyTimeoutMs);
  } catch (error) {
    await reflex.kill();
    throw error;
  }
  return reflex;
}

/**
 * Runs a one-shot CLI command (`validate`, `emit`, `events ls`, ...) to its end.
 * @default options.timeoutMs 20000
 * @example
 * const { code, stdout } = await runReflex(['events', 'ls', '--json', '--url', url]);
 */
export async function runReflex(
  args: readonly string[],
  options: ReflexProcessOptions & { timeoutMs?: number } = {},
): Promise<ReflexResult> {
  const reflex = spawnReflex(args, options);
  try {
    const exit = await reflex.waitForExit(options.timeoutMs ?? 20_000);
    return { ...exit, stdout: reflex.stdout, stderr: reflex.stderr };
  } finally {
    await reflex.kill();
  }
}

/** Parses output printed as one JSON object per line (`--json` on `ls`). */
export function jsonLines<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T);
}

/** Makes a temp directory that {@link cleanupReflex} removes. */
export async function makeTempDir(prefix = 'reflex-e2e-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Kills every `reflex` process these helpers started and removes their temp dirs. Call in `afterEach`. */
export async function cleanupReflex(): Promise<void> {
  await Promise.all([...live].map((reflex) => reflex.kill()));
  await Promise.all([...tempDirs].map((dir) => rm(dir, { recursive: true, force: true })));
  tempDirs.clear();
}

/**
 * Polls `check` until it returns something other than undefined/false, and resolves with that; fails
 * after `timeoutMs` with the last value seen. For waiting on things that can be observed, never on time.
 * @default timeoutMs 10000, intervalMs 25
 */
export async function pollUntil<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    last = await check();
    if (last !== undefined && last !== false) return last as T;
    if (Date.now() > deadline) {
      throw new Error(
        `${options.what ?? 'condition'} not met within ${timeoutMs} ms (last: ${JSON.stringify(last)})`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 25));
  }
}

/** GETs a path of Reflex's HTTP API and returns the parsed JSON; throws on a non-2xx answer. */
export async function getJson<T>(baseUrl: string, path: string): Promise<T> {
  const response = await fetch(`${baseUrl}${path}`, { signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

/**
 * Every item of a listing route, following its `next` cursor: a page ends at its `limit` or at about
 * 1 MiB, whichever comes first, so one page of big events is not the whole listing.
 */
export async function getAllItems<T>(baseUrl: string, path: string): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const separator = path.includes('?') ? '&' : '?';
    const page: { items: T[]; next: string | null } = await getJson(
      baseUrl,
      cursor === null ? path : `${path}${separator}cursor=${encodeURIComponent(cursor)}`,
    );
    items.push(...page.items);
    cursor = page.next;
  } while (cursor !== null);
  return items;
}

/** POSTs one structured-mode CloudEvent (or, given an array, a batch) and returns the HTTP status and answer. */
export async function postEvents(
  baseUrl: string,
  events: Record<string, unknown> | ReadonlyArray<Record<string, unknown>>,
): Promise<{ status: number; body: unknown }> {
  const batch = Array.isArray(events);
  const response = await fetch(`${baseUrl}/api/v1/events`, {
    method: 'POST',
    headers: {
      'content-type': batch ? 'application/cloudevents-batch+json' : 'application/cloudevents+json',
    },
    body: JSON.stringify(events),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
}
