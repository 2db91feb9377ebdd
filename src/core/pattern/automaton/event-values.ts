import type { JsonScalar } from '../pattern.js';

/**
 * The fields of one event that some pattern uses, read once per event and only where patterns look.
 *
 * Field names are keys joined with `.` (EventBridge's flattening), so `{"a": {"b": 1}}` and `{"a.b": 1}`
 * both give `a.b`. To read only what is used, the field names of all patterns are split at their dots
 * into a tree of {@link PathState}s, one per dot-prefix: from each state, every key that extends the
 * prefix to another prefix (`b`, and `b.c` for a dotted key) leads to a child state. An event is walked
 * along that tree and nothing else is visited.
 */

/** One array of the event, as the walk meets it. */
export class ArrayRecord {
  /** The field of the first value recorded inside the array (-1 before any). */
  pathId = -1;
  /**
   * Whether the array holds values of more than one field. Only such arrays can tie two fields of a
   * pattern together; an array holding one field's values only constrains patterns that test that field
   * twice (which the automaton handles separately, see `strict` conjunctions).
   */
  multi = false;
}

/** An element of an array, with the element of the enclosing array it sits in. */
export class ArrayContext {
  constructor(
    readonly array: ArrayRecord,
    readonly index: number,
    readonly parent: ArrayContext | null,
  ) {}
}

/** A dot-prefix of the field names in use. */
export interface PathState {
  /** The field id when the prefix is itself a field name in use, else -1. */
  readonly pathId: number;
  /** Keys that lead on from here, with the state each leads to. */
  readonly names: readonly string[];
  readonly children: readonly PathState[];
  /** Per name: whether plain property access could find it on Object.prototype (e.g. `constructor`). */
  readonly inherited: readonly boolean[];
  /** Child indexes by key length, for matching keys in JSON text without building strings. */
  readonly byLength: ReadonlyArray<readonly number[] | undefined>;
  /** The same children by name, for keys written with escapes. */
  readonly byName: ReadonlyMap<string, PathState>;
}

interface MutableState {
  pathId: number;
  names: string[];
  children: MutableState[];
  inherited: boolean[];
  byLength: Array<number[] | undefined>;
  byName: Map<string, MutableState>;
}

function newState(): MutableState {
  return {
    pathId: -1,
    names: [],
    children: [],
    inherited: [],
    byLength: [],
    byName: new Map(),
  };
}

/**
 * The same text as a property key the engine has interned. Keys built by `split`/`join` are fresh strings,
 * and looking one up on an object costs a string-table search each time; keys of an object literal are
 * interned once.
 */
function internalized(text: string): string {
  return Object.keys({ [text]: 0 })[0] ?? text;
}

/**
 * The field names used by the patterns of a matcher, each with a small integer id, counted so that a
 * name no pattern uses any more is dropped.
 */
export class FieldPaths {
  readonly #ids = new Map<string, { id: number; refs: number }>();
  readonly #free: number[] = [];
  #next = 0;
  #root: PathState | undefined;

  /** The id of `path`, taking one more reference to it. */
  acquire(path: string): number {
    const known = this.#ids.get(path);
    if (known !== undefined) {
      known.refs++;
      return known.id;
    }
    const id = this.#free.pop() ?? this.#next++;
    this.#ids.set(path, { id, refs: 1 });
    this.#root = undefined;
    return id;
  }

  /** Drops one reference to `path`. */
  release(path: string): void {
    const known = this.#ids.get(path);
    if (known === undefined) return;
    if (--known.refs > 0) return;
    this.#ids.delete(path);
    this.#free.push(known.id);
    this.#root = undefined;
  }

  /** One more than the largest id in use: the size of per-field tables. */
  get capacity(): number {
    return this.#next;
  }

  /** How many field names are in use. */
  get size(): number {
    return this.#ids.size;
  }

  /** The tree of dot-prefixes, rebuilt when the set of names has changed. */
  root(): PathState {
    this.#root ??= this.#build();
    return this.#root;
  }

  #build(): PathState {
    const states = new Map<string, MutableState>();
    const root = newState();
    const stateFor = (prefix: string): MutableState => {
      let state = states.get(prefix);
      if (state === undefined) {
        state = newState();
        states.set(prefix, state);
      }
      return state;
    };
    const link = (from: MutableState, name: string, to: MutableState): void => {
      if (from.byName.has(name)) return;
      const index = from.names.length;
      from.names.push(name);
      from.children.push(to);
      from.inherited.push(name in Object.prototype);
      from.byName.set(name, to);
      const sameLength = from.byLength[name.length];
      if (sameLength === undefined) from.byLength[name.length] = [index];
      else sameLength.push(index);
    };
    for (const [path, { id }] of this.#ids) {
      const segments = path.split('.');
      // prefixes[i] is the state of the first i segments; prefixes[0] is the event itself.
      const prefixes: MutableState[] = [root];
      for (let i = 1; i <= segments.length; i++) prefixes.push(stateFor(segments.slice(0, i).join('.')));
      prefixes[segments.length]!.pathId = id;
      for (let i = 1; i <= segments.length; i++) {
        for (let j = 0; j < i; j++) link(prefixes[j]!, segments.slice(j, i).join('.'), prefixes[i]!);
      }
    }
    // Names that are probed one by one as property keys are interned; past that, an object is read by
    // its own keys and names are only looked up in `byName`, where interning them would cost for nothing.
    for (const state of [root, ...states.values()]) {
      if (state.names.length > probeNamesUpTo) continue;
      for (let i = 0; i < state.names.length; i++) state.names[i] = internalized(state.names[i]!);
    }
    return root;
  }
}

/** Where the values of one field sit in {@link EventValues}. */
export interface FieldSlot {
  /** Equals the event's generation when the field has values in this event. */
  stamp: number;
  /** Record numbers of the field's values: the first `count` entries (the rest is left from earlier events). */
  readonly records: number[];
  count: number;
}

/**
 * The values read from one event, reused from event to event: record `r` holds a value, the array
 * element it sits in (null outside arrays) and that element reduced to arrays of several fields
 * (`loose`). Records of a JSON key that a later duplicate key overrode are dead (see {@link isDead}).
 */
export class EventValues {
  generation = 0;
  count = 0;
  readonly values: JsonScalar[] = [];
  readonly contexts: Array<ArrayContext | null> = [];
  readonly loose: Array<ArrayContext | null> = [];
  /** Record `r` is dead when `deadAt[r]` is the generation: written only for overridden records. */
  readonly deadAt: number[] = [];
  readonly slots: FieldSlot[] = [];
  /** Fields with values in this event: the first `presentCount` entries. */
  readonly present: number[] = [];
  presentCount = 0;
  hasArrays = false;
  /**
   * Whether some record sits in an array of several fields (a non-null `loose` context); set by
   * {@link finish}. Without one, conjunctions over distinct fields match as if there were no arrays.
   */
  hasLooseArrays = false;

  /** Starts a new event over fields with ids below `capacity`. */
  begin(capacity: number): void {
    this.generation++;
    this.count = 0;
    this.presentCount = 0;
    this.hasArrays = false;
    this.hasLooseArrays = false;
    while (this.slots.length < capacity) this.slots.push({ stamp: 0, records: [], count: 0 });
  }

  record(pathId: number, value: JsonScalar, context: ArrayContext | null): void {
    const r = this.count++;
    this.values[r] = value;
    this.contexts[r] = context;
    const slot = this.slots[pathId]!;
    if (slot.stamp !== this.generation) {
      slot.stamp = this.generation;
      slot.count = 0;
      this.present[this.presentCount++] = pathId;
    }
    slot.records[slot.count++] = r;
    if (context !== null) {
      this.hasArrays = true;
      for (let c: ArrayContext | null = context; c !== null; c = c.parent) {
        const array = c.array;
        if (array.multi) break;
        if (array.pathId === -1) array.pathId = pathId;
        else if (array.pathId !== pathId) array.multi = true;
      }
    }
  }

  /** Marks records `from` to `to` (exclusive) as overridden. */
  kill(from: number, to: number): void {
    for (let r = from; r < to; r++) this.deadAt[r] = this.generation;
  }

  /** Whether record `r` came from a JSON key that a later duplicate overrode. */
  isDead(r: number): boolean {
    return this.deadAt[r] === this.generation;
  }

  /** Ends the event: works out each record's loose context (read them only when `hasArrays`). */
  finish(): void {
    if (!this.hasArrays) return;
    for (let r = 0; r < this.count; r++) {
      let c: ArrayContext | null = this.contexts[r] ?? null;
      // Arrays of several fields enclose one another outward, so the first one found starts the chain.
      while (c !== null && !c.array.multi) c = c.parent;
      this.loose[r] = c;
      if (c !== null) this.hasLooseArrays = true;
    }
  }

  /** The slot of `pathId` when the field has values in this event. */
  slot(pathId: number): FieldSlot | undefined {
    const slot = this.slots[pathId];
    return slot !== undefined && slot.stamp === this.generation ? slot : undefined;
  }
}

const isEnumerableOwn = Object.prototype.propertyIsEnumerable;

/**
 * Past this many names at one dot-prefix, an object is read by its own keys, each looked up among the
 * names, rather than by probing every name: an event holds a few keys where patterns may use thousands
 * of names side by side (a field per customer, say).
 */
export const probeNamesUpTo = 16;

/**
 * Reads the used fields of a parsed event (anything `JSON.parse` gives; other objects are read through
 * their own enumerable string keys, as `Object.entries` would). Anything but an object has no fields.
 */
export function readObject(event: unknown, root: PathState, values: EventValues): void {
  if (event !== null && typeof event === 'object' && !Array.isArray(event))
    visitValue(event, root, null, values);
  values.finish();
}

/**
 * Reads `value`, found at the dot-prefix `state`, and what it holds. The generic walk: the compiled
 * matcher reads objects through generated code (object-reader.ts) and hands arrays to this.
 */
export function visitValue(
  value: unknown,
  state: PathState,
  context: ArrayContext | null,
  values: EventValues,
): void {
  if (typeof value === 'object') {
    if (value === null) {
      if (state.pathId >= 0) values.record(state.pathId, null, context);
    } else if (Array.isArray(value)) {
      const array = new ArrayRecord();
      for (let i = 0; i < value.length; i++) {
        visitValue(value[i], state, new ArrayContext(array, i, context), values);
      }
    } else {
      const names = state.names;
      if (names.length === 0) return;
      // Class instances (Map, Date, ...) may answer names through their prototype: check ownership.
      const proto: unknown = Object.getPrototypeOf(value);
      const plain = proto === Object.prototype || proto === null;
      const object = value as Record<string, unknown>;
      if (names.length > probeNamesUpTo) {
        // Own enumerable keys are the only ones read, plain object or not.
        const keys = Object.keys(object);
        for (let i = 0; i < keys.length; i++) {
          const next = state.byName.get(keys[i]!);
          if (next === undefined) continue;
          const child = object[keys[i]!];
          if (child !== undefined) visitValue(child, next, context, values);
        }
        return;
      }
      for (let i = 0; i < names.length; i++) {
        const name = names[i]!;
        const child = object[name];
        if (child === undefined) continue;
        if ((!plain || state.inherited[i]) && !isEnumerableOwn.call(object, name)) continue;
        visitValue(child, state.children[i]!, context, values);
      }
    }
  } else if (state.pathId >= 0) {
    if (typeof value === 'string' || typeof value === 'boolean') {
      values.record(state.pathId, value, context);
    } else if (typeof value === 'number' && Number.isFinite(value)) {
      values.record(state.pathId, value, context);
    }
  }
}
