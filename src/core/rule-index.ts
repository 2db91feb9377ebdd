import type { CloudEvent } from './event.js';
import type { Matcher } from './pattern/matcher.js';
import type { Rule } from './rule.js';

/** A rule an event may concern, and which of its sub-conditions' patterns the event matched. */
export interface Candidate {
  rule: number;
  /** Ascending sub-condition indexes. */
  subs: number[];
}

/**
 * The rules of one rulebook version, indexed for matching: the pattern of every sub-condition of every
 * rule goes into one matcher, and sub-conditions without a pattern are candidates for every event.
 */
export interface RuleIndex {
  readonly rules: readonly Rule[];
  /** The rules whose sub-conditions the event matches, in firing order. */
  candidates(event: CloudEvent): Candidate[];
}

/** Builds the index. `matcher` is empty and becomes owned by the index. */
export function createRuleIndex(rules: readonly Rule[], matcher: Matcher): RuleIndex {
  // Matcher ids are handed out in (rule, sub) order, so ascending ids are firing order.
  const owners: Array<{ rule: number; sub: number }> = [];
  const unconditional: number[] = [];
  for (const rule of rules) {
    rule.subs.forEach((sub, i) => {
      const id = owners.length;
      owners.push({ rule: rule.index, sub: i });
      if (sub.pattern) matcher.add(id, sub.pattern);
      else unconditional.push(id);
    });
  }
  return {
    rules,
    candidates(event) {
      const matched = matcher.match(event);
      const ids = unconditional.length === 0 ? matched : mergeSorted(matched, unconditional);
      const out: Candidate[] = [];
      let last: Candidate | undefined;
      for (const id of ids) {
        const owner = owners[id]!;
        if (last && last.rule === owner.rule) last.subs.push(owner.sub);
        else {
          last = { rule: owner.rule, subs: [owner.sub] };
          out.push(last);
        }
      }
      return out;
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
