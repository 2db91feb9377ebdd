import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import Type from 'typebox';
import { ReflexError } from '../core/errors.js';
import type { Action, ActionContext } from '../core/ports/action.js';
import { abortedError } from './deadline.js';
import {
  describeValue,
  description,
  invalidParams,
  optionalText,
  optionalTextMap,
  readObject,
  scalarText,
  TextMap,
} from './params.js';

const kind = 'exec';

/**
 * The `exec` step's parameters as a rulebook writes them (see Action.params); templates may stand for
 * the values typed loosely here.
 */
export const execParamsSchema = Type.Object(
  {
    command: Type.Union([Type.Array(Type.String(), { minItems: 1 }), Type.String()], {
      ...description('argv: the program and its arguments. No shell is involved.'),
    }),
    cwd: Type.Optional(Type.String()),
    env: Type.Optional(TextMap),
    inheritEnv: Type.Optional(
      Type.Array(Type.String(), description('Environment variables passed through. @default ["PATH"]')),
    ),
    stdin: Type.Optional(Type.String()),
    maxOutput: Type.Optional(
      Type.Integer({ minimum: 0, ...description('Bytes kept per stream. @default 65536') }),
    ),
  },
  { additionalProperties: false, ...description('Run a program (argv, no shell).') },
);

/** The `exec` action's parameters once checked. */
export interface ExecParams {
  /** argv: the program, then its arguments. Never run through a shell. */
  command: string[];
  cwd?: string;
  /** Variables set for the command, on top of those inherited. */
  env: Record<string, string>;
  /** Names of the engine's environment variables passed through. */
  inheritEnv: string[];
  stdin?: string;
  /** Bytes kept per stream. */
  maxOutput: number;
}

/** What a successful `exec` step outputs (readable as `steps.<id>.output`). */
export interface ExecOutput {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Present when a stream wrote more than `maxOutput` bytes; the kept text is its beginning. */
  truncated?: { stdout: boolean; stderr: boolean };
}

/** Options of {@link createExecAction}. */
export interface ExecActionOptions {
  /**
   * The environment that `inheritEnv` picks from.
   * @default process.env
   */
  env?: NodeJS.ProcessEnv;
  /**
   * How long a timed-out command's process group has between SIGTERM and SIGKILL, in milliseconds.
   * @default 2000
   */
  killGraceMs?: number;
  /**
   * How long to keep reading output after the command exited, for background processes it left holding
   * its stdout or stderr. Past that the pipes are closed (those processes are left alone).
   * @default 200
   */
  outputLingerMs?: number;
}

const defaultMaxOutput = 65_536;
/** An upper bound, so a rulebook cannot make one step hold gigabytes in memory. */
const maxMaxOutput = 16 * 1024 * 1024;
/** How much of each stream's end goes into a failure's details. */
const tailBytes = 2048;
const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;

function parseCommand(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0) {
    invalidParams(
      kind,
      value === undefined
        ? '`command` is missing'
        : `\`command\` is ${Array.isArray(value) ? 'an empty list' : describeValue(value)}`,
      'give the program and its arguments as a list, e.g. ["systemctl", "restart", "nginx"]; to use a shell, write ["sh", "-c", "..."].',
    );
  }
  return value.map((item, index) => {
    const text = scalarText(item);
    if (text === undefined) {
      invalidParams(
        kind,
        `\`command[${index}]\` is ${describeValue(item)}`,
        'give every argument as a string.',
      );
    }
    if (text.includes('\0')) invalidParams(kind, `\`command[${index}]\` holds a NUL byte`, 'remove it.');
    if (index === 0 && text === '') invalidParams(kind, '`command[0]` is empty', 'name the program to run.');
    return text;
  });
}

/**
 * Checks an `exec` step's rendered parameters.
 * Throws REFLEX_ERR_ACTION_INVALID_PARAMS.
 */
export function parseExecParams(params: unknown): ExecParams {
  const raw = readObject(kind, params);
  const parsed: ExecParams = {
    command: parseCommand(raw['command']),
    env: optionalTextMap(kind, raw, 'env') ?? {},
    inheritEnv: ['PATH'],
    maxOutput: defaultMaxOutput,
  };
  for (const name of Object.keys(parsed.env)) {
    if (!envName.test(name)) {
      invalidParams(
        kind,
        `environment variable name ${JSON.stringify(name)} is not valid`,
        'use letters, digits and _.',
      );
    }
  }
  const inherit = raw['inheritEnv'];
  if (inherit !== undefined) {
    if (!Array.isArray(inherit) || !inherit.every((name) => typeof name === 'string' && envName.test(name))) {
      invalidParams(
        kind,
        '`inheritEnv` is not a list of variable names',
        'list names like ["PATH", "HOME"].',
      );
    }
    parsed.inheritEnv = inherit as string[];
  }
  const cwd = optionalText(kind, raw, 'cwd');
  if (cwd !== undefined) parsed.cwd = cwd;
  const stdin = raw['stdin'];
  if (stdin !== undefined) {
    if (typeof stdin !== 'string') {
      invalidParams(
        kind,
        `\`stdin\` is ${describeValue(stdin)}`,
        'give `stdin` as a string (use toJson() for data).',
      );
    }
    parsed.stdin = stdin;
  }
  const maxOutput = raw['maxOutput'];
  if (maxOutput !== undefined) {
    if (
      typeof maxOutput !== 'number' ||
      !Number.isInteger(maxOutput) ||
      maxOutput < 0 ||
      maxOutput > maxMaxOutput
    ) {
      invalidParams(
        kind,
        `\`maxOutput\` is ${JSON.stringify(maxOutput)}`,
        `give a number of bytes from 0 to ${maxMaxOutput}.`,
      );
    }
    parsed.maxOutput = maxOutput;
  }
  return parsed;
}

/** Keeps the first `max` bytes of a stream, and its last few for failure reports. */
class OutputCapture {
  private readonly head: Buffer[] = [];
  private headSize = 0;
  private total = 0;
  private tail: Buffer = Buffer.alloc(0);

  constructor(private readonly max: number) {}

  get truncated(): boolean {
    return this.total > this.max;
  }

  add(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.headSize < this.max) {
      const part = chunk.subarray(0, this.max - this.headSize);
      this.head.push(part);
      this.headSize += part.length;
    }
    this.tail = Buffer.concat([this.tail, chunk]);
    if (this.tail.length > tailBytes) this.tail = this.tail.subarray(this.tail.length - tailBytes);
  }

  text(): string {
    return Buffer.concat(this.head).toString('utf8');
  }

  tailText(): string {
    return this.tail.toString('utf8');
  }
}

/** Sends `signal` to every process of the group led by `pid`. False when the group is gone. */
function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a process of the group is still running. A group whose members are all zombies counts as
 * gone: where PID 1 does not reap orphans (containers without an init), killed grandchildren stay
 * zombies forever and would otherwise hold up every timeout for the whole grace period.
 */
async function groupRunning(pgid: number): Promise<boolean> {
  if (!signalGroup(pgid, 0)) return false;
  if (process.platform !== 'linux') return true;
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return true;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = await readFile(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses, so read after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') return true;
  }
  return false;
}

/** SIGTERM to the group, SIGKILL after `graceMs` to whatever is left of it; resolves once it is done. */
async function killGroup(pid: number, graceMs: number): Promise<void> {
  if (!signalGroup(pid, 'SIGTERM')) return;
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (!(await groupRunning(pid))) return;
  }
  signalGroup(pid, 'SIGKILL');
}

function pick(env: NodeJS.ProcessEnv, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const value = env[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

async function notFoundReason(error: NodeJS.ErrnoException, cwd: string | undefined): Promise<string> {
  // spawn reports a missing working directory as ENOENT on the program: tell the two apart.
  if (error.code === 'ENOENT' && cwd !== undefined) {
    const isDir = await stat(cwd).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!isDir) return `the working directory \`${cwd}\` does not exist`;
  }
  if (error.code === 'ENOENT') return 'no such program';
  if (error.code === 'EACCES') return 'it is not executable (permission denied)';
  return error.message;
}

/**
 * Creates the `exec` action: runs a program with an argv list, never through a shell, in a process group
 * of its own so that a timeout ends the program and everything it started.
 *
 * Parameters: `{ command: string[], cwd?, env?, inheritEnv? (default ["PATH"]), stdin?, maxOutput? (bytes
 * per stream, default 65536) }`. Only the variables named in `inheritEnv` pass from the engine's
 * environment, so its secrets do not leak into commands.
 *
 * Failures: a non-zero exit is REFLEX_ERR_ACTION_EXEC_FAILED (retried; details carry the exit code and the
 * end of each stream); a program that cannot be started is REFLEX_ERR_ACTION_EXEC_NOT_FOUND (not retried);
 * the step's deadline is REFLEX_ERR_ACTION_TIMEOUT, after the group got SIGTERM and, past the grace,
 * SIGKILL.
 *
 * @example
 * const exec = createExecAction({ killGraceMs: 500 });
 * await exec.run(exec.parse({ command: ['systemctl', 'restart', 'nginx'] }), context);
 */
export function createExecAction(options: ExecActionOptions = {}): Action<ExecParams> {
  const killGraceMs = options.killGraceMs ?? 2000;
  const outputLingerMs = options.outputLingerMs ?? 200;

  return {
    kind,
    params: execParamsSchema,
    templates: { secrets: true },
    parse: parseExecParams,
    async run(params: ExecParams, context: ActionContext): Promise<ExecOutput> {
      if (context.signal.aborted) throw abortedError(kind, context);
      const env = { ...pick(options.env ?? process.env, params.inheritEnv), ...params.env };
      const [program, ...args] = params.command as [string, ...string[]];
      let child: ChildProcess;
      try {
        child = spawn(program, args, {
          cwd: params.cwd,
          env,
          shell: false,
          // Its own process group, so a timeout can signal the program and all it started at once.
          detached: true,
          stdio: [params.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
          windowsHide: true,
        });
      } catch (error) {
        // Synchronous failures are arguments Node refuses (a NUL byte in `cwd` or an `env` value, say):
        // the same parameters fail the same way on every attempt.
        const reason = error instanceof Error ? error.message : String(error);
        throw new ReflexError(
          'REFLEX_ERR_ACTION_EXEC_NOT_FOUND',
          { command: program, reason },
          { cause: error },
        );
      }
      const stdout = new OutputCapture(params.maxOutput);
      const stderr = new OutputCapture(params.maxOutput);
      child.stdout!.on('data', (chunk: Buffer) => stdout.add(chunk));
      child.stderr!.on('data', (chunk: Buffer) => stderr.add(chunk));
      if (child.stdin) {
        // A command that exits without reading its input closes the pipe: that is not a failure.
        child.stdin.on('error', () => {});
        child.stdin.end(params.stdin);
      }

      type Ending =
        | { type: 'exit'; code: number | null; signal: NodeJS.Signals | null }
        | { type: 'error'; error: NodeJS.ErrnoException }
        | { type: 'abort' };
      const ended = await new Promise<Ending>((resolve) => {
        const settle = (ending: Ending): void => {
          context.signal.removeEventListener('abort', onAbort);
          resolve(ending);
        };
        const onAbort = (): void => settle({ type: 'abort' });
        context.signal.addEventListener('abort', onAbort, { once: true });
        // `on`, not `once`: a later 'error' with no listener would crash the engine.
        child.on('error', (error: NodeJS.ErrnoException) => settle({ type: 'error', error }));
        child.once('exit', (code, signal) => settle({ type: 'exit', code, signal }));
      });

      if (ended.type === 'abort') {
        if (child.pid !== undefined) await killGroup(child.pid, killGraceMs);
        child.stdout!.destroy();
        child.stderr!.destroy();
        throw abortedError(kind, context);
      }
      if (ended.type === 'error') {
        const reason = await notFoundReason(ended.error, params.cwd);
        throw new ReflexError(
          'REFLEX_ERR_ACTION_EXEC_NOT_FOUND',
          { command: program, reason },
          { cause: ended.error, details: { errno: ended.error.code } },
        );
      }

      await drain(child, outputLingerMs);
      const output: ExecOutput = { exitCode: ended.code ?? -1, stdout: stdout.text(), stderr: stderr.text() };
      if (stdout.truncated || stderr.truncated) {
        output.truncated = { stdout: stdout.truncated, stderr: stderr.truncated };
      }
      if (ended.code !== 0) {
        // The program name only: arguments are rendered from events and may hold secrets.
        const reason =
          ended.signal !== null ? `was killed by ${ended.signal}` : `exited with code ${ended.code}`;
        const details: Record<string, unknown> = {
          exitCode: ended.code,
          stdoutTail: stdout.tailText(),
          stderrTail: stderr.tailText(),
        };
        if (ended.signal !== null) details['signal'] = ended.signal;
        throw new ReflexError('REFLEX_ERR_ACTION_EXEC_FAILED', { command: program, reason }, { details });
      }
      return output;
    },
  };
}

/**
 * Waits for the output pipes to close after the program exited. A background process it started may hold
 * them open; past `lingerMs` they are closed on our side, so the step ends when the program did.
 */
async function drain(child: ChildProcess, lingerMs: number): Promise<void> {
  const streams = [child.stdout!, child.stderr!];
  const closed = Promise.all(
    streams.map((stream) =>
      stream.closed || stream.destroyed
        ? undefined
        : new Promise<void>((resolve) => {
            stream.once('close', () => resolve());
          }),
    ),
  );
  let timer: NodeJS.Timeout | undefined;
  const lingered = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, lingerMs);
  });
  await Promise.race([closed, lingered]);
  clearTimeout(timer);
  for (const stream of streams) stream.destroy();
}

/** The built-in `exec` action, inheriting from `process.env`. */
export const execAction: Action<ExecParams> = createExecAction();
