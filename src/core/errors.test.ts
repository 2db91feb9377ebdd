import { describe, expect, it } from 'vitest';
import {
  errorInfoLimits,
  isRetriable,
  NonRetriableError,
  ReflexError,
  RetryAfterError,
  toErrorInfo,
} from './errors.js';

describe('errors', () => {
  it('errors - toErrorInfo keeps the code, message, details and causes of ordinary errors', () => {
    const cause = new Error('socket hang up');
    const error = new ReflexError(
      'REFLEX_ERR_ACTION_HTTP_STATUS',
      { method: 'GET', url: 'http://x', status: 500, expected: '2xx' },
      { cause, details: { status: 500, body: 'boom' } },
    );
    expect(toErrorInfo(error)).toEqual({
      code: 'REFLEX_ERR_ACTION_HTTP_STATUS',
      message: error.message,
      details: { status: 500, body: 'boom' },
      cause: { code: 'REFLEX_ERR_INTERNAL_UNEXPECTED', message: 'socket hang up' },
    });
    expect(toErrorInfo('plain text')).toEqual({
      code: 'REFLEX_ERR_INTERNAL_UNEXPECTED',
      message: 'plain text',
    });
    expect(toErrorInfo(new RetryAfterError('later', 10, { code: 'X_LATER' }))).toMatchObject({
      code: 'X_LATER',
    });
  });

  it('errors - toErrorInfo never throws, whatever was thrown', () => {
    const throwing = (field: string) => {
      const error = new Error('x');
      Object.defineProperty(error, field, {
        get() {
          throw new Error(`no ${field}`);
        },
      });
      return error;
    };
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const selfCaused = new Error('again');
    (selfCaused as { cause?: unknown }).cause = selfCaused;
    const values: unknown[] = [
      Object.create(null),
      Symbol('s'),
      10n,
      undefined,
      null,
      new Proxy(
        {},
        {
          getPrototypeOf() {
            throw new Error('trap');
          },
          get() {
            throw new Error('trap');
          },
        },
      ),
      throwing('message'),
      throwing('code'),
      throwing('details'),
      throwing('cause'),
      Object.assign(new Error('cyclic'), { details: cyclic }),
      Object.assign(new Error('bigint'), { details: { n: 1n } }),
      Object.assign(new Error('huge code'), { code: 'X'.repeat(10_000) }),
      Object.assign(new Error('odd code'), { code: { not: 'a string' } }),
      selfCaused,
    ];
    for (const value of values) {
      const info = toErrorInfo(value);
      expect(typeof info.code).toBe('string');
      expect(typeof info.message).toBe('string');
      expect(() => JSON.stringify(info)).not.toThrow();
    }
    expect(toErrorInfo(throwing('message')).message).toBe('(unreadable: no message)');
    expect(toErrorInfo(Object.assign(new Error('x'), { details: cyclic })).details).toEqual({
      omitted: 'the details were left out: it refers to itself at $.self',
    });
    expect(toErrorInfo(selfCaused)).toMatchObject({ cause: { cause: { cause: { cause: { cause: {} } } } } });
  });

  it('errors - toErrorInfo bounds messages and details', () => {
    const long = toErrorInfo(new Error('m'.repeat(5_000_000)));
    expect(long.message).toHaveLength(errorInfoLimits.maxMessageChars + 1);
    expect(long.message.endsWith('…')).toBe(true);
    const big = toErrorInfo(Object.assign(new Error('x'), { details: { body: 'b'.repeat(100_000) } }));
    expect(big.details).toEqual({
      omitted: expect.stringMatching(/^the details were left out: its JSON is/),
    });
    const deep = toErrorInfo(Object.assign(new Error('x'), { details: { a: { b: { c: 1 } } } }));
    expect(deep.details).toEqual({ a: { b: { c: 1 } } });
  });

  it('errors - an output Reflex cannot store is not retried; a crash inside an attempt is', () => {
    const output = new ReflexError('REFLEX_ERR_ACTION_OUTPUT_INVALID', {
      action: 'http',
      what: 'returned an output',
      reason: 'x',
      maxDepth: 32,
      maxBytes: 1,
    });
    expect(isRetriable(output)).toBe(false);
    expect(isRetriable(new ReflexError('REFLEX_ERR_RUN_ABANDONED', { id: 'r', claims: 5, step: 's' }))).toBe(
      false,
    );
    expect(
      isRetriable(new ReflexError('REFLEX_ERR_RUN_STEP_CRASHED', { id: 'r', step: 's', reason: 'x' })),
    ).toBe(true);
    expect(isRetriable(new NonRetriableError('no'))).toBe(false);
  });
});
