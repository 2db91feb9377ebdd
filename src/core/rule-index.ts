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
 * rule is in one matcher, and sub-conditions without a pattern are candidates for every event.
 */
export interface RuleIndex {
  readonly rules: readonly Rule[];
  /** The rules whose sub-conditions the event matches, in firing order. */
  candidates(event: CloudEvent): Candidate[];
}

/**
 * Keeps one matcher in step with the rulebook in force. Indexing a new version adds only the patterns
 * it brings and removes only those no rule uses any more, so a reload of 10 000 rules that changes a
 * few costs a few matcher updates, not a rebuild. Only the index last made may be used: the matcher
 * behind earlier ones has moved on.
 */
export interface RuleIndexer {
  index(rules: readonly Rule[]): RuleIndex;
  /** Patterns in the matcher now. */
  readonly patterns: number;
}

/** Owners of one pattern in the matcher: every (rule, sub) that wrote that exact pattern. */
interface Entry {
  id: number;
  owners: Array<{ rule: number; sub: number }>;
}

export function createRuleIndexer(matcher: Matcher): RuleIndexer {
  // Patterns are shared by their JSON text: two rules with the same pattern cost one matcher entry.
  let byText = new Map<string, Entry>();
  let nextId = 0;

  return {
    get patterns() {
      return byText.size;
    },
    index(rules) {
      const next = new Map<string, Entry>();
      const unconditional: Array<{ rule: number; sub: number }> = [];
      for (const rule of rules) {
        rule.subs.forEach((sub, i) => {
          const pattern = sub.indexPattern ?? sub.pattern;
          if (!pattern) {
            unconditional.push({ rule: rule.index, sub: i });
            return;
          }
          const text = JSON.stringify(pattern.source);
          let entry = next.get(text);
          if (!entry) {
            const kept = byText.get(text);
            entry = { id: kept ? kept.id : nextId++, owners: [] };
            if (!kept) matcher.add(entry.id, pattern);
            next.set(text, entry);
          }
          entry.owners.push({ rule: rule.index, sub: i });
        });
      }
      for (const [text, entry] of byText) {
        if (!next.has(text)) matcher.remove(entry.id);
      }
      byText = next;
      const owners = new Map<number, Entry['owners']>();
      for (const entry of next.values()) owners.set(entry.id, entry.owners);
      return {
        rules,
        candidates(event) {
          const found: Array<{ rule: number; sub: number }> = [...unconditional];
          for (const id of matcher.match(event)) {
            const list = owners.get(id);
            if (list) for (const owner of list) found.push(owner);
          }
          return groupByRule(found);
        },
      };
    },
  };
}

/** Builds an index over a fresh matcher (for one-off use: tests, explain, `reflex test`). */
export function createRuleIndex(rules: readonly Rule[], matcher: Matcher): RuleIndex {
  return createRuleIndexer(matcher).index(rules);
}

function groupByRule(found: Array<{ rule: number; sub: number }>): Candidate[] {
  if (found.length === 0) return [];
  found.sort((a, b) => a.rule - b.rule || a.sub - b.sub);
  const out: Candidate[] = [];
  let last: Candidate | undefined;
  for (const { rule, sub } of found) {
    if (last && last.rule === rule) {
      if (last.subs[last.subs.length - 1] !== sub) last.subs.push(sub);
    } else {
      last = { rule, subs: [sub] };
      out.push(last);
    }
  }
  return out;
}
