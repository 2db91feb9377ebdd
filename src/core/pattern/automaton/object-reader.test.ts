import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createCompiledMatcher } from '../compiled-matcher.js';
import { parsePattern } from '../pattern.js';
import { createReferenceMatcher } from '../reference-matcher.js';
import { EventValues, FieldPaths, probeNamesUpTo, readObject } from './event-values.js';
import { compileObjectReader } from './object-reader.js';

/** The records of every field, in reading order: value, array position, whether overridden. */
function records(paths: FieldPaths, names: readonly string[], values: EventValues): unknown[] {
  return names.map((name) => {
    const slot = values.slot(paths.acquire(name));
    paths.release(name);
    if (slot === undefined) return [name];
    return [
      name,
      ...slot.records.slice(0, slot.count).map((r) => [values.values[r], values.contexts[r]?.index ?? null]),
    ];
  });
}

const fieldNames = ['a', 'a.b', 'a.b.c', 'constructor', '__proto__.x', 'size', 'n', 'é', '0'];

const events: unknown[] = [
  { a: { b: { c: 1 } } },
  { a: [{ b: 1 }, { b: [true, null, { c: 'deep' }] }], 'a.b': 'dotted', 'a.b.c': 2 },
  { a: null, n: Number.NaN, size: Number.POSITIVE_INFINITY },
  { constructor: 'own', n: 1e21, é: 'accent', 0: 'index' },
  JSON.parse('{"__proto__": {"x": "own"}, "a": {"b": {"c": [1, [2, 3]]}}}'),
  // Names answered only by the prototype are not the event's fields.
  {},
  new Map([['size', 1]]),
  Object.assign(Object.create(null), { a: 'no prototype', size: 3 }),
  Object.assign(Object.create({ n: 'inherited' }), { a: 'class-like' }),
  new Date(0),
];

describe('object reader', () => {
  it('object reader - reads the same values, positions and order as the generic walk', () => {
    const paths = new FieldPaths();
    for (const name of fieldNames) paths.acquire(name);
    const root = paths.root();
    const read = compileObjectReader(root);
    for (const event of events) {
      const generic = new EventValues();
      generic.begin(paths.capacity);
      readObject(event, root, generic);
      const compiled = new EventValues();
      compiled.begin(paths.capacity);
      read(event as object, compiled);
      compiled.finish();
      expect(records(paths, fieldNames, compiled), JSON.stringify(event)).toEqual(
        records(paths, fieldNames, generic),
      );
    }
  });

  it('object reader - where patterns use many names side by side, events are read by their own keys, with the same matches', () => {
    const compiled = createCompiledMatcher();
    const reference = createReferenceMatcher();
    // 40 fields under `data`, some also written as dotted keys, and `constructor` among them.
    const names = [...Array.from({ length: 40 }, (_, i) => `f${i}`), 'constructor', 'x.y'];
    expect(names.length).toBeGreaterThan(probeNamesUpTo);
    names.forEach((name, i) => {
      const pattern = parsePattern({ data: { [name]: [`v${i}`, { prefix: 'any-' }] } });
      compiled.add(i, pattern);
      reference.add(i, pattern);
    });
    const events: unknown[] = [
      { data: { f3: 'v3', f7: 'no', f39: 'any-thing' } },
      { data: { 'x.y': `v${names.indexOf('x.y')}`, x: { y: 'any-1' } } },
      { 'data.f5': 'v5', data: { f6: 'v6' } },
      { data: { constructor: `v${names.indexOf('constructor')}` } },
      { data: {} },
      { data: [{ f1: 'v1' }, { f2: 'nope' }] },
      { data: new Map([['f1', 'v1']]) },
      { data: Object.assign(Object.create({ f8: 'v8' }), { f9: 'v9' }) },
      { data: Object.assign(Object.create(null), { f10: 'v10' }) },
    ];
    for (const event of events) {
      expect(compiled.match(event), JSON.stringify(event)).toEqual(reference.match(event));
    }
    // The JSON scanner finds keys among many names of the same length by lookup: the same matches.
    for (const event of events.slice(0, 6)) {
      const text = JSON.stringify(event);
      expect(compiled.matchJson(text), text).toEqual(reference.match(JSON.parse(text)));
    }
    expect(compiled.match(events[0])).toEqual([3, 39]);
  });

  it('object reader - past a few hundred nested names no code is generated, and the matches stay the same', () => {
    const compiled = createCompiledMatcher();
    const reference = createReferenceMatcher();
    // 600 objects with a field each: 601 prefixes with names, more than are worth a function each.
    for (let i = 0; i < 600; i++) {
      const pattern = parsePattern({ [`o${i}`]: { id: [i] } });
      compiled.add(i, pattern);
      reference.add(i, pattern);
    }
    const event = { o7: { id: 7 }, o8: { id: 9 }, o599: { id: 599 }, 'o5.id': 5 };
    expect(compiled.match(event)).toEqual([5, 7, 599]);
    expect(compiled.match(event)).toEqual(reference.match(event));
  });

  it('object reader - names are data in the generated code, never code', () => {
    const paths = new FieldPaths();
    const name = '"]); throw new Error("injected"); (["';
    const id = paths.acquire(name);
    const values = new EventValues();
    values.begin(paths.capacity);
    compileObjectReader(paths.root())({ [name]: 'x' }, values);
    const slot = values.slot(id)!;
    expect(values.values[slot.records[0]!]).toBe('x');
  });

  it('object reader - without code generation (--disallow-code-generation-from-strings) it reads through the generic walk', () => {
    const matcher = fileURLToPath(new URL('../compiled-matcher.ts', import.meta.url));
    const pattern = fileURLToPath(new URL('../pattern.ts', import.meta.url));
    const script = `
      const { createCompiledMatcher } = await import(${JSON.stringify(matcher)});
      const { parsePattern } = await import(${JSON.stringify(pattern)});
      const m = createCompiledMatcher();
      m.add(7, parsePattern({ a: { b: ['x'] } }));
      process.stdout.write(JSON.stringify([m.match({ a: { b: 'x' } }), m.match({ a: [{ b: 'y' }] })]));
    `;
    const run = spawnSync(
      process.execPath,
      ['--disallow-code-generation-from-strings', '--import', 'tsx', '--input-type=module', '-e', script],
      { encoding: 'utf8' },
    );
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('[[7],[]]');
  });
});
