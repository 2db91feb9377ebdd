import { chainDepth, chainExtension } from '../core/decide.js';
import { formatDuration } from '../core/duration.js';
import { isRetriable, ReflexError, RetryAfterError, toErrorInfo } from '../core/errors.js';
import type { AppendResult, CloudEvent } from '../core/event.js';
import type { Action, ActionContext } from '../core/ports/action.js';
import type { Clock } from '../core/ports/clock.js';
import type { Logger } from '../core/ports/logger.js';
import type { Attempt, AttemptOutcome, Run, Store } from '../core/ports/store.js';
import { retryDelay } from '../core/retry.js';
import type { ActionStep, Rule } from '../core/rule.js';
import { createDiskFullWatch, type DiskFullWatch } from './disk-full.js';
import { yieldToEventLoop } from './dispatcher.js';
import type { Facts } from './facts.js';
import type { RulebookVersions } from './rulebook-versions.js';

/** Runs executed at the same time, unless told otherwise (`reflex start --concurrency`). */
export const defaultConcurrency = 128;

export interface ExecutorOptions {
  store: Store;
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
  /**
   * Runs executed at the same time.
   * Actions mostly wait on the network, so many can run at once on one core.
   * @default {@link defaultConcurrency}
   */
  concurrency?: number;
  /**
   * How long a claimed run stays reserved; renewed while a step runs. A crashed executor's runs are
   * claimed again once it expires.
   * @default 30000 (30s)
   */
  leaseMs?: number;
  /** @default Math.random */
  random?: () => number;
  /**
   * Told about writes refused for want of space, which are then not logged one by one.
   * @default a watch of its own over `logger`
   */
  diskFull?: DiskFullWatch;
}

/**
 * Claims due runs and executes their steps, recording every attempt. A failed step is retried with
 * exponential backoff and jitter until its policy's attempts are spent; then the run fails, a dead
 * letter is written and `reflex.run.failed` goes into the log. Actions are at-least-once: every call
 * carries an idempotency key that stays the same across attempts.
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

export function createExecutor(options: ExecutorOptions): Executor {
  const { store, clock, logger } = options;
  const concurrency = options.concurrency ?? defaultConcurrency;
  const leaseMs = options.leaseMs ?? 30_000;
  const random = options.random ?? Math.random;
  const diskFull = options.diskFull ?? createDiskFullWatch({ logger, clock });
  const shutdown = new AbortController();
  const inFlight = new Map<string, Promise<void>>();
  let stopped = false;
  let dirty = true;
  let wakeUp: (() => void) | undefined;
  let loop: Promise<void> | undefined;

  const wake = () => {
    dirty = true;
    const resolve = wakeUp;
    wakeUp = undefined;
    resolve?.();
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
        if (found) scope.events[name] = found;
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

  const execute = async (run: Run): Promise<void> => {
    let rule: Rule | undefined;
    let trigger: CloudEvent | undefined;
    let scope: RunScope | undefined;
    try {
      const version = await options.versions.get(run.rulebookVersion);
      rule = version.rulebook.rules.find((r) => r.name === run.rule);
      trigger = (await store.getEvent(run.trigger.seq))?.event;
      scope = await loadScope(run);
    } catch (error) {
      logger.error({ error: toErrorInfo(error), runId: run.id }, 'cannot load what the run needs');
    }
    if (!rule || !trigger || !scope) {
      const error = new ReflexError('REFLEX_ERR_RUN_NOT_FOUND', { id: run.id });
      await finishFailed(run, rule, trigger, toErrorInfo(error));
      return;
    }
    const outputs = { ...run.outputs };
    let attempt = run.attempt;
    for (let step = run.step; step < rule.then.length; step++) {
      if (shutdown.signal.aborted) return;
      const spec = rule.then[step]!;
      attempt += 1;
      const startedAt = clock.now();
      const result = await attemptStep(run, rule, spec, trigger, scope, outputs, attempt);
      if (result.aborted) return;
      const record: Attempt = {
        runId: run.id,
        step,
        stepId: spec.id,
        action: spec.kind,
        attempt,
        startedAt,
        finishedAt: clock.now(),
        status: result.ok ? 'succeeded' : 'failed',
        ...(result.ok ? { output: result.output } : { error: toErrorInfo(result.error) }),
      };
      let outcome: AttemptOutcome;
      if (result.ok) {
        outputs[spec.id] = result.output;
        outcome =
          step + 1 < rule.then.length
            ? { type: 'next-step', output: result.output }
            : {
                type: 'succeeded',
                output: result.output,
                event: outcomeEvent(run, rule, depthOf(trigger, scope), clock.now(), 'succeeded', outputs),
              };
      } else if (isRetriable(result.error) && attempt < spec.retry.attempts) {
        // A target's Retry-After is honoured up to the step's maxDelay: the rulebook bounds every wait.
        const delay =
          result.error instanceof RetryAfterError
            ? Math.min(Math.max(result.error.retryAfterMs, 0), spec.retry.maxDelayMs)
            : retryDelay(spec.retry, attempt, random);
        outcome = { type: 'retry', at: clock.now() + delay };
      } else {
        const error = toErrorInfo(result.error);
        outcome = {
          type: 'failed',
          error,
          event: outcomeEvent(
            run,
            rule,
            depthOf(trigger, scope),
            clock.now(),
            'failed',
            outputs,
            error,
            step,
          ),
        };
      }
      const held = await store.completeAttempt({
        owner: options.owner,
        attempt: record,
        outcome,
        at: clock.now(),
      });
      diskFull.wrote();
      if (!held) {
        logger.warn({ runId: run.id }, 'lost the lease on a run; another executor owns it now');
        return;
      }
      logAttempt(run, spec, record, outcome);
      if (outcome.type === 'succeeded' || outcome.type === 'failed') options.onOutcomeLogged?.();
      if (outcome.type === 'retry') {
        clock.schedule(outcome.at, wake);
        return;
      }
      if (outcome.type !== 'next-step') return;
      attempt = 0;
    }
  };

  const logAttempt = (run: Run, spec: ActionStep, record: Attempt, outcome: AttemptOutcome) => {
    const base = { runId: run.id, rule: run.rule, step: spec.id, action: spec.kind, attempt: record.attempt };
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

  /** Fails a run that cannot even be attempted (its rule or trigger event is gone). */
  const finishFailed = async (
    run: Run,
    rule: Rule | undefined,
    trigger: CloudEvent | undefined,
    error: ReturnType<typeof toErrorInfo>,
  ) => {
    const now = clock.now();
    await store.completeAttempt({
      owner: options.owner,
      attempt: {
        runId: run.id,
        step: run.step,
        stepId: rule?.then[run.step]?.id ?? String(run.step),
        action: rule?.then[run.step]?.kind ?? '-',
        attempt: run.attempt + 1,
        startedAt: now,
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
          run.outputs,
          error,
          run.step,
        ),
      },
      at: now,
    });
    options.onOutcomeLogged?.();
  };

  type StepResult =
    | { ok: true; output: unknown; aborted?: false }
    | { ok: false; error: unknown; aborted: boolean };

  const attemptStep = async (
    run: Run,
    rule: Rule,
    spec: ActionStep,
    trigger: CloudEvent,
    scope: RunScope,
    outputs: Record<string, unknown>,
    attempt: number,
  ): Promise<StepResult> => {
    const action = options.actions.get(spec.kind);
    if (!action) {
      return {
        ok: false,
        aborted: false,
        error: new ReflexError('REFLEX_ERR_ACTION_UNKNOWN', {
          action: spec.kind,
          known: 'the actions this Reflex has',
        }),
      };
    }
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
    const renew = setInterval(
      () => {
        store.extendLeases(options.owner, [run.id], clock.now() + leaseMs).catch((error) => {
          if (!diskFull.refused(error))
            logger.warn({ error: toErrorInfo(error), runId: run.id }, 'could not renew a lease');
        });
      },
      Math.max(1000, leaseMs / 3),
    );
    try {
      const steps: Record<string, { output: unknown }> = {};
      for (const [id, output] of Object.entries(outputs)) steps[id] = { output };
      const params = action.parse(
        spec.params.render({
          event: scope.event,
          ...(scope.events ? { events: scope.events } : {}),
          ...(scope.batch ? { batch: scope.batch } : {}),
          facts: options.facts.snapshot(),
          vars: rule.vars,
          now: clock.now(),
          steps,
          run: { id: run.id, rule: rule.name },
        }),
      );
      const context = actionContext(run, rule, spec, trigger, scope, attempt, signal);
      // The deadline holds even for an action that ignores its signal.
      const aborted = new Promise<never>((_, reject) => {
        const fail = () => reject(signal.reason);
        if (signal.aborted) fail();
        else signal.addEventListener('abort', fail, { once: true });
      });
      const output = await Promise.race([action.run(params, context), aborted]);
      return { ok: true, output: output ?? null };
    } catch (error) {
      return { ok: false, error, aborted: shutdown.signal.aborted };
    } finally {
      clearTimeout(timer);
      clearInterval(renew);
    }
  };

  const actionContext = (
    run: Run,
    rule: Rule,
    spec: ActionStep,
    trigger: CloudEvent,
    scope: RunScope,
    attempt: number,
    signal: AbortSignal,
  ): ActionContext => {
    const idempotencyKey = `${run.id}:${spec.id}`;
    return {
      runId: run.id,
      rule: rule.name,
      stepId: spec.id,
      attempt,
      idempotencyKey,
      signal,
      timeoutMs: spec.timeoutMs,
      logger,
      async emit(partial) {
        const event: CloudEvent = {
          ...partial,
          specversion: '1.0',
          id: partial.id ?? idempotencyKey,
          source: partial.source ?? 'reflex',
          time: typeof partial.time === 'string' ? partial.time : new Date(clock.now()).toISOString(),
          [chainExtension]: depthOf(trigger, scope) + 1,
        };
        const [result] = await options.emit([event]);
        return result!;
      },
      setFact: (name, value) => options.facts.set(name, value, depthOf(trigger, scope) + 1),
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
        try {
          claimed = await store.claimRuns({ owner: options.owner, now: clock.now(), leaseMs, limit: free });
          claimFailures = 0;
          if (claimed.length > 0) diskFull.wrote();
        } catch (error) {
          claimFailures++;
          if (!diskFull.refused(error)) logger.error({ error: toErrorInfo(error) }, 'claiming runs failed');
        }
        for (const run of claimed) {
          const task = execute(run)
            .catch((error) => {
              // The run keeps its lease until it expires, then it is claimed and its step run again.
              if (!diskFull.refused(error))
                logger.error({ error: toErrorInfo(error), runId: run.id }, 'run execution crashed');
            })
            .finally(() => {
              inFlight.delete(run.id);
              wake();
            });
          inFlight.set(run.id, task);
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

  return {
    start() {
      loop = loopBody();
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
        await Promise.race([Promise.allSettled(inFlight.values()), grace]);
        clearTimeout(timer);
      }
      if (inFlight.size > 0) {
        logger.warn({ runs: [...inFlight.keys()] }, 'grace period over; aborting steps still running');
        shutdown.abort(new ReflexError('REFLEX_ERR_RUN_INTERRUPTED'));
        await Promise.allSettled(inFlight.values());
      }
      try {
        await store.releaseLeases(options.owner, clock.now());
      } catch (error) {
        // Not given back, the leases run out by themselves: the runs are claimed again after that.
        if (!diskFull.refused(error)) throw error;
      }
    },
  };
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
    trigger: run.trigger,
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
