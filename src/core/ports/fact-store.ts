import type { AppendResult } from '../event.js';

/**
 * The FactStore port: the current facts (what the API shows and sets). Each change is also a
 * `reflex.fact.changed` event, and the dispatchers decide with the facts as the log has them at each
 * event (`EventLog.readFactChanges`), not with these.
 */
export interface FactStore {
  getFacts(): Promise<Record<string, unknown>>;
  /**
   * Sets a fact (or removes it, with `undefined`) and, when that changes its value, appends a
   * `reflex.fact.changed` event to `partition` (source `reflex`, id `fact/<name>/<n>` with n counting the
   * fact's changes, data `{ name, value, previous, added, removed }`: null for "absent", and
   * `added`/`removed` say when the fact was not set before or is not set after) — in one transaction.
   * Setting the value a fact already has changes nothing and appends nothing, so a retried step does not
   * repeat the event; values are compared as JSON, where the order of an object's keys carries no meaning.
   * `chain` (default 0) is the event's `reflexchain` depth: a change made by a run is one deeper than
   * the run's trigger, so a rule that reacts to fact changes by changing facts cannot loop forever.
   * `partition` (default 0): a run's change goes to its trigger's partition.
   */
  changeFact(
    name: string,
    value: unknown,
    at: number,
    chain?: number,
    partition?: number,
  ): Promise<FactChange>;
}

/** What `changeFact` did. */
export interface FactChange {
  changed: boolean;
  /** The `reflex.fact.changed` event, when the value changed. */
  event?: AppendResult;
}
