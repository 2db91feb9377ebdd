/**
 * A compressed (radix) trie of strings that finds, for a text, every stored key the text starts with
 * (`forward`) or ends with (`backward`). Shared by all `prefix` and `suffix` matchers of one field, and
 * by `cidr` blocks written as bit strings: the cost of a lookup depends on the text, not on how many keys
 * are stored.
 *
 * Keys and texts are compared by UTF-16 code unit, as `String.prototype.startsWith`/`endsWith` do.
 */

/** Which end of the text keys are anchored at. */
export type TrieDirection = 'forward' | 'backward';

/** A set of string keys, each with the payloads stored under it. */
export interface StringTrie<T> {
  /** Stores `payload` under `key` (a payload may be stored twice; it is then found twice). */
  add(key: string, payload: T): void;
  /** Removes one `payload` stored under `key`; returns whether there was one. */
  remove(key: string, payload: T): boolean;
  /**
   * Writes the payloads of every key that `text` starts with (forward) or ends with (backward) into
   * `out` from index `at` on; returns the index after the last one written.
   */
  collect(text: string, out: T[], at: number): number;
  /** How many (key, payload) pairs are stored. */
  readonly size: number;
}

interface TrieNode<T> {
  /** The code units on the edge into this node, in reading order (reversed for `backward`). */
  label: string;
  children: Map<number, TrieNode<T>> | null;
  payloads: T[] | null;
}

function reverse(text: string): string {
  let out = '';
  for (let i = text.length - 1; i >= 0; i--) out += text[i];
  return out;
}

function commonLength(a: string, aFrom: number, b: string): number {
  const max = Math.min(a.length - aFrom, b.length);
  let n = 0;
  while (n < max && a.charCodeAt(aFrom + n) === b.charCodeAt(n)) n++;
  return n;
}

/**
 * The trie as a class, so its methods sit on one prototype and each trie is one small object (the
 * automaton keeps one per field and state that has prefixes).
 */
class RadixTrie<T> implements StringTrie<T> {
  readonly #root: TrieNode<T> = { label: '', children: null, payloads: null };
  readonly #backward: boolean;
  #size = 0;

  constructor(direction: TrieDirection) {
    this.#backward = direction === 'backward';
  }

  // Keys are stored in reading order, so one insertion/removal routine serves both directions.
  #readingOrder(key: string): string {
    return this.#backward ? reverse(key) : key;
  }

  add(key: string, payload: T): void {
    const k = this.#readingOrder(key);
    let node = this.#root;
    let pos = 0;
    while (pos < k.length) {
      const c = k.charCodeAt(pos);
      const child = node.children?.get(c);
      if (child === undefined) {
        const leaf: TrieNode<T> = { label: k.slice(pos), children: null, payloads: [payload] };
        node.children ??= new Map();
        node.children.set(c, leaf);
        this.#size++;
        return;
      }
      const common = commonLength(k, pos, child.label);
      if (common < child.label.length) {
        // Split the edge: a new middle node takes the common part.
        const middle: TrieNode<T> = {
          label: child.label.slice(0, common),
          children: new Map([[child.label.charCodeAt(common), child]]),
          payloads: null,
        };
        child.label = child.label.slice(common);
        node.children!.set(c, middle);
        node = middle;
      } else {
        node = child;
      }
      pos += common;
    }
    node.payloads ??= [];
    node.payloads.push(payload);
    this.#size++;
  }

  remove(key: string, payload: T): boolean {
    const k = this.#readingOrder(key);
    const path: TrieNode<T>[] = [this.#root];
    let node = this.#root;
    let pos = 0;
    while (pos < k.length) {
      const child = node.children?.get(k.charCodeAt(pos));
      if (child === undefined || !k.startsWith(child.label, pos)) return false;
      pos += child.label.length;
      node = child;
      path.push(node);
    }
    const at = node.payloads?.indexOf(payload) ?? -1;
    if (at < 0) return false;
    node.payloads!.splice(at, 1);
    if (node.payloads!.length === 0) node.payloads = null;
    this.#size--;
    // Prune: drop empty leaves, and merge a payload-less node with its only child.
    for (let i = path.length - 1; i > 0; i--) {
      const current = path[i]!;
      const parent = path[i - 1]!;
      const first = current.label.charCodeAt(0);
      if (current.payloads !== null) break;
      if (current.children === null || current.children.size === 0) {
        parent.children!.delete(first);
        if (parent.children!.size === 0) parent.children = null;
        continue;
      }
      if (current.children.size === 1) {
        const only = current.children.values().next().value!;
        only.label = current.label + only.label;
        parent.children!.set(first, only);
      }
      break;
    }
    return true;
  }

  collect(text: string, out: T[], at: number): number {
    const backward = this.#backward;
    let node = this.#root;
    let payloads = node.payloads;
    if (payloads !== null) for (let i = 0; i < payloads.length; i++) out[at++] = payloads[i]!;
    const length = text.length;
    let pos = 0;
    while (pos < length && node.children !== null) {
      const child = node.children.get(text.charCodeAt(backward ? length - 1 - pos : pos));
      if (child === undefined) return at;
      const label = child.label;
      const n = label.length;
      if (pos + n > length) return at;
      // The first code unit already matched through the map.
      if (backward) {
        for (let i = 1; i < n; i++) {
          if (text.charCodeAt(length - 1 - pos - i) !== label.charCodeAt(i)) return at;
        }
      } else if (n > 1 && !text.startsWith(label, pos)) {
        return at;
      }
      pos += n;
      node = child;
      payloads = node.payloads;
      if (payloads !== null) for (let i = 0; i < payloads.length; i++) out[at++] = payloads[i]!;
    }
    return at;
  }

  get size(): number {
    return this.#size;
  }
}

/**
 * Creates an empty trie.
 *
 * @example
 * const trie = createStringTrie<string>('forward');
 * trie.add('us-', 'A');
 * trie.add('us-east-', 'B');
 * const out: string[] = [];
 * trie.collect('us-east-1', out, 0); // 2; out: ['A', 'B']
 */
export function createStringTrie<T>(direction: TrieDirection): StringTrie<T> {
  return new RadixTrie<T>(direction);
}
