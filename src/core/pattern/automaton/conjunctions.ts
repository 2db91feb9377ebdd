import { ReflexError } from '../../errors.js';
import type { FieldCondition, Pattern, PatternCondition, PatternPath, ValueMatcher } from '../pattern.js';
import { patternLimits } from '../pattern.js';
import { type Wildcard, wildcardComplexity } from '../wildcard.js';

/**
 * A pattern as the automaton stores it: `$or` expanded into alternatives (conjunctions), each a list of
 * steps in a fixed order. Equal steps get equal keys, so the rules that share their first steps share
 * the automaton's states for them.
 */

/** One field of a conjunction and what it must hold. */
export interface Step {
  readonly path: string;
  readonly matchers: readonly ValueMatcher[];
  /** Canonical text of the path and matchers: equal keys accept the same values. */
  readonly key: string;
  /** Orders steps: the ones that let fewest events through come first (see {@link rankOf}). */
  readonly rank: number;
  /** Whether the field may also be satisfied by having no value (an `{"exists": false}` entry). */
  readonly absent: boolean;
}

/** Steps that must all hold for one alternative of a pattern. */
export interface Conjunction {
  readonly steps: readonly Step[];
  /**
   * Whether two steps test the same field (possible through `$or`). Arrays holding a single field's
   * values then constrain the match, so such conjunctions are matched with full array positions.
   */
  readonly strict: boolean;
}

/** Limits on what one pattern may compile to. */
export const compiledMatcherLimits = Object.freeze({
  /** Alternatives after expanding every `$or` (the product of nested and parallel `$or` lists). */
  maxAlternatives: 1024,
  /**
   * Highest wildcard complexity of all the wildcards one pattern puts on one field, `$or` alternatives
   * together (the automaton merges them); the same scale as `patternLimits.maxWildcardComplexity`.
   */
  maxWildcardComplexity: patternLimits.maxWildcardComplexity,
});

function tooComplex(at: PatternPath, reason: string, fix: string, details: Record<string, unknown>): never {
  throw new ReflexError(
    'REFLEX_ERR_PATTERN_TOO_COMPLEX',
    { rule: '', path: at.length === 0 ? '(root)' : at.join('.'), reason, fix },
    { details: { path: [...at], ...details } },
  );
}

function numberKey(value: number): string {
  // -0 and 0 are the same value to every matcher.
  return value === 0 ? '0' : String(value);
}

function sortedJson(values: readonly (string | number)[]): string {
  return JSON.stringify([...new Set(values.map((v) => (typeof v === 'number' ? numberKey(v) : v)))].sort());
}

/** Canonical text of one matcher. */
export function matcherKey(matcher: ValueMatcher): string {
  switch (matcher.type) {
    case 'exact': {
      const { value } = matcher;
      if (typeof value === 'number') return `n${numberKey(value)}`;
      if (typeof value === 'string') return `s${JSON.stringify(value)}`;
      return `l${String(value)}`;
    }
    case 'prefix':
    case 'suffix':
      return `${matcher.type === 'prefix' ? 'p' : 'x'}${matcher.ignoreCase ? 'i' : 'c'}${JSON.stringify(matcher.value)}`;
    case 'equals-ignore-case':
      return `e${JSON.stringify(matcher.value)}`;
    case 'wildcard':
      return `w${JSON.stringify(matcher.wildcard.source)}`;
    case 'numeric': {
      const { lower, upper } = matcher;
      const low = lower === undefined ? '' : `${lower.inclusive ? '[' : '('}${numberKey(lower.value)}`;
      const high = upper === undefined ? '' : `${numberKey(upper.value)}${upper.inclusive ? ']' : ')'}`;
      return `r${low},${high}`;
    }
    case 'cidr':
      return `c${matcher.cidr.bytes.join('.')}/${matcher.cidr.prefixLength}`;
    case 'exists':
      return matcher.value ? 'E1' : 'E0';
    case 'anything-but':
      return `a${sortedJson(matcher.strings)}${sortedJson(matcher.numbers)}`;
    case 'anything-but-prefix':
      return `ap${sortedJson(matcher.values)}`;
    case 'anything-but-suffix':
      return `ax${sortedJson(matcher.values)}`;
    case 'anything-but-equals-ignore-case':
      return `ae${sortedJson(matcher.values)}`;
    case 'anything-but-wildcard':
      return `aw${sortedJson(matcher.wildcards.map((w) => w.source))}`;
  }
}

/**
 * How many events a matcher typically lets through, as a rank: exact values first, then prefixes,
 * suffixes and CIDR blocks, wildcards, numeric ranges, `exists`, the `anything-but` family, and
 * absence last. Checking selective fields first keeps the number of partial matches per event small.
 */
export function rankOf(matcher: ValueMatcher): number {
  switch (matcher.type) {
    case 'exact':
    case 'equals-ignore-case':
      return 0;
    case 'numeric':
      return matcher.lower !== undefined &&
        matcher.upper !== undefined &&
        matcher.lower.value === matcher.upper.value
        ? 0
        : 3;
    case 'prefix':
    case 'suffix':
    case 'cidr':
      return 1;
    case 'wildcard':
      return 2;
    case 'exists':
      return matcher.value ? 4 : 6;
    default:
      return 5;
  }
}

function stepOf(condition: FieldCondition): Step {
  const keys = [...new Set(condition.matchers.map(matcherKey))].sort();
  let rank = 0;
  let absent = false;
  for (const matcher of condition.matchers) {
    rank = Math.max(rank, rankOf(matcher));
    if (matcher.type === 'exists' && !matcher.value) absent = true;
  }
  return {
    path: condition.path,
    matchers: condition.matchers,
    key: `${condition.path}\u0000${keys.join('\u0001')}`,
    rank,
    absent,
  };
}

function depth(path: string): number {
  let dots = 0;
  for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) === 46) dots++;
  return dots;
}

/**
 * The order of steps: by rank, then shallower fields first (the routing keys of an envelope, such as
 * `type` and `source`, sit at the top and take many values, while nested details such as a severity
 * take few, so testing the top first leaves fewer partial matches), then by name and key. The order
 * depends on the step alone, so equal steps line up the same way in every pattern and share states.
 */
function compareSteps(a: Step, b: Step): number {
  if (a.rank !== b.rank) return a.rank - b.rank;
  const da = depth(a.path);
  const db = depth(b.path);
  if (da !== db) return da - db;
  if (a.path !== b.path) return a.path < b.path ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** All alternatives of a list of conditions, as unordered lists of steps. */
function alternatives(conditions: readonly PatternCondition[]): Step[][] {
  let result: Step[][] = [[]];
  for (const condition of conditions) {
    if (condition.type === 'field') {
      const step = stepOf(condition);
      for (const steps of result) steps.push(step);
      continue;
    }
    const inner = condition.alternatives.flatMap(alternatives);
    const count = result.length * inner.length;
    if (count > compiledMatcherLimits.maxAlternatives) {
      tooComplex(
        condition.at,
        `its \`$or\` lists expand to ${count} alternatives, more than the ${compiledMatcherLimits.maxAlternatives} allowed`,
        'split the rule into several rules, or use fewer or shorter `$or` lists (a list of values in one field needs no `$or`).',
        { alternatives: count, limit: compiledMatcherLimits.maxAlternatives },
      );
    }
    result = result.flatMap((steps) => inner.map((more) => [...steps, ...more]));
  }
  return result;
}

/** Rejects a pattern whose wildcards on one field, across `$or` alternatives, are too costly together. */
function checkWildcards(pattern: Pattern): void {
  const byPath = new Map<string, { wildcards: Wildcard[]; conditions: FieldCondition[] }>();
  const visit = (conditions: readonly PatternCondition[]): void => {
    for (const condition of conditions) {
      if (condition.type === 'or') {
        condition.alternatives.forEach(visit);
        continue;
      }
      const own: Wildcard[] = [];
      for (const matcher of condition.matchers) {
        if (matcher.type === 'wildcard') own.push(matcher.wildcard);
        else if (matcher.type === 'anything-but-wildcard') own.push(...matcher.wildcards);
      }
      if (own.length === 0) continue;
      let entry = byPath.get(condition.path);
      if (entry === undefined) {
        entry = { wildcards: [], conditions: [] };
        byPath.set(condition.path, entry);
      }
      entry.wildcards.push(...own);
      entry.conditions.push(condition);
    }
  };
  visit(pattern.conditions);
  const limit = compiledMatcherLimits.maxWildcardComplexity;
  for (const [path, { wildcards, conditions }] of byPath) {
    // One field list was already checked by parsePattern; only fields repeated through `$or` can add up.
    if (conditions.length < 2) continue;
    const complexity = wildcardComplexity(wildcards, limit);
    if (complexity > limit) {
      tooComplex(
        conditions[conditions.length - 1]!.at,
        `the wildcards on \`${path}\` in its \`$or\` alternatives are too complex together (complexity ${Number.isFinite(complexity) ? complexity : 'too high to measure'}, limit ${limit})`,
        'use fewer `*`, avoid text that repeats after a `*`, or split the alternatives into separate rules.',
        { field: path, complexity, limit },
      );
    }
  }
}

/**
 * Expands a parsed pattern into the conjunctions the automaton stores. Throws
 * REFLEX_ERR_PATTERN_TOO_COMPLEX (with `details.path`, the JSON path inside the pattern) when `$or`
 * lists expand to too many alternatives or the wildcards of one field are too complex together.
 */
export function expandPattern(pattern: Pattern): Conjunction[] {
  checkWildcards(pattern);
  const seen = new Set<string>();
  const out: Conjunction[] = [];
  for (const steps of alternatives(pattern.conditions)) {
    // A step repeated through `$or` adds nothing: the value that satisfies one satisfies the other.
    const unique = new Map<string, Step>();
    for (const step of steps) unique.set(step.key, step);
    const ordered = [...unique.values()].sort(compareSteps);
    const signature = ordered.map((s) => s.key).join('\u0002');
    if (seen.has(signature)) continue;
    seen.add(signature);
    const paths = new Set(ordered.map((s) => s.path));
    out.push({ steps: ordered, strict: paths.size < ordered.length });
  }
  return out;
}
