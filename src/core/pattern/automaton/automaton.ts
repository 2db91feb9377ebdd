import { type ArrayPlace, type FieldGoal, solveConjunction } from '../array-consistency.js';
import type { JsonScalar, Pattern } from '../pattern.js';
import { type Conjunction, expandPattern, type Step } from './conjunctions.js';
import type { EventValues, FieldPaths } from './event-values.js';
import { ValueIndex } from './value-index.js';

/**
 * The automaton behind the compiled matcher: a trie of states over the steps of all conjunctions of all
 * patterns. A state is "these steps hold"; from it, per field, one {@link ValueIndex} leads on to the
 * states of every step on that field that the stored conjunctions take next, and absence (`exists:
 * false`) leads on to some. Conjunctions that begin with the same steps share states, so an event visits
 * the states its values lead to, however many patterns there are.
 *
 * Arrays of objects: values must sit in the same array elements to count together (aws/event-ruler's
 * array consistency, as in the reference matcher). When the event has such arrays, the automaton is
 * walked as if they did not matter — each state at most once, every value and every possible absence
 * followed — while each state reached keeps the values that led to it; a conjunction that ends on a
 * state reached through values in arrays is then decided by {@link solveConjunction}, in time linear in
 * those values. (Carrying the chosen elements along the walk instead costs n^k for k arrays of n
 * elements: seconds for an event of a few kilobytes.)
 */

/** Outgoing edges of a state for one field: the index of their values, and absence. */
class EdgeGroup extends ValueIndex<State> {
  /** Children reached by absence of the field. */
  absent: State[] | null = null;
  /** Children by step key. */
  readonly children = new Map<string, State>();
  constructor(
    readonly pathId: number,
    readonly path: string,
  ) {
    super();
  }
}

class State {
  /** Equals the event generation once visited. */
  stamp = 0;
  /** Equals the event generation once reached by a walk over arrays, when `hits` holds this event's. */
  hitStamp = 0;
  /** The records whose values led to this state (a walk over arrays only). */
  hits: number[] | null = null;
  /** Conjunctions that pass through or end here. */
  refs = 0;
  /** Ids of the rules with a conjunction that ends here. */
  ends: number[] | null = null;
  groups: EdgeGroup[] | null = null;
  /** The group when there is exactly one (most states): saves two hops through the array. */
  only: EdgeGroup | null = null;
  /** Groups with absence edges, visited even when the event lacks the field. */
  absentGroups: EdgeGroup[] | null = null;
  /** Groups by field id, once there are many. */
  groupMap: Map<number, EdgeGroup> | null = null;
  constructor(
    readonly id: number,
    readonly parent: State | null,
    readonly group: EdgeGroup | null,
    readonly step: Step | null,
  ) {}
}

/** Past this many fields, a state's groups are found by field id rather than scanned. */
const mapGroupsAbove = 8;

interface RuleRecord {
  /** The last state of each conjunction. */
  readonly terminals: State[];
}

/** Sorts ids in place: by insertion when few (the usual case, far cheaper than `sort` with a callback). */
function sortAscending(ids: number[]): void {
  const n = ids.length;
  if (n > 32) {
    ids.sort((a, b) => a - b);
    return;
  }
  for (let i = 1; i < n; i++) {
    const id = ids[i]!;
    let j = i - 1;
    while (j >= 0 && ids[j]! > id) {
      ids[j + 1] = ids[j]!;
      j--;
    }
    ids[j + 1] = id;
  }
}

/** Drops repeated ids from an ascending list, in place. */
function withoutRepeats(ids: number[]): number[] {
  let kept = 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (kept === 0 || ids[kept - 1] !== id) ids[kept++] = id;
  }
  if (kept < ids.length) ids.length = kept;
  return ids;
}

/** Compiles patterns into states and matches events against them. */
export class Automaton {
  /** Conjunctions whose fields are all distinct: arrays of a single field are ignored. */
  readonly #loose: State;
  /** Conjunctions that test a field twice: every array position counts. */
  readonly #strict: State;
  readonly #rules = new Map<number, RuleRecord>();
  readonly #paths: FieldPaths;
  #nextState = 2;
  #states = 2;
  // Per-event scratch, reused.
  #values: EventValues | undefined;
  #out: number[] = [];
  /** Children found by value lookups; each lookup writes above the ones still being visited. */
  #buffer: State[] = [];
  #top = 0;

  constructor(paths: FieldPaths) {
    this.#paths = paths;
    this.#loose = new State(0, null, null, null);
    this.#strict = new State(1, null, null, null);
  }

  /** How many rules are stored. */
  get size(): number {
    return this.#rules.size;
  }

  /** How many states the automaton has (the two roots included). */
  get stateCount(): number {
    return this.#states;
  }

  /** Stores `pattern` under `id`, replacing the pattern stored there. Throws before changing anything. */
  add(id: number, pattern: Pattern): void {
    const conjunctions = expandPattern(pattern);
    this.remove(id);
    const terminals: State[] = [];
    for (const conjunction of conjunctions) terminals.push(this.#addConjunction(conjunction, id));
    this.#rules.set(id, { terminals });
  }

  /** Removes the pattern under `id`, and the states no other pattern uses. */
  remove(id: number): void {
    const rule = this.#rules.get(id);
    if (rule === undefined) return;
    this.#rules.delete(id);
    for (const terminal of rule.terminals) {
      const ends = terminal.ends!;
      ends.splice(ends.indexOf(id), 1);
      if (ends.length === 0) terminal.ends = null;
      for (let state: State = terminal; state.parent !== null; state = state.parent) {
        if (--state.refs === 0) this.#detach(state);
      }
    }
  }

  #addConjunction(conjunction: Conjunction, id: number): State {
    let state = conjunction.strict ? this.#strict : this.#loose;
    for (const step of conjunction.steps) {
      state = this.#child(state, step);
      state.refs++;
    }
    state.ends ??= [];
    state.ends.push(id);
    return state;
  }

  #child(state: State, step: Step): State {
    let group = this.#group(state, step.path);
    if (group === undefined) {
      group = new EdgeGroup(this.#paths.acquire(step.path), step.path);
      state.groups ??= [];
      state.groups.push(group);
      state.only = state.groups.length === 1 ? group : null;
      if (state.groupMap !== null) state.groupMap.set(group.pathId, group);
      else if (state.groups.length > mapGroupsAbove) {
        state.groupMap = new Map(state.groups.map((g) => [g.pathId, g]));
      }
    }
    const known = group.children.get(step.key);
    if (known !== undefined) return known;
    const child = new State(this.#nextState++, state, group, step);
    this.#states++;
    group.children.set(step.key, child);
    for (const matcher of step.matchers) {
      if (matcher.type === 'exists' && !matcher.value) continue;
      group.add(matcher, child);
    }
    if (step.absent) {
      if (group.absent === null) {
        group.absent = [];
        state.absentGroups ??= [];
        state.absentGroups.push(group);
      }
      group.absent.push(child);
    }
    return child;
  }

  #group(state: State, path: string): EdgeGroup | undefined {
    const groups = state.groups;
    if (groups === null) return undefined;
    for (const group of groups) if (group.path === path) return group;
    return undefined;
  }

  #detach(state: State): void {
    const group = state.group!;
    const parent = state.parent!;
    const step = state.step!;
    this.#states--;
    group.children.delete(step.key);
    for (const matcher of step.matchers) {
      if (matcher.type === 'exists' && !matcher.value) continue;
      group.remove(matcher, state);
    }
    if (group.absent !== null) {
      const at = group.absent.indexOf(state);
      if (at >= 0) group.absent.splice(at, 1);
      if (group.absent.length === 0) {
        group.absent = null;
        const groups = parent.absentGroups!;
        groups.splice(groups.indexOf(group), 1);
        if (groups.length === 0) parent.absentGroups = null;
      }
    }
    if (group.children.size > 0) return;
    const groups = parent.groups!;
    groups.splice(groups.indexOf(group), 1);
    parent.groupMap?.delete(group.pathId);
    parent.only = groups.length === 1 ? groups[0]! : null;
    if (groups.length === 0) {
      parent.groups = null;
      parent.groupMap = null;
    }
    this.#paths.release(group.path);
  }

  /** The ids of the rules whose patterns the event read into `values` matches, ascending. */
  match(values: EventValues): number[] {
    this.#values = values;
    const out: number[] = [];
    this.#out = out;
    // Without arrays there are no memberships to carry and no absence to defer: the common case. Loose
    // conjunctions ignore arrays of a single field, so for them only arrays of several fields count.
    if (values.hasLooseArrays) this.#visitArrays(this.#loose, false);
    else this.#visitPlain(this.#loose);
    if (values.hasArrays) this.#visitArrays(this.#strict, true);
    else this.#visitPlain(this.#strict);
    this.#values = undefined;
    sortAscending(out);
    return withoutRepeats(out);
  }

  /**
   * Visits `state` in an event with arrays (of several fields, or any array for `strict` conjunctions),
   * ignoring for now which elements values sit in: each state once. A conjunction ending here counts
   * when its fields can be taken from consistent elements (see {@link #holds}).
   */
  #visitArrays(state: State, strict: boolean): void {
    const values = this.#values!;
    if (state.stamp === values.generation) return;
    state.stamp = values.generation;
    const ends = state.ends;
    if (ends !== null && this.#holds(state, strict)) {
      // A rule can end here and elsewhere: `match` drops the repeats.
      for (let i = 0; i < ends.length; i++) this.#out.push(ends[i]!);
    }
    if (state.only !== null) {
      this.#followArrays(state.only, strict);
      return;
    }
    if (state.groups === null) return;
    const groups = this.#groupsToFollow(state);
    for (let i = 0; i < groups.length; i++) this.#followArrays(groups[i]!, strict);
  }

  /**
   * The groups of `state` (which has some) that the event may lead on through: all of them, or, where
   * many fields lead on, only those of the event's fields and those with absence edges, looked up
   * rather than scanned.
   */
  #groupsToFollow(state: State): readonly EdgeGroup[] {
    const groups = state.groups!;
    const values = this.#values!;
    const byField = state.groupMap;
    if (byField === null || values.presentCount >= groups.length) return groups;
    const chosen: EdgeGroup[] = [];
    for (let i = 0; i < values.presentCount; i++) {
      const group = byField.get(values.present[i]!);
      if (group !== undefined) chosen.push(group);
    }
    const absentGroups = state.absentGroups;
    if (absentGroups !== null) {
      for (const group of absentGroups) if (values.slot(group.pathId) === undefined) chosen.push(group);
    }
    return chosen;
  }

  /** {@link #visit} for an event without arrays: each state is visited at most once. */
  #visitPlain(state: State): void {
    const values = this.#values!;
    const generation = values.generation;
    if (state.stamp === generation) return;
    state.stamp = generation;
    const ends = state.ends;
    if (ends !== null) for (let i = 0; i < ends.length; i++) this.#out.push(ends[i]!);
    if (state.only !== null) {
      this.#followPlain(state.only);
      return;
    }
    if (state.groups === null) return;
    const groups = this.#groupsToFollow(state);
    for (let i = 0; i < groups.length; i++) this.#followPlain(groups[i]!);
  }

  /** {@link #follow} for an event without arrays. */
  #followPlain(group: EdgeGroup): void {
    const values = this.#values!;
    const slot = values.slot(group.pathId);
    let live = 0;
    if (slot !== undefined) {
      const records = slot.records;
      const buffer = this.#buffer;
      for (let k = 0; k < slot.count; k++) {
        const r = records[k]!;
        if (values.isDead(r)) continue;
        live++;
        const start = this.#top;
        const end = group.collect(values.values[r] as JsonScalar, buffer, start);
        if (start === end) continue;
        this.#top = end;
        for (let i = start; i < end; i++) this.#visitPlain(buffer[i]!);
        this.#top = start;
      }
    }
    // Outside arrays a field is absent exactly when it has no live value.
    const absent = group.absent;
    if (live === 0 && absent !== null) for (let i = 0; i < absent.length; i++) this.#visitPlain(absent[i]!);
  }

  /**
   * {@link #followPlain} for an event with arrays: every child that some value leads to, recording which
   * values, and the children of absence wherever the field may be absent (it has no value, or each of
   * its values sits in an array element that another field may rule out).
   */
  #followArrays(group: EdgeGroup, strict: boolean): void {
    const values = this.#values!;
    const generation = values.generation;
    const contexts = strict ? values.contexts : values.loose;
    const buffer = this.#buffer;
    const start = this.#top;
    // Children reached, each once: buffer[start..kept).
    let kept = start;
    let live = 0;
    let outsideArrays = false;
    const slot = values.slot(group.pathId);
    if (slot !== undefined) {
      const records = slot.records;
      for (let k = 0; k < slot.count; k++) {
        const r = records[k]!;
        if (values.isDead(r)) continue;
        live++;
        if ((contexts[r] ?? null) === null) outsideArrays = true;
        const end = group.collect(values.values[r] as JsonScalar, buffer, kept);
        for (let i = kept; i < end; i++) {
          const child = buffer[i]!;
          if (child.hitStamp !== generation) {
            child.hitStamp = generation;
            if (child.hits === null) child.hits = [];
            else child.hits.length = 0;
            buffer[kept++] = child;
          }
          child.hits!.push(r);
        }
      }
    }
    const absent = group.absent;
    if (absent !== null && (live === 0 || !outsideArrays)) {
      for (let i = 0; i < absent.length; i++) {
        const child = absent[i]!;
        if (child.hitStamp === generation) continue;
        child.hitStamp = generation;
        if (child.hits === null) child.hits = [];
        else child.hits.length = 0;
        buffer[kept++] = child;
      }
    }
    this.#top = kept;
    for (let i = start; i < kept; i++) this.#visitArrays(buffer[i]!, strict);
    this.#top = start;
  }

  /**
   * Whether the conjunction that ends at `terminal` (reached by {@link #visitArrays}) holds with its
   * values taken from consistent array elements. A conjunction too costly to decide (possible only when
   * the event spells one field both with dotted keys and nested objects) does not match.
   */
  #holds(terminal: State, strict: boolean): boolean {
    const values = this.#values!;
    const contexts = strict ? values.contexts : values.loose;
    const goals: FieldGoal[] = [];
    let inArrays = false;
    for (let state = terminal; state.parent !== null; state = state.parent) {
      const step = state.step!;
      const hits: (ArrayPlace | null)[] = [];
      for (const r of state.hits!) {
        const place = contexts[r] ?? null;
        if (place !== null) inArrays = true;
        hits.push(place);
      }
      const all: (ArrayPlace | null)[] = [];
      if (step.absent) {
        const slot = values.slot(state.group!.pathId);
        if (slot !== undefined) {
          for (let k = 0; k < slot.count; k++) {
            const r = slot.records[k]!;
            if (values.isDead(r)) continue;
            const place = contexts[r] ?? null;
            if (place !== null) inArrays = true;
            all.push(place);
          }
        }
      }
      goals.push({ hits, absentOk: step.absent, values: all });
    }
    // Reached without a value in an array: every step took a value outside arrays, or had none.
    if (!inArrays) return true;
    return solveConjunction(goals) === true;
  }
}
