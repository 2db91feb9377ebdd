import { Duration, UnsignedInt } from '@marcbachmann/cel-js/evaluator';

/**
 * How data crosses into CEL and back.
 *
 * cel-js decides what a value is from its `constructor` property (a plain object is a map because its
 * constructor is `Object`), and compares two plain objects with the `in` operator, which also sees what
 * an object inherits. So a JSON key `constructor` makes an object an "unsupported type", and a key
 * `__proto__` can make two different maps equal. A `Map` keeps its keys apart from its properties: it is
 * the form in which every JSON object reaches CEL, whatever its keys.
 *
 * Copying a whole event for every expression would cost more than evaluating most conditions, so the
 * copy is lazy: a {@link DataMap} wraps the object and turns a value into CEL's form when CEL first reads
 * it (`event.data.host` converts `event`'s `data` and nothing else). Lists are converted when read, their
 * objects again lazily. Objects given to an expression are therefore taken as immutable.
 */

/** Lists nested deeper than this are refused; events are far shallower (see `--max-depth`). */
export const maxDataDepth = 512;

/** Thrown when a value cannot cross into CEL or out of it as JSON; expression.ts words the error. */
export class DataError extends Error {}

function convert(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > maxDataDepth) throw new DataError(`the data nests deeper than ${maxDataDepth} levels`);
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      // As in JSON, a hole or undefined in a list is null.
      out[i] = item === undefined ? null : convert(item, depth + 1);
    }
    return out;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  return new DataMap(value as Record<string, unknown>, depth);
}

/**
 * A JSON object as CEL reads it: a `Map` of its own keys (those not undefined), each value converted
 * when it is first read and kept. cel-js recognises maps by `constructor === Map`, which the prototype
 * below says; the library does the same for its own typed messages (a Map subclass that converts on
 * `get`).
 */
class DataMap extends Map<string, unknown> {
  readonly #raw: Record<string, unknown>;
  readonly #depth: number;
  #keys: string[] | undefined;

  constructor(raw: Record<string, unknown>, depth: number) {
    super();
    this.#raw = raw;
    this.#depth = depth;
  }

  #keyList(): string[] {
    if (this.#keys === undefined) {
      const raw = this.#raw;
      this.#keys = Object.keys(raw).filter((key) => raw[key] !== undefined);
    }
    return this.#keys;
  }

  override get(key: string): unknown {
    const cached = super.get(key);
    if (cached !== undefined) return cached;
    if (typeof key !== 'string' || !Object.hasOwn(this.#raw, key)) return undefined;
    const value = this.#raw[key];
    if (value === null || typeof value !== 'object') return value;
    const out = convert(value, this.#depth + 1);
    super.set(key, out);
    return out;
  }

  override has(key: string): boolean {
    return typeof key === 'string' && Object.hasOwn(this.#raw, key) && this.#raw[key] !== undefined;
  }

  override get size(): number {
    return this.#keyList().length;
  }

  override keys(): MapIterator<string> {
    return this.#keyList().values();
  }

  override *values(): MapIterator<unknown> {
    for (const key of this.#keyList()) yield this.get(key);
  }

  override *entries(): MapIterator<[string, unknown]> {
    for (const key of this.#keyList()) yield [key, this.get(key)];
  }

  override [Symbol.iterator](): MapIterator<[string, unknown]> {
    return this.entries();
  }

  override forEach(
    callback: (value: unknown, key: string, map: Map<string, unknown>) => void,
    thisArg?: unknown,
  ): void {
    for (const key of this.#keyList()) callback.call(thisArg, this.get(key), key, this);
  }
}
Object.defineProperty(DataMap.prototype, 'constructor', { value: Map, writable: true, configurable: true });

/**
 * Turns JSON data (objects, arrays, scalars) into the form CEL reads: objects become maps that convert
 * what they hold when it is read, lists are copied with their elements converted.
 */
export function toCel(value: unknown): unknown {
  return convert(value, 0);
}

/**
 * {@link toCel}, remembered for the last object: one event (or facts snapshot, or vars) is read by one
 * expression after another, and what one converted the next reads without converting again.
 */
export class CelMemo {
  #last: unknown;
  #lastValue: unknown;

  of(value: unknown): unknown {
    if (value === null || typeof value !== 'object') return value;
    if (value !== this.#last) {
      this.#lastValue = toCel(value);
      this.#last = value;
    }
    return this.#lastValue;
  }
}

function formatDuration(d: Duration): string {
  let nanos = d.seconds * 1_000_000_000n + BigInt(d.nanos);
  const sign = nanos < 0n ? '-' : '';
  if (nanos < 0n) nanos = -nanos;
  const whole = nanos / 1_000_000_000n;
  const fraction = nanos % 1_000_000_000n;
  if (fraction === 0n) return `${sign}${whole}s`;
  return `${sign}${whole}.${fraction.toString().padStart(9, '0').replace(/0+$/, '')}s`;
}

function base64(bytes: Uint8Array): string {
  let binary = '';
  // Chunks keep String.fromCharCode within the engine's argument limit.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function integer(value: bigint): number | string {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(value)
    : value.toString();
}

function setKey(out: Record<string, unknown>, key: string, value: unknown): void {
  // A JSON key "__proto__" must stay a key: plain assignment would set the prototype instead.
  if (key === '__proto__')
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  else out[key] = value;
}

/** What {@link toJson} needs to know besides the value. */
export interface ToJsonOptions {
  /** Nesting of the result allowed. */
  maxDepth: number;
  /** The class of `type(x)` values, which become their name. */
  typeClass: unknown;
  /** Called with the work done, one unit per value: a result built of shared parts can be huge. */
  spend(units: number): void;
}

/**
 * Turns a CEL value into a plain JSON value: maps become plain objects (every key an own property),
 * integers numbers (strings past 2^53), timestamps ISO strings, durations like `"90s"`, bytes base64.
 * Always copies containers, so a caller that changes the result cannot change the data it came from.
 * Throws DataError for what JSON cannot hold.
 */
export function toJson(value: unknown, options: ToJsonOptions, depth = 0): unknown {
  switch (typeof value) {
    case 'boolean':
    case 'string':
      return value;
    case 'number':
      if (Number.isFinite(value)) return value;
      throw new DataError(`the result is ${value}, which JSON cannot hold`);
    case 'bigint':
      return integer(value);
    case 'object':
      break;
    default:
      throw new DataError(`a ${typeof value} cannot be turned into JSON`);
  }
  if (value === null) return null;
  if (depth > options.maxDepth) {
    throw new DataError(`the result nests deeper than ${options.maxDepth} levels`);
  }
  if (Array.isArray(value) || value instanceof Set) {
    options.spend(1 + (Array.isArray(value) ? value.length : value.size));
    const out: unknown[] = [];
    for (const item of value) out.push(toJson(item, options, depth + 1));
    return out;
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new DataError('the result is an invalid timestamp');
    return value.toISOString();
  }
  if (value instanceof Duration) return formatDuration(value);
  if (value instanceof UnsignedInt) return integer(value.valueOf());
  if (value instanceof Uint8Array) return base64(value);
  if (value.constructor === options.typeClass) return (value as { name: string }).name;
  const out: Record<string, unknown> = {};
  if (value instanceof Map) {
    options.spend(1 + value.size);
    for (const [key, item] of value) setKey(out, String(key), toJson(item, options, depth + 1));
    return out;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new DataError(`a ${value.constructor?.name ?? 'value'} cannot be turned into JSON`);
  }
  const keys = Object.keys(value);
  options.spend(1 + keys.length);
  for (const key of keys) {
    setKey(out, key, toJson((value as Record<string, unknown>)[key], options, depth + 1));
  }
  return out;
}
