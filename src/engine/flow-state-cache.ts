import type { RuleStates } from '../core/decide.js';
import type { StageName } from '../core/flow/rule-flow.js';
import type { Held, StageResult } from '../core/flow/stage.js';
import type { FlowStateChange, FlowStateRow, TimerChange } from '../core/ports/store.js';
import type { Rule } from '../core/rule.js';

interface Entry {
  hash: string;
  state: unknown;
  expiresAt: number | null;
}

/**
 * The dispatcher's copy of every flow state (correlation partial matches, storm-control windows), so
 * deciding an event never waits for the store. Changes are layered: an event's changes join the batch
 * only when its rule's decision completes, and the batch's join the committed copy only after the store
 * has committed them with the offset — a failed commit leaves the cache as the store is.
 */
export interface FlowStateCache {
  /** Replaces the contents with what the store holds. */
  load(rows: readonly FlowStateRow[]): void;
  /** A rule's states for one event at time `t`. */
  view(rule: Rule, t: number): RuleStates;
  /** Queues deletions of states expired at `t` (cleanup; an expired state already reads as absent). */
  sweep(t: number, limit: number): void;
  /** The batch's changes, for the commit. */
  pending(): { states: FlowStateChange[]; timers: TimerChange[] };
  /** The batch was committed: its changes become the cache's. */
  committed(): void;
  /** The batch was not committed: forget its changes. */
  rolledBack(): void;
  /** States held now. */
  readonly size: number;
}

const id = (rule: string, stage: string, key: string) => `${rule}\u0000${stage}\u0000${key}`;

export function createFlowStateCache(): FlowStateCache {
  let states = new Map<string, Entry>();
  const batch = new Map<string, { rule: string; stage: string; key: string; entry: Entry | null }>();
  const timers = new Map<string, TimerChange>();

  const read = (key: string): Entry | null | undefined => {
    const pending = batch.get(key);
    return pending ? pending.entry : states.get(key);
  };

  return {
    load(rows) {
      states = new Map(
        rows.map((row) => [
          id(row.rule, row.stage, row.key),
          { hash: row.hash, state: row.state, expiresAt: row.expiresAt },
        ]),
      );
      batch.clear();
      timers.clear();
    },
    view(rule, t) {
      const local = new Map<string, { stage: string; key: string; entry: Entry | null }>();
      const localTimers = new Map<string, TimerChange>();
      return {
        get(stage, key) {
          const k = id(rule.name, stage, key);
          const entry = local.has(k) ? local.get(k)!.entry : read(k);
          if (!entry || entry.hash !== rule.flowHash) return undefined;
          if (entry.expiresAt !== null && entry.expiresAt < t) return undefined;
          return entry.state;
        },
        put(stage: StageName, key: string, result: StageResult<unknown>) {
          const k = id(rule.name, stage, key);
          const entry: Entry | null =
            result.state === undefined
              ? null
              : {
                  hash: rule.flowHash,
                  state: keepOnly(rule, stage, result.state),
                  expiresAt: result.expiresAt ?? null,
                };
          local.set(k, { stage, key, entry });
          if (result.timer !== undefined)
            localTimers.set(k, { rule: rule.name, stage, key, due: result.timer });
        },
        commit() {
          for (const [k, change] of local) batch.set(k, { rule: rule.name, ...change });
          for (const [k, timer] of localTimers) timers.set(k, timer);
        },
        discard() {
          local.clear();
          localTimers.clear();
        },
      };
    },
    sweep(t, limit) {
      let n = 0;
      for (const [k, entry] of states) {
        if (n >= limit) break;
        if (entry.expiresAt === null || entry.expiresAt >= t || batch.has(k)) continue;
        const [rule, stage, key] = k.split('\u0000') as [string, string, string];
        batch.set(k, { rule, stage, key, entry: null });
        n++;
      }
    },
    pending() {
      const changes: FlowStateChange[] = [];
      for (const { rule, stage, key, entry } of batch.values()) {
        changes.push(
          entry
            ? { rule, stage, key, hash: entry.hash, state: entry.state, expiresAt: entry.expiresAt }
            : { rule, stage, key, hash: '', state: null, expiresAt: null },
        );
      }
      return { states: changes, timers: [...timers.values()] };
    },
    committed() {
      for (const [k, { entry }] of batch) {
        if (entry) states.set(k, entry);
        else states.delete(k);
      }
      batch.clear();
      timers.clear();
    },
    rolledBack() {
      batch.clear();
      timers.clear();
    },
    get size() {
      return states.size;
    },
  };
}

/**
 * What of a state is worth keeping. A partial match of `count`, and of `all` or `sequence` when no
 * expression of the rule reads `events`, holds only the place and time of its events: nothing reads their
 * content before the run, which loads them from the log by seq. That keeps an open partial match small.
 */
function keepOnly(rule: Rule, stage: string, state: unknown): unknown {
  if (stage !== 'when') return state;
  const when = rule.flow.when.type;
  const strip = (h: Held | null) => (h ? { seq: h.seq, t: h.t } : null);
  if (when === 'count') return { held: (state as { held: Held[] }).held.map(strip) };
  if (rule.readsHeldEvents) return state;
  if (when === 'all') return { slots: (state as { slots: Array<Held | null> }).slots.map(strip) };
  if (when === 'sequence') return { held: (state as { held: Held[] }).held.map(strip) };
  return state;
}
