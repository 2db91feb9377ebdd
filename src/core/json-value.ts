/**
 * Bounded copies of values that come from outside Reflex's own code — an action's output, an error a
 * plugin threw, an event or a fact value an action hands over — before they are serialised, stored or
 * logged. `JSON.stringify` recurses, so a value nested a few thousand levels deep overflows the stack
 * wherever it is written; a cycle, a BigInt or a getter that throws make it throw; shared references
 * can make a small object serialise to gigabytes. A bounded copy is plain JSON data that can be
 * serialised anywhere without any of that.
 */

/** How deep and how large a value may be. */
export interface JsonLimits {
  /**
   * Deepest nesting of objects and arrays; the value itself is level 1, as in an event's `data`
   * (see `checkDepth`).
   */
  maxDepth: number;
  /** Longest JSON text of the value, in UTF-8 bytes. */
  maxBytes: number;
}

/** Why a value was refused: `reason` says what and where, for an error message. */
export interface JsonProblem {
  ok: false;
  kind: 'too-deep' | 'too-large' | 'not-json' | 'unreadable';
  reason: string;
}

/** A value within the limits: `value` is a fresh copy made only of plain JSON data, `json` its text. */
export interface BoundedJson {
  ok: true;
  value: unknown;
  json: string;
  /** UTF-8 length of `json`. */
  bytes: number;
}

interface Frame {
  parent: Frame | undefined;
  /** The key or index under which this value sits in its parent. */
  key: string | number;
  source: unknown;
  depth: number;
  /** The copy's container this value goes into, and under which key. */
  into: Record<string, unknown> | unknown[] | undefined;
}

/**
 * Copies `value` as JSON would see it — `toJSON` applied, `undefined`, functions and symbols left out
 * of objects and `null` in arrays, non-finite numbers `null` — as long as it nests at most
 * `limits.maxDepth` levels and its JSON text is at most `limits.maxBytes` bytes. Never throws and never
 * recurses: the walk stops at the first problem, and its work is bounded by the limits, so a cycle, a
 * BigInt, a getter or proxy trap that throws, or a structure far larger as JSON than in memory comes
 * back as a problem. A `__proto__` key stays an ordinary key of the copy.
 *
 * @example
 * const bounded = toBoundedJson(output, { maxDepth: 32, maxBytes: 1_048_576 });
 * if (!bounded.ok) throw new Error(`cannot store the output: ${bounded.reason}`);
 */
export function toBoundedJson(value: unknown, limits: JsonLimits): BoundedJson | JsonProblem {
  // A lower bound on the JSON's length, counted as the walk goes, so it stops long before building a
  // copy too large to keep; the exact length is measured on the finished copy.
  let estimate = 0;
  const holder: Record<string, unknown> = {};
  const stack: Frame[] = [{ parent: undefined, key: '', source: value, depth: 1, into: holder }];
  let current: Frame | undefined;
  try {
    while (stack.length > 0) {
      current = stack.pop()!;
      const { depth, into, key } = current;
      let item = current.source;
      if (item !== null && (typeof item === 'object' || typeof item === 'bigint')) {
        const toJSON = (item as { toJSON?: unknown }).toJSON;
        if (typeof toJSON === 'function') item = toJSON.call(item, String(key));
      }
      if (item instanceof Number || item instanceof String || item instanceof Boolean) item = item.valueOf();
      let copy: unknown;
      switch (typeof item) {
        case 'string':
          estimate += item.length + 2;
          copy = item;
          break;
        case 'number':
          // As JSON: non-finite numbers are null, and -0 is 0.
          copy = Number.isFinite(item) ? item + 0 : null;
          estimate += 1;
          break;
        case 'boolean':
          copy = item;
          estimate += 4;
          break;
        case 'bigint':
          return problem('not-json', `it holds a BigInt at ${pathOf(current)}, which JSON cannot carry`);
        case 'undefined':
        case 'function':
        case 'symbol':
          // As JSON.stringify: left out of an object, null in an array (and at the top).
          if (into !== undefined && !Array.isArray(into) && current.parent !== undefined) continue;
          copy = null;
          estimate += 4;
          break;
        default: {
          if (item === null) {
            copy = null;
            estimate += 4;
            break;
          }
          if (refersToItself(current, item)) {
            return problem('not-json', `it refers to itself at ${pathOf(current)}`);
          }
          if (depth > limits.maxDepth) {
            return problem(
              'too-deep',
              `it nests deeper than ${limits.maxDepth} levels at ${pathOf(current)}`,
            );
          }
          if (Array.isArray(item)) {
            const length = item.length;
            // Every element is at least one character and a comma: a long array is refused before
            // anything of it is copied.
            estimate += 2 + Math.max(0, 2 * length - 1);
            if (estimate > limits.maxBytes) return tooLarge(limits);
            const array: unknown[] = new Array(length).fill(null);
            copy = array;
            for (let i = length - 1; i >= 0; i--) {
              stack.push({ parent: current, key: i, source: item[i], depth: depth + 1, into: array });
            }
          } else {
            const keys = Object.keys(item as object);
            estimate += 2 + Math.max(0, keys.length - 1);
            const object: Record<string, unknown> = {};
            copy = object;
            for (let i = keys.length - 1; i >= 0; i--) {
              const name = keys[i]!;
              const child = (item as Record<string, unknown>)[name];
              stack.push({ parent: current, key: name, source: child, depth: depth + 1, into: object });
            }
          }
        }
      }
      // A key counts (quotes, colon) only once its value is known to be kept.
      if (!Array.isArray(into) && current.parent !== undefined) estimate += String(key).length + 3;
      if (estimate > limits.maxBytes) return tooLarge(limits);
      if (Array.isArray(into)) into[key as number] = copy;
      else if (into !== undefined) setOwn(into, String(key), copy);
    }
  } catch (error) {
    return problem('unreadable', `reading it at ${pathOf(current)} threw: ${shortText(error)}`);
  }
  const result = holder[''] ?? null;
  const json = JSON.stringify(result);
  const bytes = utf8Length(json);
  if (bytes > limits.maxBytes) return tooLarge(limits, bytes);
  return { ok: true, value: result, json, bytes };
}

function problem(kind: JsonProblem['kind'], reason: string): JsonProblem {
  return { ok: false, kind, reason };
}

function tooLarge(limits: JsonLimits, bytes?: number): JsonProblem {
  return problem(
    'too-large',
    bytes === undefined
      ? `its JSON is longer than ${limits.maxBytes} bytes`
      : `its JSON is ${bytes} bytes, longer than ${limits.maxBytes}`,
  );
}

/** Whether `item` is one of the containers the walk is inside of: a cycle. */
function refersToItself(frame: Frame, item: unknown): boolean {
  for (let up = frame.parent; up !== undefined; up = up.parent) if (up.source === item) return true;
  return false;
}

/** Where a frame sits, as `$.body.items[3]`; long paths keep their start and end. */
function pathOf(frame: Frame | undefined): string {
  const parts: string[] = [];
  for (let at = frame; at?.parent !== undefined; at = at.parent) {
    parts.push(typeof at.key === 'number' ? `[${at.key}]` : `.${at.key}`);
  }
  parts.reverse();
  const path = parts.length > 12 ? [...parts.slice(0, 6), '…', ...parts.slice(-5)] : parts;
  const text = `$${path.join('')}`;
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/** Sets a key even when it is `__proto__`, which plain assignment would turn into a prototype change. */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

/** The UTF-8 length of a string (lone surrogates count as the 3 bytes of U+FFFD). */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * A short text for anything thrown or given, that never throws itself: a string as it is, an Error's
 * message, else what `String` gives, cut at `maxChars`.
 */
export function shortText(value: unknown, maxChars = 200): string {
  let text: string;
  try {
    if (typeof value === 'string') text = value;
    else if (value instanceof Error && typeof value.message === 'string') text = value.message;
    else text = String(value);
  } catch {
    try {
      text = Object.prototype.toString.call(value);
    } catch {
      text = 'a value that cannot be shown';
    }
  }
  return text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
}

/**
 * Whether JSON text nests its arrays and objects at most `maxDepth` levels deep (the outermost is level
 * 1). Reads the text once without parsing it, so a deep document is turned away before `JSON.parse`
 * builds it; brackets inside strings do not count. Says nothing about whether the text is valid JSON.
 */
export function jsonNestsWithin(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // a backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      depth += 1;
      if (depth > maxDepth) return false;
    } else if (c === 0x5d || c === 0x7d) depth -= 1;
  }
  return true;
}
