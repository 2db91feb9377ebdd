import { describe, expect, it } from 'vitest';
import { mqttBinding, natsBinding } from '../codec/cloudevents-binding.js';
import { defaultEventLimits } from '../core/event.js';
import { type InboundMessage, messageToEvent } from './message-event.js';

const defaults = {
  type: 'nats.message',
  source: 'nats://local/orders',
  id: 'orders:7',
  subject: 'orders.new',
};
const message = (
  body: string,
  properties: InboundMessage['properties'] = {},
  contentType?: string,
): InboundMessage => ({
  body: Buffer.from(body),
  properties,
  contentType,
  defaults,
  extensions: { natssubject: 'orders.new' },
});

describe('messageToEvent', () => {
  it('reads a plain JSON payload as data, with the transport defaults and metadata', () => {
    expect(messageToEvent(natsBinding, message('{"total":3}'), {}, defaultEventLimits)).toEqual({
      specversion: '1.0',
      ...defaults,
      datacontenttype: 'application/json',
      data: { total: 3 },
      natssubject: 'orders.new',
    });
  });

  it('takes attributes from headers and payload fields when configured', () => {
    const event = messageToEvent(
      natsBinding,
      message('{"order":{"id":42,"kind":"created"}}', { 'X-Kind': 'order.created' }),
      { type: { header: 'x-kind' }, id: { field: 'order.id' }, source: 'shop' },
      defaultEventLimits,
    );
    expect(event).toMatchObject({ type: 'order.created', id: '42', source: 'shop' });
  });

  it('reads a message that carries a CloudEvent as that event, metadata added', () => {
    const event = messageToEvent(
      mqttBinding,
      message('{"a":1}', { specversion: '1.0', id: 'e1', source: '/s', type: 't' }, 'application/json'),
      {},
      defaultEventLimits,
    );
    expect(event).toMatchObject({
      id: 'e1',
      source: '/s',
      type: 't',
      data: { a: 1 },
      natssubject: 'orders.new',
    });
  });

  it('refuses what cannot become an event, each with its code', () => {
    const code = (run: () => unknown) => {
      try {
        run();
      } catch (error) {
        return (error as { code?: string }).code;
      }
      return 'no error';
    };
    expect(code(() => messageToEvent(natsBinding, message('{nope'), {}, defaultEventLimits))).toBe(
      'REFLEX_ERR_EVENT_INVALID_JSON',
    );
    expect(
      code(() => messageToEvent(natsBinding, message('{"a":1}'), { maxMessageBytes: 4 }, defaultEventLimits)),
    ).toBe('REFLEX_ERR_SOURCE_MESSAGE_TOO_LARGE');
    expect(
      code(() =>
        messageToEvent(natsBinding, message('{"a":1}'), { id: { field: 'missing' } }, defaultEventLimits),
      ),
    ).toBe('REFLEX_ERR_SOURCE_MESSAGE_UNMAPPED');
    expect(
      code(() => messageToEvent(natsBinding, message('{}'), { source: 'reflex' }, defaultEventLimits)),
    ).toBe('REFLEX_ERR_EVENT_RESERVED');
    expect(
      code(() => messageToEvent(natsBinding, message('{}'), { format: 'cloudevents' }, defaultEventLimits)),
    ).toMatch(/^REFLEX_ERR_EVENT_/);
  });

  it('keeps a text payload as text', () => {
    expect(
      messageToEvent(natsBinding, message('not json'), { format: 'text' }, defaultEventLimits),
    ).toMatchObject({
      datacontenttype: 'text/plain',
      data: 'not json',
    });
  });
});
