/**
 * EventBridge event patterns: parsing and validation, value matching and explanations. (The reference
 * matcher, reference-matcher.ts, is the tests' oracle: only tests import it.)
 */
export {
  type ArrayPosition,
  type EventField,
  type EventFields,
  flattenEvent,
  valuesAt,
} from './event-fields.js';
export {
  createPatternExplainer,
  explainLimits,
  explainPattern,
  type PatternExplainer,
  type PatternExplanation,
  type PatternMismatch,
  type PatternMismatchUnexplained,
} from './explain.js';
export { type Cidr, inCidr, parseCidr, parseIpAddress } from './ip-address.js';
export { describeMatcher, describeMatchers, matchValue } from './match-value.js';
export type { Matcher } from './matcher.js';
export {
  type FieldCondition,
  type JsonScalar,
  type NumericBound,
  type OrCondition,
  type Pattern,
  type PatternCondition,
  type PatternPath,
  parsePattern,
  patternLimits,
  type ValueMatcher,
} from './pattern.js';
export { matchWildcard, parseWildcard, type Wildcard, wildcardComplexity } from './wildcard.js';
