import type { SourceStatus } from '../core/ports/source.js';

/** A source's status and the listeners of its changes: what `Source.status` and `Source.onStatus` read. */
export interface SourceStatusCell {
  readonly current: SourceStatus;
  /** Sets the status and tells every listener, unless it is the one already in force. */
  set(next: SourceStatus): void;
  onStatus(listener: (status: SourceStatus) => void): () => void;
}

/**
 * Makes the status of one source, `starting` at first.
 *
 * @example
 * const status = createSourceStatus();
 * status.set({ type: 'up' });
 */
export function createSourceStatus(): SourceStatusCell {
  let current: SourceStatus = { type: 'starting' };
  const listeners = new Set<(status: SourceStatus) => void>();
  return {
    get current() {
      return current;
    },
    set(next) {
      if (JSON.stringify(next) === JSON.stringify(current)) return;
      current = next;
      for (const listener of [...listeners]) listener(next);
    },
    onStatus(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
  };
}
