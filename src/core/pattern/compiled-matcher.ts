import { Automaton } from './automaton/automaton.js';
import { expandPattern } from './automaton/conjunctions.js';
import { EventValues, FieldPaths, type PathState } from './automaton/event-values.js';
import { readJson } from './automaton/json-scanner.js';
import { compileObjectReader, type ObjectReader } from './automaton/object-reader.js';
import type { Matcher } from './matcher.js';
import type { Pattern } from './pattern.js';

export { compiledMatcherLimits } from './automaton/conjunctions.js';

/**
 * Throws REFLEX_ERR_PATTERN_TOO_COMPLEX when the compiled matcher would refuse `pattern` (see `add`), so
 * a rulebook can be refused when it is loaded rather than when it takes effect.
 */
export function checkCompilable(pattern: Pattern): void {
  expandPattern(pattern);
}

/** A {@link Matcher} that also matches events given as JSON text. */
export interface CompiledMatcher extends Matcher {
  /**
   * The ids of the patterns that match the event written as JSON `text`, ascending; the same as
   * `match(JSON.parse(text))`, but only the fields that patterns use are read, and the rest is skipped
   * without being built.
   *
   * Throws REFLEX_ERR_EVENT_INVALID_JSON when `text` is not JSON.
   */
  matchJson(text: string): number[];
  /** How many automaton states and distinct field names the patterns compile to (for monitoring). */
  readonly stats: { readonly states: number; readonly fields: number };
}

/**
 * Creates the compiled matcher: all patterns merged into one automaton, so matching costs what the
 * event leads to, not the number of patterns (see automaton/automaton.ts). It agrees with the reference
 * matcher on every pattern and event.
 *
 * `add` throws REFLEX_ERR_PATTERN_TOO_COMPLEX (leaving the matcher unchanged) when a pattern's `$or`
 * lists expand to more than `compiledMatcherLimits.maxAlternatives` alternatives, or its wildcards on
 * one field are too complex together; `details.path` is the JSON path inside the pattern, and the
 * caller, who knows the rule, can name it by re-throwing with the `rule` parameter set.
 *
 * @example
 * const matcher = createCompiledMatcher();
 * matcher.add(0, parsePattern({ type: ['order.created'], data: { total: [{ numeric: ['>', 100] }] } }));
 * matcher.add(1, parsePattern({ type: [{ prefix: 'order.' }] }));
 * matcher.match({ type: 'order.created', data: { total: 250 } }); // [0, 1]
 * matcher.matchJson('{"type": "order.paid"}'); // [1]
 */
export function createCompiledMatcher(): CompiledMatcher {
  const paths = new FieldPaths();
  const automaton = new Automaton(paths);
  const values = new EventValues();
  // The reader of parsed events, compiled again when the set of field names in use changes.
  let readerRoot: PathState | undefined;
  let reader: ObjectReader | undefined;

  return {
    add(id, pattern) {
      if (!Number.isSafeInteger(id) || id < 0) {
        throw new RangeError(`a pattern id must be a non-negative integer, got ${id}`);
      }
      automaton.add(id, pattern);
    },
    remove(id) {
      automaton.remove(id);
    },
    match(event) {
      if (automaton.size === 0) return [];
      const root = paths.root();
      if (root !== readerRoot) {
        reader = compileObjectReader(root);
        readerRoot = root;
      }
      values.begin(paths.capacity);
      if (event !== null && typeof event === 'object' && !Array.isArray(event)) reader!(event, values);
      values.finish();
      return automaton.match(values);
    },
    matchJson(text) {
      const root = paths.root();
      values.begin(paths.capacity);
      // Read even with no patterns, so invalid JSON is refused whatever the matcher holds.
      readJson(text, root, values);
      return automaton.size === 0 ? [] : automaton.match(values);
    },
    get size() {
      return automaton.size;
    },
    get stats() {
      return { states: automaton.stateCount, fields: paths.size };
    },
  };
}
