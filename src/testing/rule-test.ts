import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtinActions, createActionRegistry } from '../actions/registry.js';
import { formatDuration } from '../core/duration.js';
import { type ErrorInfo, NonRetriableError, ReflexError } from '../core/errors.js';
import type { CloudEvent } from '../core/event.js';
import type { Action } from '../core/ports/action.js';
import { createTestClock, type TestClock } from '../core/ports/clock.js';
import {
  compileRulebookFiles,
  type RulebookCompiler,
  RulebookError,
  type RulebookFile,
  type RulebookProblem,
} from '../core/ports/rulebook-compiler.js';
import type { Run, RunStatus } from '../core/ports/store.js';
import type { Rule, Rulebook } from '../core/rule.js';
import type { Secrets } from '../core/secrets.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { readRulebookFiles } from '../rulebook/discovery.js';
import {
  type CaseExpectation,
  outcomeKey,
  parseRuleTest,
  type RuleTest,
  type RuleTestCase,
  RuleTestError,
  type RunExpectation,
  type ScriptedOutcome,
  scriptedOutcome,
  stepOf,
} from '../rulebook/rule-test-schema.js';
import { readYamlFile } from '../rulebook/yaml-source.js';
import { createSqliteStore, type SqliteStore } from '../store/index.js';

/**
 * The rule-test engine behind `reflex test`: finds and loads rule tests (`*.test.yaml` beside
 * rulebooks), runs each case and checks it. Each case gets a fresh engine on a temporary SQLite store
 * and a test clock, so no real time passes; actions that reach outside (`http`, `exec`, `log`, ...) are
 * recorded instead of run, while `emit` and `fact` act for real because rules react to what they do.
 * The CLI (src/cli/rule-test.ts) handles the arguments and prints. See docs/testing.md.
 */

const testFileName = /\.test\.ya?ml$/i;

/** The kinds that run for real in a test: they act inside Reflex, and rules depend on what they do. */
export const realActionKinds: ReadonlySet<string> = new Set(['emit', 'fact']);

/** One action call a test recorded: the step's parameters as rendered from its templates. */
export interface RecordedCall {
  runId: string;
  stepId: string;
  kind: string;
  attempt: number;
  params: unknown;
}

/** What a recorded (not run) action answers, so later steps can read `steps.<id>.output`. */
function cannedOutput(kind: string, parsed: unknown): unknown {
  switch (kind) {
    case 'http':
      return { status: 200, headers: {}, body: null };
    case 'exec':
      return { exitCode: 0, stdout: '', stderr: '' };
    case 'log':
      return { message: (parsed as { message: string }).message };
    default:
      return null;
  }
}

/**
 * Rule tests run offline and must not need real secrets: `${{ secrets.NAME }}` takes the stand-in the
 * file's `secrets` gives, else renders as `<secret:NAME>`, which `params` expectations can name.
 */
export function standInSecrets(given: Readonly<Record<string, string>>): Secrets {
  return { get: (name) => (Object.hasOwn(given, name) ? given[name] : `<secret:${name}>`) };
}

/**
 * Wraps actions for a test: each checks its parameters exactly as the real one does, records them as
 * rendered, and then does what the case scripted for that attempt (fail, or answer an output), or else
 * runs for real (the kinds in `real`) or answers a canned success.
 *
 * @param calls where calls are recorded, in the order they happen
 * @param actions the actions to wrap; @default builtinActions
 * @param real the kinds that run for real; @default {@link realActionKinds}
 * @param outcomes scripted attempts by {@link outcomeKey}; @default none
 */
export function createRecordingActions(
  calls: RecordedCall[],
  actions: readonly Action[] = builtinActions,
  real: ReadonlySet<string> = realActionKinds,
  outcomes: ReadonlyMap<string, readonly ScriptedOutcome[]> = new Map(),
): Action[] {
  return actions.map(
    (action): Action<{ rendered: unknown; parsed: unknown }> => ({
      kind: action.kind,
      params: action.params,
      ...(action.templates === undefined ? {} : { templates: action.templates }),
      parse: (params) => ({ rendered: params, parsed: action.parse(params) }),
      async run(params, context) {
        calls.push({
          runId: context.runId,
          stepId: context.stepId,
          kind: action.kind,
          attempt: context.attempt,
          params: params.rendered,
        });
        const scripted = scriptedOutcome(
          outcomes.get(outcomeKey(context.rule, context.stepId)),
          context.attempt,
        );
        if (scripted?.kind === 'output') return scripted.output;
        if (scripted?.kind === 'fail') {
          const failure = new ReflexError('REFLEX_ERR_RULETEST_SIMULATED_FAILURE', {
            step: context.stepId,
            reason: scripted.message,
          });
          if (!scripted.retry) {
            throw new NonRetriableError(failure.message, { code: failure.code, cause: failure });
          }
          throw failure;
        }
        return real.has(action.kind)
          ? action.run(params.parsed, context)
          : cannedOutput(action.kind, params.parsed);
      },
    }),
  ) as Action[];
}

/**
 * The rule test files at `paths`: a file is taken as it is; a folder stands for every `*.test.yaml` /
 * `*.test.yml` below it, leaving out hidden entries and `node_modules`. Sorted by path, no repeats.
 * Throws REFLEX_ERR_RULETEST_NOT_FOUND when a path does not exist or holds no tests.
 */
export async function findRuleTestFiles(paths: readonly string[]): Promise<string[]> {
  const found = new Set<string>();
  const visit = async (path: string, explicit: boolean): Promise<number> => {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(path);
    } catch {
      throw new ReflexError('REFLEX_ERR_RULETEST_NOT_FOUND', { path });
    }
    if (!info.isDirectory()) {
      if (!explicit && !testFileName.test(path)) return 0;
      found.add(path);
      return 1;
    }
    let count = 0;
    let names: string[];
    try {
      names = await readdir(path);
    } catch {
      // A folder this user may not list holds no test it can run.
      throw new ReflexError('REFLEX_ERR_RULETEST_NOT_FOUND', { path });
    }
    const entries = names.filter((n) => !n.startsWith('.') && n !== 'node_modules').sort();
    for (const name of entries) count += await visit(join(path, name), false);
    return count;
  };
  for (const path of paths) {
    if ((await visit(path, true)) === 0) throw new ReflexError('REFLEX_ERR_RULETEST_NOT_FOUND', { path });
  }
  return [...found].sort();
}

/** A test file with everything its cases need to run. */
export interface LoadedRuleTest {
  test: RuleTest;
  /** The rulebook files under test, as read. */
  files: RulebookFile[];
  rulebook: Rulebook;
  /** The front ends that compiled the rulebook; each case's engine compiles it with them again. */
  compilers: readonly RulebookCompiler[];
}

/**
 * Reads, checks and compiles test files and the rulebooks they name, with `compilers` (the front ends,
 * as the engine is given them). Nothing runs when anything is wrong: a {@link RuleTestError} lists
 * every problem found, in test files and rulebooks alike.
 */
export async function loadRuleTests(
  paths: readonly string[],
  compilers: readonly RulebookCompiler[],
): Promise<LoadedRuleTest[]> {
  const problems: RulebookProblem[] = [];
  const loaded: LoadedRuleTest[] = [];
  const registry = createActionRegistry(createRecordingActions([]));
  // Test files beside one rulebook share it: read and compile it once.
  const rulebooks = new Map<string, { files: RulebookFile[]; rulebook: Rulebook } | undefined>();
  const seenRulebookProblems = new Set<string>();
  for (const path of paths) {
    let parsed: ReturnType<typeof parseRuleTest>;
    const read = await readYamlFile(path);
    if (!('content' in read)) {
      problems.push({ file: path, line: 1, column: 1, message: read.problem, excerpt: '' });
      continue;
    }
    try {
      parsed = parseRuleTest({ path, content: read.content });
    } catch (error) {
      if (!(error instanceof RuleTestError)) throw error;
      problems.push(...error.problems);
      continue;
    }
    const key = JSON.stringify(parsed.rulebooks);
    if (!rulebooks.has(key)) {
      try {
        const files = await readRulebookFiles(parsed.rulebooks);
        rulebooks.set(key, {
          files,
          rulebook: compileRulebookFiles(compilers, files, { actions: registry }),
        });
      } catch (error) {
        rulebooks.set(key, undefined);
        if (error instanceof RulebookError) {
          for (const problem of error.problems) {
            const id = `${problem.file}:${problem.line}:${problem.column}:${problem.message}`;
            if (!seenRulebookProblems.has(id)) problems.push(problem);
            seenRulebookProblems.add(id);
          }
        } else if (error instanceof ReflexError) {
          problems.push(parsed.problem(['rulebook'], error.message));
        } else throw error;
      }
    }
    const under = rulebooks.get(key);
    if (!under) continue;
    try {
      loaded.push({ test: parsed.compile(under.rulebook), ...under, compilers });
    } catch (error) {
      if (!(error instanceof RuleTestError)) throw error;
      problems.push(...error.problems);
    }
  }
  if (problems.length > 0) throw new RuleTestError(problems);
  return loaded;
}

/** One step of a run as a test saw it: the parameters it was called with, and how it ended. */
export interface RecordedStep {
  id: string;
  kind: string;
  status: 'succeeded' | 'failed';
  attempts: number;
  /** The rendered parameters of the last attempt; absent when they could not be rendered or checked. */
  params?: unknown;
  output?: unknown;
  error?: ErrorInfo;
}

/** A run a case produced, in creation order. */
export interface RecordedRun {
  rule: string;
  status: RunStatus;
  /** Milliseconds from the start when the run was created. */
  at: number;
  /** The run's `event` (for a correlation, the event it fired on; for an absence, the `after` event). */
  event: CloudEvent | null;
  /** The log event that caused the run (a `reflex.timer` event for time-based firings). */
  trigger: { type: string; id: string; source: string };
  /** The kinds of the steps that ran, in order. */
  actions: string[];
  steps: RecordedStep[];
  error?: ErrorInfo;
}

/** One difference between what a case expects and what happened. */
export interface CaseFailure {
  /** What differs, in a few words: which run, which step, which field. */
  message: string;
  /** Where the expectation is written (`file:line:column`). */
  location?: string;
  rule?: string;
  /** The step, as `<id> (<kind>)`. */
  step?: string;
  /** The differing field, e.g. `params.block.json.ip`. */
  field?: string;
  expected?: unknown;
  /** Absent when the field is absent. */
  got?: unknown;
  /** More about it, e.g. the error of a failed run. */
  detail?: string;
}

/** How one case went. */
export interface CaseResult {
  file: string;
  case: string;
  ok: boolean;
  failures: CaseFailure[];
  runs: RecordedRun[];
  /** Facts after the case. */
  facts: Record<string, unknown>;
  /** Real time the case took. */
  ms: number;
}

/** Options of {@link runRuleTestCase}. */
export interface RunCaseOptions {
  /**
   * Real time a case may take before it is failed (a rule that never settles, say).
   * @default 30000
   */
  timeoutMs?: number;
}

/**
 * Runs one case on a fresh engine (temporary SQLite store, removed afterwards; test clock at the file's
 * start): sets the facts, sends each event at its time and lets the engine settle, lets time run to
 * `until` so timers fire, and checks the expectation.
 */
export async function runRuleTestCase(
  loaded: LoadedRuleTest,
  testCase: RuleTestCase,
  options: RunCaseOptions = {},
): Promise<CaseResult> {
  const began = performance.now();
  const { test } = loaded;
  const dir = await mkdtemp(join(tmpdir(), 'reflex-test-'));
  const clock = createTestClock(test.start);
  const calls: RecordedCall[] = [];
  let store: SqliteStore | undefined;
  let engine: Engine | undefined;
  try {
    store = await createSqliteStore({ dir, durability: 'normal' });
    engine = await createEngine({
      store,
      clock,
      actions: createActionRegistry(
        createRecordingActions(calls, builtinActions, realActionKinds, testCase.outcomes),
      ),
      compilers: loaded.compilers,
      random: () => 0.5,
      secrets: standInSecrets(testCase.secrets),
    });
    const drive = createDriver(engine, store, clock, options.timeoutMs ?? 30_000);
    // Facts first, under an empty rulebook: they are there before the case, not news its rules react to.
    await engine.start();
    for (const [name, value] of Object.entries(testCase.facts)) await engine.facts.set(name, value);
    await drive.settle();
    await engine.loadRulebook(loaded.files);
    for (const { at, event } of testCase.events) {
      await drive.advanceTo(test.start + at);
      await engine.ingest.append([event]);
      await drive.settle();
    }
    await drive.advanceTo(test.start + testCase.until);
    const runs = await recordRuns(store, calls, test.start);
    const facts = { ...engine.facts.snapshot() };
    const failures = checkCase(testCase.expect, runs, facts, loaded.rulebook);
    return result(loaded, testCase, failures, runs, facts, began);
  } catch (error) {
    const failure: CaseFailure =
      error instanceof CaseTimeout
        ? { message: error.message }
        : { message: `the case could not run: ${(error as Error)?.message ?? String(error)}` };
    return result(loaded, testCase, [failure], [], {}, began);
  } finally {
    await (engine ? engine.close() : store?.close())?.catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

function result(
  loaded: LoadedRuleTest,
  testCase: RuleTestCase,
  failures: CaseFailure[],
  runs: RecordedRun[],
  facts: Record<string, unknown>,
  began: number,
): CaseResult {
  return {
    file: loaded.test.path,
    case: testCase.name,
    ok: failures.length === 0,
    failures,
    runs,
    facts,
    ms: Math.round(performance.now() - began),
  };
}

class CaseTimeout extends Error {}

/** Moves a test clock the way time would pass, waiting for the engine at every point where work falls due. */
function createDriver(engine: Engine, store: SqliteStore, clock: TestClock, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  const settle = async () => {
    // Callbacks a component scheduled for "now" run only when a test clock moves; nudge it while waiting.
    const nudge = setInterval(() => clock.set(clock.now()), 5);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        engine.settled(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new CaseTimeout(
                  `the engine did not settle within ${formatDuration(timeoutMs)} of real time (a rule that keeps firing on its own outcomes?)`,
                ),
              ),
            Math.max(0, deadline - Date.now()),
          );
        }),
      ]);
    } finally {
      clearInterval(nudge);
      clearTimeout(timer);
    }
  };
  return {
    settle,
    /**
     * Moves time to `target`, stopping at every timer and retry that falls due on the way, so each
     * happens at its own time rather than all at once at the end.
     */
    async advanceTo(target: number) {
      for (;;) {
        const [timerDue, runDue] = await Promise.all([store.nextTimerDueAt(), store.nextRunDueAt()]);
        const due = [timerDue, runDue].filter(
          (t): t is number => t !== undefined && t > clock.now() && t <= target,
        );
        if (due.length === 0) break;
        clock.set(Math.min(...due));
        await settle();
      }
      if (target > clock.now()) clock.set(target);
      await settle();
    },
  };
}

async function recordRuns(
  store: SqliteStore,
  calls: readonly RecordedCall[],
  start: number,
): Promise<RecordedRun[]> {
  const runs: Run[] = [];
  for (let before: string | undefined; ; ) {
    const page = await store.listRuns({ limit: 1000, ...(before ? { before } : {}) });
    runs.push(...page);
    if (page.length < 1000) break;
    before = page[page.length - 1]!.id;
  }
  runs.reverse();
  const params = new Map<string, unknown>();
  for (const call of calls) params.set(`${call.runId}:${call.stepId}:${call.attempt}`, call.params);
  const recorded: RecordedRun[] = [];
  for (const run of runs) {
    const detail = await store.getRun(run.id);
    const event = (await store.getEvent(run.context.event))?.event ?? null;
    // By step index; the last attempt of a step says how it ended.
    const byStep = new Map<number, RecordedStep>();
    for (const attempt of detail?.attempts ?? []) {
      const step: RecordedStep = {
        id: attempt.stepId,
        kind: attempt.action,
        status: attempt.status,
        attempts: Math.max(attempt.attempt, byStep.get(attempt.step)?.attempts ?? 0),
      };
      if (step.attempts !== attempt.attempt) continue;
      const key = `${run.id}:${attempt.stepId}:${attempt.attempt}`;
      if (params.has(key)) step.params = params.get(key);
      if (attempt.output !== undefined) step.output = attempt.output;
      if (attempt.error) step.error = attempt.error;
      byStep.set(attempt.step, step);
    }
    const steps = [...byStep.entries()].sort(([a], [b]) => a - b).map(([, step]) => step);
    const entry: RecordedRun = {
      rule: run.rule,
      status: run.status,
      at: run.createdAt - start,
      event,
      trigger: { type: run.trigger.type, id: run.trigger.id, source: run.trigger.source },
      actions: steps.map((s) => s.kind),
      steps,
    };
    if (run.error) entry.error = run.error;
    recorded.push(entry);
  }
  return recorded;
}

/**
 * Compares what a case expects with what happened. Pure: the runs and facts come in, the differences go
 * out, each naming the run, the step and the field.
 */
export function checkCase(
  expect: CaseExpectation,
  runs: readonly RecordedRun[],
  facts: Readonly<Record<string, unknown>>,
  rulebook: Rulebook,
): CaseFailure[] {
  const failures: CaseFailure[] = [];
  if (expect.runs) {
    const expected = expect.runs.flatMap((r) => Array.from({ length: r.count }, () => r));
    const named = new Set(expect.runs.map((r) => r.rule));
    const got = expect.only ? runs : runs.filter((r) => named.has(r.rule));
    const sameRules = expected.length === got.length && expected.every((e, i) => e.rule === got[i]!.rule);
    if (!sameRules) {
      failures.push({
        message: expect.only
          ? 'the runs differ'
          : `the runs of ${[...named].map((n) => `\`${n}\``).join(', ')} differ`,
        location: location(expect.runsLocation ?? expect.location),
        field: 'runs',
        expected: expected.map((e) => e.rule),
        got: got.map((r) => r.rule),
      });
    } else {
      const rules = new Map(rulebook.rules.map((r) => [r.name, r]));
      expected.forEach((e, i) => {
        failures.push(...compareRun(e, got[i]!, runs.indexOf(got[i]!), rules.get(e.rule)));
      });
    }
  }
  for (const not of expect.not) {
    const ran = runs.filter((r) => r.rule === not.rule);
    if (ran.length > 0) {
      failures.push({
        message: `\`${not.rule}\` ran ${ran.length === 1 ? 'once' : `${ran.length} times`}, but must not`,
        location: location(not.location),
        rule: not.rule,
        field: 'not',
        expected: 'no run',
        got: ran.map(describeRun),
      });
    }
  }
  for (const [name, value] of Object.entries(expect.facts ?? {})) {
    const field = `facts.${name}`;
    if (value === null) {
      if (facts[name] !== undefined && facts[name] !== null) {
        failures.push({
          message: `the fact \`${name}\` is set, but must not be`,
          location: location(expect.factLocations[name] ?? expect.location),
          field,
          expected: null,
          got: facts[name],
        });
      }
      continue;
    }
    for (const d of differences(value, facts[name], field)) {
      failures.push({
        message: `the fact \`${name}\` differs at ${d.field}`,
        location: location(expect.factLocations[name] ?? expect.location),
        ...d,
      });
    }
  }
  return failures;
}

function compareRun(
  e: RunExpectation,
  run: RecordedRun,
  index: number,
  rule: Rule | undefined,
): CaseFailure[] {
  const failures: CaseFailure[] = [];
  const label = `run ${index + 1} (${e.rule})`;
  const base = { rule: e.rule };
  const where = (field: string) => location(e.fields[field] ?? e.location);
  if (e.status !== run.status) {
    const failed = run.steps.find((s) => s.status === 'failed');
    failures.push({
      ...base,
      location: where('status'),
      message: `${label}: status`,
      field: 'status',
      expected: e.status,
      got: run.status,
      ...(failed?.error
        ? { detail: `step ${failed.id} (${failed.kind}): ${failed.error.code}: ${failed.error.message}` }
        : {}),
    });
  }
  if (e.at !== undefined && e.at !== run.at) {
    failures.push({
      ...base,
      location: where('at'),
      message: `${label}: at`,
      field: 'at',
      expected: formatOffset(e.at),
      got: formatOffset(run.at),
    });
  }
  if (e.actions !== undefined && JSON.stringify(e.actions) !== JSON.stringify(run.actions)) {
    failures.push({
      ...base,
      location: where('actions'),
      message: `${label}: actions`,
      field: 'actions',
      expected: e.actions,
      got: run.actions,
    });
  }
  for (const [key, expected] of Object.entries(e.params ?? {})) {
    const spec = rule ? stepOf(rule, key) : undefined;
    const id = spec?.id ?? key;
    const step = run.steps.find((s) => s.id === id);
    const stepName = `${id} (${spec?.kind ?? step?.kind ?? '?'})`;
    if (!step || step.params === undefined) {
      failures.push({
        ...base,
        location: where(`params.${key}`),
        step: stepName,
        message: `${label}, step ${stepName}: ${step ? 'its parameters could not be rendered' : 'did not run'}`,
        field: `params.${id}`,
        expected,
        ...(step?.error ? { detail: `${step.error.code}: ${step.error.message}` } : {}),
      });
      continue;
    }
    for (const d of differences(expected, step.params, `params.${id}`)) {
      failures.push({
        ...base,
        location: where(`params.${key}`),
        step: stepName,
        message: `${label}, step ${stepName}: ${d.field}`,
        ...d,
      });
    }
  }
  for (const [key, expected] of Object.entries(e.attempts ?? {})) {
    const spec = rule ? stepOf(rule, key) : undefined;
    const id = spec?.id ?? key;
    const got = run.steps.find((s) => s.id === id)?.attempts ?? 0;
    if (got !== expected) {
      const stepName = `${id} (${spec?.kind ?? '?'})`;
      failures.push({
        ...base,
        location: where(`attempts.${key}`),
        step: stepName,
        message: `${label}, step ${stepName}: attempts`,
        field: `attempts.${id}`,
        expected,
        got,
      });
    }
  }
  if (e.event !== undefined) {
    for (const d of differences(e.event, run.event ?? undefined, 'event')) {
      failures.push({ ...base, location: where('event'), message: `${label}: ${d.field}`, ...d });
    }
  }
  return failures;
}

/**
 * Where `got` does not contain `expected`: objects match when every key expected is there and matches
 * (other keys may be there too), lists when they have the same length and match item by item, other
 * values when they are equal (`1` is not `"1"`).
 */
export function differences(
  expected: unknown,
  got: unknown,
  field: string,
): Array<{ field: string; expected: unknown; got?: unknown }> {
  const out: Array<{ field: string; expected: unknown; got?: unknown }> = [];
  const walk = (e: unknown, g: unknown, path: string) => {
    if (out.length >= 20) return;
    const differ = () => out.push({ field: path, expected: e, ...(g === undefined ? {} : { got: g }) });
    if (Array.isArray(e)) {
      if (!Array.isArray(g) || g.length !== e.length) return differ();
      for (const [i, item] of e.entries()) walk(item, g[i], `${path}[${i}]`);
      return;
    }
    if (e !== null && typeof e === 'object') {
      if (g === null || typeof g !== 'object' || Array.isArray(g)) return differ();
      for (const [key, value] of Object.entries(e)) {
        walk(
          value,
          (g as Record<string, unknown>)[key],
          /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`,
        );
      }
      return;
    }
    if (e !== g) differ();
  };
  walk(expected, got, field);
  return out;
}

function location(loc: { file: string; line: number; column: number } | undefined): string | undefined {
  return loc ? `${loc.file}:${loc.line}:${loc.column}` : undefined;
}

function formatOffset(ms: number): string {
  return ms === 0 ? '0s' : formatDuration(ms);
}

/** `block-brute-force at 40s on auth.failed: succeeded [http, fact]` */
export function describeRun(run: RecordedRun): string {
  const on = run.event ? run.event.type : run.trigger.type;
  return `${run.rule} at ${formatOffset(run.at)} on ${on}: ${run.status} [${run.actions.join(', ')}]`;
}
