import { inCidr, parseIpAddress } from './ip-address.js';
import type { JsonScalar, NumericBound, ValueMatcher } from './pattern.js';
import { matchWildcard } from './wildcard.js';

/**
 * Case folding for the `equals-ignore-case` family. JavaScript's default (locale-independent) lower-casing,
 * so `"EventB"` matches `"eventb"`; characters whose case mapping changes length (`ß`, `İ`) compare as
 * their lower-case forms.
 */
function fold(text: string): string {
  return text.toLowerCase();
}

function withinBounds(
  value: number,
  lower: NumericBound | undefined,
  upper: NumericBound | undefined,
): boolean {
  if (lower !== undefined && (lower.inclusive ? value < lower.value : value <= lower.value)) return false;
  if (upper !== undefined && (upper.inclusive ? value > upper.value : value >= upper.value)) return false;
  return true;
}

/**
 * Whether one value of an event field satisfies one matcher. `exists` answers for a value that is there:
 * true for `exists: true`, false for `exists: false` (absence is decided by the caller, who sees the
 * whole event).
 */
export function matchValue(matcher: ValueMatcher, value: JsonScalar): boolean {
  switch (matcher.type) {
    case 'exact':
      return value === matcher.value;
    case 'prefix':
      return (
        typeof value === 'string' &&
        (matcher.ignoreCase ? fold(value).startsWith(fold(matcher.value)) : value.startsWith(matcher.value))
      );
    case 'suffix':
      return (
        typeof value === 'string' &&
        (matcher.ignoreCase ? fold(value).endsWith(fold(matcher.value)) : value.endsWith(matcher.value))
      );
    case 'equals-ignore-case':
      return typeof value === 'string' && fold(value) === fold(matcher.value);
    case 'wildcard':
      return typeof value === 'string' && matchWildcard(matcher.wildcard, value);
    case 'numeric':
      return typeof value === 'number' && withinBounds(value, matcher.lower, matcher.upper);
    case 'cidr': {
      if (typeof value !== 'string') return false;
      const address = parseIpAddress(value);
      return address !== undefined && inCidr(matcher.cidr, address);
    }
    case 'exists':
      return matcher.value;
    case 'anything-but':
      if (typeof value === 'string') return !matcher.strings.includes(value);
      if (typeof value === 'number') return !matcher.numbers.includes(value);
      return true;
    case 'anything-but-prefix':
      return typeof value !== 'string' || !matcher.values.some((prefix) => value.startsWith(prefix));
    case 'anything-but-suffix':
      return typeof value !== 'string' || !matcher.values.some((suffix) => value.endsWith(suffix));
    case 'anything-but-equals-ignore-case':
      return typeof value !== 'string' || !matcher.values.some((text) => fold(text) === fold(value));
    case 'anything-but-wildcard':
      return (
        typeof value !== 'string' || !matcher.wildcards.some((wildcard) => matchWildcard(wildcard, value))
      );
  }
}

function quoted(values: readonly unknown[]): string {
  return values.length === 1
    ? JSON.stringify(values[0])
    : `one of [${values.map((v) => JSON.stringify(v)).join(', ')}]`;
}

/**
 * Says in words what a matcher accepts, for explanations: `prefix "us-"`, `a number > 0 and <= 5`,
 * `anything but one of ["a", "b"]`.
 */
export function describeMatcher(matcher: ValueMatcher): string {
  switch (matcher.type) {
    case 'exact':
      return JSON.stringify(matcher.value);
    case 'prefix':
    case 'suffix':
      return `${matcher.type} ${JSON.stringify(matcher.value)}${matcher.ignoreCase ? ' in any case' : ''}`;
    case 'equals-ignore-case':
      return `${JSON.stringify(matcher.value)} in any case`;
    case 'wildcard':
      return `wildcard ${JSON.stringify(matcher.wildcard.source)}`;
    case 'numeric': {
      const { lower, upper } = matcher;
      if (lower !== undefined && upper !== undefined && lower.value === upper.value)
        return `a number = ${lower.value}`;
      const parts: string[] = [];
      if (lower !== undefined) parts.push(`${lower.inclusive ? '>=' : '>'} ${lower.value}`);
      if (upper !== undefined) parts.push(`${upper.inclusive ? '<=' : '<'} ${upper.value}`);
      return `a number ${parts.join(' and ')}`;
    }
    case 'cidr':
      return `an IP address in ${matcher.cidr.source}`;
    case 'exists':
      return matcher.value ? 'present' : 'absent';
    case 'anything-but':
      return `anything but ${quoted([...matcher.strings, ...matcher.numbers])}`;
    case 'anything-but-prefix':
      return `anything but prefix ${quoted(matcher.values)}`;
    case 'anything-but-suffix':
      return `anything but suffix ${quoted(matcher.values)}`;
    case 'anything-but-equals-ignore-case':
      return `anything but ${quoted(matcher.values)} in any case`;
    case 'anything-but-wildcard':
      return `anything but wildcard ${quoted(matcher.wildcards.map((w) => w.source))}`;
  }
}

/**
 * Says what a field's whole list accepts: `one of ["critical", "high"]`, or the one matcher's own words
 * when the list holds a single operator.
 */
export function describeMatchers(matchers: readonly ValueMatcher[]): string {
  const only = matchers[0];
  if (matchers.length === 1 && only !== undefined && only.type !== 'exact') return describeMatcher(only);
  return `one of [${matchers.map(describeMatcher).join(', ')}]`;
}
