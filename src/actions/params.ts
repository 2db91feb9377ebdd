import Type from 'typebox';
import { ReflexError } from '../core/errors.js';

/** A JSON Schema `description`, which editors show beside the key. */
export const description = (text: string) => ({ description: text });

/** A map of names to strings (headers, environment variables) in a parameters schema. */
export const TextMap = Type.Record(Type.String(), Type.String());

/**
 * Throws REFLEX_ERR_ACTION_INVALID_PARAMS for the `action` kind. Parameters are rendered from templates, so
 * the message names the field and what was found, and the fix says what to write instead.
 */
export function invalidParams(action: string, reason: string, fix: string): never {
  throw new ReflexError('REFLEX_ERR_ACTION_INVALID_PARAMS', { action, reason, fix });
}

/** A short description of a value's JSON type, for messages: `a string`, `null`, `an array`. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** Whether `value` is a JSON object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Reads the parameters of an action that takes an object. Which keys it may have is the action's
 * parameter schema's to say (`Action.params`): the loader refuses a misspelt key (`heders:`) at its
 * file:line:column with a suggestion, and templates render values, never keys.
 */
export function readObject(action: string, params: unknown): Record<string, unknown> {
  if (!isRecord(params)) {
    invalidParams(
      action,
      `expected an object, got ${describeValue(params)}`,
      `see docs/actions.md#${action}.`,
    );
  }
  return params;
}

/**
 * Reads a scalar that a template may have rendered as a number or boolean (`${{ event.data.port }}`) as
 * the string it stands for. Returns undefined for anything else.
 */
export function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean')
    return String(value);
  return undefined;
}

/** Reads an optional string parameter; numbers and booleans are taken as their text. */
export function optionalText(
  action: string,
  params: Record<string, unknown>,
  key: string,
): string | undefined {
  const value = params[key];
  if (value === undefined) return undefined;
  const text = scalarText(value);
  if (text === undefined) {
    invalidParams(action, `\`${key}\` is ${describeValue(value)}`, `give \`${key}\` as a string.`);
  }
  return text;
}

/** Reads a map of names to strings (headers, environment variables); number and boolean values become text. */
export function optionalTextMap(
  action: string,
  params: Record<string, unknown>,
  key: string,
): Record<string, string> | undefined {
  const value = params[key];
  if (value === undefined) return undefined;
  if (!isRecord(value)) {
    invalidParams(
      action,
      `\`${key}\` is ${describeValue(value)}`,
      `give \`${key}\` as a map of names to strings.`,
    );
  }
  const out: Record<string, string> = {};
  for (const [name, entry] of Object.entries(value)) {
    const text = scalarText(entry);
    if (text === undefined) {
      invalidParams(
        action,
        `\`${key}.${name}\` is ${describeValue(entry)}`,
        `give \`${key}.${name}\` as a string.`,
      );
    }
    out[name] = text;
  }
  return out;
}
