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

/** A dot-prefix of the field names being read, and the keys that lead on from it. */
interface Prefix {
  /** The values of the field, when the prefix is itself a field being read. */
  values: PlacedValue[] | null;
  readonly next: Map<string, Prefix>;
}

/**
 * The values of the fields named in `paths`, as {@link flattenEvent} finds them, each with the array
 * element it sits in. Only keys that lead to one of the names are visited, so the cost is that of the
 * parts of the event the names reach.
 */
export function readFieldValues(event: unknown, paths: Iterable<string>): Map<string, PlacedValue[]> {
  const fields = new Map<string, PlacedValue[]>();
  const root: Prefix = { values: null, next: new Map() };
  for (const path of paths) {
    let prefix = root;
    for (const segment of path.split('.')) {
      let next = prefix.next.get(segment);
      if (next === undefined) {
        next = { values: null, next: new Map() };
        prefix.next.set(segment, next);
      }
      prefix = next;
    }
    prefix.values ??= [];
    fields.set(path, prefix.values);
  }
  // A key with dots (`{"b.c": ..}`) leads on as its segments would.
  const follow = (from: Prefix, key: string): Prefix | undefined => {
    const direct = from.next.get(key);
    if (direct !== undefined || !key.includes('.')) return direct;
    let prefix: Prefix | undefined = from;
    for (const segment of key.split('.')) {
      prefix = prefix.next.get(segment);
      if (prefix === undefined) return undefined;
    }
    return prefix;
  };
  const visit = (value: unknown, prefix: Prefix, place: ArrayPlace | null): void => {
    if (Array.isArray(value)) {
      const array = {};
      for (let index = 0; index < value.length; index++) {
        visit(value[index], prefix, { array, index, parent: place });
      }
    } else if (isObject(value)) {
      if (prefix.next.size === 0) return;
      for (const key in value) {
        if (!Object.hasOwn(value, key)) continue;
        const next = follow(prefix, key);
        if (next !== undefined) visit(value[key], next, place);
      }
    } else if (prefix.values !== null && isScalar(value)) {
      prefix.values.push({ value, place });
    }
  };
  if (isObject(event)) visit(event, root, null);
  return fields;
}
