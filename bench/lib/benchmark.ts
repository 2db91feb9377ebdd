/** What a benchmark gets from the runner. */
export interface BenchmarkContext {
  /**
   * A short smoke run (`--quick`): every step once, with durations cut to a few seconds. Its figures
   * are not written to BENCHMARKS.md.
   */
  quick: boolean;
  /** Prints a progress line, prefixed with the benchmark's name. */
  progress(line: string): void;
}

/** What a benchmark hands back: its BENCHMARKS.md section, and the key figures as data. */
export interface BenchmarkResult {
  /** The section's Markdown, starting with its `##` heading. */
  markdown: string;
  /** The figures that matter, for the console and for scripts that compare runs. */
  summary: Record<string, number | string | boolean>;
}

/** One benchmark of `npm run bench`, run in a child process of its own by `bench/run.ts`. */
export interface Benchmark {
  /** The name given on the command line (`npm run bench -- <name>`), also the file name. */
  name: string;
  run(context: BenchmarkContext): Promise<BenchmarkResult>;
}

/** Declares a benchmark; `bench/lib/child.ts` finds it as the module's `benchmark` export. */
export function defineBenchmark(benchmark: Benchmark): Benchmark {
  return benchmark;
}

/** Resolves after `ms` milliseconds (pauses between phases of a benchmark, never for time-based logic). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The date and command line of a run, for the first line of a section. */
export function measuredOn(name: string, quick: boolean): string {
  const date = new Date().toISOString().replace('T', ' ').slice(0, 16);
  return `_Measured ${date} UTC with \`npm run bench -- ${name}${quick ? ' --quick' : ''}\` (or \`npm run bench\`)._`;
}
