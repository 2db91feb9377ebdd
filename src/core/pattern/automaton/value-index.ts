import { type Cidr, parseIpAddress } from '../ip-address.js';
import type { JsonScalar, NumericBound, ValueMatcher } from '../pattern.js';
import { createNumericRanges, type NumericRanges } from './numeric-ranges.js';
import { createStringTrie, type StringTrie } from './string-trie.js';
import { createWildcardAutomaton, type WildcardAutomaton } from './wildcard-automaton.js';

/**
 * Every value matcher of one field at one point of the automaton, in structures shared by all of them:
 * hash maps for exact values and `equals-ignore-case`, tries for prefixes and suffixes, a lazy DFA for
 * wildcards, a segment tree for numeric ranges and for IPv4 CIDR blocks (as ranges of addresses; IPv6
 * blocks are prefixes of the address bits, in a trie),
 * and the `anything-but` family as a complement (every negation, minus those whose excluded values the
 * value hits, found through an inner index of the same kind).
 *
 * `{"exists": false}` matches no value (absence is decided by the automaton, which sees the whole event),
 * so it is not stored here.
 */
export interface ValueIndexApi<T> {
  /** Stores `payload` for the values `matcher` accepts. */
  add(matcher: ValueMatcher, payload: T): void;
  /** Removes what {@link ValueIndexApi.add} stored for this matcher and payload. */
  remove(matcher: ValueMatcher, payload: T): void;
  /**
   * Writes the payload of every stored matcher that accepts `value` into `out` from index `at` on, and
   * returns the index after the last one written (a payload stored by several matchers that all accept
   * the value appears several times). Writing by index, not pushing, lets the automaton reuse one buffer
   * across nested lookups without truncating it.
   */
  collect(value: JsonScalar, out: T[], at: number): number;
  /** How many matchers are stored. */
  readonly size: number;
}

/**
 * Payloads under one key: one payload on its own (the common case, one pointer less to follow), or a
 * list. Payloads are objects, never arrays.
 */
type Payloads<T> = T | T[];

/** An `anything-but` matcher: its payload, unless the value is one it excludes. */
interface Negation<T> {
  readonly payload: T;
  readonly matcher: ValueMatcher;
  /** Equals the index's lookup counter while the current value is excluded. */
  excludedAt: number;
}

/** Case folding of the `equals-ignore-case` family; must stay the reference matcher's (toLowerCase). */
function fold(text: string): string {
  return text.toLowerCase();
}

const byteBits = Array.from({ length: 256 }, (_, b) => b.toString(2).padStart(8, '0'));

/**
 * An IPv4 address as a number from 0 to 2^32-1, or -1 when `text` is not one. The same addresses as
 * parseIpAddress (four groups of one to three ASCII digits, each at most 255, leading zeros allowed),
 * read without a regular expression or an array.
 */
export function ipv4Number(text: string): number {
  let value = 0;
  let group = 0;
  let digits = 0;
  let groups = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46;
    if (c >= 48 && c <= 57) {
      if (++digits > 3) return -1;
      group = group * 10 + (c - 48);
    } else if (c === 46) {
      if (digits === 0 || group > 255 || ++groups > 4) return -1;
      value = value * 256 + group;
      group = 0;
      digits = 0;
    } else {
      return -1;
    }
  }
  return groups === 4 ? value : -1;
}

/** An IPv4 CIDR block as the inclusive range of the addresses in it. */
function ipv4Range(cidr: Cidr): [NumericBound, NumericBound] {
  const [a, b, c, d] = cidr.bytes as [number, number, number, number];
  const size = 2 ** (32 - cidr.prefixLength);
  const start = Math.floor((((a * 256 + b) * 256 + c) * 256 + d) / size) * size;
  return [
    { value: start, inclusive: true },
    { value: start + size - 1, inclusive: true },
  ];
}

/** An address as the family tag (`4` or `6`) followed by its bits, so a CIDR block is a prefix of it. */
function addressBits(bytes: readonly number[]): string {
  let bits = bytes.length === 4 ? '4' : '6';
  for (const byte of bytes) bits += byteBits[byte]!;
  return bits;
}

function add<K, T>(map: Map<K, Payloads<T>>, key: K, payload: T): void {
  const known = map.get(key);
  if (known === undefined) map.set(key, payload);
  else if (Array.isArray(known)) known.push(payload);
  else map.set(key, [known, payload]);
}

function removeFrom<T>(list: T[] | null | undefined, payload: T): boolean {
  if (list == null) return false;
  const at = list.indexOf(payload);
  if (at < 0) return false;
  list.splice(at, 1);
  return true;
}

function removeKey<K, T>(map: Map<K, Payloads<T>> | null, key: K, payload: T): boolean {
  const known = map?.get(key);
  if (known === undefined) return false;
  if (!Array.isArray(known)) {
    if (known !== payload) return false;
    map!.delete(key);
    return true;
  }
  if (!removeFrom(known, payload)) return false;
  if (known.length === 1) map!.set(key, known[0]!);
  return true;
}

function write<T>(payloads: Payloads<T> | null | undefined, out: T[], at: number): number {
  if (payloads == null) return at;
  if (!Array.isArray(payloads)) {
    out[at] = payloads;
    return at + 1;
  }
  for (let i = 0; i < payloads.length; i++) out[at++] = payloads[i]!;
  return at;
}

/** Bits of `ValueIndex.kinds`: which of its structures hold anything. */
const Kind = {
  strings: 1,
  /** Suffixes, the folded structures, wildcards and CIDR blocks: the rarer lookups on a string. */
  otherStrings: 2,
  numbers: 4,
  ranges: 8,
  /** `true`, `false` and `null` values. */
  literals: 16,
  any: 32,
  negations: 64,
} as const;

function filled(structure: { readonly size: number } | readonly unknown[] | null): boolean {
  if (structure === null) return false;
  return 'length' in structure ? structure.length > 0 : structure.size > 0;
}

/**
 * The index itself. A class rather than a factory so that the automaton's edge groups can extend it:
 * one object per field per state, one pointer less on every lookup.
 */
export class ValueIndex<T> implements ValueIndexApi<T> {
  // The fields a lookup reads first come first, so most lookups touch one cache line of this object.
  /** Which structures are in use (the `Kind` bits), so a lookup tests one field for what is absent. */
  kinds = 0;
  strings: Map<string, Payloads<T>> | null = null;
  numbers: Map<number, Payloads<T>> | null = null;
  prefixes: StringTrie<T> | null = null;
  ranges: NumericRanges<T> | null = null;
  size = 0;
  trues: T[] | null = null;
  falses: T[] | null = null;
  nulls: T[] | null = null;
  /** `exists: true`: every value. */
  any: T[] | null = null;
  suffixes: StringTrie<T> | null = null;
  foldedEquals: Map<string, Payloads<T>> | null = null;
  foldedPrefixes: StringTrie<T> | null = null;
  foldedSuffixes: StringTrie<T> | null = null;
  wildcards: WildcardAutomaton<T> | null = null;
  /** IPv4 blocks as ranges of 32-bit addresses. */
  cidrs4: NumericRanges<T> | null = null;
  /** IPv6 blocks as prefixes of the address bits. */
  cidrs6: StringTrie<T> | null = null;
  negations: Negation<T>[] | null = null;
  excluded: ValueIndex<Negation<T>> | null = null;
  lookups = 0;
  excludedScratch: Negation<T>[] = [];

  add(matcher: ValueMatcher, payload: T): void {
    switch (matcher.type) {
      case 'exact': {
        const { value } = matcher;
        if (typeof value === 'string') {
          this.strings ??= new Map();
          add(this.strings, value, payload);
        } else if (typeof value === 'number') {
          this.numbers ??= new Map();
          add(this.numbers, value, payload);
        } else if (value === true) {
          this.trues ??= [];
          this.trues.push(payload);
        } else if (value === false) {
          this.falses ??= [];
          this.falses.push(payload);
        } else {
          this.nulls ??= [];
          this.nulls.push(payload);
        }
        break;
      }
      case 'prefix':
        if (matcher.ignoreCase) {
          this.foldedPrefixes ??= createStringTrie('forward');
          this.foldedPrefixes.add(fold(matcher.value), payload);
        } else {
          this.prefixes ??= createStringTrie('forward');
          this.prefixes.add(matcher.value, payload);
        }
        break;
      case 'suffix':
        if (matcher.ignoreCase) {
          this.foldedSuffixes ??= createStringTrie('backward');
          this.foldedSuffixes.add(fold(matcher.value), payload);
        } else {
          this.suffixes ??= createStringTrie('backward');
          this.suffixes.add(matcher.value, payload);
        }
        break;
      case 'equals-ignore-case':
        this.foldedEquals ??= new Map();
        add(this.foldedEquals, fold(matcher.value), payload);
        break;
      case 'wildcard':
        this.wildcards ??= createWildcardAutomaton();
        this.wildcards.add(matcher.wildcard, payload);
        break;
      case 'numeric': {
        const { lower, upper } = matcher;
        if (lower !== undefined && upper !== undefined && lower.value === upper.value) {
          // `["=", x]`: the same set of values as the exact number x.
          this.numbers ??= new Map();
          add(this.numbers, lower.value, payload);
        } else {
          this.ranges ??= createNumericRanges();
          this.ranges.add(lower, upper, payload);
        }
        break;
      }
      case 'cidr': {
        const { cidr } = matcher;
        if (cidr.bytes.length === 4) {
          const [lower, upper] = ipv4Range(cidr);
          this.cidrs4 ??= createNumericRanges();
          this.cidrs4.add(lower, upper, payload);
        } else {
          this.cidrs6 ??= createStringTrie('forward');
          this.cidrs6.add(addressBits(cidr.bytes).slice(0, 1 + cidr.prefixLength), payload);
        }
        break;
      }
      case 'exists':
        if (!matcher.value) return;
        this.any ??= [];
        this.any.push(payload);
        break;
      default: {
        const negation: Negation<T> = { payload, matcher, excludedAt: 0 };
        this.negations ??= [];
        this.negations.push(negation);
        this.excluded ??= new ValueIndex();
        const excluded = this.excluded;
        for (const inner of exclusions(matcher)) excluded.add(inner, negation);
      }
    }
    this.size++;
    this.#refreshKinds();
  }

  remove(matcher: ValueMatcher, payload: T): void {
    let removed = false;
    switch (matcher.type) {
      case 'exact': {
        const { value } = matcher;
        if (typeof value === 'string') removed = removeKey(this.strings, value, payload);
        else if (typeof value === 'number') removed = removeKey(this.numbers, value, payload);
        else if (value === true) removed = removeFrom(this.trues, payload);
        else if (value === false) removed = removeFrom(this.falses, payload);
        else removed = removeFrom(this.nulls, payload);
        break;
      }
      case 'prefix':
        removed = matcher.ignoreCase
          ? (this.foldedPrefixes?.remove(fold(matcher.value), payload) ?? false)
          : (this.prefixes?.remove(matcher.value, payload) ?? false);
        break;
      case 'suffix':
        removed = matcher.ignoreCase
          ? (this.foldedSuffixes?.remove(fold(matcher.value), payload) ?? false)
          : (this.suffixes?.remove(matcher.value, payload) ?? false);
        break;
      case 'equals-ignore-case':
        removed = removeKey(this.foldedEquals, fold(matcher.value), payload);
        break;
      case 'wildcard':
        removed = this.wildcards?.remove(matcher.wildcard, payload) ?? false;
        break;
      case 'numeric': {
        const { lower, upper } = matcher;
        removed =
          lower !== undefined && upper !== undefined && lower.value === upper.value
            ? removeKey(this.numbers, lower.value, payload)
            : (this.ranges?.remove(lower, upper, payload) ?? false);
        break;
      }
      case 'cidr': {
        const { cidr } = matcher;
        if (cidr.bytes.length === 4) {
          const [lower, upper] = ipv4Range(cidr);
          removed = this.cidrs4?.remove(lower, upper, payload) ?? false;
        } else {
          const key = addressBits(cidr.bytes).slice(0, 1 + cidr.prefixLength);
          removed = this.cidrs6?.remove(key, payload) ?? false;
        }
        break;
      }
      case 'exists':
        if (!matcher.value) return;
        removed = removeFrom(this.any, payload);
        break;
      default: {
        const at = this.negations?.findIndex((n) => n.payload === payload && n.matcher === matcher) ?? -1;
        if (at >= 0) {
          const [negation] = this.negations!.splice(at, 1);
          for (const inner of exclusions(matcher)) this.excluded!.remove(inner, negation!);
          removed = true;
        }
      }
    }
    if (removed) {
      this.size--;
      this.#refreshKinds();
    }
  }

  #refreshKinds(): void {
    let kinds = 0;
    if (filled(this.strings)) kinds |= Kind.strings;
    if (
      filled(this.suffixes) ||
      filled(this.foldedEquals) ||
      filled(this.foldedPrefixes) ||
      filled(this.foldedSuffixes) ||
      filled(this.wildcards) ||
      filled(this.cidrs4) ||
      filled(this.cidrs6) ||
      filled(this.prefixes)
    ) {
      kinds |= Kind.otherStrings;
    }
    if (filled(this.numbers)) kinds |= Kind.numbers;
    if (filled(this.ranges)) kinds |= Kind.ranges;
    if (filled(this.trues) || filled(this.falses) || filled(this.nulls)) kinds |= Kind.literals;
    if (filled(this.any)) kinds |= Kind.any;
    if (filled(this.negations)) kinds |= Kind.negations;
    this.kinds = kinds;
  }

  collect(value: JsonScalar, out: T[], at: number): number {
    const kinds = this.kinds;
    if (typeof value === 'string') {
      if ((kinds & Kind.strings) !== 0) at = write(this.strings!.get(value), out, at);
      if ((kinds & Kind.otherStrings) !== 0) at = this.#collectString(value, out, at);
    } else if (typeof value === 'number') {
      if ((kinds & Kind.numbers) !== 0) at = write(this.numbers!.get(value), out, at);
      if ((kinds & Kind.ranges) !== 0) at = this.ranges!.collect(value, out, at);
    } else if ((kinds & Kind.literals) !== 0) {
      at = write(value === true ? this.trues : value === false ? this.falses : this.nulls, out, at);
    }
    if ((kinds & Kind.any) !== 0) at = write(this.any, out, at);
    if ((kinds & Kind.negations) !== 0) at = this.#complement(value, out, at);
    return at;
  }

  /** The lookups of a string beyond exact values. */
  #collectString(value: string, out: T[], at: number): number {
    if (this.prefixes !== null) at = this.prefixes.collect(value, out, at);
    if (this.suffixes !== null) at = this.suffixes.collect(value, out, at);
    if (this.foldedEquals !== null || this.foldedPrefixes !== null || this.foldedSuffixes !== null) {
      const folded = fold(value);
      if (this.foldedEquals !== null) at = write(this.foldedEquals.get(folded), out, at);
      if (this.foldedPrefixes !== null) at = this.foldedPrefixes.collect(folded, out, at);
      if (this.foldedSuffixes !== null) at = this.foldedSuffixes.collect(folded, out, at);
    }
    if (this.wildcards !== null) at = this.wildcards.collect(value, out, at);
    if (this.cidrs4 !== null) {
      const address = ipv4Number(value);
      if (address >= 0) at = this.cidrs4.collect(address, out, at);
    }
    if (this.cidrs6 !== null && value.includes(':')) {
      const bytes = parseIpAddress(value);
      if (bytes !== undefined) at = this.cidrs6.collect(addressBits(bytes), out, at);
    }
    return at;
  }

  #complement(value: JsonScalar, out: T[], at: number): number {
    const stamp = ++this.lookups;
    const hits = this.excludedScratch;
    const count = this.excluded!.collect(value, hits, 0);
    for (let i = 0; i < count; i++) hits[i]!.excludedAt = stamp;
    const negations = this.negations!;
    for (let i = 0; i < negations.length; i++) {
      const negation = negations[i]!;
      if (negation.excludedAt !== stamp) out[at++] = negation.payload;
    }
    return at;
  }
}

/**
 * The positive matchers whose values an `anything-but` matcher excludes. Each keeps the type rules of the
 * reference: string exclusions never exclude numbers and the other way round.
 */
function exclusions(matcher: ValueMatcher): ValueMatcher[] {
  switch (matcher.type) {
    case 'anything-but':
      return [
        ...matcher.strings.map((value): ValueMatcher => ({ type: 'exact', value })),
        ...matcher.numbers.map((value): ValueMatcher => ({ type: 'exact', value })),
      ];
    case 'anything-but-prefix':
      return matcher.values.map((value): ValueMatcher => ({ type: 'prefix', value, ignoreCase: false }));
    case 'anything-but-suffix':
      return matcher.values.map((value): ValueMatcher => ({ type: 'suffix', value, ignoreCase: false }));
    case 'anything-but-equals-ignore-case':
      return matcher.values.map((value): ValueMatcher => ({ type: 'equals-ignore-case', value }));
    case 'anything-but-wildcard':
      return matcher.wildcards.map((wildcard): ValueMatcher => ({ type: 'wildcard', wildcard }));
    default:
      return [];
  }
}

/**
 * Creates an empty index.
 *
 * @example
 * const index = createValueIndex<string>();
 * index.add({ type: 'prefix', value: 'us-', ignoreCase: false }, 'A');
 * index.add({ type: 'anything-but', strings: ['us-east-1'], numbers: [] }, 'B');
 * const out: string[] = [];
 * index.collect('us-west-2', out, 0); // 2; out: ['A', 'B']
 */
export function createValueIndex<T>(): ValueIndex<T> {
  return new ValueIndex<T>();
}
