/**
 * Array-consistent matching of one conjunction (a list of fields that must all hold), decided over the
 * tree of the event's arrays rather than by trying combinations of values.
 *
 * The rule (aws/event-ruler's, and the reference matcher's): each field takes one of its values that
 * satisfies it, or — for a field that allows `exists: false` — takes none; every array that holds a taken
 * value is thereby committed to the element that value sits in, and two taken values must agree on every
 * array they share. A field that took no value holds only if each of its values sits in an element other
 * than the one its array is committed to.
 *
 * Trying values field by field costs n^(k-1) for k fields in k arrays of n elements. Here the event's
 * arrays are a tree, and the question is asked of each element once: "can the fields that have values
 * below this element all be settled inside it?". When a field's values below an element sit in one place
 * (directly in it, or inside one of its arrays) — always so, unless the event spells one field both with
 * dotted keys and with nested objects (`{"a.b": [..], "a": [{"b": ..}]}`) — there is nothing to choose,
 * and the work is linear in the values and elements. Otherwise the places are tried one by one under a
 * work budget, and the answer is "undecided" when the budget runs out.
 */

/** One element of one array of the event. */
export interface ArrayPlace {
  /** The array: the same object for every element of one array. */
  readonly array: object;
  readonly index: number;
  /** The element that holds the array; null when the array is outside any other. */
  readonly parent: ArrayPlace | null;
}

/** Where the values of one field of a conjunction sit, for {@link solveConjunction}. */
export interface FieldGoal {
  /** The elements holding the values that satisfy the field; null for a value outside any array. */
  readonly hits: readonly (ArrayPlace | null)[];
  /** Whether the field also holds by taking no value (an `exists: false` entry in its list). */
  readonly absentOk: boolean;
  /** Where every value of the field sits, satisfying or not; read only when `absentOk`. */
  readonly values: readonly (ArrayPlace | null)[];
}

/** Options of {@link solveConjunction}. */
export interface SolveOptions {
  /**
   * Work allowed for choices, beyond the linear part (four units per element and value, of which
   * deciding without choices takes at most two). One unit is one element tried or one choice made.
   * @default 10000
   */
  extraWork?: number;
  /** Called each time a field has several ways to be settled and they are tried (for measurements). */
  onChoice?: () => void;
}

/** What one field has at or below one element, as bits of `Node.flags`. */
const DirectHit = 1; // a satisfying value sits directly in the element (not inside one of its arrays)
const DirectValue = 2; // some value sits directly in the element
const HitBelow = 4; // some satisfying value sits at or below the element
const ValueBelow = 8; // some value sits at or below the element

class Node {
  /** Per field (by goal index): what it has here, as the bits above; 0 or absent for nothing. */
  readonly flags: number[] = [];
  /** Per field: the arrays of this element that hold a satisfying value (few: a list). */
  hitArrays: Array<object[] | undefined> | null = null;
  /** Per field: the arrays of this element that hold a value. */
  valueArrays: Array<object[] | undefined> | null = null;
  /** The arrays directly inside this element, each with the elements that hold some value. */
  arrays: Map<object, Node[]> | null = null;
  constructor(readonly id: number) {}

  has(goal: number, bits: number): boolean {
    return ((this.flags[goal] ?? 0) & bits) !== 0;
  }
}

/** Fields handed to one element or one array: to take a value in it (P), to have none in it (T), either (M). */
interface Duties {
  readonly p: number[];
  readonly t: number[];
  readonly m: number[];
}

const noGoals: number[] = [];
const noArrays: object[] = [];

const exhausted = Symbol('work budget exhausted');

class Solver {
  readonly #root = new Node(0);
  readonly #nodes = new Map<ArrayPlace, Node>();
  #marks = 0;
  #remaining = Number.POSITIVE_INFINITY;
  readonly #onChoice: (() => void) | undefined;
  /** Answers for (element, duties), kept once a choice has been met: only then is an element asked twice. */
  #memo: Map<string, boolean> | null = null;

  constructor(onChoice: (() => void) | undefined) {
    this.#onChoice = onChoice;
  }

  #spend(): void {
    if (--this.#remaining < 0) throw exhausted;
  }

  #node(place: ArrayPlace | null): Node {
    if (place === null) return this.#root;
    let node = this.#nodes.get(place);
    if (node === undefined) {
      node = new Node(this.#nodes.size + 1);
      this.#nodes.set(place, node);
      const parent = this.#node(place.parent);
      parent.arrays ??= new Map();
      const elements = parent.arrays.get(place.array);
      if (elements === undefined) parent.arrays.set(place.array, [node]);
      else elements.push(node);
    }
    return node;
  }

  /** Records that field `goal` has a (satisfying, when `hit`) value at `place`. */
  mark(goal: number, place: ArrayPlace | null, hit: boolean): void {
    this.#marks++;
    const here = this.#node(place);
    here.flags[goal] = (here.flags[goal] ?? 0) | (hit ? DirectHit | HitBelow : DirectValue | ValueBelow);
    const below = hit ? HitBelow : ValueBelow;
    for (let child = place; child !== null; child = child.parent) {
      const above = this.#node(child.parent);
      let lists: Array<object[] | undefined>;
      if (hit) lists = above.hitArrays ??= [];
      else lists = above.valueArrays ??= [];
      let arrays = lists[goal];
      if (arrays === undefined) {
        arrays = [];
        lists[goal] = arrays;
      }
      // A value marked before went up the same way: everything above is marked already.
      if (above.has(goal, below) && arrays.includes(child.array)) break;
      above.flags[goal] = (above.flags[goal] ?? 0) | below;
      arrays.push(child.array);
    }
  }

  /** Whether all `duties` can be settled in the event, doing at most `extraWork` units for choices. */
  solve(duties: Duties, extraWork: number): boolean {
    this.#remaining = 4 * (this.#marks + this.#nodes.size + 1) + extraWork;
    return this.#element(this.#root, duties);
  }

  /** Whether every field in `duties` can be settled inside `node`, which its array is committed to. */
  #element(node: Node, duties: Duties): boolean {
    this.#spend();
    const key = (): string =>
      `${node.id}|${[...duties.p].sort()}|${[...duties.t].sort()}|${[...duties.m].sort()}`;
    if (this.#memo !== null) {
      const known = this.#memo.get(key());
      if (known !== undefined) return known;
    }
    const result = this.#settle(node, duties);
    if (this.#memo !== null) this.#memo.set(key(), result);
    return result;
  }

  #settle(node: Node, duties: Duties): boolean {
    let below: Map<object, Duties> | null = null;
    const into = (array: object): Duties => {
      below ??= new Map();
      let d = below.get(array);
      if (d === undefined) {
        d = { p: [], t: [], m: [] };
        below.set(array, d);
      }
      return d;
    };
    /** Each field with several ways to be settled: take a value directly here, in one array, or none. */
    const choices: Array<{ goal: number; options: Array<object | 'direct' | 'absent'> }> = [];
    // Taking a value directly in this element commits nothing new, so it is the best choice for a field,
    // unless some field here must be absent: then committing an array may be what excludes its values.
    const absenceHere = duties.t.length > 0 || duties.m.length > 0;

    for (const goal of duties.t) {
      // A value directly in the element shares every array the element is in: it cannot be excluded.
      if (node.has(goal, DirectValue)) return false;
      for (const array of node.valueArrays?.[goal] ?? noArrays) into(array).t.push(goal);
    }
    for (const goal of duties.p) {
      if (!node.has(goal, HitBelow)) return false;
      const hitArrays = node.hitArrays?.[goal] ?? noArrays;
      const direct = node.has(goal, DirectHit);
      if (direct && (!absenceHere || hitArrays.length === 0)) continue;
      const options: Array<object | 'direct'> = direct ? ['direct'] : [];
      for (const array of hitArrays) options.push(array);
      if (options.length === 1) into(options[0] as object).p.push(goal);
      else choices.push({ goal, options });
    }
    for (const goal of duties.m) {
      // No value at or below: the field is absent here, which it may be.
      if (!node.has(goal, ValueBelow)) continue;
      const hitArrays = node.hitArrays?.[goal] ?? noArrays;
      if (node.has(goal, DirectValue)) {
        // Present here, so it must take a value.
        const direct = node.has(goal, DirectHit);
        if (direct && (!absenceHere || hitArrays.length === 0)) continue;
        const options: Array<object | 'direct'> = direct ? ['direct'] : [];
        for (const array of hitArrays) options.push(array);
        if (options.length === 0) return false;
        if (options.length === 1) into(options[0] as object).p.push(goal);
        else choices.push({ goal, options });
        continue;
      }
      const arrays = node.valueArrays?.[goal] ?? noArrays;
      if (arrays.length === 1) {
        // All its values are in one array: whether it takes one is decided in the element chosen there.
        into(arrays[0]!).m.push(goal);
        continue;
      }
      const options: Array<object | 'absent'> = ['absent'];
      for (const array of hitArrays) options.push(array);
      choices.push({ goal, options });
    }

    if (choices.length === 0) return below === null || this.#arrays(node, below);
    this.#onChoice?.();
    this.#memo ??= new Map();
    const choose = (i: number): boolean => {
      if (i === choices.length) return below === null || this.#arrays(node, below);
      const { goal, options } = choices[i]!;
      for (const option of options) {
        this.#spend();
        const touched: number[][] = [];
        if (option === 'absent') {
          for (const array of node.valueArrays?.[goal] ?? noArrays) touched.push(into(array).t);
        } else if (option !== 'direct') {
          touched.push(into(option).p);
        }
        for (const list of touched) list.push(goal);
        if (choose(i + 1)) return true;
        for (const list of touched) list.pop();
      }
      return false;
    };
    return choose(0);
  }

  /** Whether each array with duties has an element in which they can all be settled. */
  #arrays(node: Node, below: ReadonlyMap<object, Duties>): boolean {
    for (const [array, duties] of below) {
      const { p, t, m } = duties;
      // Only a taken value commits an array; without one, a value in it cannot be excluded.
      if (p.length === 0 && m.length === 0) {
        if (t.length > 0) return false;
        continue;
      }
      let found = false;
      for (const element of node.arrays?.get(array) ?? []) {
        this.#spend();
        if (!p.every((goal) => element.has(goal, HitBelow))) continue;
        const mHere = m.length === 0 ? noGoals : m.filter((goal) => element.has(goal, ValueBelow));
        // Nothing to take here: the array would not be committed to this element.
        if (p.length === 0 && mHere.length === 0) continue;
        const tHere = t.length === 0 ? noGoals : t.filter((goal) => element.has(goal, ValueBelow));
        if (this.#element(element, { p, t: tHere, m: mHere })) {
          found = true;
          break;
        }
      }
      if (!found) return false;
    }
    return true;
  }
}

/**
 * Whether the fields `goals` can all hold together, array-consistently (see the top of this file);
 * `undefined` when deciding needed more than `options.extraWork` for choices (possible only when one
 * field's values sit both directly in an element and inside its arrays, or in several of its arrays).
 *
 * @example
 * // {"d": [{"a": 1}, {"b": 2}]} against {"d": {"a": [1], "b": [2]}}: a and b are in different elements.
 * const d = {};
 * const a = { hits: [{ array: d, index: 0, parent: null }], absentOk: false, values: [] };
 * const b = { hits: [{ array: d, index: 1, parent: null }], absentOk: false, values: [] };
 * solveConjunction([a, b]); // false
 */
export function solveConjunction(
  goals: readonly FieldGoal[],
  options: SolveOptions = {},
): boolean | undefined {
  const solver = new Solver(options.onChoice);
  const duties: Duties = { p: [], t: [], m: [] };
  try {
    for (let g = 0; g < goals.length; g++) {
      const goal = goals[g]!;
      if (!goal.absentOk) {
        if (goal.hits.length === 0) return false;
        for (const place of goal.hits) solver.mark(g, place, true);
        duties.p.push(g);
        continue;
      }
      // A field that may be absent needs to know where all its values are; a satisfying one is one too.
      if (goal.values.length === 0 && goal.hits.length === 0) continue;
      for (const place of goal.values) solver.mark(g, place, false);
      for (const place of goal.hits) {
        solver.mark(g, place, false);
        solver.mark(g, place, true);
      }
      if (goal.hits.length === 0) duties.t.push(g);
      else duties.m.push(g);
    }
    return solver.solve(duties, options.extraWork ?? 10_000);
  } catch (error) {
    if (error === exhausted) return undefined;
    throw error;
  }
}
