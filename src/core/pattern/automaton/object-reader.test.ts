import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EventValues, FieldPaths, readObject } from './event-values.js';
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
