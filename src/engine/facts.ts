import type { Store } from '../core/ports/store.js';

/**
 * The engine's view of facts: a snapshot in memory that conditions read without touching the store, and
 * writes that go to the store first and then replace the snapshot (copy on write, so a condition that
 * is being evaluated never sees a half-applied change).
 */
export interface Facts {
  snapshot(): Readonly<Record<string, unknown>>;
  /** Sets a fact, or removes it when `value` is undefined. */
  set(name: string, value: unknown): Promise<void>;
}

export async function createFacts(store: Store, now: () => number): Promise<Facts> {
  let current: Readonly<Record<string, unknown>> = Object.freeze(await store.getFacts());
  return {
    snapshot: () => current,
    async set(name, value) {
      const next: Record<string, unknown> = { ...current };
      if (value === undefined) {
        await store.deleteFact(name);
        delete next[name];
      } else {
        await store.setFact(name, value, now());
        next[name] = value;
      }
      current = Object.freeze(next);
    },
  };
}
