import type { AppendResult } from '../core/event.js';
import { type ActionContext, defaultOutputLimits } from '../core/ports/action.js';

/** One call an action made on a {@link RecordingContext}'s logger. */
export interface LoggedLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: object;
  msg: string | undefined;
}

/** An ActionContext that records what an action asked of the engine, for tests of actions. */
export interface RecordingContext extends ActionContext {
  /** Events passed to `emit`, in order. */
  emitted: Array<Parameters<ActionContext['emit']>[0]>;
  /** `[name, value]` for each `setFact` call, in order (`undefined` removes). */
  facts: Array<[string, unknown]>;
  logged: LoggedLine[];
}

/**
 * Builds an ActionContext that stands in for the engine's callbacks: `emit` assigns increasing seqs and
 * reports a duplicate for a repeated (source, id), `setFact` and the logger record their calls.
 * Anything in `overrides` replaces the default (signal, timeoutMs, idempotencyKey, ...).
 *
 * @example
 * const context = createRecordingContext({ signal: AbortSignal.timeout(200), timeoutMs: 200 });
 */
export function createRecordingContext(overrides: Partial<ActionContext> = {}): RecordingContext {
  const emitted: RecordingContext['emitted'] = [];
  const facts: RecordingContext['facts'] = [];
  const logged: LoggedLine[] = [];
  const seen = new Map<string, number>();
  let lastSeq = 0;
  const log =
    (level: LoggedLine['level']) =>
    (obj: object, msg?: string): void => {
      logged.push({ level, obj, msg });
    };
  const context: RecordingContext = {
    runId: 'run-1',
    rule: 'test-rule',
    stepId: 'step-1',
    attempt: 1,
    idempotencyKey: 'run-1:step-1',
    signal: new AbortController().signal,
    timeoutMs: 30_000,
    outputLimits: defaultOutputLimits,
    logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    async emit(event): Promise<AppendResult> {
      emitted.push(event);
      const id = event.id ?? `${context.idempotencyKey}:${emitted.length}`;
      const source = event.source ?? 'reflex';
      const key = `${source}\u0000${id}`;
      const earlier = seen.get(key);
      if (earlier !== undefined) return { seq: earlier, partition: 0, id, source, duplicate: true };
      lastSeq += 1;
      seen.set(key, lastSeq);
      return { seq: lastSeq, partition: 0, id, source, duplicate: false };
    },
    async setFact(name, value) {
      facts.push([name, value]);
    },
    ...overrides,
    emitted,
    facts,
    logged,
  };
  return context;
}
