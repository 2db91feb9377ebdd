import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  amqpBinding,
  type CloudEventMessage,
  type CloudEventsBinding,
  decodeCloudEvents,
  encodeCloudEvent,
  httpBinding,
  kafkaBinding,
  mqttBinding,
  natsBinding,
  type PropertyValue,
} from '../../src/codec/cloudevents-binding.js';
import { defaultEventLimits } from '../../src/core/event.js';
import {
  expectCodedRefusal,
  fuzz,
  fuzzTestTimeoutMs,
  hostileBytes,
  hostileJsonText,
  hostileKeys,
  hostileString,
  mutated,
  withinTimeBoundSync,
} from './fuzz-helpers.js';

/**
 * The CloudEvents codec itself, for every binding (HTTP, Kafka, AMQP, MQTT, NATS): messages with any
 * content type, attribute properties of every type a transport hands over (text, numbers, booleans,
 * bigints, dates, bytes, lists, null) and any body. Invariants: events or a coded refusal within the
 * time bound; an event read once comes back the same from structured mode, and binary mode is stable
 * after one round (the documented changes: a `datacontenttype` gained, non-JSON data as base64,
 * extension values as text).
 */

const bindings: Record<string, CloudEventsBinding> = {
  http: httpBinding,
  kafka: kafkaBinding,
  amqp: amqpBinding,
  mqtt: mqttBinding,
  nats: natsBinding,
};

const propertyValue: fc.Arbitrary<PropertyValue> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.oneof(
      hostileString,
      fc.constantFrom(
        '1.0',
        '/shop',
        'com.example.order',
        'e-1',
        '2026-12-06T08:00:00Z',
        'reflex',
        '%41',
        '%ZZ',
      ),
    ),
  },
  fc.oneof(fc.integer(), fc.double(), fc.constant(Number.NaN)),
  fc.boolean(),
  fc.bigInt(),
  fc.date({ noInvalidDate: false }),
  hostileBytes,
  fc.array(fc.oneof(hostileString, hostileBytes), { maxLength: 3 }),
  fc.constantFrom(null, undefined),
);

const attributeName = fc.oneof(
  fc.constantFrom(
    'specversion',
    'id',
    'source',
    'type',
    'time',
    'subject',
    'datacontenttype',
    'dataschema',
    'data',
    'data_base64',
    'reflexchain',
    'tenant',
  ),
  fc.constantFrom(...hostileKeys),
  fc.stringMatching(/^[a-z0-9]{1,8}$/),
);

const validEvent = fc
  .record({
    id: fc.string({ minLength: 1, maxLength: 8 }),
    data: fc.option(fc.jsonValue({ maxDepth: 3 }), { nil: undefined }),
  })
  .map(({ id, data }) =>
    JSON.stringify({
      specversion: '1.0',
      id,
      source: '/shop',
      type: 'com.example.order',
      ...(data === undefined ? {} : { data }),
    }),
  );

const message = fc
  .record({
    binding: fc.constantFrom(...Object.keys(bindings)),
    prefix: fc.constantFrom('ce-', 'ce_', 'cloudEvents:', 'cloudEvents_', '', 'CE-'),
    attributes: fc.array(fc.tuple(attributeName, propertyValue), { maxLength: 6 }),
    complete: fc.boolean(),
    contentType: fc.option(
      fc.oneof(
        fc.constantFrom(
          'application/cloudevents+json',
          'application/cloudevents-batch+json',
          'application/json',
          'application/json; charset=utf-16',
          'text/plain; charset=latin1',
          'text/plain; charset=nonsense',
          'application/octet-stream',
          'application/cloudevents+avro',
          '',
        ),
        hostileString,
      ),
      { nil: undefined },
    ),
    body: fc.oneof(
      hostileJsonText().map((t) => Buffer.from(t)),
      validEvent.map((t) => Buffer.from(t)),
      mutated(validEvent),
      fc.array(validEvent, { maxLength: 3 }).map((items) => Buffer.from(`[${items.join(',')}]`)),
      hostileBytes.map((b) => Buffer.from(b)),
    ),
  })
  .map(({ binding, prefix, attributes, complete, contentType, body }) => {
    const properties: Record<string, PropertyValue> = {};
    // Often a complete set of required attributes, so that binary mode gets past validation.
    if (complete)
      Object.assign(properties, {
        [`${prefix}specversion`]: '1.0',
        [`${prefix}id`]: 'e-1',
        [`${prefix}source`]: '/shop',
        [`${prefix}type`]: 'com.example.order',
      });
    for (const [name, value] of attributes)
      Object.defineProperty(properties, `${prefix}${name}`, {
        value,
        enumerable: true,
        configurable: true,
        writable: true,
      });
    const msg: CloudEventMessage = { contentType, properties, body };
    return { binding, message: msg };
  });

describe('fuzz - CloudEvents codec', () => {
  it(
    'fuzz - every binding reads any message as events or a coded refusal, in time, and what it read survives re-encoding',
    async () => {
      let decoded = 0;
      await fuzz(
        fc.property(message, ({ binding: name, message }) => {
          const binding = bindings[name] as CloudEventsBinding;
          let events: ReturnType<typeof decodeCloudEvents>['events'];
          try {
            events = withinTimeBoundSync(`decoding a ${name} message`, () =>
              decodeCloudEvents(binding, message, defaultEventLimits),
            ).events;
          } catch (error) {
            expectCodedRefusal(error, { clientError: false });
            return;
          }
          decoded += 1;
          for (const event of events) {
            const structured = encodeCloudEvent(binding, event, 'structured');
            expect(decodeCloudEvents(binding, structured, defaultEventLimits).events).toEqual([event]);
            let once: (typeof events)[number];
            try {
              [once] = decodeCloudEvents(
                binding,
                encodeCloudEvent(binding, event, 'binary'),
                defaultEventLimits,
              ).events as [typeof event];
            } catch (error) {
              // An event binary mode cannot carry (an extension that is not text, a number or a boolean).
              expectCodedRefusal(error, { clientError: false });
              continue;
            }
            const twice = decodeCloudEvents(
              binding,
              encodeCloudEvent(binding, once, 'binary'),
              defaultEventLimits,
            ).events;
            expect(twice).toEqual([once]);
          }
        }),
      );
      expect(decoded, 'nothing was decoded: the generator is off').toBeGreaterThan(0);
    },
    fuzzTestTimeoutMs,
  );
});
