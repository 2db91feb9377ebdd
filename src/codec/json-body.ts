import { isUtf8 } from 'node:buffer';
import { ReflexError } from '../core/errors.js';

/**
 * Parses a JSON body (an HTTP request body, a broker message's payload) safely.
 *
 * The body must be UTF-8 (RFC 8259, section 8.1; a `charset` parameter has no effect on JSON), and a
 * leading byte order mark is skipped. Anything else gives REFLEX_ERR_EVENT_INVALID_JSON with the reason.
 *
 * Prototype pollution: `JSON.parse` itself is safe, because it defines every key as an own property, even
 * `__proto__`. The danger comes later, when such an object is copied with a setter-based operation
 * (`Object.assign`, a hand-written deep merge, `target[key] = value` in a loop): an own `__proto__` key then
 * replaces the target's prototype, and a `constructor.prototype` path reaches a shared prototype. Since
 * events are copied, merged and templated by many parts of Reflex (and by users' scripts), the body is
 * refused outright when it holds such keys, as Fastify does by default. Scanning only happens when the
 * text could spell one of them (directly or with `\u` escapes), so ordinary bodies pay nothing for it.
 *
 * @example
 * parseJsonBody(Buffer.from('{"a":1}')); // { a: 1 }
 */
export function parseJsonBody(body: Uint8Array): unknown {
  if (!isUtf8(body)) {
    throw new ReflexError('REFLEX_ERR_EVENT_INVALID_JSON', { reason: 'it is not valid UTF-8' });
  }
  let text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ReflexError(
      'REFLEX_ERR_EVENT_INVALID_JSON',
      { reason: error instanceof Error ? error.message : String(error) },
      { cause: error },
    );
  }
  if (text.includes('__proto__') || text.includes('constructor') || text.includes('\\u')) {
    rejectPoisonedKeys(value);
  }
  return value;
}

/** Walks the parsed value (iteratively: the input is hostile) and throws on a prototype-poisoning key. */
function rejectPoisonedKeys(value: unknown): void {
  const stack: Array<[unknown, string]> = [[value, '$']];
  while (stack.length > 0) {
    const [node, path] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--) stack.push([node[i], `${path}[${i}]`]);
      continue;
    }
    const record = node as Record<string, unknown>;
    if (Object.hasOwn(record, '__proto__')) throw poisoned(`${path}.__proto__`);
    const ctor = record['constructor'];
    if (Object.hasOwn(record, 'constructor') && ctor !== null && typeof ctor === 'object') {
      if (Object.hasOwn(ctor, 'prototype')) throw poisoned(`${path}.constructor.prototype`);
    }
    for (const key of Object.keys(record)) stack.push([record[key], `${path}.${key}`]);
  }
}

function poisoned(path: string): ReflexError {
  return new ReflexError('REFLEX_ERR_EVENT_INVALID_JSON', {
    reason: `it holds the key \`${path}\`, which Reflex refuses because it can poison object prototypes; rename that key`,
  });
}
