import { describe, expect, it } from 'vitest';
import { allowedBy, type HostPattern, parseHostPattern } from './host-allowlist.js';
import {
  buildUrl,
  isUserinfo,
  UrlTemplateError,
  type UrlTemplatePiece,
  urlComponentAt,
  urlHost,
} from './url-template.js';

const outside = (value: string, userinfo = false) => ({ value, trusted: false, userinfo });
const trusted = (value: string) => ({ value, trusted: true, userinfo: false });

function refusal(fn: () => unknown): UrlTemplateError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(UrlTemplateError);
    return error as UrlTemplateError;
  }
  throw new Error('expected a refusal');
}

describe('url template', () => {
  it('url template - finds the component text lands in, as the URL parser does', () => {
    expect(urlComponentAt('')).toBe('scheme');
    expect(urlComponentAt('http')).toBe('scheme');
    expect(urlComponentAt('https:')).toBe('authority');
    expect(urlComponentAt('https:/')).toBe('authority');
    expect(urlComponentAt('https:\\\\api.example.com')).toBe('authority');
    expect(urlComponentAt('https://user:pw@api.example.com:8443')).toBe('authority');
    expect(urlComponentAt('https://api.example.com/')).toBe('path');
    expect(urlComponentAt('https://api.example.com\\items')).toBe('path');
    expect(urlComponentAt('https://api.example.com/a?')).toBe('query');
    expect(urlComponentAt('https://api.example.com?q=1&x=')).toBe('query');
    expect(urlComponentAt('https://api.example.com/a?b#')).toBe('fragment');
    expect(urlComponentAt('https://api.example.com#x?y')).toBe('fragment');
    // Tabs and newlines are dropped by the parser, so they cannot hide a `/`.
    expect(urlComponentAt('https://api.exa\tmple.com/\n')).toBe('path');
    expect(urlComponentAt('  https://h/')).toBe('path');
  });

  it('url template - values from outside are encoded so they add no structure', () => {
    const build = (...values: string[]) =>
      buildUrl(
        [
          { text: 'https://api.example.com/items/' },
          outside(values[0]!),
          { text: '?q=' },
          outside(values[1]!),
          { text: '&' },
          outside(values[2]!),
          { text: '=1#' },
          outside(values[3]!),
        ],
        false,
      );
    expect(build('a/b?c#d', '1&admin=true', 'x=y', '@evil/')).toBe(
      'https://api.example.com/items/a%2Fb%3Fc%23d?q=1%26admin%3Dtrue&x%3Dy=1#%40evil%2F',
    );
    expect(build('%2F..', '+ ', '\\', 'é')).toBe(
      'https://api.example.com/items/%252F..?q=%2B%20&%5C=1#%C3%A9',
    );
    // A lone surrogate is not valid text: it becomes U+FFFD instead of failing the encoder.
    expect(build('\uD800', '', 'n', '')).toBe('https://api.example.com/items/%EF%BF%BD?q=&n=1#');
  });

  it('url template - a value may not make a `.` or `..` path segment, written or encoded', () => {
    const build = (before: string, value: string, after: string) =>
      buildUrl([{ text: `https://h${before}` }, outside(value), { text: after }], false);
    for (const [before, value, after] of [
      ['/a/', '..', '/b'],
      ['/a/', '.', ''],
      ['/a/.', '.', '/b'],
      ['/a/%2e', '.', ''],
      ['\\a\\', '..', '?x'],
    ] as const) {
      expect(refusal(() => build(before, value, after)).reason).toBe('dot-segment');
    }
    expect(build('/a/', '...', '/b')).toBe('https://h/a/.../b');
    expect(build('/a/', '..x', '')).toBe('https://h/a/..x');
    expect(build('/a/', '..', '.txt')).toBe('https://h/a/...txt');
    // In the query, `..` is only text.
    expect(build('/a?x=', '..', '')).toBe('https://h/a?x=..');
  });

  it('url template - a value from outside may not give the start or the host of the URL', () => {
    expect(refusal(() => buildUrl([outside('https://evil.example'), { text: '/x' }], false)).reason).toBe(
      'host',
    );
    expect(
      refusal(() => buildUrl([{ text: 'https://api.example.com' }, outside('@evil/')], false)).reason,
    ).toBe('host');
    expect(
      refusal(() => buildUrl([{ text: 'https://' }, outside('evil'), { text: '.example.com/' }], false))
        .reason,
    ).toBe('host');
    // A trusted start (vars) decides where the authority ends; a value after it is judged on the result.
    expect(
      refusal(() => buildUrl([trusted('http://127.0.0.1:8080'), outside('@evil:1/x')], false)).reason,
    ).toBe('host');
    expect(buildUrl([trusted('http://127.0.0.1:8080/api'), outside('@evil:1/x')], false)).toBe(
      'http://127.0.0.1:8080/api%40evil%3A1%2Fx',
    );
  });

  it('url template - with allowed hosts, a value may give the start, or a host name in the host', () => {
    expect(buildUrl([outside('https://hooks.example.com/cb?id=1')], true)).toBe(
      'https://hooks.example.com/cb?id=1',
    );
    expect(
      buildUrl([{ text: 'https://' }, outside('web-1'), { text: '.svc.example.com:8443/x' }], true),
    ).toBe('https://web-1.svc.example.com:8443/x');
    for (const bad of ['evil.com/', 'a@b', 'a b', 'x%2e', 'x?', 'x#', 'x\\y']) {
      expect(
        refusal(() => buildUrl([{ text: 'https://' }, outside(bad), { text: '.svc.example.com/' }], true))
          .reason,
      ).toBe('host');
    }
  });

  it('url template - a value before an `@` the template writes is userinfo, encoded', () => {
    const pieces: UrlTemplatePiece[] = [
      { text: 'https://' },
      { trusted: false },
      { text: ':' },
      { trusted: true },
      { text: '@api.example.com/' },
      { trusted: false },
    ];
    expect([1, 3, 5].map((i) => isUserinfo(pieces, i))).toEqual([true, true, false]);
    expect(urlHost(pieces)).toEqual({ type: 'fixed', origin: 'https://x:x@api.example.com' });
    expect(
      buildUrl(
        [
          { text: 'https://' },
          outside('bob@evil.example/', true),
          { text: ':' },
          { value: 'p@ss:/#', trusted: true, userinfo: true },
          { text: '@api.example.com/' },
          outside('x'),
        ],
        false,
      ),
    ).toBe('https://bob%40evil.example%2F:p%40ss%3A%2F%23@api.example.com/x');
    // An `@` after the end of the authority is not one.
    expect(isUserinfo([{ text: 'https://h' }, { trusted: false }, { text: '/@' }], 1)).toBe(false);
  });

  it('url template - tells how the host of a template is given before any value is known', () => {
    expect(urlHost([{ text: 'https://api.example.com/items/' }, { trusted: false }])).toEqual({
      type: 'fixed',
      origin: 'https://api.example.com',
    });
    expect(urlHost([{ text: 'https://api.example.com?q=' }, { trusted: false }])).toEqual({
      type: 'fixed',
      origin: 'https://api.example.com',
    });
    expect(urlHost([{ text: 'https://api.example.com' }, { trusted: false }])).toEqual({
      type: 'outside',
      piece: 1,
    });
    expect(urlHost([{ trusted: false }, { text: '/x' }])).toEqual({ type: 'outside', piece: 0 });
    expect(urlHost([{ trusted: true }, { text: '/x/' }, { trusted: false }])).toEqual({ type: 'trusted' });
    expect(urlHost([{ text: 'http://127.0.0.1:9000/x' }])).toEqual({
      type: 'fixed',
      origin: 'http://127.0.0.1:9000',
    });
  });
});

describe('host allowlist', () => {
  const patterns = ['api.example.com', '*.svc.example.com', '127.0.0.1:8443', '[::1]', 'EXAMPLE.org.'].map(
    (text) => parseHostPattern(text) as HostPattern,
  );
  const allowed = (url: string) => allowedBy(patterns, new URL(url))?.source;

  it('host allowlist - names, wildcards below a name, ports and addresses', () => {
    expect(allowed('https://api.example.com/x')).toBe('api.example.com');
    expect(allowed('http://API.Example.COM:81/')).toBe('api.example.com');
    expect(allowed('https://a.svc.example.com/')).toBe('*.svc.example.com');
    expect(allowed('https://a.b.svc.example.com/')).toBe('*.svc.example.com');
    expect(allowed('https://svc.example.com/')).toBeUndefined();
    expect(allowed('https://evilsvc.example.com/')).toBeUndefined();
    expect(allowed('https://api.example.com.evil.io/')).toBeUndefined();
    expect(allowed('http://127.0.0.1:8443/')).toBe('127.0.0.1:8443');
    expect(allowed('http://127.0.0.1:8444/')).toBeUndefined();
    expect(allowed('http://2130706433:8443/')).toBe('127.0.0.1:8443');
    expect(allowed('http://[0:0::1]/')).toBe('[::1]');
    expect(allowed('http://user@api.example.com@evil.io/')).toBeUndefined();
  });

  it('host allowlist - refuses what is not a host', () => {
    for (const text of ['', '*.', 'a/b', 'http://a', 'a?b', '*', 'a b', 'user@a', 'a.*.b']) {
      expect(typeof parseHostPattern(text), text).toBe('string');
    }
  });
});
