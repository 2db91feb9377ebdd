/**
 * The `wildcard` operand of event patterns: `*` stands for any run of characters (none included),
 * `\*` for a literal star and `\\` for a literal backslash.
 */

/** A parsed `wildcard` operand. */
export interface Wildcard {
  /** The operand as written, e.g. `arn:aws:events:*:event-bus/*`. */
  readonly source: string;
  /**
   * The literal text between the stars, escapes resolved: `a*b\*c*` gives `['a', 'b*c', '']`.
   * There is one star fewer than parts.
   */
  readonly parts: readonly string[];
}

/**
 * Reads a wildcard operand. Returns the reason as a string when it is malformed: a backslash that escapes
 * something other than `*` or `\`, or two stars in a row (EventBridge rejects both).
 *
 * @example parseWildcard('*.png') // { source: '*.png', parts: ['', '.png'] }
 */
export function parseWildcard(source: string): Wildcard | string {
  const parts: string[] = [];
  let current = '';
  let lastWasStar = false;
  for (let i = 0; i < source.length; i++) {
    const char = source[i]!;
    if (char === '*') {
      if (lastWasStar) return 'two `*` in a row are not allowed';
      parts.push(current);
      current = '';
      lastWasStar = true;
      continue;
    }
    lastWasStar = false;
    if (char === '\\') {
      const next = source[i + 1];
      if (next !== '*' && next !== '\\') {
        return 'a backslash may only escape `*` or another backslash';
      }
      current += next;
      i++;
    } else {
      current += char;
    }
  }
  parts.push(current);
  return Object.freeze({ source, parts: Object.freeze(parts) });
}

/** Whether `text` matches the wildcard as a whole. */
export function matchWildcard(wildcard: Wildcard, text: string): boolean {
  const { parts } = wildcard;
  const first = parts[0]!;
  if (parts.length === 1) return text === first;
  const last = parts[parts.length - 1]!;
  const end = text.length - last.length;
  if (end < first.length || !text.startsWith(first) || !text.endsWith(last)) return false;
  // Taking the leftmost place for each middle part leaves the most room for the rest, so no backtracking.
  let from = first.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const at = text.indexOf(parts[i]!, from);
    if (at < 0 || at + parts[i]!.length > end) return false;
    from = at + parts[i]!.length;
  }
  return true;
}

/** Past this many sets of positions the analysis gives up and calls the wildcards too complex. */
const maxExploredSets = 10_000;

/**
 * How hard the wildcards of one field are to match: the largest number of places in the patterns that a
 * single input string can be at simultaneously (a star counts as a place, and so does the spot just before
 * it, since the star may match nothing). Repeated stars and text that repeats after a star drive it up:
 * `*:*:*:*:*:event-bus/*` scores 11, `arn:aws:events:us-east-1:*:event-bus/*` scores 3.
 *
 * This approximates the complexity that aws/event-ruler's MachineComplexityEvaluator computes and that
 * EventBridge uses to reject patterns ("Rule is too complex"); it counts characters, not UTF-8 bytes.
 * Stops early and returns the count once it exceeds `stopAbove`; returns Infinity when the analysis
 * itself would be too large.
 */
export function wildcardComplexity(
  wildcards: readonly Wildcard[],
  stopAbove = Number.POSITIVE_INFINITY,
): number {
  // Tokens per wildcard: a character, or null for a star. States are global ids: offset + tokens consumed.
  const tokens: Array<Array<string | null>> = wildcards.map((wildcard) => {
    const out: Array<string | null> = [];
    for (const [i, part] of wildcard.parts.entries()) {
      if (i > 0) out.push(null);
      out.push(...Array.from(part));
    }
    return out;
  });
  const offsets: number[] = [];
  let total = 0;
  for (const list of tokens) {
    offsets.push(total);
    total += list.length + 1;
  }
  const owner = (state: number): number => {
    let w = offsets.length - 1;
    while (offsets[w]! > state) w--;
    return w;
  };
  const addWithClosure = (into: Set<number>, state: number): void => {
    const w = owner(state);
    const list = tokens[w]!;
    let local = state - offsets[w]!;
    into.add(state);
    while (local < list.length && list[local] === null) {
      local++;
      into.add(offsets[w]! + local);
    }
  };

  const alphabet = new Set<string>();
  for (const list of tokens) for (const token of list) if (token !== null) alphabet.add(token);
  // `undefined` stands for every character that appears in no pattern.
  const inputs: Array<string | undefined> = [...alphabet, undefined];

  const start = new Set<number>();
  for (const offset of offsets) addWithClosure(start, offset);
  const seen = new Set<string>([[...start].sort((a, b) => a - b).join(',')]);
  const pending: Array<Set<number>> = [start];
  let worst = start.size;
  while (pending.length > 0) {
    if (worst > stopAbove) return worst;
    if (seen.size > maxExploredSets) return Number.POSITIVE_INFINITY;
    const active = pending.pop()!;
    for (const input of inputs) {
      const next = new Set<number>();
      for (const state of active) {
        const w = owner(state);
        const list = tokens[w]!;
        const local = state - offsets[w]!;
        if (local > 0 && list[local - 1] === null) addWithClosure(next, state);
        if (local < list.length && list[local] !== null && list[local] === input)
          addWithClosure(next, state + 1);
      }
      if (next.size === 0) continue;
      const key = [...next].sort((a, b) => a - b).join(',');
      if (seen.has(key)) continue;
      seen.add(key);
      worst = Math.max(worst, next.size);
      pending.push(next);
    }
  }
  return worst;
}
