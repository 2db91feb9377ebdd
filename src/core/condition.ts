import { ReflexError } from './errors.js';
import { compileExpression, type ExpressionContext } from './expression.js';

/** A rule's `if`: a CEL expression that must give a boolean. */
export interface Condition {
  readonly source: string;
  /**
   * Whether the condition holds for `ctx`. Throws REFLEX_ERR_CONDITION_FAILED when evaluation fails
   * (e.g. a missing field) and REFLEX_ERR_CONDITION_NOT_BOOLEAN when the result is not true or false.
   */
  evaluate(ctx: ExpressionContext): boolean;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  const text = JSON.stringify(value);
  const shown = text.length > 40 ? `${text.slice(0, 40)}…` : text;
  return `${typeof value === 'string' ? 'the string' : `the ${typeof value}`} ${shown}`;
}

/**
 * Compiles a condition once, at load time. Throws REFLEX_ERR_CONDITION_INVALID for a syntax error, an
 * unknown variable or function, or an expression whose type is known not to be a boolean (such as a
 * quoted string or `size(x)`).
 *
 * @example
 * const condition = compileCondition(
 *   'event.data.annotations.value > 90 && !(event.data.labels.instance in facts.maintenance)',
 * );
 * condition.evaluate({ event, facts, vars: {}, now: receivedAt }); // true or false
 */
export function compileCondition(source: string): Condition {
  const expression = compileExpression(source);
  const type = expression.resultType;
  if (type !== 'bool' && type !== 'dyn') {
    throw new ReflexError(
      'REFLEX_ERR_CONDITION_INVALID',
      {
        expression: source,
        reason: `it gives a value of type ${type}, not a boolean`,
        fix: 'make the condition give true or false, e.g. `size(event.data.tags) > 0`',
      },
      { details: { offset: 0 } },
    );
  }
  return {
    source,
    evaluate(ctx: ExpressionContext): boolean {
      const value = expression.evaluate(ctx);
      if (value === true || value === false) return value;
      throw new ReflexError('REFLEX_ERR_CONDITION_NOT_BOOLEAN', { expression: source, got: describe(value) });
    },
  };
}
