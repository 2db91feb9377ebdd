import { closeSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/**
 * Reflex's process environment and who can read it.
 *
 * On Linux any process of the same user can read `/proc/<pid>/environ`, the environment a process was
 * started with, and commands that `exec` steps run are such processes. `bin/reflex` therefore starts
 * Node with only the variables below and hands the whole environment over a pipe (file descriptor
 * `REFLEX_ENV_FD`); {@link restoreEnvironment} puts it back into `process.env`. `/proc/<pid>/environ`
 * keeps showing what the process was started with, so secrets never appear there. (Node has no
 * `execve`, so the launcher is a shell script: its `exec` replaces the shell, keeping the pid that a
 * supervisor watches.)
 */

/**
 * Variables Reflex is started with, because Node or the C library read them at start or they hold no
 * secret by nature; anything else reaches Reflex only through the pipe. Kept in step with bin/reflex.
 */
export const startEnvironment: readonly string[] = Object.freeze([
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'PWD',
  'TMPDIR',
  'TZ',
  'TERM',
  'LANG',
  'LANGUAGE',
  'LC_ALL',
  'LC_CTYPE',
  'LC_COLLATE',
  'LC_MESSAGES',
  'LC_NUMERIC',
  'LC_TIME',
  'LC_MONETARY',
  'NODE_OPTIONS',
  'NODE_ENV',
  'NODE_PATH',
  'NODE_EXTRA_CA_CERTS',
  'NODE_NO_WARNINGS',
  'NODE_V8_COVERAGE',
  'UV_THREADPOOL_SIZE',
  'REFLEX_ENV_FD',
]);

/** Variables a shell adds on its way (`_` is the command it ran); not part of what Reflex was given. */
const shellNoise = new Set(['_', 'SHLVL']);

/**
 * Reads the environment that bin/reflex handed over on `REFLEX_ENV_FD` (NUL-separated `NAME=value`
 * entries) into `env`, closes the descriptor and forgets it. Does nothing when the variable is not set.
 * Throws when the descriptor cannot be read: starting without the environment (and its secrets) would
 * fail later and more obscurely.
 */
export function restoreEnvironment(env: NodeJS.ProcessEnv = process.env): void {
  const fd = env.REFLEX_ENV_FD;
  if (fd === undefined) return;
  delete env.REFLEX_ENV_FD;
  if (!/^\d+$/.test(fd)) throw new Error(`REFLEX_ENV_FD is ${JSON.stringify(fd)}, not a file descriptor`);
  const text = readFileSync(Number(fd), 'utf8');
  closeSync(Number(fd));
  for (const entry of text.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const name = entry.slice(0, eq);
    if (!shellNoise.has(name) && name !== 'REFLEX_ENV_FD') env[name] = entry.slice(eq + 1);
  }
}

/**
 * The names of the variables in Reflex's own `/proc/self/environ` beyond {@link startEnvironment}:
 * what a command run by an `exec` step could read from `/proc/<reflex pid>/environ`. Undefined where
 * there is no `/proc` (not Linux), so nothing can be read that way.
 */
export async function exposedEnvironment(): Promise<string[] | undefined> {
  let text: string;
  try {
    text = await readFile('/proc/self/environ', 'utf8');
  } catch {
    return undefined;
  }
  const names = text
    .split('\0')
    .map((entry) => entry.slice(0, entry.indexOf('=')))
    .filter((name) => name !== '' && !startEnvironment.includes(name) && !shellNoise.has(name));
  return [...new Set(names)].sort();
}
