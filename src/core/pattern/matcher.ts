import type { Pattern } from './pattern.js';

/**
 * Matches events against many patterns at once. Ids are rule indexes; `match` returns ascending ids.
 * Implementations: the reference matcher (every pattern on every event, the test oracle) and a compiled
 * automaton whose cost does not grow with the number of patterns.
 */
export interface Matcher {
  /** Adds a pattern under `id`, replacing any pattern already there. */
  add(id: number, pattern: Pattern): void;
  /** Removes the pattern under `id`; does nothing when there is none. */
  remove(id: number): void;
  /** The ids of the patterns that match `event`, ascending. */
  match(event: unknown): number[];
  /** How many patterns the matcher holds. */
  readonly size: number;
}
