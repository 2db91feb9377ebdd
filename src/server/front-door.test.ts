import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ReflexError } from '../core/errors.js';
import {
  checkHost,
  checkOrigin,
  checkQueryParameters,
  compileHostPolicy,
  compileServerTimeouts,
  defaultServerTimeouts,
  hostOf,
} from './front-door.js';

function codeOf(fn: () => void): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as ReflexError).code;
  }
  return undefined;
}

describe('front door', () => {
  it('front door - a loopback server answers to localhost and IP addresses, not to other names', () => {
    const policy = compileHostPolicy('127.0.0.1', [], 'build-7');
    for (const name of ['localhost', '127.0.0.1', '::1', '10.1.2.3']) expect(policy.allows(name)).toBe(true);
    for (const name of [
      'evil.example',
      'build-7',
      'localhost.evil.example',
      '127.0.0.1.nip.io',
      'x.localhost',
    ]) {
      expect(policy.allows(name)).toBe(false);
    }
  });

  it('front door - a wildcard bind adds the machine name; --allowed-hosts adds names, domains or anything', () => {
    expect(compileHostPolicy('0.0.0.0', [], 'Build-7').allows('build-7')).toBe(true);
    expect(compileHostPolicy('::', [], 'build-7').allows('build-7')).toBe(true);
    expect(compileHostPolicy('10.0.0.5', [], 'build-7').allows('build-7')).toBe(false);
    expect(compileHostPolicy('reflex.internal', []).allows('reflex.internal')).toBe(true);
    const policy = compileHostPolicy('0.0.0.0', ['reflex.example.com', '*.ops.example.com'], 'h');
    expect(policy.allows('reflex.example.com')).toBe(true);
    expect(policy.allows('a.ops.example.com')).toBe(true);
    expect(policy.allows('ops.example.com')).toBe(false);
    expect(policy.allows('evilops.example.com')).toBe(false);
    expect(policy.description).toContain('`reflex.example.com`');
    expect(compileHostPolicy('127.0.0.1', ['*']).allows('anything.example')).toBe(true);
  });

  it.each([
    ['localhost:7070', 'localhost'],
    ['LocalHost', 'localhost'],
    ['[::1]:7070', '::1'],
    ['127.0.0.1', '127.0.0.1'],
    ['example.com.', 'example.com'],
    ['evil.example:80:80', undefined],
    ['[::1', undefined],
    ['a b', undefined],
    ['host:port', undefined],
    ['', undefined],
  ])('front door - the Host %j names %j', (header, name) => {
    expect(hostOf(header)).toBe(name);
  });

  it('front door - checkHost refuses other names, a missing Host on HTTP/1.1 and a bad absolute URL', () => {
    const policy = compileHostPolicy('127.0.0.1');
    expect(codeOf(() => checkHost(policy, { host: '127.0.0.1:7070' }, '/api/v1/events', '1.1'))).toBe(
      undefined,
    );
    expect(codeOf(() => checkHost(policy, { host: 'evil.example:7070' }, '/', '1.1'))).toBe(
      'REFLEX_ERR_API_HOST_NOT_ALLOWED',
    );
    expect(codeOf(() => checkHost(policy, {}, '/', '1.1'))).toBe('REFLEX_ERR_API_MALFORMED_REQUEST');
    expect(codeOf(() => checkHost(policy, {}, '/', '1.0'))).toBe(undefined);
    expect(
      codeOf(() => checkHost(policy, { host: 'localhost' }, 'http://evil.example/api/v1/events', '1.1')),
    ).toBe('REFLEX_ERR_API_HOST_NOT_ALLOWED');
  });

  it('front door - checkOrigin lets reads and origin-less requests through and refuses other origins on writes', () => {
    const host = { host: '127.0.0.1:7070' };
    const origin = (o: string, extra: Record<string, string> = {}) => ({ ...host, origin: o, ...extra });
    expect(codeOf(() => checkOrigin('POST', host))).toBe(undefined);
    expect(codeOf(() => checkOrigin('POST', origin('http://127.0.0.1:7070')))).toBe(undefined);
    expect(codeOf(() => checkOrigin('GET', origin('https://evil.example')))).toBe(undefined);
    expect(codeOf(() => checkOrigin('POST', { host: 'localhost', origin: 'http://localhost:80' }))).toBe(
      undefined,
    );
    for (const bad of [
      'https://evil.example',
      'http://127.0.0.1:7071',
      'http://localhost:7070',
      'null',
      'x',
    ]) {
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
        expect(codeOf(() => checkOrigin(method, origin(bad)))).toBe('REFLEX_ERR_API_ORIGIN_NOT_ALLOWED');
      }
    }
    expect(codeOf(() => checkOrigin('POST', { ...host, 'sec-fetch-site': 'cross-site' }))).toBe(
      'REFLEX_ERR_API_ORIGIN_NOT_ALLOWED',
    );
    expect(codeOf(() => checkOrigin('POST', { ...host, 'sec-fetch-site': 'same-origin' }))).toBe(undefined);
  });

  it('front door - query parameters a route does not take are refused, naming the ones it takes', () => {
    expect(codeOf(() => checkQueryParameters('GET', '/api/v1/events', { limit: '1', type: 't' }))).toBe(
      undefined,
    );
    try {
      checkQueryParameters('GET', '/api/v1/events', { limt: '10' });
      expect.unreachable();
    } catch (error) {
      expect((error as ReflexError).code).toBe('REFLEX_ERR_API_INVALID_QUERY');
      expect((error as ReflexError).message).toContain('`limt`');
      expect((error as ReflexError).message).toContain('`limit`');
    }
    expect(codeOf(() => checkQueryParameters('HEAD', '/api/v1/runs', { status: 'failed' }))).toBe(undefined);
    expect(codeOf(() => checkQueryParameters('GET', '/api/v1/health', { x: '1' }))).toBe(
      'REFLEX_ERR_API_INVALID_QUERY',
    );
    expect(codeOf(() => checkQueryParameters('POST', '/hooks/:name', { token: 'x' }))).toBe(undefined);
  });

  it('front door - timeouts are filled with defaults and checked', () => {
    expect(compileServerTimeouts()).toEqual(defaultServerTimeouts);
    expect(compileServerTimeouts({ requestMs: 5000, headersMs: 1000 })).toMatchObject({
      requestMs: 5000,
      headersMs: 1000,
      keepAliveMs: 72_000,
    });
    expect(codeOf(() => compileServerTimeouts({ requestMs: 0 }))).toBe('REFLEX_ERR_CONFIG_INVALID');
    expect(codeOf(() => compileServerTimeouts({ headersMs: 20_000, requestMs: 10_000 }))).toBe(
      'REFLEX_ERR_CONFIG_INVALID',
    );
  });
});

describe('front door fuzzing', () => {
  it('front door - random Host, Origin and URLs give a coded 4xx or pass, never anything else', () => {
    const policy = compileHostPolicy('0.0.0.0', ['*.example.com']);
    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: fc.nat(255).map((code) => String.fromCharCode(code)), maxLength: 30 }),
      fc.webUrl(),
      fc.constantFrom('null', '[::1', 'http://[::1]:80', 'http://a:99999', 'localhost:', ':80'),
    );
    fc.assert(
      fc.property(
        fc.record({ host: text, origin: text, 'sec-fetch-site': text }, { requiredKeys: [] }),
        text,
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
        fc.constantFrom('1.0', '1.1'),
        (headers, url, method, version) => {
          try {
            checkHost(policy, headers, url, version);
            checkOrigin(method, headers);
          } catch (error) {
            expect((error as ReflexError).code).toMatch(/^REFLEX_ERR_API_/);
            expect((error as ReflexError).statusCode).toBeLessThan(500);
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});
