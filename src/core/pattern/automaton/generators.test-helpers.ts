/**
 * fast-check generators shared by the compiled matcher's differential tests: patterns over a small
 * vocabulary of fields and values (so they overlap), JSON texts with the notations and shapes that trip
 * matchers up, and events derived from patterns so that matches happen often.
 */
import fc from 'fast-check';
import {
  type FieldCondition,
  type Pattern,
  type PatternCondition,
  parsePattern,
  type ValueMatcher,
} from '../pattern.js';
import { expandPattern } from './conjunctions.js';

/** A JSON value kept as the text it is written with, so numbers keep their notation. */
export type JsonText =
  | { readonly t: 'raw'; readonly text: string }
  | { readonly t: 'array'; readonly items: readonly JsonText[] }
  | { readonly t: 'object'; readonly entries: ReadonlyArray<readonly [string, JsonText]> };

export function render(value: JsonText, spaced = false): string {
  const gap = spaced ? ' ' : '';
  switch (value.t) {
    case 'raw':
      return value.text;
    case 'array':
      return `[${gap}${value.items.map((item) => render(item, spaced)).join(`,${gap}`)}${gap}]`;
    case 'object':
      return `{${gap}${value.entries
        .map(([key, item]) => `${JSON.stringify(key)}${gap}:${gap}${render(item, spaced)}`)
        .join(`,${gap}`)}${gap}}`;
  }
}

const raw = (text: string): JsonText => ({ t: 'raw', text });

export const keys = ['a', 'b', 'c', 'd', 'a.b', 'constructor', '__proto__', 'é'] as const;
const patternKeys = ['a', 'b', 'c', 'd', 'a.b', 'constructor', '__proto__', 'é'] as const;

export const strings = [
  'x',
  'y',
  'X',
  'xy',
  'yx',
  'x*y',
  '',
  'us-east-1',
  'US-EAST-1',
  'us-west-2',
  'arn:aws:bus/main',
  '10.0.0.1',
  '10.1.2.3',
  '192.168.0.1',
  '2001:db8::1',
  '2001:0DB8:0:0:0:0:0:2',
  'straße',
  'STRASSE',
  'İstanbul',
  'i̇stanbul',
  'ǅ',
  'ǆ',
  'Σσς',
  '\u00e9',
  'e\u0301',
  '\ud83d\ude00',
] as const;

/** Number texts, many writing the same value differently. */
export const numberTexts = [
  '0',
  '-0',
  '0.0',
  '1',
  '1.0',
  '1e0',
  '10E-1',
  '0.1e1',
  '2.5',
  '-3',
  '-3.0',
  '300',
  '300.0',
  '3e2',
  '5000000000',
  '5e9',
  '-5e9',
  '1e-7',
  '0.0000001',
  '123456789012345678',
  '1e300',
  '1e400',
  '-1e400',
] as const;

const literalTexts = ['true', 'false', 'null'] as const;

export const scalarText: fc.Arbitrary<JsonText> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...strings).map((s) => raw(JSON.stringify(s))) },
  { weight: 1, arbitrary: fc.string({ maxLength: 4 }).map((s) => raw(JSON.stringify(s))) },
  { weight: 3, arbitrary: fc.constantFrom(...numberTexts).map(raw) },
  { weight: 2, arbitrary: fc.constantFrom(...literalTexts).map(raw) },
);

/** Random JSON values over the shared vocabulary, nested, with arrays of scalars and of objects. */
export const jsonText: fc.Arbitrary<JsonText> = fc.letrec<{ value: JsonText }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { weight: 4, arbitrary: scalarText },
    {
      weight: 2,
      arbitrary: fc.array(tie('value'), { maxLength: 3 }).map((items): JsonText => ({ t: 'array', items })),
    },
    {
      weight: 3,
      arbitrary: fc
        .array(fc.tuple(fc.constantFrom(...keys), tie('value')), { maxLength: 4 })
        .map((entries): JsonText => ({ t: 'object', entries })),
    },
  ),
})).value;

export const eventText: fc.Arbitrary<JsonText> = fc
  .array(fc.tuple(fc.constantFrom(...keys), jsonText), { maxLength: 5 })
  .map((entries): JsonText => ({ t: 'object', entries }));

// ---- patterns ----

const patternStrings = [
  'x',
  'y',
  'X',
  'xy',
  'us-',
  'US-',
  'east',
  '-1',
  '',
  'ß',
  'SS',
  'i̇',
  'İ',
  'σ',
  'ǅ',
  'é',
  'arn:',
];
const wildcards = [
  '*',
  'x*',
  '*y',
  'x*y',
  '*x*',
  'us-*-1',
  '*-*',
  '\\*',
  'arn:*:bus/*',
  'x\\*y',
  '',
  '*ß*',
  'İ*',
];
const numbers = [0, -0, 1, 2.5, -3, 300, 5e9, -5e9, 1e-7];
const cidrs = [
  '10.0.0.0/8',
  '10.0.0.0/24',
  '10.0.0.7/32',
  '0.0.0.0/0',
  '2001:db8::/32',
  '::/0',
  '192.168.0.0/16',
];

const someString = fc.constantFrom(...patternStrings, ...strings.slice(0, 8));
const someNumber = fc.constantFrom(...numbers);

const operatorJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: someString },
  { weight: 2, arbitrary: someNumber },
  { weight: 1, arbitrary: fc.constantFrom(true, false, null) },
  { weight: 2, arbitrary: someString.map((prefix) => ({ prefix })) },
  { weight: 1, arbitrary: someString.map((s) => ({ prefix: { 'equals-ignore-case': s } })) },
  { weight: 2, arbitrary: someString.map((suffix) => ({ suffix })) },
  { weight: 1, arbitrary: someString.map((s) => ({ suffix: { 'equals-ignore-case': s } })) },
  { weight: 2, arbitrary: someString.map((s) => ({ 'equals-ignore-case': s })) },
  { weight: 2, arbitrary: fc.constantFrom(...wildcards).map((wildcard) => ({ wildcard })) },
  {
    weight: 3,
    arbitrary: fc.oneof(
      fc
        .tuple(fc.constantFrom('<', '<=', '>', '>=', '='), someNumber)
        .map(([op, n]) => ({ numeric: [op, n] })),
      fc
        .tuple(fc.constantFrom('>', '>='), someNumber, fc.constantFrom('<', '<='), someNumber)
        .map(([a, x, b, y]) => ({ numeric: [a, Math.min(x, y), b, Math.max(x, y) + 1] })),
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom(...cidrs).map((cidr) => ({ cidr })) },
  { weight: 2, arbitrary: fc.boolean().map((exists) => ({ exists })) },
  {
    weight: 3,
    arbitrary: fc
      .oneof(
        someString,
        someNumber,
        fc.array(someString, { minLength: 1, maxLength: 3 }),
        fc.array(someNumber, { minLength: 1, maxLength: 3 }),
        fc.record({ prefix: fc.oneof(someString, fc.array(someString, { minLength: 1, maxLength: 2 })) }),
        fc.record({ suffix: fc.oneof(someString, fc.array(someString, { minLength: 1, maxLength: 2 })) }),
        fc.record({
          'equals-ignore-case': fc.oneof(someString, fc.array(someString, { minLength: 1, maxLength: 2 })),
        }),
        fc.record({
          wildcard: fc.oneof(
            fc.constantFrom(...wildcards),
            fc.array(fc.constantFrom(...wildcards), { minLength: 1, maxLength: 2 }),
          ),
        }),
      )
      .map((operand) => ({ 'anything-but': operand })),
  },
);

const fieldList = fc.array(operatorJson, { minLength: 1, maxLength: 3 });

/** A pattern object (or `$or` alternative): fields, nested objects and `$or` lists. */
const patternJson: fc.Arbitrary<Record<string, unknown>> = fc.letrec<{ object: Record<string, unknown> }>(
  (tie) => ({
    object: fc
      .array(
        fc.oneof(
          { depthSize: 'small', maxDepth: 3 },
          { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...patternKeys), fieldList) },
          { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...patternKeys), tie('object')) },
          {
            weight: 1,
            arbitrary: fc.tuple(fc.constant('$or'), fc.array(tie('object'), { minLength: 2, maxLength: 3 })),
          },
        ),
        { minLength: 1, maxLength: 3 },
      )
      .map((entries) => {
        const out: Record<string, unknown> = {};
        for (const [key, value] of entries) {
          Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
        }
        return out;
      }),
  }),
).object;

/**
 * Valid parsed patterns. Invalid ones (duplicate fields, ...) and those the compiled matcher refuses as
 * too complex are generated and dropped.
 */
export const pattern: fc.Arbitrary<Pattern> = patternJson
  .map((json) => {
    try {
      const parsed = parsePattern(json);
      expandPattern(parsed);
      return parsed;
    } catch {
      return undefined;
    }
  })
  .filter((p): p is Pattern => p !== undefined);

// ---- events derived from patterns ----

function caseVariants(text: string): fc.Arbitrary<string> {
  return fc.constantFrom(text, text.toUpperCase(), text.toLowerCase());
}

/** A value that the matcher accepts (or, for negations and absence, any value). */
function witness(matcher: ValueMatcher): fc.Arbitrary<JsonText> {
  const str = (a: fc.Arbitrary<string>): fc.Arbitrary<JsonText> => a.map((s) => raw(JSON.stringify(s)));
  const filler = fc.constantFrom('', 'x', '-', 'Y', 'east');
  switch (matcher.type) {
    case 'exact': {
      const { value } = matcher;
      if (typeof value === 'number') {
        const plain = Object.is(value, -0) ? '-0' : String(value);
        const exponent = plain.includes('e') ? plain : `${plain}e0`;
        return fc.constantFrom(plain, exponent, Number.isInteger(value) ? `${plain}.0` : plain).map(raw);
      }
      return fc.constant(raw(JSON.stringify(value)));
    }
    case 'prefix':
      return str(
        fc
          .tuple(matcher.ignoreCase ? caseVariants(matcher.value) : fc.constant(matcher.value), filler)
          .map(([a, b]) => a + b),
      );
    case 'suffix':
      return str(
        fc
          .tuple(filler, matcher.ignoreCase ? caseVariants(matcher.value) : fc.constant(matcher.value))
          .map(([a, b]) => a + b),
      );
    case 'equals-ignore-case':
      return str(caseVariants(matcher.value));
    case 'wildcard': {
      const parts = matcher.wildcard.parts;
      return str(
        fc
          .array(filler, { minLength: parts.length, maxLength: parts.length })
          .map((fill) => parts.map((part, i) => (i === 0 ? part : fill[i]! + part)).join('')),
      );
    }
    case 'numeric': {
      const { lower, upper } = matcher;
      const options: number[] = [];
      if (lower !== undefined && upper !== undefined) options.push((lower.value + upper.value) / 2);
      if (lower?.inclusive) options.push(lower.value);
      if (upper?.inclusive) options.push(upper.value);
      if (lower !== undefined && upper === undefined) options.push(lower.value + 1);
      if (upper !== undefined && lower === undefined) options.push(upper.value - 1);
      return fc.constantFrom(...options).map((n) => raw(String(n)));
    }
    case 'cidr': {
      const { bytes } = matcher.cidr;
      const text =
        bytes.length === 4
          ? bytes.join('.')
          : Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16)).join(
              ':',
            );
      return fc.constant(raw(JSON.stringify(text)));
    }
    default:
      return scalarText;
  }
}

/** Puts `value` at `path`, nesting objects per dot (or keeping dots in keys), sometimes inside arrays. */
function place(path: string, value: JsonText): fc.Arbitrary<Array<readonly [string, JsonText]>> {
  const segments = path.split('.');
  return fc
    .tuple(
      fc.array(fc.boolean(), { minLength: segments.length, maxLength: segments.length }),
      fc.array(fc.nat(3), { minLength: segments.length, maxLength: segments.length }),
      scalarText,
    )
    .map(([joins, wraps, noise]) => {
      // Group segments into keys: a `true` join glues a segment to the previous one with a dot.
      const groups: string[] = [];
      segments.forEach((segment, i) => {
        if (i > 0 && joins[i]) groups[groups.length - 1] += `.${segment}`;
        else groups.push(segment);
      });
      let inner: JsonText = value;
      for (let g = groups.length - 1; g >= 0; g--) {
        if (g < groups.length - 1 || inner.t !== 'raw') {
          // An intermediate object may sit in an array, alone or beside another element.
          const wrap = wraps[g] ?? 0;
          if (wrap === 1) inner = { t: 'array', items: [inner] };
          else if (wrap === 2) inner = { t: 'array', items: [noise, inner] };
        } else if ((wraps[g] ?? 0) === 3) {
          inner = { t: 'array', items: [inner, noise] };
        }
        if (g > 0) inner = { t: 'object', entries: [[groups[g]!, inner]] };
      }
      return [[groups[0]!, inner] as const];
    });
}

function chooseAlternative(conditions: readonly PatternCondition[]): fc.Arbitrary<FieldCondition[]> {
  return fc
    .tuple(
      ...conditions.map(
        (condition): fc.Arbitrary<FieldCondition[]> =>
          condition.type === 'field'
            ? fc.constant([condition])
            : fc.oneof(...condition.alternatives.map(chooseAlternative)),
      ),
    )
    .map((lists) => lists.flat());
}

/** An event built to satisfy one alternative of `pattern` (often exactly, sometimes nearly), plus noise. */
export function eventFor(pattern: Pattern): fc.Arbitrary<JsonText> {
  return chooseAlternative(pattern.conditions).chain((fields) =>
    fc
      .tuple(
        ...fields.map((field) =>
          fc
            .constantFrom(...field.matchers)
            .chain((matcher) =>
              matcher.type === 'exists' && !matcher.value
                ? fc.constant<Array<readonly [string, JsonText]>>([])
                : witness(matcher).chain((value) => place(field.path, value)),
            ),
        ),
        fc.array(fc.tuple(fc.constantFrom(...keys), jsonText), { maxLength: 2 }),
        fc.boolean(),
      )
      .map((parts) => {
        const noise = parts[parts.length - 2] as Array<[string, JsonText]>;
        const merge = parts[parts.length - 1] as boolean;
        const placed = (parts.slice(0, -2) as Array<Array<readonly [string, JsonText]>>).flat();
        // Merging entries with the same top key into one object keeps fields side by side (same array
        // element); leaving them apart makes duplicate keys, where the last one wins.
        const entries: Array<readonly [string, JsonText]> = merge ? mergeEntries(placed) : placed;
        return { t: 'object', entries: [...noise, ...entries] } satisfies JsonText;
      }),
  );
}

function mergeEntries(
  entries: ReadonlyArray<readonly [string, JsonText]>,
): Array<readonly [string, JsonText]> {
  const out: Array<[string, JsonText]> = [];
  for (const [key, value] of entries) {
    const at = out.findIndex(([k]) => k === key);
    const earlier = at < 0 ? undefined : out[at]![1];
    if (earlier !== undefined && earlier.t === 'object' && value.t === 'object') {
      out[at] = [key, { t: 'object', entries: mergeEntries([...earlier.entries, ...value.entries]) }];
    } else if (earlier !== undefined && earlier.t === 'array' && value.t === 'array') {
      const first = earlier.items[earlier.items.length - 1];
      const second = value.items[value.items.length - 1];
      if (first?.t === 'object' && second?.t === 'object') {
        const merged: JsonText = {
          t: 'object',
          entries: mergeEntries([...first.entries, ...second.entries]),
        };
        out[at] = [
          key,
          { t: 'array', items: [...earlier.items.slice(0, -1), ...value.items.slice(0, -1), merged] },
        ];
      } else {
        out[at] = [key, { t: 'array', items: [...earlier.items, ...value.items] }];
      }
    } else {
      out.push([key, value]);
    }
  }
  return out;
}

// ---- arrays of objects: tiny vocabularies, so that fields meet in and across elements ----

const innerKeys = ['a', 'b', 'c'] as const;
const innerValues = ['"1"', '"2"', '1', 'null'] as const;

const innerList = fc.array(
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom<unknown>('1', '2', 1) },
    { weight: 2, arbitrary: fc.constantFrom<unknown>({ exists: true }, { exists: false }) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>({ 'anything-but': '1' }, { prefix: '2' }, null) },
  ),
  { minLength: 1, maxLength: 2 },
);

const innerPattern: fc.Arbitrary<Record<string, unknown>> = fc.letrec<{ object: Record<string, unknown> }>(
  (tie) => ({
    object: fc
      .array(
        fc.oneof(
          { depthSize: 'small', maxDepth: 2 },
          { weight: 5, arbitrary: fc.tuple(fc.constantFrom<string>(...innerKeys), innerList) },
          { weight: 1, arbitrary: fc.tuple(fc.constant('n'), tie('object')) },
          {
            weight: 1,
            arbitrary: fc.tuple(fc.constant('$or'), fc.array(tie('object'), { minLength: 2, maxLength: 2 })),
          },
        ),
        { minLength: 1, maxLength: 3 },
      )
      .map((entries) => Object.fromEntries(entries)),
  }),
).object;

/** Patterns over `d.*` (and `d.n.*`) that test several fields of one array element. */
export const arrayPattern: fc.Arbitrary<Pattern> = fc
  .tuple(innerPattern, fc.option(innerList, { nil: undefined }))
  .map(([inner, top]) => {
    try {
      const parsed = parsePattern(top === undefined ? { d: inner } : { d: inner, a: top });
      expandPattern(parsed);
      return parsed;
    } catch {
      return undefined;
    }
  })
  .filter((p): p is Pattern => p !== undefined);

const innerObject: fc.Arbitrary<JsonText> = fc.letrec<{ object: JsonText; value: JsonText }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 2 },
    { weight: 4, arbitrary: fc.constantFrom(...innerValues).map(raw) },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.constantFrom(...innerValues).map(raw), { maxLength: 2 })
        .map((items): JsonText => ({ t: 'array', items })),
    },
  ),
  object: fc
    .array(
      fc.oneof(
        { depthSize: 'small', maxDepth: 2 },
        { weight: 4, arbitrary: fc.tuple(fc.constantFrom<string>(...innerKeys), tie('value')) },
        {
          weight: 1,
          arbitrary: fc.tuple(
            fc.constant('n'),
            fc.oneof(
              tie('object'),
              fc.array(tie('object'), { maxLength: 3 }).map((items): JsonText => ({ t: 'array', items })),
            ),
          ),
        },
      ),
      { maxLength: 3 },
    )
    .map((entries): JsonText => ({ t: 'object', entries })),
})).object;

/** Events whose `d` is an array (sometimes nested) of small objects over the same fields as the patterns. */
export const arrayEvent: fc.Arbitrary<JsonText> = fc
  .tuple(
    fc.array(innerObject, { minLength: 1, maxLength: 3 }),
    fc.nat(2),
    fc.option(fc.constantFrom(...innerValues).map(raw), { nil: undefined }),
  )
  .map(([elements, shape, top]): JsonText => {
    const array: JsonText = { t: 'array', items: elements };
    const d: JsonText = shape === 0 ? array : shape === 1 ? { t: 'array', items: [array] } : elements[0]!;
    const entries: Array<readonly [string, JsonText]> = [['d', d]];
    if (top !== undefined) entries.push(['a', top]);
    return { t: 'object', entries };
  });

type Entries = Array<[string, JsonText]>;

function setIn(entries: Entries, segments: readonly string[], value: JsonText, asArray: boolean): void {
  const [head, ...rest] = segments;
  if (rest.length === 0) {
    entries.push([head!, value]);
    return;
  }
  let found = entries.find(([k, v]) => k === head && (v.t === 'object' || v.t === 'array'));
  if (found === undefined) {
    const object: JsonText = { t: 'object', entries: [] };
    found = [head!, asArray ? { t: 'array', items: [object] } : object];
    entries.push(found);
  }
  const holder = found[1];
  const inner = holder.t === 'array' ? holder.items[holder.items.length - 1]! : holder;
  if (inner.t === 'object') setIn(inner.entries as Entries, rest, value, asArray);
}

/**
 * An event for an {@link arrayPattern}: the fields of one alternative, each put into one of one to three
 * elements of `d` (all in one element, so the pattern matches, or spread, so only array consistency
 * tells), plus noise from {@link arrayEvent}.
 */
export function arrayEventFor(pattern: Pattern): fc.Arbitrary<JsonText> {
  return chooseAlternative(pattern.conditions).chain((fields) =>
    fc
      .tuple(
        fc.integer({ min: 1, max: 3 }),
        fc.tuple(
          ...fields.map((field) =>
            fc.tuple(
              fc
                .constantFrom(...field.matchers)
                .chain((matcher) =>
                  matcher.type === 'exists' && !matcher.value ? fc.constant(undefined) : witness(matcher),
                ),
              fc.nat(2),
            ),
          ),
        ),
        fc.boolean(),
        fc.boolean(),
        arrayEvent,
      )
      .map(([count, placed, together, nestedAsArray, noise]): JsonText => {
        const elements: Entries[] = Array.from({ length: count }, () => []);
        const top: Entries = [];
        fields.forEach((field, i) => {
          const [value, where] = placed[i]!;
          if (value === undefined) return;
          const segments = field.path.split('.');
          if (segments[0] !== 'd') top.push([field.path, value]);
          else setIn(elements[together ? 0 : where % count]!, segments.slice(1), value, nestedAsArray);
        });
        const items = elements.map((entries): JsonText => ({ t: 'object', entries }));
        const noiseEntries = noise.t === 'object' ? noise.entries.filter(([k]) => k !== 'd') : [];
        return { t: 'object', entries: [['d', { t: 'array', items }], ...top, ...noiseEntries] };
      }),
  );
}
