import { ReflexError, toErrorInfo } from '../core/errors.js';
import {
  type CaseResult,
  describeRun,
  findRuleTestFiles,
  type LoadedRuleTest,
  loadRuleTests,
  type RunCaseOptions,
  runRuleTestCase,
} from '../testing/rule-test.js';
import { rulebookCompilers } from './rulebook-compilers.js';

/** `reflex test`: the arguments and the printing; the rule-test engine is src/testing/rule-test.ts. */

function show(value: unknown): string {
  if (value === undefined) return '(absent)';
  const text = JSON.stringify(value);
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

/** A case's result as lines for a terminal: ✓ or ✗, and for a failure each difference and the runs. */
export function formatCaseResult(result: CaseResult): string[] {
  const lines = [`  ${result.ok ? '✓' : '✗'} ${result.case} (${result.ms}ms)`];
  if (result.ok) return lines;
  for (const failure of result.failures) {
    lines.push(`      ${failure.message}${failure.location ? `  [${failure.location}]` : ''}`);
    if (failure.field === 'runs' || failure.field === 'not') {
      const expected = failure.expected;
      lines.push(
        `        expected: ${Array.isArray(expected) ? (expected.length === 0 ? '(no runs)' : expected.join(', ')) : String(expected)}`,
      );
      const got = failure.got as string[];
      lines.push(`        got:      ${got.length === 0 ? '(no runs)' : got.join(', ')}`);
    } else if ('expected' in failure || 'got' in failure) {
      lines.push(`        expected: ${show(failure.expected)}`);
      lines.push(`        got:      ${show(failure.got)}`);
    }
    if (failure.detail) lines.push(`        ${failure.detail}`);
  }
  lines.push(`      runs of the case:${result.runs.length === 0 ? ' none' : ''}`);
  result.runs.forEach((run, i) => {
    lines.push(`        ${i + 1}. ${describeRun(run)}`);
    if (run.error) lines.push(`           ${run.error.code}: ${run.error.message}`);
  });
  return lines;
}

/** Options of {@link runRuleTests}. */
export interface RuleTestRunOptions {
  /** Test files or folders. @default ['.'] */
  paths?: readonly string[];
  /** One JSON object per case per line, then a summary object. @default false */
  json?: boolean;
  /** Writes one line of output. */
  stdout: (line: string) => void;
  /** Writes one line of diagnostics. */
  stderr: (line: string) => void;
  /** @default 30000 — see {@link RunCaseOptions.timeoutMs} */
  caseTimeoutMs?: number;
}

/** Exit codes of `reflex test`. */
export const RuleTestExit = { passed: 0, failed: 1, invalid: 2 } as const;

/**
 * Finds, checks and runs rule tests, prints the results, and resolves with the exit code: 0 when every
 * case passed, 1 when one failed, 2 when a test file or rulebook is invalid (then nothing runs).
 *
 * @example
 * const code = await runRuleTests({ paths: ['examples'], stdout: console.log, stderr: console.error });
 */
export async function runRuleTests(options: RuleTestRunOptions): Promise<number> {
  const { stdout, stderr } = options;
  const began = performance.now();
  let tests: LoadedRuleTest[];
  try {
    tests = await loadRuleTests(
      await findRuleTestFiles(options.paths?.length ? options.paths : ['.']),
      rulebookCompilers,
    );
  } catch (error) {
    if (!(error instanceof ReflexError) || error.statusCode >= 500) throw error;
    if (options.json) stdout(JSON.stringify({ error: toErrorInfo(error) }));
    stderr(`error ${error.code}: ${error.message}`);
    return RuleTestExit.invalid;
  }
  let passed = 0;
  let failed = 0;
  for (const loaded of tests) {
    if (!options.json) stdout(loaded.test.path);
    for (const testCase of loaded.test.cases) {
      const outcome = await runRuleTestCase(loaded, testCase, {
        ...(options.caseTimeoutMs === undefined ? {} : { timeoutMs: options.caseTimeoutMs }),
      });
      if (outcome.ok) passed++;
      else failed++;
      if (options.json) {
        const { file, case: name, ok, failures, runs, ms } = outcome;
        stdout(JSON.stringify({ file, case: name, ok, failures, runs, ms }));
      } else for (const line of formatCaseResult(outcome)) stdout(line);
    }
  }
  const ms = Math.round(performance.now() - began);
  if (options.json) stdout(JSON.stringify({ summary: { passed, failed, files: tests.length, ms } }));
  else {
    stdout('');
    stdout(`${passed} passed, ${failed} failed (${tests.length} file(s), ${ms}ms)`);
  }
  return failed > 0 ? RuleTestExit.failed : RuleTestExit.passed;
}
