import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseIpAddress } from '../ip-address.js';
import { matchValue } from '../match-value.js';
import { type JsonScalar, parsePattern, type ValueMatcher } from '../pattern.js';
import { createValueIndex, ipv4Number } from './value-index.js';

function matchersOf(list: unknown[]): readonly ValueMatcher[] {
  const condition = parsePattern({ f: list }).conditions[0]!;
  if (condition.type !== 'field') throw new Error('expected a field');
  return condition.matchers;
}

function found(
  index: { collect(v: JsonScalar, out: number[], at: number): number },
  value: JsonScalar,
): number[] {
  const out: number[] = [];
  out.length = index.collect(value, out, 0);
  return [...new Set(out)].sort((a, b) => a - b);
}

const operators: unknown[] = [
  'x',
  'X',
  '',
  1,
  -0,
  2.5,
  true,
  false,
  null,
  { prefix: 'us-' },
  { prefix: { 'equals-ignore-case': 'US-' } },
  { prefix: '' },
  { suffix: '.png' },
  { suffix: { 'equals-ignore-case': '.PNG' } },
  { 'equals-ignore-case': 'straße' },
  { 'equals-ignore-case': 'İ' },
  { 'equals-ignore-case': 'Σ' },
  { wildcard: '*-*' },
  { wildcard: 'x*' },
  { numeric: ['>', 0, '<=', 2.5] },
  { numeric: ['=', 1] },
  { numeric: ['<', -0] },
  { cidr: '10.0.0.0/8' },
  { cidr: '2001:db8::/32' },
  { cidr: '0.0.0.0/0' },
  { exists: true },
  { exists: false },
  { 'anything-but': 'x' },
  { 'anything-but': [1, 2.5] },
  { 'anything-but': { prefix: 'us-' } },
  { 'anything-but': { suffix: ['.png', 'x'] } },
  { 'anything-but': { 'equals-ignore-case': ['X', 'ǅ'] } },
  { 'anything-but': { wildcard: '*-*' } },
];
const probes: JsonScalar[] = [
  'x',
  'X',
  '',
  'us-east-1',
  'US-EAST-1',
  'a.png',
  'a.PNG',
  'STRASSE',
  'straße',
  'i̇',
  'İ',
  'σ',
  'ς',
  'ǆ',
  'ǅ',
  'a-b',
  '10.1.2.3',
  '2001:DB8::1',
  '192.168.0.1',
  '10.0.0.256',
  0,
  -0,
  1,
  1.0,
  2.5,
  3,
  -1,
  true,
  false,
  null,
];

describe('value index', () => {
  it('value index - every operator accepts exactly what matchValue accepts', () => {
    const matchers = operators.flatMap((o) => matchersOf([o]));
    const index = createValueIndex<number>();
    matchers.forEach((m, i) => {
      index.add(m, i);
    });
    for (const value of probes) {
      const expected = matchers.flatMap((m, i) =>
        (m.type !== 'exists' || m.value) && matchValue(m, value) ? [i] : [],
      );
      expect(found(index, value), JSON.stringify(value)).toEqual(expected);
    }
  });

  it('value index - removal takes out exactly one matcher, for random sets and orders', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...operators), { minLength: 1, maxLength: 12 }),
        fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
        (chosen, keep) => {
          const matchers = chosen.flatMap((o) => matchersOf([o]));
          const index = createValueIndex<number>();
          matchers.forEach((m, i) => {
            index.add(m, i);
          });
          matchers.forEach((m, i) => {
            if (!keep[i]) index.remove(m, i);
          });
          for (const value of probes) {
            const expected = matchers.flatMap((m, i) =>
              keep[i] && (m.type !== 'exists' || m.value) && matchValue(m, value) ? [i] : [],
            );
            expect(found(index, value)).toEqual(expected);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('value index - one payload under a value is stored without a list, several with one', () => {
    const index = createValueIndex<number>();
    const [x] = matchersOf(['x']);
    index.add(x!, 1);
    expect(index.strings?.get('x')).toBe(1);
    index.add(x!, 2);
    expect(index.strings?.get('x')).toEqual([1, 2]);
    index.remove(x!, 1);
    expect(index.strings?.get('x')).toBe(2);
    index.remove(x!, 2);
    expect(index.strings?.size).toBe(0);
    expect(index.size).toBe(0);
  });

  it('value index - reads IPv4 addresses exactly as parseIpAddress does', () => {
    const text = fc.string({
      unit: fc.constantFrom('1', '0', '9', '25', '255', '256', '.', '..', ' ', 'a', ':'),
      maxLength: 9,
    });
    fc.assert(
      fc.property(text, (t) => {
        const bytes = t.includes(':') ? undefined : parseIpAddress(t);
        const expected =
          bytes === undefined ? -1 : ((bytes[0]! * 256 + bytes[1]!) * 256 + bytes[2]!) * 256 + bytes[3]!;
        expect(ipv4Number(t)).toBe(expected);
      }),
      { numRuns: 3000 },
    );
  });
});
