import { ReflexError } from '../core/errors.js';
import type { Action } from '../core/ports/action.js';
import { emitAction } from './emit-action.js';
import { execAction } from './exec-action.js';
import { factAction } from './fact-action.js';
import { httpAction } from './http-action.js';
import { logAction } from './log-action.js';

/** The actions a rulebook can name, by kind. */
export interface ActionRegistry {
  /** The action registered as `kind`, or undefined. */
  get(kind: string): Action | undefined;
  /** Every registered kind, in registration order. */
  kinds(): string[];
}

/** The actions Reflex ships with: `http`, `exec`, `emit`, `fact` and `log`. */
export const builtinActions: readonly Action[] = Object.freeze([
  httpAction,
  execAction,
  emitAction,
  factAction,
  logAction,
]);

/**
 * Builds a registry of actions. Two actions with one kind are refused (REFLEX_ERR_CONFIG_INVALID): to
 * replace a built-in, leave it out of the list.
 *
 * @param actions the actions to offer; @default {@link builtinActions}
 * @example
 * const actions = createActionRegistry([...builtinActions, pagerAction]);
 * actions.get('http')?.parse({ url: 'https://example.com' });
 */
export function createActionRegistry(actions: readonly Action[] = builtinActions): ActionRegistry {
  const byKind = new Map<string, Action>();
  for (const action of actions) {
    if (byKind.has(action.kind)) {
      throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
        option: 'actions',
        reason: `two actions have the kind \`${action.kind}\``,
        fix: 'register each kind once; to replace a built-in action, leave the built-in out.',
      });
    }
    byKind.set(action.kind, action);
  }
  return {
    get: (kind) => byKind.get(kind),
    kinds: () => [...byKind.keys()],
  };
}
