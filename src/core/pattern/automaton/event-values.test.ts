import { describe, expect, it } from 'vitest';
import { EventValues, FieldPaths, readObject } from './event-values.js';

describe('event values', () => {
  it('event values - the path tree reaches each field through nested and dotted keys alike', () => {
    const paths = new FieldPaths();
    const id = paths.acquire('a.b.c');
    const root = paths.root();
    expect([...root.names].sort()).toEqual(['a', 'a.b', 'a.b.c']);
    const a = root.children[root.names.indexOf('a')]!;
    expect([...a.names].sort()).toEqual(['b', 'b.c']);
    expect(root.children[root.names.indexOf('a.b.c')]!.pathId).toBe(id);
  });

  it('event values - ids are counted and reused, and the tree follows the names in use', () => {
    const paths = new FieldPaths();
    const x = paths.acquire('x');
    expect(paths.acquire('x')).toBe(x);
    paths.release('x');
    expect(paths.root().names).toEqual(['x']);
    paths.release('x');
    expect(paths.size).toBe(0);
    expect(paths.root().names).toEqual([]);
    expect(paths.acquire('y')).toBe(x);
  });

  it('event values - reads only the fields in use, with their array positions', () => {
    const paths = new FieldPaths();
    const b = paths.acquire('a.b');
    const values = new EventValues();
    values.begin(paths.capacity);
    readObject(
      { a: [{ b: 1, c: 2 }, { b: [true, null] }], 'a.b': 'dotted', skipped: { b: 3 } },
      paths.root(),
      values,
    );
    const slot = values.slot(b)!;
    const read = slot.records
      .slice(0, slot.count)
      .map((r) => [values.values[r], values.contexts[r]?.index ?? null]);
    expect(read).toEqual([
      [1, 0],
      [true, 0],
      [null, 1],
      ['dotted', null],
    ]);
    // One field per array: no array ties two fields together, so loose positions drop them all.
    expect(slot.records.slice(0, slot.count).map((r) => values.loose[r])).toEqual([null, null, null, null]);
  });
});
