import type { Store } from '../core/ports/store.js';

/**
 * The real SQLite store, with a gate in front of its appends: a held append waits at the gate until the
 * test lets it through, so the test decides when a group commit finishes (no sleeps).
 */
export function gateAppends(store: Store) {
  let open = true;
  const held: Array<() => void> = [];
  const gated = new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'appendEvents') {
        return async (...args: Parameters<Store['appendEvents']>) => {
          if (!open) await new Promise<void>((resolve) => held.push(resolve));
          return target.appendEvents(...args);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    store: gated,
    /** Appends from now on wait at the gate. */
    hold() {
      open = false;
    },
    /** How many appends wait at the gate. */
    get waiting() {
      return held.length;
    },
    /** Lets the appends waiting at the gate through, and keeps the gate as it is for later ones. */
    step() {
      for (const release of held.splice(0)) release();
    },
    /** Opens the gate for good. */
    open() {
      open = true;
      this.step();
    },
  };
}

/**
 * Resolves once `check` holds, looking again every millisecond: it waits for asynchronous work (a commit,
 * whose sync runs on the thread pool), never for time to pass.
 */
export async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('the condition never held');
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Records how a promise settled, so a test can assert that it has not settled yet. */
export function track<T>(promise: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error) => Object.assign(state, { settled: true, error }),
  );
  return state;
}
