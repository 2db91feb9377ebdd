import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRetriable, ReflexError } from '../core/errors.js';
import { createExecAction, execAction } from './exec-action.js';
import { createRecordingContext } from './test-context.js';

const node = process.execPath;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'reflex-exec-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(
  params: unknown,
  context = createRecordingContext(),
  action = execAction,
): Promise<unknown> {
  return action.run(action.parse(params), context);
}

async function failure(
  params: unknown,
  context = createRecordingContext(),
  action = execAction,
): Promise<ReflexError> {
  try {
    await run(params, context, action);
  } catch (error) {
    expect(error).toBeInstanceOf(ReflexError);
    return error as ReflexError;
  }
  throw new Error('expected the action to fail');
}

/** Alive means signalable and not a zombie: orphans here may be left unreaped by PID 1. */
async function isAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

/**
 * Whether `pid` is gone within `withinMs`. A signalled process dies when the kernel next schedules it,
 * which on a loaded machine can be some milliseconds after the kill returned.
 */
async function diesWithin(pid: number, withinMs = 2000): Promise<boolean> {
  const until = Date.now() + withinMs;
  while (await isAlive(pid)) {
    if (Date.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

async function readPids(file: string): Promise<number[]> {
  for (let i = 0; i < 100; i++) {
    const text = await readFile(file, 'utf8').catch(() => '');
    if (text.endsWith('\n')) return text.trim().split(/\s+/).map(Number);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no pids in ${file}`);
}

describe('exec action - running commands', () => {
  it('exec - captures stdout and stderr of a successful command', async () => {
    const output = await run({
      command: [
        node,
        '-e',
        'process.stdout.write("out " + process.argv[1]); process.stderr.write("err")',
        'a b',
      ],
    });
    expect(output).toEqual({ exitCode: 0, stdout: 'out a b', stderr: 'err' });
  });

  it('exec - passes arguments as they are, without a shell', async () => {
    const output = await run({ command: ['echo', '$HOME', '`id`', ';', 'ls'] });
    expect(output).toMatchObject({ stdout: '$HOME `id` ; ls\n' });
  });

  it('exec - a non-zero exit is REFLEX_ERR_ACTION_EXEC_FAILED with the exit code and output tails', async () => {
    const error = await failure({
      command: [
        node,
        '-e',
        'console.log("x".repeat(5000) + "last out"); console.error("boom"); process.exit(3)',
      ],
    });
    expect(error.code).toBe('REFLEX_ERR_ACTION_EXEC_FAILED');
    expect(error.message).toContain('exited with code 3');
    expect(error.message).not.toContain('-e');
    expect(isRetriable(error)).toBe(true);
    expect(error.details).toMatchObject({ exitCode: 3, stderrTail: 'boom\n' });
    expect(String(error.details?.['stdoutTail'])).toMatch(/x+last out\n$/);
    expect(String(error.details?.['stdoutTail']).length).toBe(2048);
  });

  it('exec - a command killed by a signal fails and says which', async () => {
    const error = await failure({ command: ['sh', '-c', 'kill -TERM $$'] });
    expect(error.code).toBe('REFLEX_ERR_ACTION_EXEC_FAILED');
    expect(error.message).toContain('was killed by SIGTERM');
    expect(error.details).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
  });

  it('exec - passes only PATH from the engine environment by default, plus `env`', async () => {
    process.env['REFLEX_TEST_SECRET'] = 'hunter2';
    try {
      const script = 'echo "secret=$REFLEX_TEST_SECRET mine=$MINE"; test -n "$PATH" && echo path';
      expect(await run({ command: ['sh', '-c', script], env: { MINE: 'm1' } })).toMatchObject({
        stdout: 'secret= mine=m1\npath\n',
      });
      expect(
        await run({ command: ['sh', '-c', script], inheritEnv: ['PATH', 'REFLEX_TEST_SECRET'] }),
      ).toMatchObject({ stdout: 'secret=hunter2 mine=\npath\n' });
    } finally {
      delete process.env['REFLEX_TEST_SECRET'];
    }
  });

  it('exec - takes the inherited variables from the environment it was given', async () => {
    const action = createExecAction({ env: { PATH: process.env['PATH'], ONLY_HERE: 'yes' } });
    const output = await run(
      { command: ['sh', '-c', 'echo "$ONLY_HERE"'], inheritEnv: ['PATH', 'ONLY_HERE'] },
      createRecordingContext(),
      action,
    );
    expect(output).toMatchObject({ stdout: 'yes\n' });
  });

  it('exec - runs in `cwd`', async () => {
    expect(await run({ command: ['pwd'], cwd: dir })).toMatchObject({ stdout: `${await realpath(dir)}\n` });
  });

  it('exec - feeds `stdin`', async () => {
    const output = await run({
      command: [
        node,
        '-e',
        'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(s.toUpperCase()))',
      ],
      stdin: 'hello\nworld',
    });
    expect(output).toMatchObject({ stdout: 'HELLO\nWORLD' });
  });

  it('exec - does not fail when the command ignores its stdin', async () => {
    expect(await run({ command: ['true'], stdin: 'x'.repeat(1 << 20) })).toMatchObject({ exitCode: 0 });
  });

  it('exec - keeps at most `maxOutput` bytes of each stream and says which were cut', async () => {
    const output = await run({
      command: [node, '-e', 'process.stdout.write("y".repeat(100000)); process.stderr.write("short")'],
      maxOutput: 1000,
    });
    expect(output).toEqual({
      exitCode: 0,
      stdout: 'y'.repeat(1000),
      stderr: 'short',
      truncated: { stdout: true, stderr: false },
    });
  });

  it('exec - ends when the command exits even if a background child holds its output open', async () => {
    const started = Date.now();
    const output = (await run({ command: ['sh', '-c', 'sleep 30 & echo $!'] })) as { stdout: string };
    expect(Date.now() - started).toBeLessThan(3000);
    const pid = Number(output.stdout.trim());
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGKILL');
  });
});

describe('exec action - timeouts', () => {
  it('exec - a timeout kills the whole process group, grandchildren included', async () => {
    const file = join(dir, 'pids-term');
    const started = Date.now();
    const error = await failure(
      { command: ['sh', '-c', `sleep 100 & echo $$ $! > ${file}; sleep 100`] },
      createRecordingContext({ signal: AbortSignal.timeout(300), timeoutMs: 300 }),
    );
    expect(error.code).toBe('REFLEX_ERR_ACTION_TIMEOUT');
    expect(error.message).toContain('`exec` action did not finish within 300ms');
    expect(Date.now() - started).toBeLessThan(1500);
    const pids = await readPids(file);
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(await diesWithin(pid)).toBe(true);
  });

  it('exec - processes that ignore SIGTERM are killed after the grace period', async () => {
    const file = join(dir, 'pids-kill');
    const action = createExecAction({ killGraceMs: 300 });
    const started = Date.now();
    const error = await failure(
      { command: ['sh', '-c', `trap "" TERM; sleep 100 & echo $$ $! > ${file}; wait`] },
      createRecordingContext({ signal: AbortSignal.timeout(200), timeoutMs: 200 }),
      action,
    );
    const took = Date.now() - started;
    expect(error.code).toBe('REFLEX_ERR_ACTION_TIMEOUT');
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(2000);
    const pids = await readPids(file);
    for (const pid of pids) expect(await diesWithin(pid)).toBe(true);
  });

  it('exec - a signal aborted before the start runs nothing', async () => {
    const file = join(dir, 'never');
    const controller = new AbortController();
    controller.abort();
    const error = await failure(
      { command: ['sh', '-c', `echo ran > ${file}`] },
      createRecordingContext({ signal: controller.signal, timeoutMs: 1 }),
    );
    expect(error.code).toBe('REFLEX_ERR_ACTION_TIMEOUT');
    await expect(readFile(file, 'utf8')).rejects.toThrow(/ENOENT/);
  });
});

describe('exec action - commands that cannot start', () => {
  it('exec - an unknown program is REFLEX_ERR_ACTION_EXEC_NOT_FOUND and not retried', async () => {
    const error = await failure({ command: ['reflex-no-such-program', '--flag'] });
    expect(error.code).toBe('REFLEX_ERR_ACTION_EXEC_NOT_FOUND');
    expect(error.message).toContain('Cannot start `reflex-no-such-program`: no such program');
    expect(isRetriable(error)).toBe(false);
  });

  it('exec - a missing working directory is named as such', async () => {
    const error = await failure({ command: ['pwd'], cwd: join(dir, 'missing') });
    expect(error.code).toBe('REFLEX_ERR_ACTION_EXEC_NOT_FOUND');
    expect(error.message).toContain('the working directory');
  });

  it('exec - looks programs up on the PATH the command gets', async () => {
    const bin = join(dir, 'bin');
    await mkdir(bin);
    await writeFile(join(bin, 'reflex-hello'), '#!/bin/sh\necho hello from bin\n', { mode: 0o755 });
    expect(await run({ command: ['reflex-hello'], env: { PATH: bin } })).toMatchObject({
      stdout: 'hello from bin\n',
    });
    const error = await failure({ command: ['reflex-hello'] });
    expect(error.code).toBe('REFLEX_ERR_ACTION_EXEC_NOT_FOUND');
  });

  it('exec - a file that is not executable cannot start', async () => {
    const file = join(dir, 'not-executable');
    await writeFile(file, '#!/bin/sh\necho no\n', { mode: 0o644 });
    const error = await failure({ command: [file] });
    expect(error.code).toBe('REFLEX_ERR_ACTION_EXEC_NOT_FOUND');
    expect(error.message).toContain('not executable');
  });
});

describe('exec action - parameters', () => {
  const invalid = (params: unknown): string => {
    try {
      execAction.parse(params);
    } catch (error) {
      expect((error as ReflexError).code).toBe('REFLEX_ERR_ACTION_INVALID_PARAMS');
      return (error as ReflexError).message;
    }
    throw new Error('expected invalid parameters');
  };

  it('exec - requires a non-empty argv list', () => {
    expect(invalid({})).toContain('`command` is missing');
    expect(invalid({ command: 'ls -la' })).toContain('`command` is a string');
    expect(invalid({ command: [] })).toContain('`command` is an empty list');
    expect(invalid({ command: [''] })).toContain('`command[0]` is empty');
    expect(invalid({ command: ['ls', { a: 1 }] })).toContain('`command[1]` is an object');
  });

  it('exec - checks env, inheritEnv, stdin and maxOutput', () => {
    expect(invalid({ command: ['ls'], env: { 'A-B': 'x' } })).toContain('"A-B" is not valid');
    expect(invalid({ command: ['ls'], env: ['A=1'] })).toContain('`env` is an array');
    expect(invalid({ command: ['ls'], inheritEnv: 'PATH' })).toContain('`inheritEnv` is not a list');
    expect(invalid({ command: ['ls'], stdin: { a: 1 } })).toContain('`stdin` is an object');
    expect(invalid({ command: ['ls'], maxOutput: -1 })).toContain('`maxOutput` is -1');
  });

  it('exec - normalises what it accepts', () => {
    expect(execAction.parse({ command: ['sleep', 5], env: { N: 1 } })).toEqual({
      command: ['sleep', '5'],
      env: { N: '1' },
      inheritEnv: ['PATH'],
      maxOutput: 65_536,
    });
  });
});

describe('exec action - arguments Node refuses', () => {
  it('exec - a NUL byte in an env value fails at start, not retried', async () => {
    const error = await failure({ command: ['true'], env: { A: 'x\u0000y' } });
    expect(error.code).toBe('REFLEX_ERR_ACTION_EXEC_NOT_FOUND');
    expect(isRetriable(error)).toBe(false);
  });
});
