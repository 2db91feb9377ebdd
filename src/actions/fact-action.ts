import Type from 'typebox';
import { factNameRule, isFactName } from '../core/fact-name.js';
import type { Action, ActionContext } from '../core/ports/action.js';
import { describeValue, description, invalidParams, readObject } from './params.js';

const kind = 'fact';

/**
 * The `fact` step's parameters as a rulebook writes them (see Action.params); templates may stand for
 * the values typed loosely here.
 */
export const factParamsSchema = Type.Union(
  [
    Type.Object(
      { set: Type.String({ minLength: 1 }), value: Type.Unknown() },
      { additionalProperties: false },
    ),
    Type.Object({ unset: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
  ],
  description('Set (`{ set: name, value: ... }`) or remove (`{ unset: name }`) a durable fact.'),
);

/** The `fact` action's parameters once checked: set a fact to a value, or remove it. */
export type FactParams = { type: 'set'; name: string; value: unknown } | { type: 'unset'; name: string };

/** What a `fact` step outputs. */
export type FactOutput = { name: string; value: unknown } | { name: string; unset: true };

function checkName(key: 'set' | 'unset', value: unknown): string {
  if (typeof value !== 'string') {
    invalidParams(
      kind,
      `\`${key}\` is ${describeValue(value)}`,
      `give the fact's name, e.g. \`${key}: maintenance\`.`,
    );
  }
  if (!isFactName(value)) {
    invalidParams(kind, `${JSON.stringify(value)} is not a usable fact name`, factNameRule);
  }
  return value;
}

/**
 * Checks a `fact` step's rendered parameters: `{ set: name, value }` or `{ unset: name }`.
 * Throws REFLEX_ERR_ACTION_INVALID_PARAMS.
 */
export function parseFactParams(params: unknown): FactParams {
  const raw = readObject(kind, params);
  if (raw['set'] !== undefined && raw['unset'] !== undefined) {
    invalidParams(kind, 'both `set` and `unset` are given', 'use one `fact` step for each change.');
  }
  if (raw['unset'] !== undefined) {
    if (raw['value'] !== undefined) invalidParams(kind, '`unset` takes no `value`', 'remove `value`.');
    return { type: 'unset', name: checkName('unset', raw['unset']) };
  }
  if (raw['set'] === undefined) {
    invalidParams(
      kind,
      'neither `set` nor `unset` is given',
      'write `{ set: name, value: ... }` or `{ unset: name }`.',
    );
  }
  const name = checkName('set', raw['set']);
  if (raw['value'] === undefined) {
    invalidParams(
      kind,
      `\`set: ${name}\` has no \`value\``,
      'give the value to store, or use `unset` to remove the fact.',
    );
  }
  return { type: 'set', name, value: raw['value'] };
}

/**
 * The `fact` action: sets or removes a durable fact, readable by conditions as `facts.<name>`.
 *
 * @example
 * // in a rulebook
 * // - fact: { set: maintenance, value: true }
 * // - fact: { unset: maintenance }
 */
export const factAction: Action<FactParams> = {
  kind,
  params: factParamsSchema,
  templates: { secrets: false },
  parse: parseFactParams,
  async run(params: FactParams, context: ActionContext): Promise<FactOutput> {
    if (params.type === 'unset') {
      await context.setFact(params.name, undefined);
      return { name: params.name, unset: true };
    }
    await context.setFact(params.name, params.value);
    return { name: params.name, value: params.value };
  },
};
