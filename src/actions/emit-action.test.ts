import { describe, expect, it } from 'vitest';
import { isRetriable, type ReflexError } from '../core/errors.js';
import { emitAction } from './emit-action.js';
import { createRecordingContext } from './test-context.js';

function invalid(params: unknown): string {
  try {
    emitAction.parse(params);
  } catch (error) {
    expect((error as ReflexError).code).toBe('REFLEX_ERR_ACTION_INVALID_PARAMS');
    expect(isRetriable(error)).toBe(false);
    return (error as ReflexError).message;
  }
  throw new Error('expected invalid parameters');
}

describe('emit action', () => {
  it('emit - appends the event through the engine and outputs where it went', async () => {
    const context = createRecordingContext();
    const params = emitAction.parse({
      type: 'host.isolated',
      subject: 'web-1',
      data: { by: 'reflex', reason: 'guardduty' },
      traceparent: '00-abc-def-01',
    });
    const output = await emitAction.run(params, context);
    expect(context.emitted).toEqual([
      {
        type: 'host.isolated',
        subject: 'web-1',
        data: { by: 'reflex', reason: 'guardduty' },
        traceparent: '00-abc-def-01',
      },
    ]);
    expect(output).toEqual({ seq: 1, id: 'run-1:step-1:1', duplicate: false });
  });

  it('emit - passes an explicit id and source, and reports a duplicate', async () => {
    const context = createRecordingContext();
    const params = emitAction.parse({ type: 'order.checked', id: 42, source: 'urn:checker' });
    expect(params).toEqual({ type: 'order.checked', id: '42', source: 'urn:checker' });
    expect(await emitAction.run(params, context)).toEqual({ seq: 1, id: '42', duplicate: false });
    expect(await emitAction.run(params, context)).toEqual({ seq: 1, id: '42', duplicate: true });
  });

  it('emit - accepts specversion 1.0 and leaves it to the engine', () => {
    expect(emitAction.parse({ specversion: '1.0', type: 't' })).toEqual({ type: 't' });
  });

  it('emit - refuses events that are not valid CloudEvents', () => {
    expect(invalid('disk.full')).toContain('expected an object, got a string');
    expect(invalid({ data: {} })).toContain('`type` is missing');
    expect(invalid({ type: '' })).toContain('no `type` attribute');
    expect(invalid({ type: 't', specversion: '0.3' })).toContain('`specversion` is "0.3"');
    expect(invalid({ type: 't', subject: { a: 1 } })).toContain('`subject` is invalid');
    expect(invalid({ type: 't', time: 'yesterday' })).toContain('not an RFC 3339 timestamp');
    expect(invalid({ type: 't', Bad_Ext: 'x' })).toContain('lower-case letters and digits');
    expect(invalid({ type: 't', nested: { a: 1 } })).toContain('move structured values into `data`');
  });
});
