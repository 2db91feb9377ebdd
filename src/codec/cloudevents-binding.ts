import { TextDecoder } from 'node:util';
import { ReflexError } from '../core/errors.js';
import { type CloudEvent, type EventLimits, validateCloudEvent } from '../core/event.js';
import { percentDecode, percentEncode } from './header-value.js';
import { parseJsonBody } from './json-body.js';
import { isJsonMediaType, type MediaType, parseContentType } from './media-type.js';

/** The content types of the CloudEvents JSON formats (HTTP binding, sections 3.2 and 3.3). */
export const cloudEventsContentTypes = {
  /** One event in the JSON format: structured mode. */
  structured: 'application/cloudevents+json',
  /** A JSON array of events: batched mode (HTTP only). */
  batch: 'application/cloudevents-batch+json',
} as const;

/**
 * How one protocol carries CloudEvents (the CloudEvents protocol bindings): where the attributes go in
 * binary mode, how their values are written, and what else differs. The built-in bindings are
 * {@link httpBinding}, {@link kafkaBinding}, {@link amqpBinding}, {@link mqttBinding} and
 * {@link natsBinding}; every transport decodes and encodes with the same two functions,
 * {@link decodeCloudEvents} and {@link encodeCloudEvent}.
 */
export interface CloudEventsBinding {
  /** The protocol's name, for messages. */
  readonly name: string;
  /**
   * The prefixes of the properties (headers, application or user properties) that carry attributes in
   * binary mode; the first is the one encoders write. An empty prefix (MQTT 5) means the properties are
   * named as the attributes.
   */
  readonly prefixes: readonly string[];
  /** Property names compared without case (HTTP and NATS headers). */
  readonly caseInsensitiveNames: boolean;
  /** Values percent-encoded as the HTTP and NATS bindings ask (see `percentEncode`). */
  readonly percentEncoded: boolean;
  /** Whether the batched JSON format (`application/cloudevents-batch+json`) is read (HTTP only). */
  readonly batch: boolean;
  /**
   * Whether a property given more than once is joined with ", " (HTTP, where repeated fields are one
   * list) rather than refused as ambiguous.
   */
  readonly joinRepeated: boolean;
  /**
   * Whether a message with neither a content type nor attribute properties is read in the JSON format:
   * brokers (MQTT 3.1.1 and NATS before 2.2 know no other mode), not HTTP, which answers 415.
   */
  readonly structuredWithoutContentType: boolean;
  /**
   * A `datacontenttype` among the attribute properties in binary mode: `refused` (HTTP: the binding
   * forbids it, the content type is the header) or `agreeing` (taken when it names the same media type
   * as the message's content type, or when there is none: Kafka and MQTT senders write both, NATS only
   * the property).
   */
  readonly dataContentTypeProperty: 'refused' | 'agreeing';
  /**
   * Where encoders put `datacontenttype` in binary mode: the message's content type, a property (NATS),
   * or both (MQTT: the binding's example, and the CloudEvents SDK, read it from the user properties).
   */
  readonly encodeDataContentType: 'content-type' | 'property' | 'both';
  /**
   * How a property value given as bytes is read: as UTF-8 text (Kafka header values are bytes) or as
   * a CloudEvents Binary value, in base64 (an AMQP `binary`).
   */
  readonly bytesAs: 'utf8' | 'base64';
  /** How messages name the parts of this protocol's messages. */
  readonly words: {
    /** One property, e.g. `header`. */
    readonly property: string;
    /** Several, e.g. `headers`. */
    readonly properties: string;
    /** The payload, e.g. `the request body`. */
    readonly body: string;
    /** Where the content type travels, e.g. ``the `Content-Type` header``. */
    readonly contentType: string;
    /** Its short name, e.g. `` `Content-Type` ``. */
    readonly contentTypeName: string;
  };
}

/** HTTP 1.1 (binding 1.0.2): `ce-` headers, percent-encoded values, the three JSON content modes. */
export const httpBinding: CloudEventsBinding = Object.freeze({
  name: 'HTTP',
  prefixes: ['ce-'],
  caseInsensitiveNames: true,
  percentEncoded: true,
  batch: true,
  joinRepeated: true,
  structuredWithoutContentType: false,
  dataContentTypeProperty: 'refused',
  encodeDataContentType: 'content-type',
  bytesAs: 'utf8',
  words: {
    property: 'header',
    properties: 'headers',
    body: 'the request body',
    contentType: 'the `Content-Type` header',
    contentTypeName: '`Content-Type`',
  },
});

/** Kafka (binding 1.0.3): `ce_` headers whose values are UTF-8 strings; `content-type` header. */
export const kafkaBinding: CloudEventsBinding = Object.freeze({
  name: 'Kafka',
  prefixes: ['ce_'],
  caseInsensitiveNames: false,
  percentEncoded: false,
  batch: false,
  joinRepeated: false,
  structuredWithoutContentType: true,
  dataContentTypeProperty: 'agreeing',
  encodeDataContentType: 'content-type',
  bytesAs: 'utf8',
  words: {
    property: 'header',
    properties: 'headers',
    body: 'the record value',
    contentType: 'the `content-type` header',
    contentTypeName: '`content-type`',
  },
});

/**
 * AMQP (binding 1.0.3): application properties prefixed `cloudEvents_` (preferred, JMS-safe) or
 * `cloudEvents:`, one separator per message; values in native AMQP types (boolean, long, timestamp,
 * binary) or canonical strings; the message's `content-type` property. Applied to AMQP 0-9-1
 * (RabbitMQ) headers the same way, as the CloudEvents SDKs do.
 */
export const amqpBinding: CloudEventsBinding = Object.freeze({
  name: 'AMQP',
  prefixes: ['cloudEvents_', 'cloudEvents:'],
  caseInsensitiveNames: false,
  percentEncoded: false,
  batch: false,
  joinRepeated: false,
  structuredWithoutContentType: true,
  dataContentTypeProperty: 'agreeing',
  encodeDataContentType: 'content-type',
  bytesAs: 'base64',
  words: {
    property: 'application property',
    properties: 'application properties',
    body: 'the message body',
    contentType: 'the `content-type` property',
    contentTypeName: '`content-type`',
  },
});

/**
 * MQTT (binding 1.0.2): in MQTT 5 binary mode the attributes are user properties named as the attributes
 * (no prefix) and the data content type is the PUBLISH Content Type; MQTT 3.1.1 has only structured mode.
 * Without a prefix, only user properties named like attributes (lower-case letters and digits) are read
 * as attributes, and binary mode is recognised by a `specversion` property.
 */
export const mqttBinding: CloudEventsBinding = Object.freeze({
  name: 'MQTT',
  prefixes: [''],
  caseInsensitiveNames: false,
  percentEncoded: false,
  batch: false,
  joinRepeated: false,
  structuredWithoutContentType: true,
  dataContentTypeProperty: 'agreeing',
  encodeDataContentType: 'both',
  bytesAs: 'utf8',
  words: {
    property: 'user property',
    properties: 'user properties',
    body: 'the payload',
    contentType: 'the Content Type property',
    contentTypeName: 'Content Type',
  },
});

/**
 * NATS (binding 1.0.3, NATS 2.2 headers): `ce-` headers, percent-encoded, `datacontenttype` as
 * `ce-datacontenttype`; a `Content-Type: application/cloudevents…` header marks structured mode.
 */
export const natsBinding: CloudEventsBinding = Object.freeze({
  name: 'NATS',
  prefixes: ['ce-'],
  caseInsensitiveNames: true,
  percentEncoded: true,
  batch: false,
  joinRepeated: false,
  structuredWithoutContentType: true,
  dataContentTypeProperty: 'agreeing',
  encodeDataContentType: 'property',
  bytesAs: 'utf8',
  words: {
    property: 'header',
    properties: 'headers',
    body: 'the payload',
    contentType: 'the `Content-Type` header',
    contentTypeName: '`Content-Type`',
  },
});

/** A property's value as transports hand it over (each binding says how it becomes an attribute's text). */
export type PropertyValue =
  | string
  | number
  | boolean
  | bigint
  | Date
  | Uint8Array
  | readonly (string | Uint8Array)[]
  | null
  | undefined;

/** One message of any protocol, as the codec reads it. */
export interface CloudEventMessage {
  /** The message's content type (HTTP or NATS `Content-Type` header, Kafka `content-type` header, AMQP or MQTT content-type property). */
  contentType?: string | undefined;
  /** Headers, application properties or user properties, by name; the content type may be among them. */
  properties: Readonly<Record<string, PropertyValue>>;
  body: Uint8Array;
}

/** The events read from one message, and whether it came as a batch. */
export interface DecodedCloudEvents {
  events: CloudEvent[];
  /** True for `application/cloudevents-batch+json`, even when the batch holds a single event. */
  batch: boolean;
}

/**
 * Reads the events of one message, as `binding` carries them (CloudEvents 1.0 with the JSON event
 * format). The mode follows from the content type, as every binding says:
 *
 * - `application/cloudevents+json`: structured mode, one event as a JSON object; `data` and
 *   `data_base64` are kept as sent.
 * - `application/cloudevents-batch+json` (bindings with `batch`): a JSON array of events; an empty
 *   array gives REFLEX_ERR_EVENT_EMPTY_BATCH.
 * - anything else with attribute properties: binary mode. Attributes come from the prefixed properties
 *   (percent-decoded where the binding says so), `datacontenttype` from the content type, and the body
 *   becomes `data`: parsed JSON for `application/json` and `+json` types, a string for `text/*` (decoded
 *   with its charset, UTF-8 by default), else `data_base64`. An empty body gives no data. This also
 *   covers CloudEvents formats Reflex cannot read (e.g. `application/cloudevents+avro`): as the bindings
 *   allow, with attribute properties they are taken as binary data.
 * - `application/json` without attribute properties: structured mode (a common sender mistake that is
 *   not ambiguous); no content type either: structured mode where `structuredWithoutContentType`; any
 *   other type gives REFLEX_ERR_EVENT_UNSUPPORTED_MEDIA_TYPE.
 *
 * Every event is checked with `validateCloudEvent`; batch items are named by their index from 0
 * (" (batch item 3)"). Any error means no event is returned: a batch is taken whole or not at all.
 *
 * @example
 * const { events } = decodeCloudEvents(kafkaBinding, {
 *   contentType: 'application/json',
 *   properties: { ce_specversion: '1.0', ce_id: '1', ce_source: '/s', ce_type: 't' },
 *   body: Buffer.from('{"a":1}'),
 * }, defaultEventLimits);
 */
export function decodeCloudEvents(
  binding: CloudEventsBinding,
  message: CloudEventMessage,
  limits: EventLimits,
): DecodedCloudEvents {
  const { contentType, body } = message;
  const mediaType = parseContentType(contentType);
  if (mediaType?.type === cloudEventsContentTypes.structured) {
    return { events: [validateCloudEvent(parseJsonBody(body), limits)], batch: false };
  }
  if (binding.batch && mediaType?.type === cloudEventsContentTypes.batch) {
    return { events: decodeBatch(body, limits), batch: true };
  }
  // Binary mode is signalled by the attribute properties; when some are sent but `specversion` is not,
  // the sender meant binary mode too, and validation then names the missing attribute.
  const attributes = attributeProperties(binding, message.properties);
  if (
    attributes.length > 0 &&
    (binding.prefixes[0] !== '' || attributes.some((a) => a.attribute === 'specversion'))
  ) {
    return { events: [decodeBinary(binding, attributes, body, contentType, limits)], batch: false };
  }
  if (
    mediaType?.type === 'application/json' ||
    (mediaType === undefined && binding.structuredWithoutContentType)
  ) {
    return { events: [validateCloudEvent(parseJsonBody(body), limits)], batch: false };
  }
  const prefix = binding.prefixes[0] ?? '';
  const required = ['specversion', 'id', 'source', 'type'].map((name) => `\`${prefix}${name}\``);
  throw new ReflexError('REFLEX_ERR_EVENT_UNSUPPORTED_MEDIA_TYPE', {
    contentType: contentType ?? '(none)',
    attributes:
      prefix === ''
        ? `a \`specversion\` ${binding.words.property}`
        : `\`${prefix}*\` ${binding.words.properties}`,
    structured: binding.batch
      ? `\`${cloudEventsContentTypes.structured}\`, \`${cloudEventsContentTypes.batch}\``
      : `\`${cloudEventsContentTypes.structured}\``,
    required: `${required.slice(0, -1).join(', ')} and ${required.at(-1)} ${binding.words.properties}`,
  });
}

/**
 * Reads the one event of a message, for bindings without batches (every binding but HTTP).
 * See {@link decodeCloudEvents}.
 */
export function decodeCloudEvent(
  binding: CloudEventsBinding,
  message: CloudEventMessage,
  limits: EventLimits,
): CloudEvent {
  const { events } = decodeCloudEvents({ ...binding, batch: false }, message, limits);
  return events[0]!;
}

/**
 * Whether a message says it carries a CloudEvent as `binding` has them: a CloudEvents content type
 * (structured or batched), or attribute properties (binary mode; for bindings without a prefix, a
 * `specversion` property). A broker source reads other messages as plain payloads.
 */
export function carriesCloudEvent(binding: CloudEventsBinding, message: CloudEventMessage): boolean {
  const type = parseContentType(message.contentType)?.type;
  if (type === cloudEventsContentTypes.structured || type === cloudEventsContentTypes.batch) return true;
  const attributes = attributeProperties(binding, message.properties);
  return binding.prefixes[0] === ''
    ? attributes.some((a) => a.attribute === 'specversion')
    : attributes.length > 0;
}

function decodeBatch(body: Uint8Array, limits: EventLimits): CloudEvent[] {
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

/** An attribute carried by a property: its name, the property it came in, and the value as handed over. */
interface AttributeProperty {
  attribute: string;
  property: string;
  prefix: string;
  value: PropertyValue;
}

/** Attribute names as CloudEvents allows them; without a prefix, only such properties are attributes. */
const attributeName = /^[a-z0-9]+$/;

function attributeProperties(
  binding: CloudEventsBinding,
  properties: Readonly<Record<string, PropertyValue>>,
): AttributeProperty[] {
  const found: AttributeProperty[] = [];
  for (const [property, value] of Object.entries(properties)) {
    if (value === undefined || value === null) continue;
    const name = binding.caseInsensitiveNames ? property.toLowerCase() : property;
    for (const prefix of binding.prefixes) {
      const wanted = binding.caseInsensitiveNames ? prefix.toLowerCase() : prefix;
      if (!name.startsWith(wanted)) continue;
      const attribute = name.slice(wanted.length);
      if (wanted === '' && !attributeName.test(attribute)) break;
      found.push({ attribute, property, prefix, value });
      break;
    }
  }
  return found;
}

function decodeBinary(
  binding: CloudEventsBinding,
  found: readonly AttributeProperty[],
  body: Uint8Array,
  contentType: string | undefined,
  limits: EventLimits,
): CloudEvent {
  const { words } = binding;
  const invalid = (property: AttributeProperty, reason: string, fix: string) =>
    new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
      attribute: property.attribute,
      where: ` (${words.property} ${property.property})`,
      reason,
      fix,
    });
  const prefixes = new Set(found.map((f) => f.prefix));
  if (prefixes.size > 1) {
    throw invalid(
      found.find((f) => f.prefix !== found[0]!.prefix)!,
      `the message mixes the prefixes ${[...prefixes].map((p) => `\`${p}\``).join(' and ')}`,
      `name every attribute ${words.property} of one message with the same prefix.`,
    );
  }
  const attributes: Array<[string, string]> = [];
  const seen = new Set<string>();
  let dataContentType: string | undefined;
  for (const property of found) {
    const { attribute } = property;
    if (attribute === 'data' || attribute === 'data_base64') {
      throw invalid(
        property,
        `in binary mode the data is ${words.body}`,
        `remove the \`${property.property}\` ${words.property}.`,
      );
    }
    if (seen.has(attribute)) {
      throw invalid(property, 'it is given more than once', `send the \`${attribute}\` attribute once.`);
    }
    seen.add(attribute);
    if (attribute === 'datacontenttype' && binding.dataContentTypeProperty === 'refused') {
      throw invalid(
        property,
        `in binary mode the data content type is ${words.contentType}`,
        `remove the \`${property.property}\` ${words.property} and send ${words.contentTypeName}.`,
      );
    }
    const value = propertyText(binding, property, invalid);
    if (attribute === 'datacontenttype') dataContentType = value;
    else attributes.push([attribute, value]);
  }
  // Object.fromEntries defines own properties (no setters run), so a property such as `ce-__proto__`
  // cannot reach the prototype; validation then refuses the name.
  const event: Record<string, unknown> = Object.fromEntries(attributes);
  const given = contentType?.trim() === '' ? undefined : contentType?.trim();
  if (dataContentType !== undefined && given !== undefined) {
    if (parseContentType(dataContentType)?.type !== parseContentType(given)?.type) {
      const property = found.find((f) => f.attribute === 'datacontenttype')!;
      throw invalid(
        property,
        `it says ${JSON.stringify(dataContentType)} but ${words.contentType} says ${JSON.stringify(given)}`,
        `send the same media type in both, or only in ${words.contentType}.`,
      );
    }
  }
  const type = dataContentType ?? given;
  if (type !== undefined) event['datacontenttype'] = type;
  const mediaType = parseContentType(type);
  if (body.length > 0) {
    if (mediaType === undefined) {
      event['data_base64'] = Buffer.from(body).toString('base64');
    } else if (isJsonMediaType(mediaType.type)) {
      event['data'] = parseJsonBody(body);
    } else if (mediaType.type.startsWith('text/')) {
      event['data'] = decodeText(binding, body, mediaType);
    } else {
      event['data_base64'] = Buffer.from(body).toString('base64');
    }
  }
  return validateCloudEvent(event, limits);
}

/** The text of an attribute's value, as the binding writes values. */
function propertyText(
  binding: CloudEventsBinding,
  property: AttributeProperty,
  invalid: (property: AttributeProperty, reason: string, fix: string) => ReflexError,
): string {
  const { value } = property;
  if (typeof value === 'string') {
    if (!binding.percentEncoded) return value;
    const decoded = percentDecode(value);
    if (typeof decoded === 'string') return decoded;
    throw invalid(property, decoded.reason, decoded.fix);
  }
  if (Array.isArray(value)) {
    if (binding.joinRepeated && value.every((v) => typeof v === 'string')) {
      return propertyText(binding, { ...property, value: value.join(', ') }, invalid);
    }
    if (value.length === 1) return propertyText(binding, { ...property, value: value[0] }, invalid);
    throw invalid(
      property,
      `the ${binding.words.property} is given ${value.length} times`,
      `send the \`${property.property}\` ${binding.words.property} once.`,
    );
  }
  if (value instanceof Uint8Array) {
    if (binding.bytesAs === 'base64') return Buffer.from(value).toString('base64');
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    try {
      return text.decode(value);
    } catch {
      throw invalid(property, 'its bytes are not valid UTF-8', 'encode the value as UTF-8 text.');
    }
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime()))
      throw invalid(property, 'it is an invalid timestamp', 'send a valid time.');
    return value.toISOString();
  }
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw invalid(property, `it is the number ${value}`, 'send a finite number, or the value as a string.');
    }
    return String(value);
  }
  throw invalid(
    property,
    'it is neither text, a number, a boolean, a timestamp nor bytes',
    `send the value in its canonical string form.`,
  );
}

function decodeText(binding: CloudEventsBinding, body: Uint8Array, mediaType: MediaType): string {
  const charset = mediaType.charset ?? 'utf-8';
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
      reason: `${binding.words.body} is not valid ${decoder.encoding} text`,
      fix: 'give the charset the text is really written in, or send another content type to keep the raw bytes.',
    });
  }
}

/** A message to send: what a transport puts in its content type, its properties and its body. */
export interface EncodedCloudEvent {
  /** The content type to send (HTTP `Content-Type`, Kafka `content-type` header, AMQP/MQTT property); undefined: none. */
  contentType: string | undefined;
  /** The attribute properties (headers, application or user properties), values as text. */
  properties: Record<string, string>;
  body: Buffer;
}

/** The content type structured mode is sent with. */
const structuredContentType = `${cloudEventsContentTypes.structured}; charset=utf-8`;

/**
 * Writes an event as a message of `binding`, in binary mode (attributes in properties, data as the body;
 * the default) or structured mode (the whole event as JSON in the body). Decoding the result with
 * {@link decodeCloudEvents} gives the event back, with two exceptions the bindings imply: in binary
 * mode an event with data but no `datacontenttype` is sent as `application/json` (what the JSON format
 * implies) and gains that attribute, and data of a type that is neither JSON nor `text/*` comes back
 * as `data_base64`. Text data is written as UTF-8, so a `charset` other than UTF-8 in its content type
 * comes back as `charset=utf-8` (the text itself is the same). Extension values that are numbers or
 * booleans are sent in their canonical string form, and come back as strings.
 *
 * @example
 * const { contentType, properties, body } = encodeCloudEvent(kafkaBinding, event);
 * await producer.send({ topic, messages: [{ value: body, headers: { ...properties, 'content-type': contentType } }] });
 */
export function encodeCloudEvent(
  binding: CloudEventsBinding,
  event: CloudEvent,
  mode: 'binary' | 'structured' = 'binary',
): EncodedCloudEvent {
  if (mode === 'structured') {
    return { contentType: structuredContentType, properties: {}, body: Buffer.from(JSON.stringify(event)) };
  }
  const prefix = binding.prefixes[0] ?? '';
  let dataContentType = event.datacontenttype;
  let body: Buffer;
  if (event.data_base64 !== undefined) {
    body = Buffer.from(event.data_base64, 'base64');
  } else if (event.data === undefined) {
    body = Buffer.alloc(0);
  } else {
    dataContentType ??= 'application/json';
    const mediaType = parseContentType(dataContentType);
    const json = mediaType === undefined || isJsonMediaType(mediaType.type);
    const text = !json && typeof event.data === 'string' ? event.data : undefined;
    body = Buffer.from(text ?? JSON.stringify(event.data));
    // The bytes are UTF-8 whatever charset the event names, so the content type must say UTF-8, or the
    // reader decodes them in the other charset (found by test/fuzz/codec.fuzz.test.ts).
    if (text !== undefined && mediaType?.charset !== undefined && !/^utf-?8$/i.test(mediaType.charset)) {
      dataContentType = withUtf8Charset(dataContentType);
    }
  }
  const properties: Record<string, string> = {};
  for (const [attribute, value] of Object.entries(event)) {
    if (attribute === 'data' || attribute === 'data_base64' || attribute === 'datacontenttype') continue;
    if (value === undefined) continue;
    properties[`${prefix}${attribute}`] = attributeText(binding, attribute, value);
  }
  if (dataContentType !== undefined && binding.encodeDataContentType !== 'content-type') {
    properties[`${prefix}datacontenttype`] = attributeText(binding, 'datacontenttype', dataContentType);
    if (binding.encodeDataContentType === 'property') return { contentType: undefined, properties, body };
  }
  return { contentType: dataContentType, properties, body };
}

/** `contentType` with its `charset` parameter set to `utf-8`, its other parameters kept. */
function withUtf8Charset(contentType: string): string {
  return contentType.replace(/;\s*charset\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/i, '; charset=utf-8');
}

/**
 * Writes events in the batched JSON format (HTTP binding, section 3.3).
 *
 * @example
 * const { contentType, body } = encodeCloudEventsBatch([first, second]);
 */
export function encodeCloudEventsBatch(events: readonly CloudEvent[]): EncodedCloudEvent {
  return {
    contentType: `${cloudEventsContentTypes.batch}; charset=utf-8`,
    properties: {},
    body: Buffer.from(JSON.stringify(events)),
  };
}

function attributeText(binding: CloudEventsBinding, attribute: string, value: unknown): string {
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
    throw new ReflexError('REFLEX_ERR_EVENT_INVALID_ATTRIBUTE', {
      attribute,
      where: '',
      reason: 'a binary-mode message carries only text, numbers and booleans as attributes',
      fix: 'give the attribute a string value, or send the event in structured mode.',
    });
  }
  const text = String(value);
  return binding.percentEncoded ? percentEncode(text) : text;
}
