import { describe, expect, it } from 'vitest';
import { ReflexError } from './errors.js';
import { compileExpression, type ExpressionContext, expressionLimits, regexHazard } from './expression.js';

const receivedAt = Date.parse('2026-11-27T10:00:00Z');

function context(data: unknown, extra: Partial<ExpressionContext> = {}): ExpressionContext {
  return {
    event: {
      specversion: '1.0',
      id: 'e1',
      source: 'alertmanager',
      type: 'alert.firing',
      time: '2026-11-27T09:58:30Z',
      data,
    },
    facts: { maintenance: ['db-1', 'db-2'], owners: { 'web-1': 'team-a' } },
    vars: { threshold: 90, env: 'prod' },
    now: receivedAt,
    ...extra,
  };
}

function evaluate(source: string, data: unknown = {}, extra: Partial<ExpressionContext> = {}): unknown {
  return compileExpression(source).evaluate(context(data, extra));
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

describe('expression', () => {
  it('expression - JSON numbers compare with CEL int literals as a user expects', () => {
    const data = { value: 95, count: 5, ratio: 5.5, whole: 5.0 };
    expect(evaluate('event.data.value > 90', data)).toBe(true);
    expect(evaluate('event.data.value > 95', data)).toBe(false);
    expect(evaluate('event.data.value >= 95', data)).toBe(true);
    expect(evaluate('event.data.count == 5', data)).toBe(true);
    expect(evaluate('event.data.count != 5', data)).toBe(false);
    expect(evaluate('event.data.count == 5.0', data)).toBe(true);
    expect(evaluate('event.data.ratio == 5', data)).toBe(false);
    expect(evaluate('event.data.ratio > 5', data)).toBe(true);
    expect(evaluate('event.data.whole == 5', data)).toBe(true);
    expect(evaluate('event.data.count in [1, 5, 10]', data)).toBe(true);
    expect(evaluate('event.data.count > vars.threshold', data)).toBe(false);
    expect(evaluate('size(event.data) == 4', data)).toBe(true);
  });

  it('expression - arithmetic mixing JSON numbers and int literals computes in double', () => {
    const data = { count: 5, ratio: 5.5, list: [1, 2, 3] };
    expect(evaluate('event.data.count + 1', data)).toBe(6);
    expect(evaluate('1 + event.data.count', data)).toBe(6);
    expect(evaluate('event.data.ratio + 1', data)).toBe(6.5);
    expect(evaluate('event.data.count - 1 == 4', data)).toBe(true);
    expect(evaluate('event.data.count * 2', data)).toBe(10);
    expect(evaluate('event.data.count / 2', data)).toBe(2.5);
    expect(evaluate('event.data.count % 2', data)).toBe(1);
    expect(evaluate('event.data.count % 2 == 1', data)).toBe(true);
    expect(evaluate('size(event.data.list) + event.data.count', data)).toBe(8);
    expect(evaluate('event.data.list.map(x, x * 10)', data)).toEqual([10, 20, 30]);
    expect(evaluate('-event.data.count', data)).toBe(-5);
    // Only-int arithmetic keeps CEL's integer semantics.
    expect(evaluate('7 / 2')).toBe(3);
    expect(evaluate('size(event.data.list) * 2', data)).toBe(6);
  });

  it('expression - division and modulo by zero', () => {
    expect(thrown(() => evaluate('event.data.count % 0', { count: 5 })).code).toBe(
      'REFLEX_ERR_CONDITION_FAILED',
    );
    expect(thrown(() => evaluate('7 / 0')).params.reason).toMatch(/division by zero/);
    // A double division by zero is Infinity, which no JSON value can carry.
    expect(thrown(() => evaluate('event.data.count / 0', { count: 5 })).params.reason).toMatch(/Infinity/);
  });

  it('expression - `in` reads lists and the keys of maps', () => {
    const data = { labels: { instance: 'db-1', team: 'a' }, tags: ['x', 'y'] };
    expect(evaluate('event.data.labels.instance in facts.maintenance', data)).toBe(true);
    expect(evaluate('"web-1" in facts.maintenance', data)).toBe(false);
    expect(evaluate('"web-1" in facts.owners', data)).toBe(true);
    expect(evaluate('"team" in event.data.labels', data)).toBe(true);
    expect(evaluate('"owner" in event.data.labels', data)).toBe(false);
    expect(evaluate('"y" in event.data.tags', data)).toBe(true);
  });

  it('expression - has() tests a field without failing, a missing field fails with a clear error', () => {
    const data = { labels: { instance: 'db-1' } };
    expect(evaluate('has(event.data.labels)', data)).toBe(true);
    expect(evaluate('has(event.data.annotations)', data)).toBe(false);
    expect(evaluate('has(event.data.annotations) && event.data.annotations.value > 1', data)).toBe(false);
    expect(evaluate('has(event.subject) ? event.subject : "none"', data)).toBe('none');

    const error = thrown(() => evaluate('event.data.annotations.value > 90', data));
    expect(error.code).toBe('REFLEX_ERR_CONDITION_FAILED');
    expect(error.params).toEqual({
      expression: 'event.data.annotations.value > 90',
      reason: 'no field `annotations` in `event.data`',
    });
    expect(error.details).toEqual({ offset: 11 });
    expect(error.message).toMatch(/guard missing fields with `has\(\.\.\.\)`/);
    expect(thrown(() => evaluate('event.data.tags[3]', { tags: [1] })).params.reason).toMatch(
      /index out of bounds/,
    );
  });

  it('expression - string functions and size()', () => {
    const data = { host: 'web-1.prod.example.com', tags: ['a', 'b'], empty: '' };
    expect(evaluate('event.data.host.startsWith("web-")', data)).toBe(true);
    expect(evaluate('event.data.host.endsWith(".example.com")', data)).toBe(true);
    expect(evaluate('event.data.host.contains("prod")', data)).toBe(true);
    expect(evaluate('event.data.host.contains("dev")', data)).toBe(false);
    expect(evaluate('event.data.host.matches("^web-[0-9]+\\\\.")', data)).toBe(true);
    expect(evaluate('event.data.host.matches("^db")', data)).toBe(false);
    expect(evaluate('size(event.data.host)', data)).toBe(22);
    expect(evaluate('event.data.host.size()', data)).toBe(22);
    expect(evaluate('size(event.data.tags)', data)).toBe(2);
    expect(evaluate('size(event.data.empty) == 0', data)).toBe(true);
    expect(evaluate('event.data.host.split(".")[0]', data)).toBe('web-1');
    expect(evaluate('event.data.host.upperAscii()', data)).toBe('WEB-1.PROD.EXAMPLE.COM');
  });

  it('expression - now is a timestamp for date and duration math', () => {
    expect(evaluate('now')).toBe('2026-11-27T10:00:00.000Z');
    expect(evaluate('now - timestamp(event.time)')).toBe('90s');
    expect(evaluate('now - timestamp(event.time) < duration("5m")')).toBe(true);
    expect(evaluate('now - timestamp(event.time) > duration("1m")')).toBe(true);
    expect(evaluate('now + duration("1h30m")')).toBe('2026-11-27T11:30:00.000Z');
    expect(evaluate('now - duration("1.5s")')).toBe('2026-11-27T09:59:58.500Z');
    expect(evaluate('now.getHours()')).toBe(10);
    expect(evaluate('now.getDayOfWeek()')).toBe(5);
    expect(evaluate('now > timestamp("2026-01-01T00:00:00Z")')).toBe(true);
    // `now` is whatever the caller passes: a replay sees the time the event was logged.
    const later = compileExpression('now.getFullYear()');
    expect(later.evaluate(context({}, { now: Date.parse('2030-06-01T00:00:00Z') }))).toBe(2030);
  });

  it('expression - results come back as plain JSON values', () => {
    expect(evaluate('42')).toBe(42);
    expect(evaluate('9007199254740991')).toBe(Number.MAX_SAFE_INTEGER);
    expect(evaluate('9007199254740993')).toBe('9007199254740993');
    expect(evaluate('-9223372036854775807')).toBe('-9223372036854775807');
    expect(evaluate('18446744073709551615u')).toBe('18446744073709551615');
    expect(evaluate('3u')).toBe(3);
    expect(evaluate('duration("90s")')).toBe('90s');
    expect(evaluate('duration("1.5s")')).toBe('1.5s');
    expect(evaluate('duration("-1.5s")')).toBe('-1.5s');
    expect(evaluate('duration("1ms")')).toBe('0.001s');
    expect(evaluate('timestamp("2026-01-02T03:04:05Z")')).toBe('2026-01-02T03:04:05.000Z');
    expect(evaluate('b"hi"')).toBe('aGk=');
    expect(evaluate('type(1)')).toBe('int');
    expect(evaluate('null')).toBe(null);
    expect(evaluate('[1, "a", 2.5, true, null, [2]]')).toEqual([1, 'a', 2.5, true, null, [2]]);
    expect(evaluate('{"a": 1, "b": {"c": [duration("2s")]}}')).toEqual({ a: 1, b: { c: ['2s'] } });
    expect(evaluate('{1: "one", true: "yes"}')).toEqual({ '1': 'one', true: 'yes' });
    expect(evaluate('event.data', { a: [1, { b: 2 }] })).toEqual({ a: [1, { b: 2 }] });
  });

  it('expression - a result is a copy: changing it leaves the event alone', () => {
    const data = { labels: { instance: 'db-1' }, list: [1, 2] };
    const ctx = context(data);
    const labels = compileExpression('event.data.labels').evaluate(ctx) as Record<string, unknown>;
    labels.instance = 'changed';
    const list = compileExpression('event.data.list').evaluate(ctx) as unknown[];
    list.push(3);
    expect(data).toEqual({ labels: { instance: 'db-1' }, list: [1, 2] });
  });

  it('expression - events, steps and run are readable when given, and a clear error when not', () => {
    const extra = {
      events: { first: { id: 'a', data: { n: 1 } } },
      steps: { fetch: { output: { status: 200 } } },
      run: { id: 'r1', rule: 'restart' },
    };
    expect(evaluate('events.first.data.n == 1', {}, extra)).toBe(true);
    expect(evaluate('steps.fetch.output.status', {}, extra)).toBe(200);
    expect(evaluate('run.id + "/" + run.rule', {}, extra)).toBe('r1/restart');
    const error = thrown(() => evaluate('steps.fetch.output.status == 200'));
    expect(error.code).toBe('REFLEX_ERR_CONDITION_FAILED');
    expect(error.params.reason).toBe('`steps` is not available here');
  });

  it('expression - unknown names, functions and bad syntax fail at compile time with an offset', () => {
    const unknown = thrown(() => compileExpression('event.data.x > 1 && evnt.type == "a"'));
    expect(unknown.code).toBe('REFLEX_ERR_CONDITION_INVALID');
    expect(unknown.params.reason).toMatch(/there is no variable `evnt`/);
    expect(unknown.params.reason).toMatch(/event, facts, vars, now/);
    expect(unknown.details).toEqual({ offset: 20 });

    const fn = thrown(() => compileExpression('lookup(event.data.x)'));
    expect(fn.code).toBe('REFLEX_ERR_CONDITION_INVALID');
    expect(fn.params.reason).toMatch(/no matching overload for 'lookup/);

    const method = thrown(() => compileExpression('event.data.x.frobnicate()'));
    expect(method.params.reason).toMatch(/frobnicate/);

    const syntax = thrown(() => compileExpression('event.data.x > '));
    expect(syntax.code).toBe('REFLEX_ERR_CONDITION_INVALID');
    expect(syntax.details).toEqual({ offset: 15 });

    const types = thrown(() => compileExpression('1 + "a"'));
    expect(types.params.reason).toMatch(/no such overload/);

    expect(thrown(() => compileExpression('   ')).params.reason).toBe('the expression is empty');
    expect(thrown(() => compileExpression('"unterminated')).params.reason).toMatch(/Unterminated string/);
  });

  it('expression - a regular expression must be written in the expression, without nested repetition', () => {
    expect(evaluate('event.data.host.matches("^(web|api)-[0-9]+$")', { host: 'web-12' })).toBe(true);
    // From the event, a crafted pattern could stall the engine: refused when the rule is loaded.
    const dynamic = thrown(() => compileExpression('event.data.host.matches(event.data.pattern)'));
    expect(dynamic.code).toBe('REFLEX_ERR_CONDITION_INVALID');
    expect(dynamic.params.reason).toMatch(/must be a string written in the expression/);
    expect(dynamic.details).toEqual({ offset: 0 });
    // The function form `matches(text, regex)` is not offered at all.
    expect(thrown(() => compileExpression('matches(event.data.host, "a")')).params.reason).toMatch(
      /no matching overload/,
    );
    // Catastrophic backtracking: `^(a+)+$` takes 4 s on 27 a's and a b, twice that per a more.
    const nested = thrown(() => compileExpression('event.data.x.matches("^(a+)+$")'));
    expect(nested.params.reason).toMatch(/could take exponential time .*nested repetition/);
    expect(nested.details).toEqual({ offset: 21 });
    expect(
      thrown(() =>
        compileExpression(`event.data.x.matches("${'a'.repeat(expressionLimits.maxRegexLength + 1)}")`),
      ).params.reason,
    ).toMatch(/longer than 512 characters/);
  });

  it('expression - regexHazard finds repetition nested in a repeated group, and only that', () => {
    const hazardous = [
      '(a+)+',
      '(a*)*',
      '((a+)b)+',
      '(\\w+\\s?)*',
      '(?:x*)+',
      '(a{2,})*',
      '(a+)+?',
      '(a|b+){1,9}',
    ];
    const fine = [
      '^web-[0-9]+$',
      '(ab)+',
      '(a+)?',
      '(a{3})+',
      '[(a+)]+',
      '\\(a+\\)+',
      'a+b+c*',
      '(a|b)+(c+)',
    ];
    for (const source of hazardous) expect(regexHazard(source), source).toBeDefined();
    for (const source of fine) expect(regexHazard(source), source).toBeUndefined();
  });

  it('expression - parse-time limits stop hostile expressions', () => {
    const long = `event.data.x == "${'a'.repeat(expressionLimits.maxLength)}"`;
    expect(thrown(() => compileExpression(long)).params.reason).toMatch(/characters long/);

    const deep = `${'('.repeat(100)}1${')'.repeat(100)}`;
    expect(thrown(() => compileExpression(deep)).params.reason).toMatch(/maxDepth/);

    const wide = Array.from({ length: 1100 }, () => '1').join('+');
    expect(thrown(() => compileExpression(wide)).params.reason).toMatch(/maxAstNodes/);

    const list = `[${Array.from({ length: 300 }, (_, i) => i).join(', ')}]`;
    expect(thrown(() => compileExpression(list)).params.reason).toMatch(/maxListElements/);

    const nested = 'event.data.l.all(a, event.data.l.all(b, event.data.l.all(c, event.data.l.all(d, true))))';
    expect(thrown(() => compileExpression(nested)).params.reason).toMatch(/nest deeper than 3/);
    const threeDeep = 'event.data.l.all(a, event.data.l.all(b, event.data.l.exists(c, c == a + b)))';
    expect(compileExpression(threeDeep).evaluate(context({ l: [0, 1, 2, 4] }))).toBe(false);
  });

  it('expression - field names cannot reach host prototypes', () => {
    const data = JSON.parse(
      '{"plain": {"a": 1}, "list": [1], "text": "abc", "__proto__": {"polluted": true}}',
    );
    for (const source of [
      'event.data.plain.constructor',
      'event.data.plain["constructor"]',
      'event.data.plain.__proto__',
      'event.data.plain["__proto__"]',
      'event.data.plain.toString',
      'event.data.plain.hasOwnProperty',
      'event.data.list.constructor',
      'event.data.list.length',
      'event.data.text.constructor',
      'event.data.text.length',
    ]) {
      expect(thrown(() => evaluate(source, data)).code, source).toBe('REFLEX_ERR_CONDITION_FAILED');
    }
    expect(evaluate('has(event.data.plain.constructor)', data)).toBe(false);
    expect(evaluate('"constructor" in event.data.plain', data)).toBe(false);
    expect(evaluate('"toString" in event.data.plain', data)).toBe(false);
    // A JSON key named __proto__ is the sender's data, not the object's prototype.
    expect(evaluate('event.data["__proto__"].polluted', data)).toBe(true);
    const copied = evaluate('event.data', data) as Record<string, unknown>;
    expect(Object.getPrototypeOf(copied)).toBe(Object.prototype);
    expect(Object.keys(copied)).toContain('__proto__');
    expect(evaluate('{"__proto__": {"polluted": true}, "a": 1}')).toEqual({ a: 1 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
