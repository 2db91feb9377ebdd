import { describe, expect, it } from 'vitest';
import type { ReflexError } from '../core/errors.js';
import { logAction } from './log-action.js';
import { createRecordingContext } from './test-context.js';

function invalid(params: unknown): string {
  try {
    logAction.parse(params);
  } catch (error) {
    expect((error as ReflexError).code).toBe('REFLEX_ERR_ACTION_INVALID_PARAMS');
    return (error as ReflexError).message;
  }
  throw new Error('expected invalid parameters');
}

describe('log action', () => {
  it('log - writes a plain message at info, tagged with the run', async () => {
    const context = createRecordingContext({ runId: 'run-7', rule: 'disk-full', stepId: 'note' });
    const output = await logAction.run(logAction.parse('disk /var at 97%'), context);
    expect(context.logged).toEqual([
      { level: 'info', obj: { runId: 'run-7', rule: 'disk-full', step: 'note' }, msg: 'disk /var at 97%' },
    ]);
    expect(output).toEqual({ message: 'disk /var at 97%' });
  });

  it('log - writes at the level given', async () => {
    const context = createRecordingContext();
    await logAction.run(logAction.parse({ message: 'paging', level: 'warn' }), context);
    await logAction.run(logAction.parse({ message: 'gave up', level: 'error' }), context);
    expect(context.logged.map((line) => [line.level, line.msg])).toEqual([
      ['warn', 'paging'],
      ['error', 'gave up'],
    ]);
  });

  it('log - logs a rendered number as its text', () => {
    expect(logAction.parse(97)).toEqual({ message: '97', level: 'info' });
    expect(logAction.parse({ message: 3.5 })).toEqual({ message: '3.5', level: 'info' });
  });

  it('log - refuses missing messages, unknown levels and structures', () => {
    expect(invalid({})).toContain('`message` is missing');
    expect(invalid({ message: 'x', level: 'debug' })).toContain('`level` is "debug"');
    expect(invalid({ message: 'x', level: 'toString' })).toContain('`level` is "toString"');
    expect(invalid({ message: { a: 1 } })).toContain('`message` is an object');
    expect(invalid(['a'])).toContain('got an array');
  });
});
