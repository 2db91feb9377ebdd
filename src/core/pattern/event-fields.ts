import type { ArrayPlace } from './array-consistency.js';
import type { JsonScalar } from './pattern.js';

/** Which element of which array of the event a value sits in. */
export interface ArrayPosition {
  /** Numbers the arrays of one event, in the order they are met. */
  readonly array: number;
  readonly index: number;
}

/** One value of an event, with the array elements it sits in (outermost first). */
export interface EventField {
  readonly value: JsonScalar;
  readonly arrays: readonly ArrayPosition[];
}

/**
 * An event seen as EventBridge sees it: field name (keys joined with `.`) to the values under it.
 * Arrays are "crushed": every element's values belong to the array's own field name. Objects and empty
 * arrays contribute no value of their own, so `exists` only sees strings, numbers, booleans and `null`.
 */
export type EventFields = ReadonlyMap<string, readonly EventField[]>;

function isScalar(value: unknown): value is JsonScalar {
  return (
    value === null ||
    typeof value === 'string' ||
    typeof value === 'boolean' ||
    (typeof value === 'number' && Number.isFinite(value))
  );
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Flattens an event into its fields. Anything but a JSON object has no fields.
 *
 * @example
 * flattenEvent({ a: { b: 1 }, 'a.c': [2, 3] })
 * // a.b → [{ value: 1, arrays: [] }],
 * // a.c → [{ value: 2, arrays: [{ array: 0, index: 0 }] }, { value: 3, arrays: [{ array: 0, index: 1 }] }]
 */
export function flattenEvent(event: unknown): EventFields {
  const fields = new Map<string, EventField[]>();
  let arrays = 0;
  const visit = (value: unknown, path: string, within: readonly ArrayPosition[]): void => {
    if (Array.isArray(value)) {
      const array = arrays++;
      value.forEach((element: unknown, index) => {
        visit(element, path, [...within, { array, index }]);
      });
    } else if (isObject(value)) {
      for (const [key, child] of Object.entries(value)) visit(child, `${path}.${key}`, within);
    } else if (isScalar(value)) {
      const list = fields.get(path);
      const field = { value, arrays: within };
      if (list === undefined) fields.set(path, [field]);
      else list.push(field);
    }
  };
  if (isObject(event)) {
    for (const [key, child] of Object.entries(event)) visit(child, key, []);
  }
  return fields;
}

/**
 * What the event holds under a field name, objects included, for explanations: one entry per value or
 * object found (array elements each count), and an empty array where the field is `[]`. The walk stops
 * once `limit` entries are found.
 */
export function valuesAt(event: unknown, path: string, limit = Number.POSITIVE_INFINITY): unknown[] {
  const found: unknown[] = [];
  const visit = (value: unknown, here: string): void => {
    if (found.length >= limit) return;
    if (Array.isArray(value)) {
      if (here === path && value.length === 0) found.push(value);
      for (const element of value) {
        if (found.length >= limit) return;
        visit(element, here);
      }
    } else if (here === path) {
      found.push(value);
    } else if (isObject(value) && path.startsWith(`${here}.`)) {
      for (const [key, child] of Object.entries(value)) visit(child, `${here}.${key}`);
    }
  };
  if (isObject(event)) {
    for (const [key, child] of Object.entries(event)) {
      if (path === key || path.startsWith(`${key}.`)) visit(child, key);
    }
  }
  return found;
}

/** A value of an event field and the array element it sits in, for deciding array consistency. */
export interface PlacedValue {
  readonly value: JsonScalar;
  /** The innermost array element holding the value; null outside arrays. */
  readonly place: ArrayPlace | null;
}

/**
 * The values of the fields named in `paths`, as {@link flattenEvent} finds them, each with the array
 * element it sits in. Only keys that lead to one of the names are visited, so the cost is that of the
 * parts of the event the names reach.
 */
export function readFieldValues(event: unknown, paths: Iterable<string>): Map<string, PlacedValue[]> {
  const fields = new Map<string, PlacedValue[]>();
  const prefixes = new Set<string>();
  for (const path of paths) {
    fields.set(path, []);
    for (let at = path.indexOf('.'); at !== -1; at = path.indexOf('.', at + 1))
      prefixes.add(path.slice(0, at));
    prefixes.add(path);
  }
  const visit = (value: unknown, path: string, place: ArrayPlace | null): void => {
    if (Array.isArray(value)) {
      const array = {};
      for (let index = 0; index < value.length; index++) {
        visit(value[index], path, { array, index, parent: place });
      }
    } else if (isObject(value)) {
      for (const [key, child] of Object.entries(value)) {
        const next = `${path}.${key}`;
        if (prefixes.has(next)) visit(child, next, place);
      }
    } else if (isScalar(value)) {
      fields.get(path)?.push({ value, place });
    }
  };
  if (isObject(event)) {
    for (const [key, child] of Object.entries(event)) if (prefixes.has(key)) visit(child, key, null);
  }
  return fields;
}
