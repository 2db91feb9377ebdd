import type { Wildcard } from '../wildcard.js';

/**
 * All `wildcard` operands of one field in one automaton. The wildcards form one NFA over UTF-16 code
 * units (a position per literal code unit, a star loops on anything); it is turned into a DFA lazily,
 * one state at a time as texts need them, so each lookup reads every code unit of the text once, whatever
 * the number of wildcards. The DFA cache is bounded: past {@link maxDfaStates} states it is dropped and
 * grown again from the texts that follow.
 */
export interface WildcardAutomaton<T> {
  /** Stores `payload` for the texts that match `wildcard`. */
  add(wildcard: Wildcard, payload: T): void;
  /** Removes one `payload` stored for a wildcard with this source; returns whether there was one. */
  remove(wildcard: Wildcard, payload: T): boolean;
  /**
   * Writes the payload of every wildcard that matches the whole of `text` into `out` from `at` on;
   * returns the next index.
   */
  collect(text: string, out: T[], at: number): number;
  readonly size: number;
}

/** DFA states kept before the cache is dropped. */
export const maxDfaStates = 2048;

const star = -1;

interface Entry<T> {
  readonly source: string;
  /** Code units, with -1 for a star. */
  readonly tokens: Int32Array;
  readonly payload: T;
}

interface DfaState<T> {
  /** The NFA states in this DFA state: wildcard (index into the entries) and position in its tokens. */
  readonly entries: Int32Array;
  readonly positions: Int32Array;
  /** Payloads of the wildcards this state completes. */
  readonly accept: T[];
  readonly next: Map<number, DfaState<T>>;
}

function tokenize(wildcard: Wildcard): Int32Array {
  const tokens: number[] = [];
  wildcard.parts.forEach((part, i) => {
    if (i > 0) tokens.push(star);
    for (let j = 0; j < part.length; j++) tokens.push(part.charCodeAt(j));
  });
  return Int32Array.from(tokens);
}

/** The automaton as a class: one object per field and state that has wildcards, methods shared. */
class LazyWildcardDfa<T> implements WildcardAutomaton<T> {
  readonly #entries: Entry<T>[] = [];
  #start: DfaState<T> | undefined;
  #states = new Map<string, DfaState<T>>();

  /** Adds position `pos` of entry `e` and the positions a star lets it skip to. */
  #close(e: number, pos: number, into: Map<string, [number, number]>): void {
    const tokens = this.#entries[e]!.tokens;
    let p = pos;
    for (;;) {
      into.set(`${e}:${p}`, [e, p]);
      if (p < tokens.length && tokens[p] === star) p++;
      else return;
    }
  }

  #stateOf(set: Map<string, [number, number]>): DfaState<T> {
    const entries = this.#entries;
    const pairs = [...set.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const key = pairs.map(([e, p]) => `${e}:${p}`).join(',');
    const known = this.#states.get(key);
    if (known !== undefined) return known;
    const accept: T[] = [];
    for (const [e, p] of pairs) if (p === entries[e]!.tokens.length) accept.push(entries[e]!.payload);
    const state: DfaState<T> = {
      entries: Int32Array.from(pairs, (pair) => pair[0]),
      positions: Int32Array.from(pairs, (pair) => pair[1]),
      accept,
      next: new Map(),
    };
    if (this.#states.size >= maxDfaStates) {
      // Forget the whole graph (it is reachable from the start); the lookup in progress finishes on its own.
      this.#states = new Map();
      this.#start = undefined;
    }
    this.#states.set(key, state);
    return state;
  }

  #startState(): DfaState<T> {
    if (this.#start === undefined) {
      this.#states = new Map();
      const set = new Map<string, [number, number]>();
      for (let e = 0; e < this.#entries.length; e++) this.#close(e, 0, set);
      this.#start = this.#stateOf(set);
    }
    return this.#start;
  }

  #step(state: DfaState<T>, c: number): DfaState<T> {
    const set = new Map<string, [number, number]>();
    for (let i = 0; i < state.entries.length; i++) {
      const e = state.entries[i]!;
      const p = state.positions[i]!;
      const tokens = this.#entries[e]!.tokens;
      if (p >= tokens.length) continue;
      const token = tokens[p]!;
      if (token === star) this.#close(e, p, set);
      else if (token === c) this.#close(e, p + 1, set);
    }
    const next = this.#stateOf(set);
    state.next.set(c, next);
    return next;
  }

  add(wildcard: Wildcard, payload: T): void {
    this.#entries.push({ source: wildcard.source, tokens: tokenize(wildcard), payload });
    this.#start = undefined;
  }

  remove(wildcard: Wildcard, payload: T): boolean {
    const at = this.#entries.findIndex((e) => e.payload === payload && e.source === wildcard.source);
    if (at < 0) return false;
    this.#entries.splice(at, 1);
    this.#start = undefined;
    return true;
  }

  collect(text: string, out: T[], at: number): number {
    if (this.#entries.length === 0) return at;
    let state = this.#startState();
    for (let i = 0; i < text.length; i++) {
      if (state.entries.length === 0) return at;
      const c = text.charCodeAt(i);
      state = state.next.get(c) ?? this.#step(state, c);
    }
    const accept = state.accept;
    for (let i = 0; i < accept.length; i++) out[at++] = accept[i]!;
    return at;
  }

  get size(): number {
    return this.#entries.length;
  }
}

/**
 * Creates an empty automaton.
 *
 * @example
 * const wildcards = createWildcardAutomaton<string>();
 * wildcards.add(parseWildcard('arn:*:bus/*') as Wildcard, 'A');
 * const out: string[] = [];
 * wildcards.collect('arn:aws:bus/main', out, 0); // 1; out: ['A']
 */
export function createWildcardAutomaton<T>(): WildcardAutomaton<T> {
  return new LazyWildcardDfa<T>();
}
