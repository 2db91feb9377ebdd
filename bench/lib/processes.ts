import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout the benchmarks run from. */
export const repoRoot: string = fileURLToPath(new URL('../../', import.meta.url));

/** The CLI launcher of this checkout (runs the TypeScript sources through tsx). */
export const reflexBin: string = join(repoRoot, 'bin', 'reflex');

/** A server the bench started as a child process. */
export interface ServerProcess {
  /** A label for progress lines and errors, e.g. `reflex` or `bare`. */
  readonly name: string;
  readonly pid: number;
  /** `http://H:P` from the server's `... listening on http://H:P` line. */
  readonly url: string;
  readonly running: boolean;
  /** Settles with the exit code (or null when ended by a signal) once the process is gone. */
  readonly exited: Promise<number | null>;
  /** The last few kilobytes the process wrote to stderr, for error messages. */
  stderrTail(): string;
  /**
   * SIGTERM, then SIGKILL when the process is still there after `timeoutMs`. Safe to call twice.
   * @default timeoutMs 20000
   */
  stop(timeoutMs?: number): Promise<void>;
}

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** Added to the environment; `REFLEX_*` variables of the bench's own environment are never passed on. */
  env?: Record<string, string>;
  /** @default 20000 */
  readyTimeoutMs?: number;
  /** The program run with `args`. @default this Node.js (`process.execPath`) */
  program?: string;
}

/**
 * Spawns `node <args>` (or `<program> <args>`) and resolves once it prints a line containing `listening on http://H:P`.
 * Rejects with the process's stderr when it exits first or does not get ready in time.
 */
export function startServer(
  name: string,
  args: string[],
  options: StartServerOptions = {},
): Promise<ServerProcess> {
  const env: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('REFLEX_')) env[key] = value;
  Object.assign(env, options.env);
  const child = spawn(options.program ?? process.execPath, args, {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  let stdout = '';
  let url = '';
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    });
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8192);
  });

  const stop = async (timeoutMs = 20_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  };

  return new Promise<ServerProcess>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`${name} did not get ready within ${options.readyTimeoutMs ?? 20_000} ms:\n${stderr}`),
      );
    }, options.readyTimeoutMs ?? 20_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (url) return;
      stdout += chunk;
      const found = /listening on (http:\/\/\S+)/.exec(stdout);
      if (!found) return;
      url = found[1]!;
      clearTimeout(timer);
      resolve({
        name,
        pid: child.pid!,
        url,
        get running() {
          return child.exitCode === null && child.signalCode === null;
        },
        exited,
        stderrTail: () => stderr,
        stop,
      });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      if (!url) reject(new Error(`${name} exited (code ${code}) before it was ready:\n${stderr}`));
    });
  });
}

/** Options of {@link startReflex}. */
export interface ReflexOptions {
  /** Path of the rulebook file to load. */
  rulebook: string;
  /** Data directory (the SQLite database goes here). */
  dataDir: string;
  /** @default 'full' */
  durability?: 'full' | 'normal';
  /** More `reflex start` options, e.g. `['--concurrency', '256']`. */
  extraArgs?: readonly string[];
  /** Added to Reflex's environment, e.g. `{ NODE_OPTIONS: '--cpu-prof' }` (bin/reflex passes it on). */
  env?: Record<string, string>;
}

/**
 * Starts `./bin/reflex start <rulebook> --data DIR --port 0 --log-level warn --durability D`, the way a user
 * would.
 */
export function startReflex(options: ReflexOptions): Promise<ServerProcess> {
  // bin/reflex is a shell script that execs Node (same pid), so it is run as a program, not by Node.
  return startServer(
    'reflex',
    [
      'start',
      options.rulebook,
      '--data',
      options.dataDir,
      '--port',
      '0',
      '--log-level',
      'warn',
      '--durability',
      options.durability ?? 'full',
      ...(options.extraArgs ?? []),
    ],
    {
      program: reflexBin,
      // Reflex compiles its TypeScript through tsx as it starts: on a busy machine that alone took
      // over 20 s (2026-12-06, load average 14), and the bench then died instead of measuring.
      readyTimeoutMs: 60_000,
      ...(options.env ? { env: options.env } : {}),
    },
  );
}

/** Starts `bench/servers/bare-server.ts`, the bare `node:http` peer. */
export function startBareServer(): Promise<ServerProcess> {
  return startServer('bare', ['--import', 'tsx', join(repoRoot, 'bench', 'servers', 'bare-server.ts')]);
}

/** Starts `bench/servers/action-target.ts`, the server Reflex's http action calls. */
export function startActionTarget(): Promise<ServerProcess> {
  return startServer('target', ['--import', 'tsx', join(repoRoot, 'bench', 'servers', 'action-target.ts')]);
}

/** A new directory under the system's temp dir; removed by {@link cleanup}. */
export async function createTempDir(label: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `reflex-bench-${label}-`));
  tempDirs.add(dir);
  return dir;
}

/** Removes a directory made by {@link createTempDir} now rather than at the end. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Writes `text` to `name` inside a new temp dir and returns the file's path. */
export async function writeTempFile(name: string, text: string): Promise<string> {
  const dir = await createTempDir('files');
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** Stops every child still running (SIGTERM, then SIGKILL) and removes every temp dir made here. */
export async function cleanup(): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    }),
  );
  removeTempDirs();
}

function removeTempDirs(): void {
  for (const dir of tempDirs) {
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  }
}

/**
 * Makes sure nothing outlives the bench: on SIGINT/SIGTERM children are stopped and temp dirs removed
 * before exiting; on a plain exit (including an uncaught error) children are SIGKILLed synchronously.
 */
export function cleanupOnExit(): void {
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping servers and removing temp dirs\n`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', () => {
    for (const child of children) child.kill('SIGKILL');
    removeTempDirs();
  });
}

/** Memory of a process from `/proc/<pid>/status`, in bytes. */
export interface ProcessMemory {
  /** VmRSS: resident now. */
  rss: number;
  /** VmHWM: the highest resident size so far. */
  peakRss: number;
}

/** Reads VmRSS and VmHWM of `pid` (Linux). */
export function readMemory(pid: number): ProcessMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => {
    const found = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!found) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(found[1]) * 1024;
  };
  return { rss: kib('VmRSS'), peakRss: kib('VmHWM') };
}

let clockTicks: number | undefined;

/** CPU time (user + system) `pid` has used so far, in seconds, from `/proc/<pid>/stat`. */
export function readCpuSeconds(pid: number): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/** CPU time all processes of the machine have used so far, in seconds (the `cpu` line of `/proc/stat`). */
export function readMachineCpuSeconds(): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  // user nice system idle iowait irq softirq steal ...: everything but idle and iowait is work.
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return (
    ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / clockTicks
  );
}

/** CPU used during a measured window, in percent of one core (200 % is both cores of a two-core machine). */
export interface CpuShares {
  /** The server processes measured (summed). */
  server: number;
  /** The bench process itself: the load generator. */
  generator: number;
  /** Everything else on the machine: other tenants' work, which disturbs the figures. */
  other: number;
}

/**
 * Measures the CPU the servers `pids`, the bench itself and everything else on the machine use between
 * `createCpuMeter` and `stop()`.
 */
export function createCpuMeter(...pids: number[]): { stop(): CpuShares } {
  const startedAt = process.hrtime.bigint();
  const serverStart = pids.map(readCpuSeconds);
  const machineStart = readMachineCpuSeconds();
  const selfStart = process.cpuUsage();
  return {
    stop() {
      const wall = Number(process.hrtime.bigint() - startedAt) / 1e9;
      const self = process.cpuUsage(selfStart);
      const server = pids.reduce((sum, pid, i) => sum + readCpuSeconds(pid) - serverStart[i]!, 0);
      const generator = (self.user + self.system) / 1e6;
      const machine = readMachineCpuSeconds() - machineStart;
      const percent = (seconds: number) => (seconds / wall) * 100;
      return {
        server: percent(server),
        generator: percent(generator),
        other: Math.max(0, percent(machine - server - generator)),
      };
    },
  };
}
