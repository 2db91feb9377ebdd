import type { CloudEvent } from './event.js';
import type { Matcher } from './pattern/matcher.js';
import type { Rule } from './rule.js';

/**
 * The rules of one rulebook version, indexed for matching: every pattern goes into one matcher, and
 * rules without a pattern (condition only) are candidates for every event.
 */
export interface RuleIndex {
  readonly rules: readonly Rule[];
  /** Indexes of the rules whose pattern matches (or that have none), ascending: the firing order. */
  candidates(event: CloudEvent): number[];
}

/** Builds the index. `matcher` is empty and becomes owned by the index. */
export function createRuleIndex(rules: readonly Rule[], matcher: Matcher): RuleIndex {
  const unconditional: number[] = [];
  for (const rule of rules) {
    if (rule.pattern) matcher.add(rule.index, rule.pattern);
    else unconditional.push(rule.index);
  }
  return {
    rules,
    candidates(event) {
      const matched = matcher.match(event);
      if (unconditional.length === 0) return matched;
      if (matched.length === 0) return unconditional.slice();
      return mergeSorted(matched, unconditional);
    },
  };
}

function mergeSorted(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! < b[j]!)) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return out;
}
