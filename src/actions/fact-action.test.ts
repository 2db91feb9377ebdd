import { describe, expect, it } from 'vitest';
import { isRetriable, type ReflexError } from '../core/errors.js';
import { factAction } from './fact-action.js';
import { createRecordingContext } from './test-context.js';

function invalid(params: unknown): string {
  try {
    factAction.parse(params);
  } catch (error) {
    expect((error as ReflexError).code).toBe('REFLEX_ERR_ACTION_INVALID_PARAMS');
    expect(isRetriable(error)).toBe(false);
    return (error as ReflexError).message;
  }
  throw new Error('expected invalid parameters');
}

describe('fact action', () => {
  it('fact - sets a fact to a value', async () => {
    const context = createRecordingContext();
    const output = await factAction.run(
      factAction.parse({ set: 'maintenance', value: { until: '10:00' } }),
      context,
    );
    expect(context.facts).toEqual([['maintenance', { until: '10:00' }]]);
    expect(output).toEqual({ name: 'maintenance', value: { until: '10:00' } });
  });

  it('fact - stores false, 0 and null as values', async () => {
    const context = createRecordingContext();
    for (const value of [false, 0, null])
      await factAction.run(factAction.parse({ set: 'f', value }), context);
    expect(context.facts).toEqual([
      ['f', false],
      ['f', 0],
      ['f', null],
    ]);
  });

  it('fact - removes a fact with unset', async () => {
    const context = createRecordingContext();
    const output = await factAction.run(factAction.parse({ unset: 'maintenance' }), context);
    expect(context.facts).toEqual([['maintenance', undefined]]);
    expect(output).toEqual({ name: 'maintenance', unset: true });
  });

  it('fact - refuses names that do not read as facts.<name>', () => {
    expect(invalid({ set: 'disk-full', value: 1 })).toContain('"disk-full" is not a usable fact name');
    expect(invalid({ set: '1st', value: 1 })).toContain('not a usable fact name');
    expect(invalid({ unset: 'in' })).toContain('not a usable fact name');
    expect(invalid({ set: '__proto__', value: 1 })).toContain('not a usable fact name');
    expect(invalid({ set: 3, value: 1 })).toContain('`set` is a number');
  });

  it('fact - refuses incomplete or mixed parameters', () => {
    expect(invalid({ set: 'a' })).toContain('has no `value`');
    expect(invalid({ set: 'a', unset: 'b' })).toContain('both `set` and `unset`');
    expect(invalid({ unset: 'a', value: 1 })).toContain('`unset` takes no `value`');
    expect(invalid({ value: 1 })).toContain('neither `set` nor `unset`');
    expect(invalid(null)).toContain('expected an object, got null');
  });
});
