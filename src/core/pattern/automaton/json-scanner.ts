import { ReflexError } from '../../errors.js';
import type { JsonScalar } from '../pattern.js';
import { ArrayContext, ArrayRecord, type EventValues, type PathState } from './event-values.js';

/**
 * Reads the used fields of an event straight from its JSON text, without building the event: keys are
 * compared in place, values of unused keys are skipped (checked, not built), and only the values of
 * fields some pattern uses become strings and numbers. The result is what {@link readObject} gives for
 * `JSON.parse(text)`: a duplicate key overrides the earlier one, numbers are read as `JSON.parse` reads
 * them (so `1.0`, `1e0` and `1` are the same number, and `1e400`, which is not finite, is no value).
 *
 * Throws REFLEX_ERR_EVENT_INVALID_JSON where `JSON.parse` would throw.
 */
export function readJson(text: string, root: PathState, values: EventValues): void {
  runTop = 0;
  // Most event texts hold no control characters (raw tabs and newlines included) and few backslashes:
  // then a string ends at the next quote, found natively, and only strings around a backslash are
  // walked character by character. Otherwise every string is walked and checked.
  clean = !controlCharacter.test(text);
  nextBackslash = clean ? text.indexOf('\\') : 0;
  let i = ws(text, 0);
  if (text.charCodeAt(i) === 123) i = readObjectText(text, i, root, null, values);
  else i = skipValue(text, i);
  i = ws(text, i);
  if (i !== text.length) fail(text, i, 'unexpected text after the JSON value');
  values.finish();
}

function fail(text: string, at: number, what: string): never {
  const found = at >= text.length ? 'the end' : JSON.stringify(text.slice(at, at + 12));
  throw new ReflexError(
    'REFLEX_ERR_EVENT_INVALID_JSON',
    { reason: `${what} at position ${at} (found ${found})` },
    { details: { position: at } },
  );
}

function ws(t: string, i: number): number {
  for (;;) {
    const c = t.charCodeAt(i);
    if (c === 32 || c === 10 || c === 13 || c === 9) i++;
    else return i;
  }
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

/** Set by {@link stringEnd}: whether the string just scanned holds a backslash escape. */
let escaped = false;
/** Whether the text being read has no character below U+0020. */
let clean = false;
/** In a clean text, the first backslash at or after the current string (-1 when none is left). */
let nextBackslash = -1;
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const controlCharacter = /[\u0000-\u001f]/;

/** The index of the closing quote of the string whose text starts at `i` (just after the opening quote). */
function stringEnd(t: string, i: number): number {
  if (clean) {
    const end = t.indexOf('"', i);
    if (end < 0) fail(t, t.length, 'unterminated string');
    if (nextBackslash < 0 || nextBackslash > end) {
      escaped = false;
      return end;
    }
    const close = checkedStringEnd(t, i);
    nextBackslash = t.indexOf('\\', close + 1);
    return close;
  }
  return checkedStringEnd(t, i);
}

/** {@link stringEnd} walking every character: checks escapes and control characters. */
function checkedStringEnd(t: string, i: number): number {
  escaped = false;
  for (;;) {
    const c = t.charCodeAt(i);
    if (c === 34) return i;
    if (c === 92) {
      escaped = true;
      const e = t.charCodeAt(i + 1);
      if (e === 117) {
        if (!(isHex(t.charCodeAt(i + 2)) && isHex(t.charCodeAt(i + 3)))) fail(t, i, 'bad \\u escape');
        if (!(isHex(t.charCodeAt(i + 4)) && isHex(t.charCodeAt(i + 5)))) fail(t, i, 'bad \\u escape');
        i += 6;
      } else if (
        e === 34 ||
        e === 92 ||
        e === 47 ||
        e === 98 ||
        e === 102 ||
        e === 110 ||
        e === 114 ||
        e === 116
      ) {
        i += 2;
      } else {
        fail(t, i, 'bad escape in a string');
      }
      continue;
    }
    // Also catches the end of the text, where charCodeAt gives NaN.
    if (!(c >= 32)) fail(t, i, c >= 0 ? 'control character in a string' : 'unterminated string');
    i++;
  }
}

const simpleEscapes: Record<number, string> = {
  34: '"',
  92: '\\',
  47: '/',
  98: '\b',
  102: '\f',
  110: '\n',
  114: '\r',
  116: '\t',
};

/** The string between `start` and `end` (a valid JSON string body), escapes resolved. */
function decode(t: string, start: number, end: number, hasEscapes: boolean): string {
  if (!hasEscapes) return t.slice(start, end);
  let out = '';
  let from = start;
  for (let i = start; i < end; i++) {
    if (t.charCodeAt(i) !== 92) continue;
    out += t.slice(from, i);
    const e = t.charCodeAt(i + 1);
    if (e === 117) {
      out += String.fromCharCode(Number.parseInt(t.slice(i + 2, i + 6), 16));
      i += 5;
    } else {
      out += simpleEscapes[e]!;
      i += 1;
    }
    from = i + 1;
  }
  return out + t.slice(from, end);
}

/**
 * Set by {@link numberEnd}: how many digits follow the decimal point when the number has at most 15
 * digits in all and no exponent (-1 otherwise). Such a number is read exactly without building a string.
 */
let fractionDigits = -1;

/** Powers of ten that doubles hold exactly. */
const powersOfTen = Array.from({ length: 16 }, (_, k) => 10 ** k);

function numberEnd(t: string, i: number): number {
  if (t.charCodeAt(i) === 45) i++;
  const digitsStart = i;
  const first = t.charCodeAt(i);
  if (first === 48) i++;
  else if (first >= 49 && first <= 57) {
    i++;
    while (isDigit(t.charCodeAt(i))) i++;
  } else fail(t, i, 'bad number');
  let digits = i - digitsStart;
  fractionDigits = 0;
  if (t.charCodeAt(i) === 46) {
    i++;
    const fractionStart = i;
    if (!isDigit(t.charCodeAt(i))) fail(t, i, 'bad number');
    while (isDigit(t.charCodeAt(i))) i++;
    fractionDigits = i - fractionStart;
    digits += fractionDigits;
  }
  const e = t.charCodeAt(i);
  if (e === 101 || e === 69) {
    fractionDigits = -1;
    i++;
    const sign = t.charCodeAt(i);
    if (sign === 43 || sign === 45) i++;
    if (!isDigit(t.charCodeAt(i))) fail(t, i, 'bad number');
    while (isDigit(t.charCodeAt(i))) i++;
  }
  if (digits > 15) fractionDigits = -1;
  return i;
}

function numberValue(t: string, start: number, end: number): number {
  if (fractionDigits < 0) return Number(t.slice(start, end));
  const negative = t.charCodeAt(start) === 45;
  let n = 0;
  for (let i = negative ? start + 1 : start; i < end; i++) {
    const c = t.charCodeAt(i);
    if (c !== 46) n = n * 10 + (c - 48);
  }
  // At most 15 digits: n and the power of ten are exact doubles, so the one division rounds correctly,
  // as JSON.parse does (Clinger's fast path).
  if (fractionDigits > 0) n /= powersOfTen[fractionDigits]!;
  // `-0` stays negative zero, as JSON.parse gives it.
  return negative ? -n : n;
}

function literalEnd(t: string, i: number): number {
  const c = t.charCodeAt(i);
  if (c === 116 && t.startsWith('true', i)) return i + 4;
  if (c === 102 && t.startsWith('false', i)) return i + 5;
  if (c === 110 && t.startsWith('null', i)) return i + 4;
  return fail(t, i, 'unexpected character');
}

/** Open containers while skipping: 1 for an object, 2 for an array. Grows as needed. */
let open = new Uint8Array(64);

/** Skips one value starting at `i` (after whitespace), checking it; returns the index after it. */
function skipValue(t: string, i: number): number {
  let depth = 0;
  for (;;) {
    // A value is expected at i.
    i = ws(t, i);
    const c = t.charCodeAt(i);
    if (c === 34) {
      i = stringEnd(t, i + 1) + 1;
    } else if (c === 123 || c === 91) {
      const close = c === 123 ? 125 : 93;
      i = ws(t, i + 1);
      if (t.charCodeAt(i) === close) {
        i++;
      } else {
        if (depth === open.length) {
          const grown = new Uint8Array(open.length * 2);
          grown.set(open);
          open = grown;
        }
        open[depth++] = c === 123 ? 1 : 2;
        if (c === 123) i = keyEnd(t, i);
        continue;
      }
    } else if (c === 45 || isDigit(c)) {
      i = numberEnd(t, i);
    } else {
      i = literalEnd(t, i);
    }
    // After a value: separators and closing brackets.
    for (;;) {
      if (depth === 0) return i;
      i = ws(t, i);
      const s = t.charCodeAt(i);
      const inObject = open[depth - 1] === 1;
      if (s === 44) {
        i = inObject ? keyEnd(t, ws(t, i + 1)) : i + 1;
        break;
      }
      if (s === (inObject ? 125 : 93)) {
        depth--;
        i++;
        continue;
      }
      fail(t, i, inObject ? 'expected , or } in an object' : 'expected , or ] in an array');
    }
  }
}

/** Skips `"key" :` at `i`; returns the index after the colon. */
function keyEnd(t: string, i: number): number {
  if (t.charCodeAt(i) !== 34) fail(t, i, 'expected a key in quotes');
  i = ws(t, stringEnd(t, i + 1) + 1);
  if (t.charCodeAt(i) !== 58) fail(t, i, 'expected : after a key');
  return i + 1;
}

function readValue(
  t: string,
  i: number,
  state: PathState,
  context: ArrayContext | null,
  values: EventValues,
): number {
  i = ws(t, i);
  const c = t.charCodeAt(i);
  if (c === 123) {
    return state.names.length === 0 ? skipValue(t, i) : readObjectText(t, i, state, context, values);
  }
  if (c === 91) return readArray(t, i, state, context, values);
  if (state.pathId < 0) return skipValue(t, i);
  let value: JsonScalar;
  let end: number;
  if (c === 34) {
    end = stringEnd(t, i + 1);
    value = decode(t, i + 1, end, escaped);
    end++;
  } else if (c === 45 || isDigit(c)) {
    end = numberEnd(t, i);
    value = numberValue(t, i, end);
    if (!Number.isFinite(value)) return end;
  } else {
    end = literalEnd(t, i);
    const first = t.charCodeAt(i);
    value = first === 116 ? true : first === 102 ? false : null;
  }
  values.record(state.pathId, value, context);
  return end;
}

function readArray(
  t: string,
  i: number,
  state: PathState,
  context: ArrayContext | null,
  values: EventValues,
): number {
  const array = new ArrayRecord();
  i = ws(t, i + 1);
  if (t.charCodeAt(i) === 93) return i + 1;
  for (let index = 0; ; index++) {
    i = readValue(t, i, state, new ArrayContext(array, index, context), values);
    i = ws(t, i);
    const c = t.charCodeAt(i);
    if (c === 44) i++;
    else if (c === 93) return i + 1;
    else fail(t, i, 'expected , or ] in an array');
  }
}

/** The child of `state` named by the key between `start` and `end`, if any. */
function childFor(t: string, start: number, end: number, state: PathState): PathState | undefined {
  if (escaped) return state.byName.get(decode(t, start, end, true));
  const candidates = state.byLength[end - start];
  if (candidates === undefined) return undefined;
  // Many names of this length (patterns on thousands of sibling fields): one string and one lookup
  // cost less than comparing with each.
  if (candidates.length > 8) return state.byName.get(t.slice(start, end));
  for (let k = 0; k < candidates.length; k++) {
    const index = candidates[k]!;
    if (t.startsWith(state.names[index]!, start)) return state.children[index];
  }
  return undefined;
}

/**
 * The used keys of the objects being read, innermost object last: the child state a key led to and the
 * records its value gave. An object's entries start where they stood when it was opened.
 */
const runChild: PathState[] = [];
const runFrom: number[] = [];
const runTo: number[] = [];
let runTop = 0;

function readObjectText(
  t: string,
  i: number,
  state: PathState,
  context: ArrayContext | null,
  values: EventValues,
): number {
  const base = runTop;
  i = ws(t, i + 1);
  if (t.charCodeAt(i) === 125) return i + 1;
  for (;;) {
    if (t.charCodeAt(i) !== 34) fail(t, i, 'expected a key in quotes');
    const start = i + 1;
    const end = stringEnd(t, start);
    const child = childFor(t, start, end, state);
    i = ws(t, end + 1);
    if (t.charCodeAt(i) !== 58) fail(t, i, 'expected : after a key');
    i++;
    if (child === undefined) {
      i = skipValue(t, i);
    } else {
      const from = values.count;
      i = readValue(t, i, child, context, values);
      // JSON.parse keeps the last of duplicate keys: forget what an earlier one gave.
      let k = base;
      while (k < runTop && runChild[k] !== child) k++;
      if (k < runTop) values.kill(runFrom[k]!, runTo[k]!);
      else runChild[runTop++] = child;
      runFrom[k] = from;
      runTo[k] = values.count;
    }
    i = ws(t, i);
    const c = t.charCodeAt(i);
    if (c === 44) i = ws(t, i + 1);
    else if (c === 125) {
      runTop = base;
      return i + 1;
    } else fail(t, i, 'expected , or } in an object');
  }
}
