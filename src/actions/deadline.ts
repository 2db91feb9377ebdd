import { formatDuration } from '../core/duration.js';
import { ReflexError } from '../core/errors.js';
import type { ActionContext } from '../core/ports/action.js';

/**
 * The error an action throws once `context.signal` has aborted.
 *
 * When the engine aborted with a coded error of its own (say, because it is shutting down), that error
 * is kept, so the attempt records why it really stopped. Any other reason (the step's deadline, a plain
 * `abort()`) is the step's timeout: REFLEX_ERR_ACTION_TIMEOUT. The abort reason itself (a DOMException) is not
 * kept as the cause: it would only add "The operation was aborted" to the stored error.
 */
export function abortedError(action: string, context: Pick<ActionContext, 'signal' | 'timeoutMs'>): Error {
  const reason: unknown = context.signal.reason;
  if (reason instanceof ReflexError) return reason;
  return new ReflexError(
    'REFLEX_ERR_ACTION_TIMEOUT',
    { action, timeout: formatDuration(context.timeoutMs) },
    { details: { timeoutMs: context.timeoutMs } },
  );
}
