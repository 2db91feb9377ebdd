import { isUtf8 } from 'node:buffer';
import { TextDecoder } from 'node:util';
import { ReflexError } from '../core/errors.js';
import { type CloudEvent, type EventLimits, validateCloudEvent } from '../core/event.js';

/** Request headers as Node gives them: lower-case names; a header sent more than once may be an array. */
export type HttpHeaders = Record<string, string | string[] | undefined>;

/** The content types of the CloudEvents JSON formats (HTTP protocol binding, sections 3.2 and 3.3). */
export const cloudEventsContentTypes = {
  /** One event in the JSON format: structured mode. */
  structured: 'application/cloudevents+json',
  /** A JSON array of events: batched mode. */
  batch: 'application/cloudevents-batch+json',
} as const;

/** The events read from one request, and whether it came as a batch. */
export interface DecodedCloudEvents {
  events: CloudEvent[];
  /** True for `application/cloudevents-batch+json`, even when the batch holds a single event. */
  batch: boolean;
}

/**
 * The value of one header, or `undefined` when absent. `name` must be lower case. A header given more
 * than once is joined with ", ", which is what Node itself does for all but a few well-known headers.
 */
export function headerValue(headers: HttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/**
 * Parses a JSON request body safely.
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
export function parseJsonBody(body: Buffer): unknown {
  if (!isUtf8(body)) {
    throw new ReflexError('REFLEX_ERR_EVENT_INVALID_JSON', { reason: 'it is not valid UTF-8' });
  }
  let text = body.toString('utf8');
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

/** A parsed `Content-Type`: the media type in lower case, and the `charset` parameter if any. */
interface MediaType {
  type: string;
  charset: string | undefined;
}

function parseContentType(value: string | undefined): MediaType | undefined {
  if (value === undefined) return undefined;
  const semicolon = value.indexOf(';');
  const type = (semicolon === -1 ? value : value.slice(0, semicolon)).trim().toLowerCase();
  if (type === '') return undefined;
  let charset: string | undefined;
  if (semicolon !== -1) {
    // Parameters are `name=token` or `name="quoted string"` (RFC 9110, section 8.3.1).
    const params = /;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
    for (const match of value.slice(semicolon).matchAll(params)) {
      if (match[1]?.toLowerCase() !== 'charset') continue;
      const raw = (match[2] ?? '').trim();
      charset = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
    }
  }
  return { type, charset };
}

/** CloudEvents JSON format, section 3.1: JSON data is `application/json` or any `+json` media type. */
function isJsonMediaType(type: string): boolean {
  return type === 'application/json' || type.endsWith('+json');
}

/**
 * Reads the events of one `POST /api/v1/events` request (CloudEvents 1.0 HTTP protocol binding with the
 * JSON event format). The mode follows from the content type:
 *
 * - `application/cloudevents+json`: structured mode, one event as a JSON object. `data` and
 *   `data_base64` are kept as sent.
 * - `application/cloudevents-batch+json`: a JSON array of events. An empty array gives
 *   REFLEX_ERR_EVENT_EMPTY_BATCH.
 * - anything else with `ce-*` headers: binary mode. Attributes come from the `ce-<name>` headers
 *   (unquoted, then percent-decoded as UTF-8), `datacontenttype` from `Content-Type`, and the body becomes
 *   `data`: parsed JSON for `application/json` and `+json` types, a string for `text/*` (decoded with its
 *   charset, UTF-8 by default), else `data_base64`. An empty body gives no data. This also covers
 *   CloudEvents formats Reflex cannot read (e.g. `application/cloudevents+avro`): as the binding allows,
 *   with `ce-*` headers they are taken as binary data.
 * - `application/json` without `ce-*` headers: structured mode (a common client mistake that is not
 *   ambiguous); any other type without them gives REFLEX_ERR_EVENT_UNSUPPORTED_MEDIA_TYPE.
 *
 * Every event is checked with `validateCloudEvent`; batch items are named by their index from 0
 * (" (batch item 3)"). Malformed JSON gives REFLEX_ERR_EVENT_INVALID_JSON with the parser's reason. Any
 * error means no event is returned: a batch is taken whole or not at all.
 *
 * @example
 * const { events, batch } = decodeCloudEventsRequest(request.headers, rawBody, defaultEventLimits);
 */
export function decodeCloudEventsRequest(
  headers: HttpHeaders,
  body: Buffer,
  limits: EventLimits,
): DecodedCloudEvents {
  const contentType = headerValue(headers, 'content-type');
  const mediaType = parseContentType(contentType);
  if (mediaType?.type === cloudEventsContentTypes.structured) {
    return { events: [validateCloudEvent(parseJsonBody(body), limits)], batch: false };
  }
  if (mediaType?.type === cloudEventsContentTypes.batch) {
    return { events: decodeBatch(body, limits), batch: true };
  }
  // Binary mode is signalled by the `ce-*` headers; when some are sent but `ce-specversion` is not, the
  // sender meant binary mode too, and validation then names the missing attribute.
  if (Object.entries(headers).some(([name, value]) => value !== undefined && /^ce-/i.test(name))) {
    return { events: [decodeBinary(headers, body, contentType, mediaType, limits)], batch: false };
  }
  if (mediaType?.type === 'application/json') {
    return { events: [validateCloudEvent(parseJsonBody(body), limits)], batch: false };
  }
  throw new ReflexError('REFLEX_ERR_EVENT_UNSUPPORTED_MEDIA_TYPE', {
    contentType: contentType ?? '(none)',
  });
}

function decodeBatch(body: Buffer, limits: EventLimits): CloudEvent[] {
  const items = parseJsonBody(body);
  if (!Array.isArray(items)) {
    throw new ReflexError('REFLEX_ERR_EVENT_NOT_OBJECT', {
      expected: `a JSON array of events (content type ${cloudEventsContentTypes.batch})`,
      got: items === null ? 'null' : typeof items === 'object' ? 'an object' : `a ${typeof items}`,
    });
  }
  if (items.length === 0) throw new ReflexError('REFLEX_ERR_EVENT_EMPTY_BATCH');
  return items.map((item, index) => validateCloudEvent(item, limits, ` (batch item ${index})`));
}

/** Attributes that binary mode carries elsewhere than in a `ce-*` header (binding, section 3.1). */
const notInHeaders: ReadonlyMap<string, string> = new Map([
  ['data', 'in binary mode the data is the request body'],
  ['data_base64', 'in binary mode the data is the request body'],
  ['datacontenttype', 'in binary mode the data content type is the `Content-Type` header'],
]);

function decodeBinary(
  headers: HttpHeaders,
  body: Buffer,
  contentType: string | undefined,
  mediaType: MediaType | undefined,
  limits: EventLimits,
): CloudEvent {
  const attributes: Array<[string, string]> = [];
  for (const [header, raw] of Object.entries(headers)) {
    const name = header.toLowerCase();
    if (!name.startsWith('ce-') || raw === undefined) continue;
    const attribute = name.slice(3);
    const misplaced = notInHeaders.get(attribute);
    if (misplaced !== undefined) {
      throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
        attribute,
        where: ` (header ${name})`,
        reason: misplaced,
        fix: `remove the \`${name}\` header${attribute === 'datacontenttype' ? ' and send `Content-Type`' : ''}.`,
      });
    }
    attributes.push([attribute, decodeHeaderValue(attribute, Array.isArray(raw) ? raw.join(', ') : raw)]);
  }
  // Object.fromEntries defines own properties (no setters run), so a header such as `ce-__proto__`
  // cannot reach the prototype; validation then refuses the name.
  const event: Record<string, unknown> = Object.fromEntries(attributes);
  if (contentType !== undefined && contentType.trim() !== '') event['datacontenttype'] = contentType.trim();
  if (body.length > 0) {
    if (mediaType === undefined) {
      event['data_base64'] = body.toString('base64');
    } else if (isJsonMediaType(mediaType.type)) {
      event['data'] = parseJsonBody(body);
    } else if (mediaType.type.startsWith('text/')) {
      event['data'] = decodeText(body, mediaType.charset ?? 'utf-8');
    } else {
      event['data_base64'] = body.toString('base64');
    }
  }
  return validateCloudEvent(event, limits);
}

function decodeText(body: Buffer, charset: string): string {
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(charset, { fatal: true });
  } catch {
    throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
      attribute: 'datacontenttype',
      where: '',
      reason: `the charset ${JSON.stringify(charset)} is not one Reflex knows`,
      fix: 'send the text as UTF-8 (`charset=utf-8`), or as another content type to keep the raw bytes.',
    });
  }
  try {
    return decoder.decode(body);
  } catch {
    throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
      attribute: 'data',
      where: '',
      reason: `the request body is not valid ${decoder.encoding} text`,
      fix: 'give the charset the text is really written in, or send another content type to keep the raw bytes.',
    });
  }
}

const hexDigit = /^[0-9a-fA-F]{2}$/;

/**
 * Decodes a `ce-*` header value (binding, section 3.1.3.2): first undo RFC 7230 double-quoted strings
 * (older senders quote instead of percent-encoding), then one round of percent-decoding, whose bytes must
 * be valid UTF-8 (an overlong `%C0%A0` is refused).
 */
function decodeHeaderValue(attribute: string, value: string): string {
  // Printable ASCII without quote or percent needs no work: the common case.
  if (/^[\x20\x21\x23\x24\x26-\x7e]*$/.test(value)) return value;
  const invalid = (reason: string, fix: string) =>
    new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
      attribute,
      where: ` (header ce-${attribute})`,
      reason,
      fix,
    });
  let unquoted = '';
  for (let i = 0; i < value.length; i++) {
    if (value[i] !== '"') {
      unquoted += value[i];
      continue;
    }
    let closed = false;
    for (i++; i < value.length; i++) {
      const char = value[i];
      if (char === '"') {
        closed = true;
        break;
      }
      unquoted += char === '\\' && i + 1 < value.length ? value[++i] : char;
    }
    if (!closed) {
      throw invalid('it has a double-quoted string with no closing quote', 'percent-encode `"` as %22.');
    }
  }
  const bytes: number[] = [];
  for (let i = 0; i < unquoted.length; i++) {
    const code = unquoted.charCodeAt(i);
    if (code === 0x25) {
      const hex = unquoted.slice(i + 1, i + 3);
      if (!hexDigit.test(hex)) {
        throw invalid(
          `the \`%\` at position ${i} is not followed by two hex digits`,
          'percent-encode `%` itself as %25.',
        );
      }
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (code <= 0xff) {
      // Node reads header bytes as latin1, so each char is one byte as sent (raw UTF-8 stays intact).
      bytes.push(code);
    } else {
      // A caller that built the headers itself may hand over any string: take its UTF-8 bytes.
      const char = String.fromCodePoint(unquoted.codePointAt(i)!);
      bytes.push(...Buffer.from(char, 'utf8'));
      i += char.length - 1;
    }
  }
  const buffer = Buffer.from(bytes);
  if (!isUtf8(buffer)) {
    throw invalid(
      'its bytes are not valid UTF-8 once percent-decoded',
      'encode the value as UTF-8, then percent-encode each byte outside printable ASCII.',
    );
  }
  return buffer.toString('utf8');
}
