import { describe, expect, it } from 'vitest';
import { ReflexError } from '../errors.js';
import { parsePattern, patternLimits } from './pattern.js';

/** Parses a pattern that must be rejected; returns where and why. */
function rejection(json: unknown): { path: unknown; message: string; params: Record<string, unknown> } {
  try {
    parsePattern(json);
  } catch (error) {
    expect(error).toBeInstanceOf(ReflexError);
    const coded = error as ReflexError;
    expect(coded.code).toBe('REFLEX_ERR_PATTERN_INVALID');
    return { path: coded.details?.path, message: coded.message, params: { ...coded.params } };
  }
  throw new Error(`expected ${JSON.stringify(json)} to be rejected`);
}

function field(json: unknown, index = 0) {
  const condition = parsePattern(json).conditions[index];
  if (condition?.type !== 'field') throw new Error('expected a field condition');
  return condition;
}

describe('pattern - structure', () => {
  it('pattern - joins nested keys and dotted keys into one field name, in pattern order', () => {
    const pattern = parsePattern({ source: ['a'], detail: { 'state.status': ['x'], level: { deep: [1] } } });
    expect(pattern.conditions.map((c) => (c.type === 'field' ? c.path : '$or'))).toEqual([
      'source',
      'detail.state.status',
      'detail.level.deep',
    ]);
    expect(field({ detail: { level: { deep: [1] } } }).at).toEqual(['detail', 'level', 'deep']);
  });

  it('pattern - keeps the source and freezes the parsed form', () => {
    const source = { type: ['order.created'] };
    const pattern = parsePattern(source);
    expect(pattern.source).toBe(source);
    expect(Object.isFrozen(pattern)).toBe(true);
    expect(Object.isFrozen(pattern.conditions)).toBe(true);
  });

  it('pattern - reads plain values as exact matchers', () => {
    expect(field({ a: ['x', 300, true, null] }).matchers).toEqual([
      { type: 'exact', value: 'x' },
      { type: 'exact', value: 300 },
      { type: 'exact', value: true },
      { type: 'exact', value: null },
    ]);
  });

  it('pattern - parses $or alternatives under the prefix of the object that holds them', () => {
    const [or] = parsePattern({ detail: { $or: [{ a: ['1'] }, { b: { c: ['2'] } }] } }).conditions;
    expect(or?.type).toBe('or');
    if (or?.type !== 'or') return;
    expect(or.at).toEqual(['detail', '$or']);
    expect(or.alternatives.map((alt) => alt.map((c) => (c.type === 'field' ? c.path : '$or')))).toEqual([
      ['detail.a'],
      ['detail.b.c'],
    ]);
  });

  it('pattern - rejects a pattern that is not an object, at the root', () => {
    for (const json of [['a'], 'text', 42, null, undefined]) {
      const { path, params } = rejection(json);
      expect(path).toEqual([]);
      expect(params.path).toBe('(root)');
    }
  });

  it('pattern - rejects a field value that is not a list, naming the field', () => {
    const { path, message } = rejection({ detail: { state: 'running' } });
    expect(path).toEqual(['detail', 'state']);
    expect(message).toContain('The event pattern is invalid at `detail.state`');
    expect(message).toContain('To fix: put the value in a list: "state": ["running"]');
  });

  it('pattern - rejects empty lists and empty objects', () => {
    expect(rejection({ resources: [] }).path).toEqual(['resources']);
    expect(rejection({}).path).toEqual([]);
    expect(rejection({ detail: {} }).path).toEqual(['detail']);
    expect(rejection({ a: [{}] }).path).toEqual(['a', 0]);
  });

  it('pattern - rejects a list nested in a list and values that are not JSON', () => {
    expect(rejection({ a: [['x']] }).path).toEqual(['a', 0]);
    expect(rejection({ a: [Number.NaN] }).path).toEqual(['a', 0]);
    expect(rejection({ a: [new Date(0)] }).path).toEqual(['a', 0]);
  });

  it('pattern - rejects the same field given twice through dotted and nested keys', () => {
    const { path, message } = rejection({ a: { b: ['x'] }, 'a.b': ['y'] });
    expect(path).toEqual(['a.b']);
    expect(message).toContain('`a.b`');
  });

  it('pattern - rejects a pattern nested deeper than the limit, instead of overflowing the stack', () => {
    const nest = (depth: number): unknown => {
      let json: unknown = ['x'];
      for (let i = 0; i < depth; i++) json = { a: json };
      return json;
    };
    expect(field(nest(patternLimits.maxDepth)).path).toBe(Array(patternLimits.maxDepth).fill('a').join('.'));
    const { path, message } = rejection(nest(patternLimits.maxDepth + 1));
    expect(path).toEqual(Array(patternLimits.maxDepth).fill('a'));
    expect(message).toContain(`nests deeper than ${patternLimits.maxDepth} levels`);
    // 100 000 levels overflowed the stack (a RangeError, answered 500 by the API).
    expect(rejection(nest(100_000)).path).toHaveLength(patternLimits.maxDepth);
  });

  it('pattern - rejects unknown and wrongly-cased operators, suggesting the right name', () => {
    const upper = rejection({ a: [{ EXISTS: true }] });
    expect(upper.path).toEqual(['a', 0, 'EXISTS']);
    expect(upper.message).toContain('write `exists`');
    const unknown = rejection({ a: [{ contains: 'x' }] });
    expect(unknown.path).toEqual(['a', 0, 'contains']);
    expect(unknown.message).toContain('`prefix`');
  });

  it('pattern - rejects an operator object with two operators', () => {
    expect(rejection({ a: [{ prefix: 'a', suffix: 'b' }] }).path).toEqual(['a', 0]);
  });
});

describe('pattern - operators', () => {
  it('pattern - prefix and suffix take a string or an equals-ignore-case object', () => {
    expect(field({ a: [{ prefix: '' }] }).matchers[0]).toEqual({
      type: 'prefix',
      value: '',
      ignoreCase: false,
    });
    expect(field({ a: [{ suffix: { 'equals-ignore-case': '.PNG' } }] }).matchers[0]).toEqual({
      type: 'suffix',
      value: '.PNG',
      ignoreCase: true,
    });
    expect(rejection({ a: [{ prefix: 1 }] }).path).toEqual(['a', 0, 'prefix']);
    expect(rejection({ a: [{ suffix: ['x'] }] }).path).toEqual(['a', 0, 'suffix']);
    expect(rejection({ a: [{ prefix: { wildcard: 'x*' } }] }).path).toEqual(['a', 0, 'prefix']);
    expect(rejection({ a: [{ prefix: { 'equals-ignore-case': 5 } }] }).path).toEqual([
      'a',
      0,
      'prefix',
      'equals-ignore-case',
    ]);
  });

  it('pattern - equals-ignore-case takes only a string', () => {
    expect(field({ a: [{ 'equals-ignore-case': '' }] }).matchers[0]).toEqual({
      type: 'equals-ignore-case',
      value: '',
    });
    expect(rejection({ a: [{ 'equals-ignore-case': ['x'] }] }).path).toEqual(['a', 0, 'equals-ignore-case']);
  });

  it('pattern - exists takes only a boolean', () => {
    expect(field({ a: [{ exists: false }] }).matchers[0]).toEqual({ type: 'exists', value: false });
    expect(rejection({ a: [{ exists: 'true' }] }).path).toEqual(['a', 0, 'exists']);
  });

  it('pattern - numeric reads single bounds, = and ranges with the lower bound first', () => {
    expect(field({ a: [{ numeric: ['>', 0, '<=', 5] }] }).matchers[0]).toEqual({
      type: 'numeric',
      lower: { value: 0, inclusive: false },
      upper: { value: 5, inclusive: true },
    });
    expect(field({ a: [{ numeric: ['=', 301.8] }] }).matchers[0]).toEqual({
      type: 'numeric',
      lower: { value: 301.8, inclusive: true },
      upper: { value: 301.8, inclusive: true },
    });
    expect(field({ a: [{ numeric: ['<', 10] }] }).matchers[0]).toEqual({
      type: 'numeric',
      upper: { value: 10, inclusive: false },
    });
  });

  it('pattern - numeric rejects bad shapes, operators and operands, pointing at the item', () => {
    expect(rejection({ a: [{ numeric: 10 }] }).path).toEqual(['a', 0, 'numeric']);
    expect(rejection({ a: [{ numeric: ['>', 0, '<'] }] }).path).toEqual(['a', 0, 'numeric']);
    expect(rejection({ a: [{ numeric: ['>', 0, '>', 1] }] }).path).toEqual(['a', 0, 'numeric', 2]);
    expect(rejection({ a: [{ numeric: ['<', 10, '>', 0] }] }).path).toEqual(['a', 0, 'numeric', 0]);
    expect(rejection({ a: [{ numeric: ['=', 1, '<', 5] }] }).path).toEqual(['a', 0, 'numeric', 0]);
    expect(rejection({ a: [{ numeric: ['!=', 1] }] }).path).toEqual(['a', 0, 'numeric', 0]);
    expect(rejection({ a: [{ numeric: ['>', '5'] }] }).path).toEqual(['a', 0, 'numeric', 1]);
  });

  it('pattern - numeric rejects a range that is out of order or empty', () => {
    const { path, message } = rejection({ a: [{ numeric: ['>', 5, '<', 1] }] });
    expect(path).toEqual(['a', 0, 'numeric', 3]);
    expect(message).toContain('the range is empty');
    expect(rejection({ a: [{ numeric: ['>=', 5, '<=', 5] }] }).path).toEqual(['a', 0, 'numeric', 3]);
  });

  it('pattern - numeric rejects operands beyond ±5e9', () => {
    expect(field({ a: [{ numeric: ['>=', -5e9, '<=', 5e9] }] }).matchers).toHaveLength(1);
    expect(rejection({ a: [{ numeric: ['<', 5e9 + 1] }] }).path).toEqual(['a', 0, 'numeric', 1]);
    expect(rejection({ a: [{ numeric: ['>', -1e10, '<', 0] }] }).path).toEqual(['a', 0, 'numeric', 1]);
  });

  it('pattern - anything-but takes a string, a number or a list of one type', () => {
    expect(field({ a: [{ 'anything-but': 'x' }] }).matchers[0]).toEqual({
      type: 'anything-but',
      strings: ['x'],
      numbers: [],
    });
    expect(field({ a: [{ 'anything-but': [1, 2] }] }).matchers[0]).toEqual({
      type: 'anything-but',
      strings: [],
      numbers: [1, 2],
    });
    expect(rejection({ a: [{ 'anything-but': null }] }).path).toEqual(['a', 0, 'anything-but']);
    expect(rejection({ a: [{ 'anything-but': true }] }).path).toEqual(['a', 0, 'anything-but']);
    expect(rejection({ a: [{ 'anything-but': [] }] }).path).toEqual(['a', 0, 'anything-but']);
    expect(rejection({ a: [{ 'anything-but': ['x', 1] }] }).path).toEqual(['a', 0, 'anything-but', 1]);
    expect(rejection({ a: [{ 'anything-but': ['x', null] }] }).path).toEqual(['a', 0, 'anything-but', 1]);
  });

  it('pattern - anything-but accepts prefix, suffix, equals-ignore-case and wildcard, alone or in lists', () => {
    expect(field({ a: [{ 'anything-but': { prefix: ['init', 'test'] } }] }).matchers[0]).toEqual({
      type: 'anything-but-prefix',
      values: ['init', 'test'],
    });
    expect(field({ a: [{ 'anything-but': { suffix: '.txt' } }] }).matchers[0]?.type).toBe(
      'anything-but-suffix',
    );
    expect(field({ a: [{ 'anything-but': { 'equals-ignore-case': ['x'] } }] }).matchers[0]?.type).toBe(
      'anything-but-equals-ignore-case',
    );
    expect(field({ a: [{ 'anything-but': { wildcard: '' } }] }).matchers[0]?.type).toBe(
      'anything-but-wildcard',
    );
  });

  it('pattern - anything-but prefix rejects a non-string operand', () => {
    expect(rejection({ a: [{ 'anything-but': { prefix: 123 } }] }).path).toEqual([
      'a',
      0,
      'anything-but',
      'prefix',
    ]);
    expect(rejection({ a: [{ 'anything-but': { prefix: ['ok', 1] } }] }).path).toEqual([
      'a',
      0,
      'anything-but',
      'prefix',
      1,
    ]);
    expect(rejection({ a: [{ 'anything-but': { prefix: [] } }] }).path).toEqual([
      'a',
      0,
      'anything-but',
      'prefix',
    ]);
  });

  it('pattern - anything-but prefix and suffix reject an empty string, which would exclude everything', () => {
    expect(rejection({ a: [{ 'anything-but': { prefix: '' } }] }).path).toEqual([
      'a',
      0,
      'anything-but',
      'prefix',
    ]);
    expect(rejection({ a: [{ 'anything-but': { suffix: ['.x', ''] } }] }).path).toEqual([
      'a',
      0,
      'anything-but',
      'suffix',
      1,
    ]);
  });

  it('pattern - anything-but rejects other operators and nested ignore-case', () => {
    expect(rejection({ a: [{ 'anything-but': { numeric: ['>', 1] } }] }).path).toEqual([
      'a',
      0,
      'anything-but',
      'numeric',
    ]);
    expect(rejection({ a: [{ 'anything-but': { prefix: { 'equals-ignore-case': 'x' } } }] }).path).toEqual([
      'a',
      0,
      'anything-but',
      'prefix',
    ]);
    expect(rejection({ a: [{ 'anything-but': { prefix: 'a', suffix: 'b' } }] }).path).toEqual([
      'a',
      0,
      'anything-but',
    ]);
  });

  it('pattern - wildcard rejects repeated stars and stray escapes', () => {
    expect(rejection({ a: [{ wildcard: 'a**b' }] }).path).toEqual(['a', 0, 'wildcard']);
    expect(rejection({ a: [{ wildcard: 'a\\b' }] }).path).toEqual(['a', 0, 'wildcard']);
    expect(rejection({ a: [{ 'anything-but': { wildcard: ['ok*', 'x**'] } }] }).path).toEqual([
      'a',
      0,
      'anything-but',
      'wildcard',
      1,
    ]);
    expect(field({ a: [{ wildcard: 'a\\**' }] }).matchers[0]).toMatchObject({
      wildcard: { parts: ['a*', ''] },
    });
  });

  it('pattern - wildcard rejects patterns too complex to match, across the whole field', () => {
    const { path, message } = rejection({ arn: [{ wildcard: '*:*:*:*:*:event-bus/*' }] });
    expect(path).toEqual(['arn', 0, 'wildcard']);
    expect(message).toContain('too complex');
    expect(field({ arn: [{ wildcard: '*:*:*:*:event-bus/*' }] }).matchers).toHaveLength(1);
    // Each is fine alone; together they are not.
    expect(rejection({ arn: [{ wildcard: '*:*:*:*:event-bus/*' }, { wildcard: '*:*:x' }] }).path).toEqual([
      'arn',
      1,
      'wildcard',
    ]);
  });

  it('pattern - cidr takes an IPv4 or IPv6 block', () => {
    expect(field({ ip: [{ cidr: '10.0.0.0/24' }] }).matchers[0]).toMatchObject({
      type: 'cidr',
      cidr: { bytes: [10, 0, 0, 0], prefixLength: 24 },
    });
    expect(field({ ip: [{ cidr: '2001:db8::/32' }] }).matchers[0]).toMatchObject({
      cidr: { prefixLength: 32 },
    });
    for (const bad of [
      '10.0.0.0',
      '10.0.0.0/33',
      '10.0.0/8',
      '2001:db8::/129',
      '10.0.0.0/-1',
      '1.2.3.4/8/8',
    ]) {
      expect(rejection({ ip: [{ cidr: bad }] }).path).toEqual(['ip', 0, 'cidr']);
    }
  });
});

describe('pattern - $or', () => {
  it('pattern - $or with fewer than two alternatives is rejected', () => {
    expect(rejection({ $or: [{ a: ['x'] }] }).path).toEqual(['$or']);
    expect(rejection({ $or: [] }).path).toEqual(['$or']);
  });

  it('pattern - $or holding a list or a value is rejected at that alternative', () => {
    expect(rejection({ d: { $or: [{ a: ['x'] }, [{ b: ['y'] }]] } }).path).toEqual(['d', '$or', 1]);
    expect(rejection({ $or: { a: ['x'] } }).path).toEqual(['$or']);
  });

  it('pattern - operator names cannot be field names inside $or', () => {
    expect(rejection({ $or: [{ numeric: [1] }, { b: ['y'] }] }).path).toEqual(['$or', 0, 'numeric']);
  });

  it('pattern - errors inside $or point into the alternative', () => {
    expect(rejection({ $or: [{ a: ['x'] }, { b: [{ prefix: 1 }] }] }).path).toEqual([
      '$or',
      1,
      'b',
      0,
      'prefix',
    ]);
  });
});
