import type { FactStore } from '../core/ports/store.js';

/**
 * The current facts, as the API shows them and running steps read them: a snapshot in memory, and
 * writes that go to the store first and then replace the snapshot (copy on write, so a reader never
 * sees a half-applied change). Conditions do not read these: each dispatcher decides with the facts as
 * of the event's place in the log (see `Dispatcher`).
 */
export interface Facts {
  snapshot(): Readonly<Record<string, unknown>>;
  /**
   * Sets a fact, or removes it when `value` is undefined; a change is logged as `reflex.fact.changed`,
   * `chain` deep in rule outcomes (0 for a change from outside, e.g. the API), in `partition` (a run's
   * change: its trigger's; by default the partition of the events Reflex makes itself).
   */
  set(name: string, value: unknown, chain?: number, partition?: number): Promise<void>;
}

/**
 * @param onChanged called when a change put its `reflex.fact.changed` event into the log.
 * @param defaultPartition where a change goes when `set` is not told.
 */
export async function createFacts(
  store: FactStore,
  now: () => number,
  onChanged: () => void = () => {},
  defaultPartition = 0,
): Promise<Facts> {
  let current: Readonly<Record<string, unknown>> = Object.freeze(await store.getFacts());
  return {
    snapshot: () => current,
    async set(name, value, chain = 0, partition = defaultPartition) {
      const change = await store.changeFact(name, value, now(), chain, partition);
      const next: Record<string, unknown> = { ...current };
      if (value === undefined) delete next[name];
      else next[name] = value;
      current = Object.freeze(next);
      if (change.event && !change.event.duplicate) onChanged();
    },
  };
}
