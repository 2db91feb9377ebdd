import { type Static, Type } from 'typebox';
import {
  type CloudEventMessage,
  type CloudEventsBinding,
  carriesCloudEvent,
  decodeCloudEvent,
} from '../codec/cloudevents-binding.js';
import { parseJsonBody } from '../codec/json-body.js';
import { ReflexError } from '../core/errors.js';
import { type CloudEvent, checkNotReserved, type EventLimits, validateCloudEvent } from '../core/event.js';

/**
 * Where one CloudEvents attribute of a plain (non-CloudEvent) message comes from: a fixed text, a
 * header (or application/user property) of the message, or a field of its JSON payload, named by a
 * dotted path (`alert.labels.severity`).
 */
export const AttributePlace = Type.Union([
  Type.String({ minLength: 1, description: 'The same text for every message.' }),
  Type.Object(
    { header: Type.String({ minLength: 1, description: 'The header or message property to read.' }) },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      field: Type.String({
        minLength: 1,
        pattern: '^[^.]+(\\.[^.]+)*$',
        description: 'A dotted path into the JSON payload, e.g. `alert.id`.',
      }),
    },
    { additionalProperties: false },
  ),
]);
export type AttributePlace = Static<typeof AttributePlace>;

/** How a broker source turns its messages into events: the part of every broker kind's `config` schema. */
export const MessageEventConfig = {
  format: Type.Optional(
    Type.Union(
      [Type.Literal('auto'), Type.Literal('cloudevents'), Type.Literal('json'), Type.Literal('text')],
      {
        description:
          "`auto` (the default): a message that carries a CloudEvent (CloudEvents content type or attribute headers) is read as one, any other as a plain JSON payload. `cloudevents`: every message must carry a CloudEvent. `json`: the payload is JSON, the event's `data`. `text`: the payload is UTF-8 text, the event's `data`.",
      },
    ),
  ),
  type: Type.Optional(AttributePlace),
  source: Type.Optional(AttributePlace),
  subject: Type.Optional(AttributePlace),
  id: Type.Optional(AttributePlace),
  maxMessageBytes: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 64 * 1024 * 1024,
      description: 'The largest message taken; a larger one is rejected. @default 1048576',
    }),
  ),
};
const messageEventConfig = Type.Object(MessageEventConfig);
export type MessageEventConfig = Static<typeof messageEventConfig>;

/** The largest message a broker source takes unless its `maxMessageBytes` says otherwise (as HTTP's body limit). */
export const defaultMaxMessageBytes = 1_048_576;

/** One message as a broker source received it, with what the transport knows about it. */
export interface InboundMessage extends CloudEventMessage {
  /**
   * The attributes a plain message gets when the configuration names no place for them: `type` (e.g.
   * `mqtt.message`), `source` (e.g. `mqtt://broker/sensors/1`), `id` (the broker's own message id or
   * position, so a redelivery is a duplicate), `subject` (the topic or subject), `time` (when the broker
   * took it, when it says).
   */
  defaults: { type: string; source: string; id: string; subject?: string; time?: string };
  /**
   * Broker metadata kept on the event as CloudEvents extensions (topic, partition, redelivery count...).
   * Names must be lower-case letters and digits (CloudEvents 1.0, section 2.2). They replace any
   * extension of the same name the message carried: they state what the transport saw.
   */
  extensions?: Readonly<Record<string, string | number | boolean>>;
}

/**
 * Turns one broker message into the event to append, as `config` says (see {@link MessageEventConfig}).
 *
 * Throws a coded error for a message that cannot become an event — too large
 * (REFLEX_ERR_SOURCE_MESSAGE_TOO_LARGE), not JSON where JSON is expected, an invalid CloudEvent, an
 * attribute place that gives nothing (REFLEX_ERR_SOURCE_MESSAGE_UNMAPPED), a reserved `reflex` source or
 * type — which the source passes to `SourceContext.reject`.
 *
 * @example
 * const event = messageToEvent(mqttBinding, { ...message, defaults, extensions: { mqtttopic: topic } }, config, limits);
 */
export function messageToEvent(
  binding: CloudEventsBinding,
  message: InboundMessage,
  config: MessageEventConfig,
  limits: EventLimits,
): CloudEvent {
  const limit = config.maxMessageBytes ?? defaultMaxMessageBytes;
  if (message.body.byteLength > limit) {
    throw new ReflexError('REFLEX_ERR_SOURCE_MESSAGE_TOO_LARGE', { size: message.body.byteLength, limit });
  }
  const format = config.format ?? 'auto';
  const asCloudEvent = format === 'cloudevents' || (format === 'auto' && carriesCloudEvent(binding, message));
  const event = asCloudEvent
    ? decodeCloudEvent(binding, message, limits)
    : plainEvent(message, config, limits);
  const withMetadata = { ...event, ...message.extensions };
  checkNotReserved(withMetadata);
  return withMetadata;
}

function plainEvent(message: InboundMessage, config: MessageEventConfig, limits: EventLimits): CloudEvent {
  const data =
    config.format === 'text'
      ? Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength).toString('utf8')
      : message.body.byteLength === 0
        ? undefined
        : parseJsonBody(message.body);
  const read = (attribute: 'type' | 'source' | 'subject' | 'id') =>
    attributeOf(attribute, config[attribute], message, data);
  const subject = read('subject') ?? message.defaults.subject;
  const event = {
    specversion: '1.0',
    id: read('id') ?? message.defaults.id,
    source: read('source') ?? message.defaults.source,
    type: read('type') ?? message.defaults.type,
    ...(subject === undefined ? {} : { subject }),
    ...(message.defaults.time === undefined ? {} : { time: message.defaults.time }),
    ...(data === undefined
      ? {}
      : { datacontenttype: config.format === 'text' ? 'text/plain' : 'application/json', data }),
  };
  return validateCloudEvent(event, limits);
}

/** The text an attribute place gives for this message; undefined when no place is configured. */
function attributeOf(
  attribute: string,
  place: AttributePlace | undefined,
  message: InboundMessage,
  data: unknown,
): string | undefined {
  if (place === undefined) return undefined;
  if (typeof place === 'string') return place;
  if ('header' in place) {
    const wanted = place.header.toLowerCase();
    const entry = Object.entries(message.properties).find(([name]) => name.toLowerCase() === wanted);
    const value = entry?.[1];
    const text =
      value === undefined || value === null
        ? undefined
        : value instanceof Uint8Array
          ? Buffer.from(value).toString('utf8')
          : Array.isArray(value)
            ? undefined
            : String(value);
    if (text === undefined || text === '') {
      throw unmapped(attribute, `its \`${place.header}\` header is missing or empty`, place);
    }
    return text;
  }
  let value: unknown = data;
  for (const key of place.field.split('.')) {
    value =
      value !== null && typeof value === 'object' && !Array.isArray(value) && Object.hasOwn(value, key)
        ? (value as Record<string, unknown>)[key]
        : undefined;
  }
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value !== 'string' || value === '') {
    throw unmapped(attribute, `its payload has no text or number at \`${place.field}\``, place);
  }
  return value;
}

function unmapped(attribute: string, reason: string, place: AttributePlace): ReflexError {
  return new ReflexError('REFLEX_ERR_SOURCE_MESSAGE_UNMAPPED', {
    attribute: `\`${attribute}\``,
    reason,
    fix: `publish messages that have it, or point the source's \`${attribute}\` at another place than ${JSON.stringify(place)}.`,
  });
}
