import { describe, expect, it } from 'vitest';
import { formatEvents, formatExplanation, formatRun, printable, printableJson } from './format.js';

describe('cli format', () => {
  it('cli format - printable escapes what a terminal would act on and keeps the rest', () => {
    expect(printable('a\u001b[31mb')).toBe('a\\x1b[31mb');
    expect(printable('line\nfake\r\tx')).toBe('line\\nfake\\r\\tx');
    expect(printable('\u0000\u007f\u009b')).toBe('\\x00\\x7f\\x9b');
    expect(printable('abc\u202edcba\u2066\u2028')).toBe('abc\\u202edcba\\u2066\\u2028');
    expect(printable('x\ud800y')).toBe('x\\ud800y');
    expect(printable('café ☕ 東京 👍')).toBe('café ☕ 東京 👍');
  });

  it('cli format - printableJson escapes what JSON.stringify leaves raw, and reads back the same', () => {
    const value = { s: 'a\u009bb\u202ec\u2028d\u007f\u001b' };
    const text = printableJson(value);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
    expect(text).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u202e]/);
    expect(JSON.parse(text)).toEqual(value);
  });

  it('cli format - tables, runs and explanations print stored values escaped', () => {
    const evil = 'x\u001b[2J\ny';
    const events = formatEvents([
      { seq: 1, receivedAt: '2026-11-27T10:00:00.000Z', event: { id: evil, source: evil, type: evil } },
    ] as never);
    expect(events).not.toContain('\u001b');
    expect(events.split('\n')).toHaveLength(2);
    const run = formatRun({
      id: 'r1',
      rule: 'rule',
      rulebookVersion: 1,
      status: 'failed',
      trigger: { seq: 1, id: evil, source: evil, type: evil },
      createdAt: '2026-11-27T10:00:00.000Z',
      startedAt: null,
      finishedAt: null,
      nextAttemptAt: null,
      error: { code: 'REFLEX_ERR_X', message: evil },
      attempts: [
        {
          stepId: 's',
          action: 'http',
          attempt: 1,
          status: 'failed',
          startedAt: '2026-11-27T10:00:00.000Z',
          finishedAt: '2026-11-27T10:00:01.000Z',
          error: { code: 'REFLEX_ERR_X', message: evil },
        },
      ],
    } as never);
    expect(run).not.toContain('\u001b');
    expect(run).toContain('x\\x1b[2J\\ny');
    const explanation = formatExplanation({
      event: { seq: 1, id: evil, source: evil, type: evil, receivedAt: '2026-11-27T10:00:00.000Z' },
      dispatched: true,
      rulebookVersion: 1,
      rules: [{ rule: 'r', verdict: 'no-match', reason: `data.host is ${evil}`, pattern: null }],
    } as never);
    expect(explanation).not.toContain('\u001b');
    expect(explanation.split('\n')).toHaveLength(5);
  });
});
