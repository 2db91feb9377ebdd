import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonNestsWithin, shortText, toBoundedJson, utf8Length } from './json-value.js';

const limits = { maxDepth: 32, maxBytes: 1_048_576 };

/** A value nested `levels` deep, built without recursion. */
function deep(levels: number): unknown {
  let value: unknown = [];
  for (let i = 1; i < levels; i++) value = [value];
  return value;
}

function refused(value: unknown, bounds = limits) {
  const result = toBoundedJson(value, bounds);
  if (result.ok) throw new Error('expected the value to be refused');
  return result;
}

describe('bounded json', () => {
  it('bounded json - copies any JSON value within the limits exactly as JSON would see it', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        const result = toBoundedJson(value, limits);
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        expect(result.json).toBe(JSON.stringify(value));
        expect(result.value).toEqual(JSON.parse(JSON.stringify(value)));
        expect(result.bytes).toBe(Buffer.byteLength(result.json));
      }),
      { numRuns: 500 },
    );
  });

  it('bounded json - counts depth like an event, and refuses one level too deep wherever it is', () => {
    expect(toBoundedJson(deep(32), limits).ok).toBe(true);
    expect(toBoundedJson({ a: 1 }, { ...limits, maxDepth: 1 }).ok).toBe(true);
    expect(refused(deep(33))).toMatchObject({ kind: 'too-deep' });
    expect(refused({ ok: 1, list: [1, { x: deep(31) }] })).toMatchObject({
      kind: 'too-deep',
      reason: expect.stringContaining('$.list[1].x'),
    });
    // Fifty thousand levels: no recursion, so no stack overflow, and a short path in the message.
    const result = refused(deep(50_000));
    expect(result.reason.length).toBeLessThan(300);
  });

  it('bounded json - refuses cycles, BigInts and values that throw when read, saying where', () => {
    const cyclic: Record<string, unknown> = { list: [] };
    (cyclic.list as unknown[]).push(cyclic);
    expect(refused(cyclic)).toEqual({
      ok: false,
      kind: 'not-json',
      reason: 'it refers to itself at $.list[0]',
    });
    expect(refused({ n: 1n })).toMatchObject({
      kind: 'not-json',
      reason: expect.stringContaining('BigInt at $.n'),
    });
    const getter = {
      get boom(): never {
        throw new Error('no');
      },
    };
    expect(refused({ a: getter })).toMatchObject({
      kind: 'unreadable',
      reason: 'reading it at $.a threw: no',
    });
    const proxy = new Proxy([], {
      get() {
        throw new Error('trap');
      },
    });
    expect(refused(proxy)).toMatchObject({ kind: 'unreadable' });
    const revocable = Proxy.revocable({}, {});
    revocable.revoke();
    expect(refused({ r: revocable.proxy })).toMatchObject({ kind: 'unreadable' });
  });

  it('bounded json - refuses what is too large as JSON before copying it, shared references included', () => {
    expect(refused('x'.repeat(1_048_577))).toMatchObject({ kind: 'too-large' });
    expect(toBoundedJson('x'.repeat(1_048_574), limits).ok).toBe(true);
    // Escapes and multi-byte characters count as the bytes they take.
    expect(refused('\u0001'.repeat(200_000))).toMatchObject({ kind: 'too-large' });
    expect(refused('é'.repeat(600_000))).toMatchObject({ kind: 'too-large' });
    // 2^31 leaves as JSON, a few dozen arrays in memory: refused after reading about a megabyte.
    let shared: unknown = 'leaf';
    for (let i = 0; i < 31; i++) shared = [shared, shared];
    const started = performance.now();
    expect(refused(shared)).toMatchObject({ kind: 'too-large' });
    expect(performance.now() - started).toBeLessThan(2000);
    // A sparse array of length 2^32 - 1 is refused from its length.
    expect(refused(new Array(2 ** 32 - 1))).toMatchObject({ kind: 'too-large' });
  });

  it('bounded json - applies toJSON, leaves out undefined, functions and symbols, and keeps __proto__ an own key', () => {
    const parsed = JSON.parse('{"__proto__":{"polluted":true},"keep":1}') as Record<string, unknown>;
    const result = toBoundedJson(
      {
        at: new Date(0),
        gone: undefined,
        fn: () => 1,
        sym: Symbol('s'),
        list: [undefined, () => 1, Number.NaN, Number.POSITIVE_INFINITY],
        boxed: [new String('s'), new Number(1), new Boolean(false)],
        parsed,
      },
      limits,
    );
    expect(result).toMatchObject({
      ok: true,
      json: '{"at":"1970-01-01T00:00:00.000Z","list":[null,null,null,null],"boxed":["s",1,false],"parsed":{"__proto__":{"polluted":true},"keep":1}}',
    });
    if (!result.ok) return;
    const copy = (result.value as { parsed: Record<string, unknown> }).parsed;
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(Object.hasOwn(copy, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(toBoundedJson(undefined, limits)).toMatchObject({ ok: true, value: null, json: 'null' });
  });

  it('bounded json - jsonNestsWithin reads nesting from text, not counting brackets in strings', () => {
    expect(jsonNestsWithin('[[[]]]', 3)).toBe(true);
    expect(jsonNestsWithin('[[[]]]', 2)).toBe(false);
    expect(jsonNestsWithin('{"a":[{"b":1}]}', 3)).toBe(true);
    expect(jsonNestsWithin('{"a":[{"b":1}]}', 2)).toBe(false);
    expect(jsonNestsWithin('["[[[[", "\\"[[[["]', 1)).toBe(true);
    expect(jsonNestsWithin('"just text"', 0)).toBe(true);
    expect(jsonNestsWithin(`${'['.repeat(60_000)}${']'.repeat(60_000)}`, 32)).toBe(false);
  });

  it('bounded json - utf8Length and shortText', () => {
    for (const text of ['', 'abc', 'é', '€', '😀', '\ud800', 'a\udc00b']) {
      expect(utf8Length(text)).toBe(Buffer.byteLength(text));
    }
    expect(shortText('x'.repeat(300))).toHaveLength(201);
    expect(shortText(new Error('boom'))).toBe('boom');
    expect(shortText(Object.create(null))).toBe('[object Object]');
    expect(shortText(Symbol('s'))).toBe('Symbol(s)');
  });
});
