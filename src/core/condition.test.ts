import { describe, expect, it } from 'vitest';
import { compileCondition } from './condition.js';
import { ReflexError } from './errors.js';
import type { ExpressionContext } from './expression.js';

function context(data: unknown, facts: Record<string, unknown> = {}): ExpressionContext {
  return {
    event: { specversion: '1.0', id: 'a1', source: 'alertmanager', type: 'alert.firing', data },
    facts,
    vars: {},
    now: Date.parse('2026-11-27T10:00:00Z'),
  };
}

function thrown(fn: () => unknown): ReflexError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ReflexError);
    return error as ReflexError;
  }
  throw new Error('expected an error');
}

const issueExample =
  'event.data.annotations.value > 90 && !(event.data.labels.instance in facts.maintenance)';

describe('condition', () => {
  it('condition - the issue example fires above the threshold unless the instance is in maintenance', () => {
    const condition = compileCondition(issueExample);
    expect(condition.source).toBe(issueExample);
    const alert = (value: number, instance: string) => ({ annotations: { value }, labels: { instance } });
    const maintenance = { maintenance: ['db-1', 'db-2'] };

    expect(condition.evaluate(context(alert(95, 'web-1'), maintenance))).toBe(true);
    expect(condition.evaluate(context(alert(90, 'web-1'), maintenance))).toBe(false);
    expect(condition.evaluate(context(alert(90.5, 'web-1'), maintenance))).toBe(true);
    expect(condition.evaluate(context(alert(95, 'db-1'), maintenance))).toBe(false);
    // The fact may also be a map used as a set.
    expect(condition.evaluate(context(alert(95, 'db-1'), { maintenance: { 'db-1': true } }))).toBe(false);
    expect(condition.evaluate(context(alert(95, 'web-1'), { maintenance: {} }))).toBe(true);
  });

  it('condition - a missing field fails with REFLEX_ERR_CONDITION_FAILED, not a crash', () => {
    const condition = compileCondition(issueExample);
    const error = thrown(() =>
      condition.evaluate(context({ labels: { instance: 'web-1' } }, { maintenance: [] })),
    );
    expect(error.code).toBe('REFLEX_ERR_CONDITION_FAILED');
    expect(error.params.reason).toBe('no field `annotations` in `event.data`');
    expect(error.details).toEqual({ offset: 11 });
    const noFact = thrown(() =>
      condition.evaluate(context({ annotations: { value: 95 }, labels: { instance: 'x' } })),
    );
    expect(noFact.params.reason).toBe('no field `maintenance` in `facts`');
  });

  it('condition - a guarded read does not fail when the field is missing', () => {
    const condition = compileCondition('has(event.data.annotations) && event.data.annotations.value > 90');
    expect(condition.evaluate(context({}))).toBe(false);
    expect(condition.evaluate(context({ annotations: { value: 91 } }))).toBe(true);
    // CEL's logical operators absorb an error when the other side decides the result.
    expect(compileCondition('event.data.missing == 1 || true').evaluate(context({}))).toBe(true);
    expect(compileCondition('false && event.data.missing == 1').evaluate(context({}))).toBe(false);
  });

  it('condition - a result that is not a boolean fails with REFLEX_ERR_CONDITION_NOT_BOOLEAN', () => {
    const condition = compileCondition('event.data.flag');
    expect(condition.evaluate(context({ flag: true }))).toBe(true);
    const number = thrown(() => condition.evaluate(context({ flag: 1 })));
    expect(number.code).toBe('REFLEX_ERR_CONDITION_NOT_BOOLEAN');
    expect(number.params).toEqual({ expression: 'event.data.flag', got: 'the number 1' });
    expect(thrown(() => condition.evaluate(context({ flag: 'yes' }))).params.got).toBe('the string "yes"');
    expect(thrown(() => condition.evaluate(context({ flag: null }))).params.got).toBe('null');
    expect(thrown(() => condition.evaluate(context({ flag: [true] }))).params.got).toBe('a list');
  });

  it('condition - an expression known not to give a boolean is refused at compile time', () => {
    for (const source of [
      '"event.type == \'alert\'"',
      'size(event.data)',
      'event.data.value + 1 > 2 ? 1 : 0',
      'now',
    ]) {
      const error = thrown(() => compileCondition(source));
      expect(error.code, source).toBe('REFLEX_ERR_CONDITION_INVALID');
      expect(error.params.reason, source).toMatch(/not a boolean/);
    }
  });

  it('condition - bad syntax and unknown names are REFLEX_ERR_CONDITION_INVALID with an offset', () => {
    const syntax = thrown(() => compileCondition('event.data.value >> 90'));
    expect(syntax.code).toBe('REFLEX_ERR_CONDITION_INVALID');
    expect(syntax.details?.offset).toBe(18);
    const unknown = thrown(() => compileCondition('event.data.value > 90 && maintenance.active'));
    expect(unknown.code).toBe('REFLEX_ERR_CONDITION_INVALID');
    expect(unknown.details).toEqual({ offset: 25 });
    expect(unknown.message).toMatch(/there is no variable `maintenance`/);
  });

  it('condition - reads vars and now', () => {
    const condition = compileCondition(
      'event.data.value > vars.threshold && now - timestamp(event.data.since) >= duration("5m")',
    );
    const ctx = (since: string): ExpressionContext => ({
      ...context({ value: 95, since }),
      vars: { threshold: 90 },
    });
    expect(condition.evaluate(ctx('2026-11-27T09:55:00Z'))).toBe(true);
    expect(condition.evaluate(ctx('2026-11-27T09:56:00Z'))).toBe(false);
  });
});
