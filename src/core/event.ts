import { ReflexError } from './errors.js';

/**
 * A CloudEvents 1.0 event as Reflex stores and matches it (the JSON "structured" form).
 * Identity is (`source`, `id`). Extension attributes sit beside the context attributes.
 */
export interface CloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject?: string;
  time?: string;
  datacontenttype?: string;
  dataschema?: string;
  data?: unknown;
  /** Binary data that is not JSON, base64-encoded (CloudEvents JSON format, section 3.1). */
  data_base64?: string;
  [extension: string]: unknown;
}

/**
 * A place in the log. The log is split into partitions (one by default); `seq` is one sequence for the
 * whole log, assigned in commit order, so it names an event on its own: within a partition seqs rise but
 * may have gaps (the seqs between went to other partitions).
 */
export interface LogPosition {
  /** From 0. */
  partition: number;
  /** From 1, unique across all partitions. */
  seq: number;
}

/** An event with its place in the log. */
export interface LoggedEvent {
  /** Position in the log, from 1, unique across all partitions; seqs may have gaps. */
  seq: number;
  /** The partition the event went to (0 with one partition). */
  partition: number;
  /** When the log committed it, in milliseconds since the epoch. */
  receivedAt: number;
  event: CloudEvent;
}

/** The result of appending an event to the log. */
export interface AppendResult {
  seq: number;
  partition: number;
  id: string;
  source: string;
  /** True when an event with the same (`source`, `id`) was already in the log; `seq` and `partition` are then the original's. */
  duplicate: boolean;
}

/** Limits applied to every incoming event. */
export interface EventLimits {
  /**
   * Deepest nesting of objects and arrays allowed in an event.
   * @default 32
   */
  maxDepth: number;
}

export const defaultEventLimits: EventLimits = Object.freeze({ maxDepth: 32 });

const contextAttributes = new Set([
  'specversion',
  'id',
  'source',
  'type',
  'subject',
  'time',
  'datacontenttype',
  'dataschema',
  'data',
  'data_base64',
]);

/** CloudEvents 1.0: extension names are lower-case ASCII letters and digits (20 or fewer is advised, not required). */
const extensionName = /^[a-z0-9]+$/;

/** RFC 3339 timestamp, as CloudEvents requires for `time`: the shape; `timeProblem` checks the values. */
const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** The source of the events Reflex makes itself: run outcomes, timers, fact changes, `emit` steps. */
export const reflexSource = 'reflex';

/** The prefix of the types of the events Reflex makes itself (`reflex.run.failed`, `reflex.timer`, ...). */
export const reflexTypePrefix = 'reflex.';

/**
 * Whether `type` is one of Reflex's own event types. Compared without case, so that a pattern written
 * with `equals-ignore-case` cannot be reached by a look-alike either.
 */
export function isReservedType(type: string): boolean {
  return type.slice(0, reflexTypePrefix.length).toLowerCase() === reflexTypePrefix;
}

/** Whether `source` is Reflex's own (compared without case, like types). */
export function isReservedSource(source: string): boolean {
  return source.toLowerCase() === reflexSource;
}

/**
 * Characters refused in event attributes: C0 controls (NUL, ESC, newline...), DEL, C1 controls, the
 * Unicode line and paragraph separators, and the bidirectional overrides. Printed by a terminal, they
 * can rewrite what an operator sees (ANSI escapes, fake lines, reversed text).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const unprintable = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Printable ASCII only: nearly every attribute, checked with one fast test before the others. */
const printableAscii = /^[\x20-\x7e]*$/;

/** A UTF-16 surrogate without its partner: not a character, and not valid in UTF-8. */
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Standard base64 (RFC 4648, section 4) with its padding, as CloudEvents asks for `data_base64`. */
const base64 = /^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}

/**
 * Checks that `value` is a CloudEvents 1.0 event in JSON form and returns it typed.
 * Throws a coded error that names the attribute at fault; `where` (e.g. " in batch item 3") is put in
 * the message so a batch sender knows which event to fix.
 */
export function validateCloudEvent(
  value: unknown,
  limits: EventLimits = defaultEventLimits,
  where = '',
): CloudEvent {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ReflexError('REFLEX_ERR_EVENT_NOT_OBJECT', {
      expected: `a JSON object${where}`,
      got: describe(value),
    });
  }
  const event = value as Record<string, unknown>;
  for (const attribute of ['specversion', 'id', 'source', 'type'] as const) {
    const attr = event[attribute];
    if (attr === undefined || attr === null || attr === '') {
      throw new ReflexError('REFLEX_ERR_EVENT_MISSING_ATTRIBUTE', { attribute, where });
    }
    if (typeof attr !== 'string') {
      throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
        attribute,
        where,
        reason: `it is ${describe(attr)}`,
        fix: 'send it as a non-empty string.',
      });
    }
  }
  if (event.specversion !== '1.0') {
    throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
      attribute: 'specversion',
      where,
      reason: `Reflex reads CloudEvents 1.0, not ${JSON.stringify(event.specversion)}`,
      fix: 'set "specversion": "1.0".',
    });
  }
  for (const attribute of ['subject', 'time', 'datacontenttype', 'dataschema', 'data_base64'] as const) {
    const attr = event[attribute];
    if (attr !== undefined && typeof attr !== 'string') {
      throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
        attribute,
        where,
        reason: `it is ${describe(attr)}`,
        fix: 'send it as a string, or leave it out.',
      });
    }
  }
  for (const name of textAttributes) checkText(event, name, where);
  if (typeof event.time === 'string') {
    const problem = timeProblem(event.time);
    if (problem !== undefined) {
      throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
        attribute: 'time',
        where,
        reason: `${JSON.stringify(event.time)} is not an RFC 3339 timestamp: ${problem}`,
        fix: 'write it like "2026-11-27T10:00:00Z".',
      });
    }
  }
  if (
    typeof event.data_base64 === 'string' &&
    (event.data_base64.length % 4 !== 0 || !base64.test(event.data_base64))
  ) {
    throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
      attribute: 'data_base64',
      where,
      reason: 'it is not base64 (RFC 4648: the letters A-Z a-z 0-9 + /, padded with = to a multiple of 4)',
      fix: 'encode the bytes with standard base64, with padding (not base64url), or send JSON as `data`.',
    });
  }
  if (event.data !== undefined && event.data_base64 !== undefined) {
    throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
      attribute: 'data_base64',
      where,
      reason: 'an event carries either `data` or `data_base64`, not both',
      fix: 'remove one of them.',
    });
  }
  for (const name of Object.keys(event)) {
    if (contextAttributes.has(name)) continue;
    if (!extensionName.test(name)) {
      throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
        attribute: name,
        where,
        reason: 'extension attribute names are lower-case letters and digits only',
        fix: 'rename it, or move it into `data`.',
      });
    }
    const ext = event[name];
    if (ext !== null && typeof ext === 'object') {
      throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
        attribute: name,
        where,
        reason: 'extension attributes hold a string, number or boolean',
        fix: 'move structured values into `data`.',
      });
    }
    if (typeof ext === 'number' && !Number.isFinite(ext)) {
      throw new ReflexError('REFLEX_ERR_EVENT_NUMBER_OUT_OF_RANGE', { path: name });
    }
    checkText(event, name, where);
  }
  checkDepth(event.data, limits.maxDepth, 'data');
  return event as CloudEvent;
}

/**
 * Refuses an event from outside (the API, a webhook) that would pose as one Reflex makes itself: source
 * `reflex`, or a type under `reflex.`. Such an event could trigger the rules that react to run outcomes,
 * or take the id of an outcome, timer or fact change before Reflex appends it, which would then be
 * dropped as a duplicate. Events Reflex makes, and rule tests, do not go through this check.
 * Throws REFLEX_ERR_EVENT_RESERVED.
 */
export function checkNotReserved(event: CloudEvent, where = ''): void {
  if (isReservedSource(event.source)) {
    throw new ReflexError('REFLEX_ERR_EVENT_RESERVED', {
      where,
      attribute: 'source',
      value: JSON.stringify(event.source),
      fix: 'give your events a source of your own, such as a URI that names the sender.',
    });
  }
  if (isReservedType(event.type)) {
    throw new ReflexError('REFLEX_ERR_EVENT_RESERVED', {
      where,
      attribute: 'type',
      value: JSON.stringify(event.type),
      fix: `name the type in a namespace of your own, such as \`com.example.${event.type.slice(reflexTypePrefix.length)}\`.`,
    });
  }
}

/** The context attributes that hold text (`data_base64` is checked as base64). */
const textAttributes = ['id', 'source', 'type', 'subject', 'time', 'datacontenttype', 'dataschema'] as const;

/** Throws REFLEX_ERR_EVENT_INVALID_ATTRIBUTE when the attribute `name` is a string that is not text. */
function checkText(event: Record<string, unknown>, name: string, where: string): void {
  const attr = event[name];
  if (typeof attr !== 'string' || printableAscii.test(attr)) return;
  const problem = textProblem(attr);
  if (problem === undefined) return;
  throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
    attribute: name,
    where,
    reason: problem,
    fix: 'send printable text only; percent-encode anything else, or move it into `data`.',
  });
}

/** Why a string attribute cannot be taken as text, or undefined when it can. */
function textProblem(text: string): string | undefined {
  const control = unprintable.exec(text);
  if (control !== null) {
    const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    return `it holds the non-printable character U+${code} at position ${control.index}`;
  }
  const surrogate = loneSurrogate.exec(text);
  if (surrogate !== null) return `it holds a lone UTF-16 surrogate at position ${surrogate.index}`;
  return undefined;
}

/** The number written by `length` ASCII digits of `text` from `from`. */
function digits(text: string, from: number, length: number): number {
  let value = 0;
  for (let i = from; i < from + length; i++) value = value * 10 + text.charCodeAt(i) - 48;
  return value;
}

const daysInMonth = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Why `time` is not a valid RFC 3339 timestamp, or undefined when it is. The shape alone lets through
 * month 13, February 30 and hour 25, which no clock shows and `Date.parse` reads as NaN. A leap second
 * (`:60`) is refused too: JavaScript dates cannot hold it.
 */
function timeProblem(time: string): string | undefined {
  if (!rfc3339.test(time)) return 'it does not have the form YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)';
  // The shape fixes where each field stands; reading the digits there is much cheaper than capturing
  // and converting them (this runs for every event that has a time).
  const year = digits(time, 0, 4);
  const month = digits(time, 5, 2);
  const day = digits(time, 8, 2);
  const hour = digits(time, 11, 2);
  const minute = digits(time, 14, 2);
  const second = digits(time, 17, 2);
  if (month < 1 || month > 12) return `there is no month ${month}`;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 && leap ? 29 : daysInMonth[month - 1]!;
  if (day < 1 || day > days) return `month ${month} of ${year} has no day ${day}`;
  if (hour > 23) return `there is no hour ${hour}`;
  if (minute > 59) return `there is no minute ${minute}`;
  if (second > 59) return `there is no second ${second} (leap seconds are not accepted)`;
  const zulu = time.endsWith('Z') || time.endsWith('z');
  if (!zulu && (digits(time, time.length - 5, 2) > 23 || digits(time, time.length - 2, 2) > 59))
    return 'its UTC offset is out of range';
  return undefined;
}

/**
 * Throws REFLEX_ERR_EVENT_TOO_DEEP when `value` nests objects/arrays deeper than `maxDepth`, and
 * REFLEX_ERR_EVENT_NUMBER_OUT_OF_RANGE when it holds a number that is not finite: `JSON.parse` reads
 * `1e400` as Infinity, which JSON cannot write back (it would be stored as `null`). `path` names the
 * value in the error (`data`, or `$` for a whole body). Iterative, so a hostile payload cannot overflow
 * the stack.
 */
export function checkDepth(value: unknown, maxDepth: number, path = '$'): void {
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new ReflexError('REFLEX_ERR_EVENT_NUMBER_OUT_OF_RANGE', { path });
  }
  if (value === null || typeof value !== 'object') return;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (depth > maxDepth) throw new ReflexError('REFLEX_ERR_EVENT_TOO_DEEP', { limit: maxDepth });
    const children = Array.isArray(node) ? node : Object.values(node as object);
    for (const child of children) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
      else if (typeof child === 'number' && !Number.isFinite(child)) {
        throw new ReflexError('REFLEX_ERR_EVENT_NUMBER_OUT_OF_RANGE', {
          path: pathOf(value, child, path) ?? path,
        });
      }
    }
  }
}

/** The path of the first leaf `leaf` (by identity) in `value`, for an error message; depth-first. */
function pathOf(value: unknown, leaf: unknown, root: string): string | undefined {
  const stack: Array<[unknown, string]> = [[value, root]];
  while (stack.length > 0) {
    const [node, path] = stack.pop()!;
    if (Object.is(node, leaf)) return path;
    if (node === null || typeof node !== 'object') continue;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) stack.push([node[i], `${path}[${i}]`]);
    } else for (const [key, child] of Object.entries(node)) stack.push([child, `${path}.${key}`]);
  }
  return undefined;
}
