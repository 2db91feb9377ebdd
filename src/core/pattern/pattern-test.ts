import { ReflexError } from '../errors.js';
import { checkDepth, type EventLimits } from '../event.js';
import { expandPattern } from './automaton/conjunctions.js';
import { createCompiledMatcher } from './compiled-matcher.js';
import { readFieldValues } from './event-fields.js';
import { parsePattern } from './pattern.js';

/** Limits of testing one pattern against one event (`POST /api/v1/patterns/test`, `reflex match`). */
export const patternTestLimits = Object.freeze({
  /**
   * Work allowed for one test: for each `$or` alternative of the pattern, one unit per field it tests and
   * per value the event holds at those fields. It bounds the time of a test, which both inputs choose.
   */
  maxWork: 1_000_000,
});

/**
 * Whether a pattern, given as written (JSON), matches an event, decided as dispatch decides it: by the
 * compiled matcher. The event may be any JSON value; it is not checked as a CloudEvent.
 *
 * Throws REFLEX_ERR_PATTERN_INVALID or REFLEX_ERR_PATTERN_TOO_COMPLEX for the pattern,
 * REFLEX_ERR_EVENT_TOO_DEEP for an event nested deeper than `limits.maxDepth`, and
 * REFLEX_ERR_PATTERN_TEST_TOO_LARGE when the two together need more work than
 * {@link patternTestLimits}`.maxWork`.
 *
 * @example
 * testPattern({ type: ['order.created'] }, { type: 'order.created' }, { maxDepth: 32 }); // true
 */
export function testPattern(patternJson: unknown, event: unknown, limits: EventLimits): boolean {
  const pattern = parsePattern(patternJson);
  const conjunctions = expandPattern(pattern);
  checkDepth(event, limits.maxDepth);
  const paths = new Set(conjunctions.flatMap((c) => c.steps.map((step) => step.path)));
  const fields = readFieldValues(event, paths);
  let work = 0;
  for (const conjunction of conjunctions) {
    for (const step of conjunction.steps) work += 1 + (fields.get(step.path)?.length ?? 0);
  }
  if (work > patternTestLimits.maxWork) {
    throw new ReflexError(
      'REFLEX_ERR_PATTERN_TEST_TOO_LARGE',
      { work, limit: patternTestLimits.maxWork },
      { details: { work, limit: patternTestLimits.maxWork } },
    );
  }
  const matcher = createCompiledMatcher();
  matcher.add(0, pattern);
  return matcher.match(event).length > 0;
}
