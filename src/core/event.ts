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

/** An event with its place in the log. */
export interface LoggedEvent {
  /** Position in the log, from 1, without gaps per log. */
  seq: number;
  /** When the log committed it, in milliseconds since the epoch. */
  receivedAt: number;
  event: CloudEvent;
}

/** The result of appending an event to the log. */
export interface AppendResult {
  seq: number;
  id: string;
  source: string;
  /** True when an event with the same (`source`, `id`) was already in the log; `seq` is then the original's. */
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

/** RFC 3339 timestamp, as CloudEvents requires for `time`. */
const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

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
  if (typeof event.time === 'string' && !rfc3339.test(event.time)) {
    throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
      attribute: 'time',
      where,
      reason: `${JSON.stringify(event.time)} is not an RFC 3339 timestamp`,
      fix: 'write it like "2026-11-27T10:00:00Z".',
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
  }
  checkDepth(event.data, limits.maxDepth);
  return event as CloudEvent;
}

/**
 * Throws REFLEX_ERR_EVENT_TOO_DEEP when `value` nests objects/arrays deeper than `maxDepth`.
 * Iterative, so a hostile payload cannot overflow the stack.
 */
export function checkDepth(value: unknown, maxDepth: number): void {
  if (value === null || typeof value !== 'object') return;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (depth > maxDepth) throw new ReflexError('REFLEX_ERR_EVENT_TOO_DEEP', { limit: maxDepth });
    const children = Array.isArray(node) ? node : Object.values(node as object);
    for (const child of children) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
}
