import { describe, expect, it } from 'vitest';
import { describeMatcherContract } from './matcher-contract.test-helpers.js';
import { parsePattern } from './pattern.js';
import { createReferenceMatcher, matchPattern } from './reference-matcher.js';

function matches(pattern: unknown, event: unknown): boolean {
  return matchPattern(parsePattern(pattern), event);
}

describe('reference matcher - values', () => {
  it('reference matcher - exact strings are case-sensitive and typed', () => {
    expect(matches({ a: ['x'] }, { a: 'x' })).toBe(true);
    expect(matches({ a: ['x'] }, { a: 'X' })).toBe(false);
    expect(matches({ a: ['1'] }, { a: 1 })).toBe(false);
    expect(matches({ a: ['*'] }, { a: 'anything' })).toBe(false);
  });

  it('reference matcher - numbers compare by value, not by text', () => {
    expect(matches({ a: [300] }, JSON.parse('{"a": 300.0}'))).toBe(true);
    expect(matches({ a: [3e2] }, { a: 300 })).toBe(true);
    expect(matches({ a: [300] }, { a: '300' })).toBe(false);
  });

  it('reference matcher - null matches only null, not absence or an empty list', () => {
    expect(matches({ a: [null] }, { a: null })).toBe(true);
    expect(matches({ a: [null] }, { a: 'null' })).toBe(false);
    expect(matches({ a: [null] }, {})).toBe(false);
    expect(matches({ a: [null] }, { a: [] })).toBe(false);
  });

  it('reference matcher - booleans match booleans', () => {
    expect(matches({ a: [false] }, { a: false })).toBe(true);
    expect(matches({ a: [false] }, { a: 'false' })).toBe(false);
  });

  it('reference matcher - prefix and suffix match strings only, with or without case', () => {
    expect(matches({ a: [{ prefix: 'us-' }] }, { a: 'us-east-1' })).toBe(true);
    expect(matches({ a: [{ prefix: 'us-' }] }, { a: 'US-east-1' })).toBe(false);
    expect(matches({ a: [{ prefix: { 'equals-ignore-case': 'us-' } }] }, { a: 'US-east-1' })).toBe(true);
    expect(matches({ a: [{ prefix: '' }] }, { a: 12 })).toBe(false);
    expect(matches({ a: [{ suffix: '.png' }] }, { a: 'x.png' })).toBe(true);
    expect(matches({ a: [{ suffix: { 'equals-ignore-case': '.png' } }] }, { a: 'x.PNG' })).toBe(true);
    expect(matches({ a: [{ suffix: '.png' }] }, { a: 'x.png.bak' })).toBe(false);
  });

  it('reference matcher - equals-ignore-case compares whole strings in any case', () => {
    expect(matches({ a: [{ 'equals-ignore-case': 'alice' }] }, { a: 'ALICE' })).toBe(true);
    expect(matches({ a: [{ 'equals-ignore-case': 'alice' }] }, { a: 'alice2' })).toBe(false);
  });

  it('reference matcher - wildcard stars match any run of characters, escapes match literally', () => {
    expect(matches({ a: [{ wildcard: 'arn:*:bus/*' }] }, { a: 'arn:aws:x:bus/main' })).toBe(true);
    expect(matches({ a: [{ wildcard: 'arn:*:bus/*' }] }, { a: 'arn:aws:x:queue/main' })).toBe(false);
    expect(matches({ a: [{ wildcard: 'a*' }] }, { a: 'a' })).toBe(true);
    expect(matches({ a: [{ wildcard: '\\*' }] }, { a: '*' })).toBe(true);
    expect(matches({ a: [{ wildcard: '\\*' }] }, { a: 'x' })).toBe(false);
    expect(matches({ a: [{ wildcard: '' }] }, { a: '' })).toBe(true);
    expect(matches({ a: [{ wildcard: '*' }] }, { a: 5 })).toBe(false);
  });

  it('reference matcher - numeric matches numbers within the bounds only', () => {
    const range = { n: [{ numeric: ['>', 0, '<=', 5] }] };
    expect(matches(range, { n: 5 })).toBe(true);
    expect(matches(range, { n: 0 })).toBe(false);
    expect(matches(range, { n: 0.5 })).toBe(true);
    expect(matches(range, { n: '3' })).toBe(false);
    expect(matches({ n: [{ numeric: ['>=', 10] }] }, { n: 10 })).toBe(true);
    expect(matches({ n: [{ numeric: ['<', 10] }] }, { n: 10 })).toBe(false);
    expect(matches({ n: [{ numeric: ['=', 301.8] }] }, { n: 301.8 })).toBe(true);
  });

  it('reference matcher - cidr matches IPv4 and IPv6 addresses inside the block', () => {
    expect(matches({ ip: [{ cidr: '10.0.0.0/24' }] }, { ip: '10.0.0.255' })).toBe(true);
    expect(matches({ ip: [{ cidr: '10.0.0.0/24' }] }, { ip: '10.0.1.0' })).toBe(false);
    expect(matches({ ip: [{ cidr: '10.0.0.0/24' }] }, { ip: '10.0.0.256' })).toBe(false);
    expect(matches({ ip: [{ cidr: '10.0.0.7/24' }] }, { ip: '10.0.0.1' })).toBe(true);
    expect(matches({ ip: [{ cidr: '0.0.0.0/0' }] }, { ip: '8.8.8.8' })).toBe(true);
    expect(matches({ ip: [{ cidr: '2001:db8::/32' }] }, { ip: '2001:0DB8:ffff::1' })).toBe(true);
    expect(matches({ ip: [{ cidr: '2001:db8::/32' }] }, { ip: '2001:db9::1' })).toBe(false);
    expect(matches({ ip: [{ cidr: '::/0' }] }, { ip: '10.0.0.1' })).toBe(false);
  });

  it('reference matcher - anything-but excludes values of its own type and lets everything else through', () => {
    expect(matches({ s: [{ 'anything-but': ['a', 'b'] }] }, { s: 'c' })).toBe(true);
    expect(matches({ s: [{ 'anything-but': ['a', 'b'] }] }, { s: 'b' })).toBe(false);
    expect(matches({ s: [{ 'anything-but': 'a' }] }, { s: null })).toBe(true);
    expect(matches({ s: [{ 'anything-but': 'a' }] }, { s: 5 })).toBe(true);
    expect(matches({ s: [{ 'anything-but': [100, 200] }] }, JSON.parse('{"s": 200.0}'))).toBe(false);
    expect(matches({ s: [{ 'anything-but': 'a' }] }, {})).toBe(false);
  });

  it('reference matcher - anything-but prefix, suffix, ignore-case and wildcard exclude matching strings only', () => {
    expect(matches({ s: [{ 'anything-but': { prefix: 'init' } }] }, { s: 'initial' })).toBe(false);
    expect(matches({ s: [{ 'anything-but': { prefix: 'init' } }] }, { s: 'post-init' })).toBe(true);
    expect(matches({ s: [{ 'anything-but': { prefix: 'init' } }] }, { s: 12 })).toBe(true);
    expect(matches({ s: [{ 'anything-but': { suffix: ['.txt', '.md'] } }] }, { s: 'a.md' })).toBe(false);
    expect(matches({ s: [{ 'anything-but': { 'equals-ignore-case': 'stopped' } }] }, { s: 'STOPPED' })).toBe(
      false,
    );
    expect(matches({ s: [{ 'anything-but': { 'equals-ignore-case': 'stopped' } }] }, { s: null })).toBe(true);
    expect(matches({ s: [{ 'anything-but': { wildcard: '*/lib/*' } }] }, { s: 'src/lib/x' })).toBe(false);
    expect(matches({ s: [{ 'anything-but': { wildcard: '*/lib/*' } }] }, { s: 'src/bin/x' })).toBe(true);
  });

  it('reference matcher - exists looks at values, not at objects', () => {
    expect(matches({ a: [{ exists: true }] }, { a: null })).toBe(true);
    expect(matches({ a: [{ exists: true }] }, { a: { b: 1 } })).toBe(false);
    expect(matches({ a: [{ exists: false }] }, { a: { b: 1 } })).toBe(true);
    expect(matches({ a: [{ exists: false }] }, { b: 1 })).toBe(true);
    expect(matches({ a: [{ exists: false }] }, { a: 0 })).toBe(false);
    expect(matches({ a: [{ exists: true }] }, { a: [] })).toBe(false);
  });

  it('reference matcher - a list matches when any of its entries does', () => {
    const pattern = { s: [{ 'anything-but': ['roses'] }, { exists: false }] };
    expect(matches(pattern, { s: 'tulips' })).toBe(true);
    expect(matches(pattern, {})).toBe(true);
    expect(matches(pattern, { s: 'roses' })).toBe(false);
  });
});

describe('reference matcher - structure', () => {
  it('reference matcher - all fields must match', () => {
    const pattern = { source: ['shop'], detail: { state: ['paid'] } };
    expect(matches(pattern, { source: 'shop', detail: { state: 'paid', extra: 1 } })).toBe(true);
    expect(matches(pattern, { source: 'shop', detail: { state: 'open' } })).toBe(false);
    expect(matches(pattern, { source: 'shop' })).toBe(false);
  });

  it('reference matcher - dotted keys in patterns and events name the same field as nesting', () => {
    expect(matches({ d: { 'a.b': ['x'] } }, { d: { a: { b: 'x' } } })).toBe(true);
    expect(matches({ d: { a: { b: ['x'] } } }, { d: { 'a.b': 'x' } })).toBe(true);
    expect(matches({ d: { a: { b: ['x'] } } }, { d: { 'a.b': { b: 'x' } } })).toBe(false);
  });

  it('reference matcher - keys are case-sensitive', () => {
    expect(matches({ KEY: ['v'] }, { key: 'v' })).toBe(false);
  });

  it('reference matcher - an event array matches when any element does', () => {
    expect(matches({ tags: ['admin'] }, { tags: ['user', 'admin'] })).toBe(true);
    expect(matches({ tags: [{ prefix: 'ad' }] }, { tags: [['x'], ['admin']] })).toBe(true);
    expect(matches({ tags: ['root'] }, { tags: ['user', 'admin'] })).toBe(false);
  });

  it('reference matcher - fields under an array of objects must match inside one element', () => {
    const pattern = { users: { name: ['alice'], role: ['admin'] } };
    expect(matches(pattern, { users: [{ name: 'alice', role: 'admin' }] })).toBe(true);
    expect(
      matches(pattern, {
        users: [
          { name: 'alice', role: 'user' },
          { name: 'bob', role: 'admin' },
        ],
      }),
    ).toBe(false);
    expect(matches(pattern, { users: [{ name: 'bob' }, { name: 'alice', role: 'admin' }] })).toBe(true);
  });

  it('reference matcher - array consistency holds at every level of nesting', () => {
    const pattern = { u: { t: { k: ['color'], v: ['blue'] } } };
    expect(matches(pattern, { u: [{ t: [{ k: 'color', v: 'blue' }] }] })).toBe(true);
    expect(matches(pattern, { u: [{ t: [{ k: 'color' }, { v: 'blue' }] }] })).toBe(false);
    expect(matches(pattern, { u: [{ t: [{ k: 'color' }] }, { t: [{ v: 'blue' }] }] })).toBe(false);
    // Fields in different arrays do not constrain each other.
    expect(
      matches({ a: { x: ['1'] }, b: { y: ['2'] } }, { a: [{ x: '1' }], b: [{ y: '0' }, { y: '2' }] }),
    ).toBe(true);
  });

  it('reference matcher - exists false inside an array of objects means "an element without it"', () => {
    const pattern = { d: { b: [{ exists: false }], a: [{ exists: true }] } };
    expect(matches(pattern, { d: [{ a: 1, b: 2 }] })).toBe(false);
    expect(matches(pattern, { d: [{ a: 1, b: 2 }, { a: 3 }] })).toBe(true);
    expect(matches(pattern, { d: [{ b: 2 }, { a: 3 }] })).toBe(true);
  });

  it('reference matcher - $or matches when any alternative does', () => {
    const pattern = { source: ['cw'], $or: [{ metric: ['CPU'] }, { namespace: ['EC2'], scope: ['svc'] }] };
    expect(matches(pattern, { source: 'cw', metric: 'CPU' })).toBe(true);
    expect(matches(pattern, { source: 'cw', namespace: 'EC2', scope: 'svc' })).toBe(true);
    expect(matches(pattern, { source: 'cw', namespace: 'EC2' })).toBe(false);
    expect(matches(pattern, { source: 'other', metric: 'CPU' })).toBe(false);
  });

  it('reference matcher - nested and parallel $or combine', () => {
    const pattern = {
      $or: [{ a: ['1'] }, { b: ['2'], $or: [{ c: ['3'] }, { d: ['4'] }] }],
      detail: { $or: [{ e: ['5'] }, { f: ['6'] }] },
    };
    expect(matches(pattern, { a: '1', detail: { f: '6' } })).toBe(true);
    expect(matches(pattern, { b: '2', d: '4', detail: { e: '5' } })).toBe(true);
    expect(matches(pattern, { b: '2', detail: { e: '5' } })).toBe(false);
    expect(matches(pattern, { a: '1' })).toBe(false);
  });

  it('reference matcher - $or keeps array consistency with the other fields', () => {
    const pattern = { d: { name: ['x'], $or: [{ a: ['1'] }, { b: ['2'] }] } };
    expect(matches(pattern, { d: [{ name: 'x', b: '2' }] })).toBe(true);
    expect(matches(pattern, { d: [{ name: 'x' }, { a: '1' }] })).toBe(false);
  });

  it('reference matcher - events that are not objects have no fields', () => {
    expect(matches({ a: [{ exists: true }] }, 'text')).toBe(false);
    expect(matches({ a: [{ exists: false }] }, null)).toBe(true);
    expect(matches({ a: ['x'] }, [{ a: 'x' }])).toBe(false);
  });
});

describeMatcherContract('reference matcher', createReferenceMatcher);
