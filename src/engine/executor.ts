import { createHmac } from 'node:crypto';
import { chainDepth, chainExtension } from '../core/decide.js';
import { formatDuration } from '../core/duration.js';
import { type ErrorInfo, isRetriable, ReflexError, RetryAfterError, toErrorInfo } from '../core/errors.js';
import {
  type AppendResult,
  type CloudEvent,
  isReservedSource,
  isReservedType,
  reflexSource,
  validateCloudEvent,
} from '../core/event.js';
import { factNameRule, isFactName } from '../core/fact-name.js';
import { type JsonLimits, type JsonProblem, shortText, toBoundedJson } from '../core/json-value.js';
import type { Action, ActionContext } from '../core/ports/action.js';
import type { Clock } from '../core/ports/clock.js';
import type { Logger } from '../core/ports/logger.js';
import type { Attempt, AttemptOutcome, EventLog, Run, RunQueue, Store } from '../core/ports/store.js';
import { createSecretMask, mapStrings, redactUrlCredentials, type SecretMask } from '../core/redact.js';
import { retryDelay } from '../core/retry.js';
import type { ActionStep, Rule } from '../core/rule.js';
import { resolveSecrets, type Secrets } from '../core/secrets.js';
import { createDiskFullWatch, type DiskFullWatch } from './disk-full.js';
import { yieldToEventLoop } from './dispatcher.js';
import type { Facts } from './facts.js';
import { engineDefaults } from './options.js';
import type { RulebookVersions } from './rulebook-versions.js';

/** The executor's tuning: each has a default, and is checked once by {@link compileExecutorOptions}. */
export interface ExecutorSettings {
  /**
   * Runs executed at the same time.
   * Actions mostly wait on the network, so many can run at once on one core.
   * @default engineDefaults.concurrency (128)
   */
  concurrency?: number;
  /**
   * How long a claimed run stays reserved, in milliseconds (at least 1000); renewed every third of it
   * while the run executes. A crashed executor's runs are claimed again once it expires.
   * @default engineDefaults.leaseMs (30000)
   */
  leaseMs?: number;
  /**
   * How many claims of a run may end without recording an attempt of its current step — the process
   * executing it died (kill -9, out of memory, a native crash) — before the next claim fails the run with
   * REFLEX_ERR_RUN_ABANDONED, an attempt record, its `reflex.run.failed` event and a dead letter. A claim
   * that records an attempt, or whose lease is given back on drain, does not count.
   * @default engineDefaults.maxClaims (5)
   */
  maxClaims?: number;
  /**
   * Deepest nesting of what an action hands over — its output, the `data` of an event it emits, a fact
   * value it sets — counted like an event's `data`.
   * @default engineDefaults.limits.maxDepth (32)
   */
  maxOutputDepth?: number;
  /**
   * Largest JSON text, in UTF-8 bytes, of what an action hands over (output, emitted event, fact value).
   * @default engineDefaults.maxOutputBytes (1048576)
   */
  maxOutputBytes?: number;
}

export interface ExecutorOptions extends ExecutorSettings {
  /** The runs to claim and complete, the events they load, and the key their derived ids use. */
  store: RunQueue & Pick<EventLog, 'getEvent'> & Pick<Store, 'idKey'>;
  clock: Clock;
  logger: Logger;
  actions: { get(kind: string): Action | undefined };
  versions: RulebookVersions;
  facts: Facts;
  /** Appends events to the log (the ingest path, so they are group-committed and the dispatcher wakes). */
  emit: (events: CloudEvent[]) => Promise<AppendResult[]>;
  /** Identifies this executor's leases. */
  owner: string;
  /** Called when a run's end put its outcome event into the log (the dispatcher should look). */
  onOutcomeLogged?: () => void;
  /** @default Math.random */
  random?: () => number;
  /**
   * Where `${{ secrets.NAME }}` is read from when a step runs.
   * @default none: a step that reads a secret fails with REFLEX_ERR_SECRET_MISSING
   */
  secrets?: Secrets;
  /**
   * Told about writes refused for want of space, which are then not logged one by one.
   * @default a watch of its own over `logger`
   */
  diskFull?: DiskFullWatch;
}

/** {@link ExecutorOptions} once checked, with every default filled in; frozen. */
export type CompiledExecutorOptions = Readonly<
  Omit<ExecutorOptions, keyof ExecutorSettings | 'random'> &
    Required<ExecutorSettings> & { random: () => number }
>;

/** The defaults of {@link ExecutorSettings}: the engine's ({@link engineDefaults}). */
export const defaultExecutorSettings: Readonly<Required<ExecutorSettings>> = Object.freeze({
  concurrency: engineDefaults.concurrency,
  leaseMs: engineDefaults.leaseMs,
  maxClaims: engineDefaults.maxClaims,
  maxOutputDepth: engineDefaults.limits.maxDepth,
  maxOutputBytes: engineDefaults.maxOutputBytes,
});

/**
 * Checks the executor's options and fills in the defaults. Throws REFLEX_ERR_CONFIG_INVALID for a
 * setting out of range.
 */
export function compileExecutorOptions(options: ExecutorOptions): CompiledExecutorOptions {
  const setting = (name: keyof ExecutorSettings, min: number): number => {
    const value = options[name] ?? defaultExecutorSettings[name];
    if (!Number.isSafeInteger(value) || value < min) {
      throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
        option: name,
        reason: `${JSON.stringify(value)} is not a whole number of at least ${min}`,
        fix: `give a whole number from ${min} up, or leave it out for ${defaultExecutorSettings[name]}.`,
      });
    }
    return value;
  };
  return Object.freeze({
    ...options,
    concurrency: setting('concurrency', 1),
    leaseMs: setting('leaseMs', 1000),
    maxClaims: setting('maxClaims', 1),
    maxOutputDepth: setting('maxOutputDepth', 1),
    maxOutputBytes: setting('maxOutputBytes', 1024),
    random: options.random ?? Math.random,
  });
}

/**
 * Claims due runs and executes their steps, recording every attempt. A failed step is retried with
 * exponential backoff and jitter until its policy's attempts are spent; then the run fails, a dead
 * letter is written and `reflex.run.failed` goes into the log. Actions are at-least-once: every call
 * carries an idempotency key that stays the same across attempts.
 *
 * Nothing an action does can leave a run stuck: its output, errors, emitted events and fact values are
 * bounded and copied as plain JSON before anything stores or logs them; anything that throws inside an
 * attempt is recorded as a failed attempt; and a run whose executing process keeps dying is failed after
 * `maxClaims` claims.
 */
export interface Executor {
  start(): void;
  /** New runs may be due. */
  wake(): void;
  /** Runs being executed now. */
  readonly inFlight: number;
  /**
   * Stops claiming, lets running steps finish for up to `graceMs`, then aborts the rest (their attempt
   * is not recorded, so they run again after a restart) and gives back all leases.
   */
  drain(graceMs: number): Promise<void>;
}

/** A failure made safe to store: its error shape and how the retry policy treats it. */
interface Failure {
  info: ErrorInfo;
  retriable: boolean;
  retryAfterMs?: number;
}

/** How an attempt ended: an output, or a failure. */
type Ended = { ok: true; output: unknown } | { ok: false; failure: Failure };

/** An attempt's end, or `aborted` when Reflex stopped during it (then nothing is recorded). */
type StepResult = Ended | { aborted: true };

/** An attempt and what follows from it, as `completeAttempt` records them. */
interface Completion {
  attempt: Attempt;
  outcome: AttemptOutcome;
}

/** What a run needs to execute, loaded from the store. */
interface Loaded {
  rule: Rule;
  trigger: CloudEvent;
  scope: RunScope;
}

/** How far a run's execution has come, so that a crash is recorded against the right step and attempt. */
interface Progress {
  /** Whatever of the run's rule, trigger and scope could be loaded. */
  loaded?: Partial<Loaded>;
  step: number;
  /** Attempts recorded on `step`. */
  attempt: number;
  outputs: Record<string, unknown>;
  startedAt?: number;
}

export function createExecutor(rawOptions: ExecutorOptions): Executor {
  const options = compileExecutorOptions(rawOptions);
  const { store, clock, logger, concurrency, leaseMs, maxClaims, random } = options;
  const outputLimits: JsonLimits = Object.freeze({
    maxDepth: options.maxOutputDepth,
    maxBytes: options.maxOutputBytes,
  });
  const diskFull = options.diskFull ?? createDiskFullWatch({ logger, clock });
  const shutdown = new AbortController();
  /** The runs being executed, each with the end of its lease as last written. */
  const inFlight = new Map<string, { task: Promise<void>; leaseUntil: number }>();
  let renewal: NodeJS.Timeout | undefined;
  let stopped = false;
  let dirty = true;
  let wakeUp: (() => void) | undefined;
  let loop: Promise<void> | undefined;
  let idKey: Promise<string> | undefined;

  const wake = () => {
    dirty = true;
    const resolve = wakeUp;
    wakeUp = undefined;
    resolve?.();
  };

  /**
   * Pushes out the leases of the runs being executed (with `lapsedOnly`, of those whose lease has run
   * out by the clock). A run is executed from its claim to its end — every step, and the recording
   * between them — so its lease is held for all of that, not only while a step runs: else a run of many
   * short steps outlasts its lease, and is claimed again (by this executor too) while it still runs.
   */
  const renewLeases = async (lapsedOnly: boolean): Promise<void> => {
    const now = clock.now();
    const ids = [...inFlight]
      .filter(([, { leaseUntil }]) => !lapsedOnly || leaseUntil <= now)
      .map(([id]) => id);
    if (ids.length === 0) return;
    const until = now + leaseMs;
    await store.extendLeases(options.owner, ids, until);
    for (const id of ids) {
      const entry = inFlight.get(id);
      if (entry) entry.leaseUntil = until;
    }
  };

  /** The events a run's templates read, loaded from the log by the seqs its context holds. */
  const loadScope = async (run: Run): Promise<RunScope | undefined> => {
    const load = async (seq: number) => (await store.getEvent(seq))?.event;
    const event = await load(run.context.event);
    if (!event) return undefined;
    const scope: RunScope = { event };
    if (run.context.events) {
      scope.events = {};
      for (const [name, seq] of Object.entries(run.context.events)) {
        const found = await load(seq);
        if (found) setOwn(scope.events, name, found);
      }
    }
    if (run.context.batch) {
      scope.batch = [];
      for (const seq of run.context.batch) {
        const found = await load(seq);
        if (found) scope.batch.push(found);
      }
    }
    return scope;
  };

  /** The run's rule, trigger and scope, as far as they can be loaded (a failure is logged). */
  const load = async (run: Run): Promise<Partial<Loaded>> => {
    const loaded: Partial<Loaded> = {};
    try {
      const version = await options.versions.get(run.rulebookVersion);
      const rule = version.rulebook.rules.find((r) => r.name === run.rule);
      if (rule) loaded.rule = rule;
      const trigger = (await store.getEvent(run.trigger.seq))?.event;
      if (trigger) loaded.trigger = trigger;
      const scope = await loadScope(run);
      if (scope) loaded.scope = scope;
    } catch (error) {
      logger.error({ error: toErrorInfo(error), runId: run.id }, 'cannot load what the run needs');
    }
    return loaded;
  };

  const execute = async (run: Run): Promise<void> => {
    const progress: Progress = { step: run.step, attempt: run.attempt, outputs: { ...run.outputs } };
    try {
      if (run.claims > maxClaims) await abandon(run, progress);
      else await executeSteps(run, progress);
    } catch (error) {
      // Every step of the way is guarded; this is the last line, so that even a bug of Reflex's own
      // ends in a recorded attempt rather than a run left `running` and claimed again forever.
      await recordCrash(run, progress, error);
    }
  };

  const executeSteps = async (run: Run, progress: Progress): Promise<void> => {
    progress.loaded = await load(run);
    const loaded = complete(progress.loaded);
    if (!loaded) {
      const error = toErrorInfo(new ReflexError('REFLEX_ERR_RUN_NOT_FOUND', { id: run.id }));
      await finishWithoutRule(run, progress, error);
      return;
    }
    const { rule } = loaded;
    for (let step = run.step; step < rule.then.length; step++) {
      if (shutdown.signal.aborted) return;
      const spec = rule.then[step]!;
      progress.step = step;
      progress.startedAt = clock.now();
      const attempt = progress.attempt + 1;
      const result = await attemptStep(run, rule, spec, loaded, progress.outputs, attempt);
      if ('aborted' in result) return;
      const completion = conclude(run, loaded, progress, result);
      const recorded = await record(run, progress, completion);
      if (recorded?.outcome.type !== 'next-step') return;
      setOwn(progress.outputs, spec.id, recorded.outcome.output);
      progress.attempt = 0;
    }
  };

  /**
   * The attempt of `progress.step` that ended with `result`, and what follows from it under the step's
   * retry policy: the next step, a retry, or the end of the run with its outcome event.
   */
  const conclude = (run: Run, loaded: Loaded, progress: Progress, result: Ended): Completion => {
    const { rule, trigger, scope } = loaded;
    const step = progress.step;
    const spec = rule.then[step]!;
    const attempt = progress.attempt + 1;
    const now = clock.now();
    const base = {
      runId: run.id,
      step,
      stepId: spec.id,
      action: spec.kind,
      attempt,
      startedAt: progress.startedAt ?? now,
      finishedAt: now,
    };
    if (result.ok) {
      const record: Attempt = { ...base, status: 'succeeded', output: result.output };
      if (step + 1 < rule.then.length) {
        return { attempt: record, outcome: { type: 'next-step', output: result.output } };
      }
      const outputs = { ...progress.outputs };
      setOwn(outputs, spec.id, result.output);
      const event = outcomeEvent(run, rule, depthOf(trigger, scope), now, 'succeeded', outputs);
      return { attempt: record, outcome: { type: 'succeeded', output: result.output, event } };
    }
    const { failure } = result;
    const record: Attempt = { ...base, status: 'failed', error: failure.info };
    if (failure.retriable && attempt < spec.retry.attempts) {
      // A target's Retry-After is honoured up to the step's maxDelay: the rulebook bounds every wait.
      const delay =
        failure.retryAfterMs !== undefined
          ? Math.min(Math.max(failure.retryAfterMs, 0), spec.retry.maxDelayMs)
          : retryDelay(spec.retry, attempt, random);
      return { attempt: record, outcome: { type: 'retry', at: now + delay } };
    }
    const event = outcomeEvent(
      run,
      rule,
      depthOf(trigger, scope),
      now,
      'failed',
      progress.outputs,
      failure.info,
      step,
    );
    return { attempt: record, outcome: { type: 'failed', error: failure.info, event } };
  };

  /**
   * Records a completion and logs it; returns it, or undefined when the lease is lost or nothing could be
   * recorded. When recording throws, the attempt is recorded again as failed with
   * REFLEX_ERR_RUN_STEP_CRASHED (the retry policy applies); when that throws too, the run is left to its
   * lease: the next claim counts, so a run that cannot be recorded ends after `maxClaims` claims.
   */
  const record = async (
    run: Run,
    progress: Progress,
    completion: Completion,
    crashed = false,
  ): Promise<Completion | undefined> => {
    let held: boolean;
    try {
      held = await store.completeAttempt({
        owner: options.owner,
        attempt: completion.attempt,
        outcome: completion.outcome,
        at: clock.now(),
      });
    } catch (error) {
      // With the disk full, recording the crash would fail the same way: the run keeps its lease until
      // it expires and is claimed again once there is room (the watch logs the episode once).
      if (diskFull.refused(error)) return undefined;
      logger.error(
        { error: toErrorInfo(error), runId: run.id, step: completion.attempt.stepId },
        crashed
          ? 'could not record the attempt; the run is claimed again when its lease expires'
          : 'could not record the attempt; recording it as failed',
      );
      if (crashed) return undefined;
      return record(run, progress, crashCompletion(run, progress, error), true);
    }
    diskFull.wrote();
    if (!held) {
      logger.warn({ runId: run.id }, 'lost the lease on a run; another executor owns it now');
      return undefined;
    }
    try {
      logAttempt(run, completion);
    } catch {
      // The attempt is recorded; a log line that cannot be written changes nothing about it.
    }
    const { outcome } = completion;
    if (outcome.type === 'succeeded' || outcome.type === 'failed') options.onOutcomeLogged?.();
    if (outcome.type === 'retry') clock.schedule(outcome.at, wake);
    return completion;
  };

  /** The current attempt, failed with REFLEX_ERR_RUN_STEP_CRASHED for `error`, and what follows. */
  const crashCompletion = (run: Run, progress: Progress, error: unknown): Completion => {
    const stepId = progress.loaded?.rule?.then[progress.step]?.id ?? String(progress.step);
    const crash = new ReflexError(
      'REFLEX_ERR_RUN_STEP_CRASHED',
      { step: stepId, id: run.id, reason: shortText(error, 1000) },
      { cause: error },
    );
    const failure: Failure = { info: toErrorInfo(crash), retriable: true };
    const loaded = complete(progress.loaded);
    if (loaded) return conclude(run, loaded, progress, { ok: false, failure });
    return failedWithoutRule(run, progress, failure.info);
  };

  /** Records a crash that escaped every other guard, against the step and attempt the run was at. */
  const recordCrash = async (run: Run, progress: Progress, error: unknown): Promise<void> => {
    try {
      logger.error({ error: toErrorInfo(error), runId: run.id }, 'run execution crashed');
      await record(run, progress, crashCompletion(run, progress, error), true);
    } catch (again) {
      logger.error(
        { error: toErrorInfo(again), runId: run.id },
        'could not record a crashed attempt; the run is claimed again when its lease expires',
      );
    }
  };

  /**
   * Fails a run claimed more than `maxClaims` times without an attempt of its current step being
   * recorded: the process executing it died each time. Its step is not run again.
   */
  const abandon = async (run: Run, progress: Progress): Promise<void> => {
    progress.loaded = await load(run);
    const loaded = complete(progress.loaded);
    const stepId = progress.loaded.rule?.then[run.step]?.id ?? String(run.step);
    const died = run.claims - 1;
    const error = new ReflexError(
      'REFLEX_ERR_RUN_ABANDONED',
      { id: run.id, claims: died, step: stepId },
      { details: { claims: died, maxClaims } },
    );
    const failure: Failure = { info: toErrorInfo(error), retriable: false };
    progress.startedAt = clock.now();
    if (loaded && run.step < loaded.rule.then.length) {
      await record(run, progress, conclude(run, loaded, progress, { ok: false, failure }), true);
    } else {
      await record(run, progress, failedWithoutRule(run, progress, failure.info), true);
    }
  };

  /** Fails a run that cannot even be attempted (its rule or trigger event is gone). */
  const finishWithoutRule = async (run: Run, progress: Progress, error: ErrorInfo): Promise<void> => {
    progress.startedAt = clock.now();
    await record(run, progress, failedWithoutRule(run, progress, error));
  };

  /** A failed attempt of the run's current step and the end of the run, without its rule to go by. */
  const failedWithoutRule = (run: Run, progress: Progress, error: ErrorInfo): Completion => {
    const now = clock.now();
    const rule = progress.loaded?.rule;
    const spec = rule?.then[progress.step];
    const trigger = progress.loaded?.trigger;
    return {
      attempt: {
        runId: run.id,
        step: progress.step,
        stepId: spec?.id ?? String(progress.step),
        action: spec?.kind ?? '-',
        attempt: progress.attempt + 1,
        startedAt: progress.startedAt ?? now,
        finishedAt: now,
        status: 'failed',
        error,
      },
      outcome: {
        type: 'failed',
        error,
        event: outcomeEvent(
          run,
          rule,
          trigger ? chainDepth(trigger) : 0,
          now,
          'failed',
          progress.outputs,
          error,
          progress.step,
        ),
      },
    };
  };

  const logAttempt = (run: Run, { attempt: record, outcome }: Completion) => {
    const base = {
      runId: run.id,
      rule: run.rule,
      step: record.stepId,
      action: record.action,
      attempt: record.attempt,
    };
    if (outcome.type === 'retry') {
      logger.warn(
        { ...base, error: record.error, retryAt: new Date(outcome.at).toISOString() },
        'step failed; will retry',
      );
    } else if (outcome.type === 'failed') {
      logger.error({ ...base, error: record.error }, 'run failed');
    } else if (outcome.type === 'succeeded') {
      logger.info(base, 'run succeeded');
    }
  };

  /** A thrown value made safe to store, with what the retry policy makes of it. Never throws. */
  const failureOf = (error: unknown): Failure => {
    const failure: Failure = { info: toErrorInfo(error), retriable: true };
    try {
      failure.retriable = isRetriable(error);
      // NaN would make the retry time NaN, stored as no time at all: the run would never be due again.
      const after = error instanceof RetryAfterError ? error.retryAfterMs : undefined;
      if (typeof after === 'number' && !Number.isNaN(after)) failure.retryAfterMs = after;
    } catch {
      // A value whose type cannot even be checked (a proxy that throws): retried like any unknown failure.
    }
    return failure;
  };

  /** REFLEX_ERR_ACTION_OUTPUT_INVALID for what an action handed over (`what`) and why it was refused. */
  const unstorable = (action: string, what: string, problem: JsonProblem) =>
    new ReflexError('REFLEX_ERR_ACTION_OUTPUT_INVALID', {
      action,
      what,
      reason: problem.reason,
      maxDepth: outputLimits.maxDepth,
      maxBytes: outputLimits.maxBytes,
    });

  const attemptStep = async (
    run: Run,
    rule: Rule,
    spec: ActionStep,
    loaded: Loaded,
    outputs: Record<string, unknown>,
    attempt: number,
  ): Promise<StepResult> => {
    const action = options.actions.get(spec.kind);
    if (!action) {
      return {
        ok: false,
        failure: failureOf(
          new ReflexError('REFLEX_ERR_ACTION_UNKNOWN', {
            action: spec.kind,
            known: 'the actions this Reflex has',
          }),
        ),
      };
    }
    // Secret values never reach what is stored or logged: an answer or an error that echoes one is masked.
    let mask: SecretMask = noMask;
    const timeout = new AbortController();
    const signal = AbortSignal.any([timeout.signal, shutdown.signal]);
    const timer = setTimeout(
      () =>
        timeout.abort(
          new ReflexError('REFLEX_ERR_ACTION_TIMEOUT', {
            action: spec.kind,
            timeout: formatDuration(spec.timeoutMs),
          }),
        ),
      spec.timeoutMs,
    );
    try {
      const { scope } = loaded;
      const steps: Record<string, { output: unknown }> = {};
      for (const [id, output] of Object.entries(outputs)) setOwn(steps, id, { output });
      const secrets = resolveSecrets(
        options.secrets ?? noSecrets,
        spec.params.secrets.map((s) => s.name),
      );
      mask = createSecretMask(Object.values(secrets));
      const params = action.parse(
        spec.params.render(
          {
            event: scope.event,
            ...(scope.events ? { events: scope.events } : {}),
            ...(scope.batch ? { batch: scope.batch } : {}),
            facts: options.facts.snapshot(),
            vars: rule.vars,
            now: clock.now(),
            steps,
            run: { id: run.id, rule: rule.name },
          },
          secrets,
        ),
      );
      const context = actionContext(run, rule, spec, loaded, attempt, signal);
      // The deadline holds even for an action that ignores its signal.
      const aborted = new Promise<never>((_, reject) => {
        const fail = () => reject(signal.reason);
        if (signal.aborted) fail();
        else signal.addEventListener('abort', fail, { once: true });
      });
      const output = await Promise.race([action.run(params, context), aborted]);
      // Outputs are stored, rendered into later steps and copied into the outcome event: only a bounded
      // copy of plain JSON goes on, so no answer can make those throw, overflow the stack or balloon.
      const bounded = toBoundedJson(output, outputLimits);
      if (!bounded.ok) {
        return { ok: false, failure: failureOf(unstorable(spec.kind, 'returned an output', bounded)) };
      }
      return { ok: true, output: mask.json(bounded.value) };
    } catch (error) {
      if (shutdown.signal.aborted) return { ok: false, aborted: true };
      // The failure is made safe first (a hostile error may throw on every read), then its text is
      // masked: an error that echoes a secret or a URL with credentials is stored without them.
      const failure = failureOf(error);
      return {
        ok: false,
        failure: {
          ...failure,
          info: mapStrings(failure.info, (text) => redactUrlCredentials(mask.text(text))),
        },
      };
    } finally {
      clearTimeout(timer);
    }
  };

  const actionContext = (
    run: Run,
    rule: Rule,
    spec: ActionStep,
    loaded: Loaded,
    attempt: number,
    signal: AbortSignal,
  ): ActionContext => {
    const idempotencyKey = `${run.id}:${spec.id}`;
    const depth = depthOf(loaded.trigger, loaded.scope);
    return {
      runId: run.id,
      rule: rule.name,
      stepId: spec.id,
      attempt,
      idempotencyKey,
      signal,
      timeoutMs: spec.timeoutMs,
      outputLimits,
      logger,
      async emit(partial) {
        const source = partial.source ?? reflexSource;
        checkEmitted(spec.kind, partial.type, partial.id, source);
        idKey ??= store.idKey();
        const event: CloudEvent = {
          ...partial,
          specversion: '1.0',
          id: partial.id ?? emittedId(idempotencyKey, await idKey),
          source,
          time: typeof partial.time === 'string' ? partial.time : new Date(clock.now()).toISOString(),
          [chainExtension]: depth + 1,
        };
        // Checked here, not in the group commit: an event that cannot be stored would fail the whole
        // commit, and with it the events of every other sender in it.
        const bounded = toBoundedJson(event, {
          maxDepth: outputLimits.maxDepth + 1,
          maxBytes: outputLimits.maxBytes,
        });
        if (!bounded.ok) throw unstorable(spec.kind, 'emitted an event', bounded);
        const checked = validateCloudEvent(bounded.value, { maxDepth: outputLimits.maxDepth });
        const [result] = await options.emit([checked]);
        return result!;
      },
      async setFact(name, value) {
        if (typeof name !== 'string' || !isFactName(name)) {
          throw new ReflexError('REFLEX_ERR_ACTION_INVALID_PARAMS', {
            action: spec.kind,
            reason: `the fact name ${JSON.stringify(shortText(name))} is not valid`,
            fix: factNameRule,
          });
        }
        let stored: unknown;
        if (value !== undefined) {
          const bounded = toBoundedJson(value, outputLimits);
          if (!bounded.ok) throw unstorable(spec.kind, `set fact \`${name}\` to a value`, bounded);
          stored = bounded.value;
        }
        await options.facts.set(name, stored, depth + 1, run.trigger.partition);
      },
    };
  };

  const loopBody = async () => {
    /** Claims that failed in a row: the next try waits longer each time instead of spinning. */
    let claimFailures = 0;
    while (!stopped) {
      dirty = false;
      const free = concurrency - inFlight.size;
      if (free > 0) {
        let claimed: Run[] = [];
        const now = clock.now();
        try {
          // A run whose lease ran out while this executor runs it (the process stalled past its lease, so
          // the renewal did not come in time) is due to the store: it is renewed first, never claimed twice.
          await renewLeases(true);
          claimed = await store.claimRuns({ owner: options.owner, now, leaseMs, limit: free });
          claimFailures = 0;
          if (claimed.length > 0) diskFull.wrote();
        } catch (error) {
          claimFailures++;
          if (!diskFull.refused(error)) logger.error({ error: toErrorInfo(error) }, 'claiming runs failed');
        }
        for (const run of claimed) {
          const task = execute(run)
            // execute records its own crashes; only a logger that throws could get here.
            .catch(() => {})
            .finally(() => {
              inFlight.delete(run.id);
              wake();
            });
          inFlight.set(run.id, { task, leaseUntil: now + leaseMs });
        }
        if (claimed.length === free) {
          await yieldToEventLoop();
          continue;
        }
      }
      if (dirty || stopped) continue;
      let cancelTimer: (() => void) | undefined;
      try {
        // With every slot taken, a run finishing is what frees one (and it wakes this loop); the next
        // due time, already past, would only spin the loop without ever yielding.
        if (claimFailures > 0) {
          const pause = Math.min(10_000, 250 * 2 ** Math.min(claimFailures - 1, 6));
          cancelTimer = clock.schedule(clock.now() + pause, wake);
        } else if (concurrency - inFlight.size > 0) {
          const due = await store.nextRunDueAt();
          const now = clock.now();
          // A due run that could not be claimed now is tried again shortly, never in a tight loop.
          if (due !== undefined) cancelTimer = clock.schedule(due > now ? due : now + 50, wake);
        }
      } catch (error) {
        logger.error({ error: toErrorInfo(error) }, 'reading the next due run failed');
        cancelTimer = clock.schedule(clock.now() + 1000, wake);
      }
      await new Promise<void>((resolve) => {
        if (dirty || stopped) resolve();
        else wakeUp = resolve;
      });
      cancelTimer?.();
    }
  };

  const tasks = () => [...inFlight.values()].map((entry) => entry.task);

  return {
    start() {
      loop = loopBody();
      renewal = setInterval(() => {
        renewLeases(false).catch((error) => {
          if (!diskFull.refused(error)) logger.warn({ error: toErrorInfo(error) }, 'could not renew leases');
        });
      }, leaseMs / 3);
      // Never what keeps the process alive: a drain that fails before the executor's still lets it exit.
      renewal.unref();
    },
    wake,
    get inFlight() {
      return inFlight.size;
    },
    async drain(graceMs) {
      stopped = true;
      wake();
      await loop;
      if (inFlight.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        });
        await Promise.race([Promise.allSettled(tasks()), grace]);
        clearTimeout(timer);
      }
      if (inFlight.size > 0) {
        logger.warn({ runs: [...inFlight.keys()] }, 'grace period over; aborting steps still running');
        shutdown.abort(new ReflexError('REFLEX_ERR_RUN_INTERRUPTED'));
        await Promise.allSettled(tasks());
      }
      clearInterval(renewal);
      try {
        await store.releaseLeases(options.owner, clock.now());
      } catch (error) {
        // Not given back, the leases run out by themselves: the runs are claimed again after that.
        if (!diskFull.refused(error)) throw error;
      }
    },
  };
}

const noMask: SecretMask = createSecretMask([]);
const noSecrets: Secrets = { get: () => undefined };

/** The run's rule, trigger and scope when all of them were loaded. */
function complete(loaded: Partial<Loaded> | undefined): Loaded | undefined {
  const { rule, trigger, scope } = loaded ?? {};
  return rule && trigger && scope ? { rule, trigger, scope } : undefined;
}

/** Sets a key even when it is `__proto__` (a step id may be), which assignment would make a prototype. */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * The id of an event a step emits without choosing one: its idempotency key, so a retried step does not
 * emit twice, and a tag made with the store's key, so nobody can post an event under that id (in the
 * step's source) before the step appends it — the run id and step id are easy to predict.
 */
function emittedId(idempotencyKey: string, key: string): string {
  const tag = createHmac('sha256', key).update(`emit\n${idempotencyKey}`).digest('hex').slice(0, 20);
  return `${idempotencyKey}:${tag}`;
}

/**
 * Refuses what an action must not emit: a `reflex.*` type (a forged `reflex.timer` or
 * `reflex.run.failed` would act as Reflex's own), or an `id` chosen in source `reflex`, where ids are
 * Reflex's (an id taken from event data could take the place of a run's outcome or a timer).
 */
function checkEmitted(action: string, type: string, id: string | undefined, source: string): void {
  if (isReservedType(type)) {
    throw new ReflexError('REFLEX_ERR_ACTION_INVALID_PARAMS', {
      action,
      reason: `the type ${JSON.stringify(type)} is reserved for the events Reflex makes itself`,
      fix: 'name the type in a namespace of your own, e.g. `ops.restart.failed`.',
    });
  }
  if (id !== undefined && isReservedSource(source)) {
    throw new ReflexError('REFLEX_ERR_ACTION_INVALID_PARAMS', {
      action,
      reason: `\`id\` is set for source ${JSON.stringify(source)}, whose ids are Reflex's own`,
      fix: 'set `source` to one of your own (e.g. `urn:acme:ops`) when you set `id`, or leave `id` out.',
    });
  }
}

/**
 * How deep in rule outcomes a run stands: its trigger's depth, or deeper when it acts on an event a
 * timer released (the timer event itself is depth 0, the debounced event may not be).
 */
function depthOf(trigger: CloudEvent, scope: RunScope): number {
  let depth = chainDepth(trigger);
  for (const event of [scope.event, ...Object.values(scope.events ?? {}), ...(scope.batch ?? [])]) {
    depth = Math.max(depth, chainDepth(event));
  }
  return depth;
}

/** What a run's templates see besides facts and vars: `event`, and for correlations `events` and `batch`. */
interface RunScope {
  event: CloudEvent;
  events?: Record<string, CloudEvent>;
  batch?: CloudEvent[];
}

/** The event that tells rules how a run ended: `reflex.run.succeeded` or `reflex.run.failed`. */
function outcomeEvent(
  run: Run,
  rule: Rule | undefined,
  /** The run's depth in rule outcomes; the outcome event is one deeper. */
  depth: number,
  now: number,
  status: 'succeeded' | 'failed',
  outputs: Record<string, unknown>,
  error?: ReturnType<typeof toErrorInfo>,
  failedStep?: number,
): CloudEvent {
  const data: Record<string, unknown> = {
    runId: run.id,
    rule: run.rule,
    status,
    // The event's documented shape names the trigger by seq, which is log-wide: its partition stays out.
    trigger: { seq: run.trigger.seq, id: run.trigger.id, source: run.trigger.source, type: run.trigger.type },
    outputs,
  };
  if (error) data.error = error;
  if (failedStep !== undefined && rule && failedStep >= 0)
    data.failedStep = rule.then[failedStep]?.id ?? failedStep;
  return {
    specversion: '1.0',
    id: `${run.id}.${status}`,
    source: 'reflex',
    type: `reflex.run.${status}`,
    subject: run.rule,
    time: new Date(now).toISOString(),
    datacontenttype: 'application/json',
    data,
    [chainExtension]: depth + 1,
  };
}
