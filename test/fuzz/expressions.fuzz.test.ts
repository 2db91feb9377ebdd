import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileCondition } from '../../src/core/condition.js';
import { ReflexError } from '../../src/core/errors.js';
import type { ExpressionContext } from '../../src/core/expression.js';
import { compileExpression } from '../../src/core/expression.js';
import { compileTemplate } from '../../src/core/template.js';
import {
  expectCodedRefusal,
  fuzz,
  fuzzTestTimeoutMs,
  hostileJsonText,
  hostileKeys,
  hostileString,
  mutated,
  withinTimeBoundSync,
} from './fuzz-helpers.js';

/**
 * CEL conditions, expressions and templates, as rulebooks write them and as events feed them.
 *
 * Expressions are generated from the grammar (fields of every variable, literals of every type, every
 * operator, the macros, regular expressions that backtrack in other engines, conversions) and as mutated
 * or random text; they run against events and facts whose keys and values are hostile. Invariants:
 * compiling and evaluating give a result or a coded error within the time bound, the result is plain
 * JSON (a condition's a boolean), and evaluating twice gives the same answer.
 *
 * URL templates put event values in every component of a URL: the host the rulebook wrote is the host
 * of every URL rendered, whatever the values.
 */

const key = fc.oneof(
  fc.constantFrom('a', 'b', 'n', 's', 'list', 'map'),
  fc.constantFrom(...hostileKeys.filter((k) => /^[a-z_]\w*$/i.test(k))),
);
const field = fc.oneof(
  key.map((k) => `event.data.${k}`),
  key.map((k) => `event.data[${JSON.stringify(k)}]`),
  fc.constantFrom(
    'event.type',
    'event.id',
    'event.source',
    'event.data',
    'event.time',
    'now',
    'batch',
    'events',
    'run.id',
    'steps',
  ),
  key.map((k) => `facts.${k}`),
  key.map((k) => `vars.${k}`),
  fc.constantFrom('event.data.list', 'event.data.map', 'facts.list'),
);
const literal = fc.oneof(
  fc.integer().map(String),
  fc.constantFrom(
    '9223372036854775807',
    '-9223372036854775808',
    '9223372036854775808',
    '18446744073709551615u',
    '0x7fffffffffffffff',
    '1u',
    '0u',
  ),
  fc
    .double({ noNaN: true, noDefaultInfinity: true })
    .map((d) => (Number.isInteger(d) ? `${d}.0` : String(d))),
  fc.constantFrom('1e308', '1e309', '-0.0', '.5'),
  hostileString.map((s) => JSON.stringify(s)),
  fc.constantFrom(
    '"\\u0000"',
    "'\\x41'",
    'b"\\xff"',
    'r"\\d+"',
    '"""multi\nline"""',
    'true',
    'false',
    'null',
  ),
  fc.constantFrom('[]', '{}', '[1, 2, 3]', '{"a": 1}', '["a", "b"]'),
);
const regex = fc.constantFrom(
  '^a',
  '(a+)+$',
  '(a|aa)+b',
  '(a{2,}){50}',
  '((a*)*)*b',
  '[',
  '(?i)ORDER',
  '\\p{L}+',
  '(a)\\1',
  '.*'.repeat(40),
  '^(.*a){12}$',
);
const binary = fc.constantFrom('+', '-', '*', '/', '%', '==', '!=', '<', '<=', '>', '>=', '&&', '||', 'in');

const { expression } = fc.letrec<{ expression: string }>((tie) => ({
  expression: fc.oneof(
    { depthSize: 'small', maxDepth: 4, withCrossShrink: true },
    field,
    literal,
    fc.tuple(tie('expression'), binary, tie('expression')).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(fc.constantFrom('!', '-', '!!', '--'), tie('expression')).map(([op, a]) => `${op}(${a})`),
    fc
      .tuple(tie('expression'), tie('expression'), tie('expression'))
      .map(([a, b, c]) => `${a} ? ${b} : ${c}`),
    fc
      .tuple(
        fc.constantFrom(
          'size',
          'int',
          'uint',
          'double',
          'string',
          'bytes',
          'bool',
          'timestamp',
          'duration',
          'type',
          'dyn',
        ),
        tie('expression'),
      )
      .map(([f, a]) => `${f}(${a})`),
    field.filter((f) => !f.includes('[')).map((f) => `has(${f})`),
    fc
      .tuple(
        tie('expression'),
        fc.constantFrom('startsWith', 'endsWith', 'contains', 'matches', 'lowerAscii', 'upperAscii'),
        fc.oneof(
          literal,
          regex.map((r) => JSON.stringify(r)),
        ),
      )
      .map(([a, m, b]) => (m.endsWith('Ascii') ? `${a}.${m}()` : `${a}.${m}(${b})`)),
    fc
      .tuple(
        fc.constantFrom('all', 'exists', 'exists_one', 'map', 'filter'),
        tie('expression'),
        tie('expression'),
      )
      .map(([m, list, body]) => `${list}.${m}(x, ${body.replaceAll('event.data.a', 'x')})`),
    fc.tuple(tie('expression'), tie('expression')).map(([a, b]) => `${a}[${b}]`),
    fc.tuple(tie('expression'), tie('expression')).map(([a, b]) => `[${a}, ${b}]`),
    fc.tuple(literal, tie('expression')).map(([k, v]) => `{${k}: ${v}}`),
    fc.constantFrom(
      'event.data.list.all(x, event.data.list.all(y, event.data.list.exists(z, x + y == z)))',
      '[1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, [1,2,3,4,5,6,7,8,9,10].map(c, a*b*c)))',
      '"a".repeat(10)',
      'string(event.data)',
    ),
  ),
}));

const source = fc.oneof(
  { weight: 6, arbitrary: expression },
  mutated(expression).map((b) => b.toString('latin1')),
  hostileString,
  fc.string({ maxLength: 40 }),
  fc.constantFrom(
    'a'.repeat(9000),
    `${'('.repeat(500)}1${')'.repeat(500)}`,
    `${'!'.repeat(3000)}true`,
    `${'['.repeat(300)}${']'.repeat(300)}`,
  ),
);

const parsed = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
};

/** Data as events bring it: the generated keys with numbers, strings, lists and maps, or hostile JSON. */
const data = fc.oneof(
  fc.record({
    a: fc.oneof(fc.integer(), fc.string({ maxLength: 5 }), fc.constant(null)),
    b: fc.oneof(fc.double(), fc.boolean()),
    n: fc.oneof(fc.integer(), fc.constant(2 ** 53 + 2), fc.constant(-1e308)),
    s: hostileString,
    list: fc.array(fc.integer({ min: -10, max: 10 }), { maxLength: 60 }),
    map: fc.dictionary(fc.constantFrom(...hostileKeys, 'a', 'b'), fc.integer()),
  }),
  hostileJsonText().map(parsed),
);

const context = fc.record({ data, facts: hostileJsonText({ depth: 2 }).map(parsed) }).map(
  ({ data, facts }): ExpressionContext => ({
    event: {
      specversion: '1.0',
      id: 'e-1',
      source: 'fuzz',
      type: 'com.example.order',
      time: '2026-12-06T08:00:00Z',
      data,
    },
    facts:
      facts !== null && typeof facts === 'object' && !Array.isArray(facts)
        ? (facts as Record<string, unknown>)
        : { list: [1, 2], a: facts },
    vars: { a: 'x', b: 2, n: 3, s: 'text', list: [1, 2, 3], map: { a: 1 } },
    now: Date.parse('2026-12-06T08:00:00Z'),
    batch: [{ data }, { data: null }],
    events: { first: { data } },
    steps: { fetch: { output: data } },
    run: { id: 'r-1', rule: 'fuzz' },
  }),
);

/** Whether a value is what JSON can hold: null, booleans, finite numbers, strings, arrays, plain objects. */
function isPlainJson(value: unknown): boolean {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(isPlainJson);
  if (typeof value !== 'object') return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return (proto === Object.prototype || proto === null) && Object.values(value).every(isPlainJson);
}

/** What an evaluation gave: the JSON of its value, or the code of its error. */
function outcome(work: () => unknown): string {
  try {
    const value = work();
    const json = JSON.stringify(value);
    expect(isPlainJson(value), `not plain JSON: ${json}`).toBe(true);
    return `= ${json}`;
  } catch (error) {
    return `! ${expectCodedRefusal(error, { clientError: false }).code}`;
  }
}

describe('fuzz - CEL expressions and conditions', () => {
  it(
    'fuzz - compiling and evaluating give a value or a coded error in time, plain JSON, the same twice',
    async () => {
      let evaluated = 0;
      await fuzz(
        fc.property(source, context, (text, ctx) => {
          for (const compile of [compileExpression, compileCondition]) {
            let compiled: { evaluate(ctx: ExpressionContext): unknown };
            try {
              compiled = withinTimeBoundSync(`compiling ${text.slice(0, 80)}`, () => compile(text));
            } catch (error) {
              expect(expectCodedRefusal(error).code).toBe('REFLEX_ERR_CONDITION_INVALID');
              continue;
            }
            const first = withinTimeBoundSync(`evaluating ${text.slice(0, 80)}`, () =>
              outcome(() => compiled.evaluate(ctx)),
            );
            const second = outcome(() => compiled.evaluate(ctx));
            expect(second).toBe(first);
            if (compile === compileCondition && first.startsWith('='))
              expect(['= true', '= false']).toContain(first);
            evaluated += 1;
          }
        }),
      );
      expect(evaluated, 'nothing compiled: the generator is off').toBeGreaterThan(0);
    },
    fuzzTestTimeoutMs,
  );
});

describe('fuzz - URL templates', () => {
  const host = 'api.example.com';
  const slot = fc.oneof(
    fc.constantFrom(
      '${{ event.data.s }}',
      '${{ event.data.a }}',
      '${{ event.data }}',
      '${{ event.data.list }}',
      '${{ vars.a }}',
      '${{ string(event.data.n) }}',
    ),
    fc.constantFrom('/', '?', '#', '@', ':', '.', '..', '%2e', '\\', '&', '=', 'x'),
  );
  const url = fc
    .tuple(
      fc.constantFrom('https://', 'http://', 'https:', 'https:\\\\', ' https://', ''),
      fc.constantFrom(host, `${host}:8443`, ''),
      fc.array(slot, { maxLength: 8 }),
    )
    .map(([scheme, authority, rest]) => `${scheme}${authority}${rest.join('')}`);
  const values = fc.record({
    s: fc.oneof(
      hostileString,
      fc.constantFrom(
        'evil.example',
        '@evil.example',
        '/../../admin',
        '?x=1#y',
        '%2F%2Fevil',
        '\\\\evil',
        '..',
        '.',
        'a b',
        '169.254.169.254',
        '[::1]',
      ),
    ),
    a: fc.oneof(fc.integer(), fc.constantFrom('x@evil.example/', '//evil.example')),
    n: fc.integer(),
    list: fc.array(hostileString, { maxLength: 3 }),
  });

  it(
    'fuzz - whatever the event holds, a rendered URL keeps the host the rulebook wrote, or is refused with a code',
    async () => {
      let rendered = 0;
      await fuzz(
        fc.property(url, values, (template, data) => {
          let compiled: ReturnType<typeof compileTemplate>;
          try {
            compiled = withinTimeBoundSync('compileTemplate', () =>
              compileTemplate({ url: template }, { urls: ['url'] }),
            );
          } catch (error) {
            expectCodedRefusal(error);
            return;
          }
          const ctx: ExpressionContext = {
            event: { specversion: '1.0', id: 'e', source: 's', type: 't', data },
            facts: {},
            vars: { a: 'fixed' },
            now: 0,
          };
          let result: unknown;
          try {
            result = withinTimeBoundSync('render', () => compiled.render(ctx));
          } catch (error) {
            if (!(error instanceof ReflexError)) throw error;
            expectCodedRefusal(error, { clientError: false });
            return;
          }
          const { url: out } = result as { url: string };
          let parsedUrl: URL;
          try {
            parsedUrl = new URL(out);
          } catch {
            return; // Not a URL at all: the http action refuses it before any request.
          }
          if (/^\s*https?:[/\\]*api\.example\.com(:8443)?([/?#\\]|$)/.test(template)) {
            expect(parsedUrl.hostname, `${template} with ${JSON.stringify(data)} gave ${out}`).toBe(host);
            expect(parsedUrl.username + parsedUrl.password, out).toBe('');
            rendered += 1;
          }
        }),
      );
      expect(rendered, 'no URL was rendered: the generator is off').toBeGreaterThan(0);
    },
    fuzzTestTimeoutMs,
  );
});
