import { describe, expect, it } from 'vitest';
import { type ReflexError, RetryAfterError, toErrorInfo } from './errors.js';
import { createSecretMask, mapStrings, redactUrlCredentials } from './redact.js';
import { createSecretStore, parseSecretsFile, resolveSecrets } from './secrets.js';

describe('redact', () => {
  it('redact - credentials in URLs: userinfo and parameters named like credentials', () => {
    expect(redactUrlCredentials('https://alice:hunter2@api.example.com/x')).toBe(
      'https://***@api.example.com/x',
    );
    expect(redactUrlCredentials('https://ghp_token@github.com/a/b.git')).toBe(
      'https://***@github.com/a/b.git',
    );
    expect(
      redactUrlCredentials(
        'GET https://h/x?token=t1&access_token=t2&api_key=k&apikey=k2&key=k3&sig=s&X-Amz-Signature=s2&password=p&client_secret=c&page=2&q=&id=7 answered 500',
      ),
    ).toBe(
      'GET https://h/x?token=***&access_token=***&api_key=***&apikey=***&key=***&sig=***&X-Amz-Signature=***&password=***&client_secret=***&page=2&q=&id=7 answered 500',
    );
    expect(redactUrlCredentials('https://h/#access_token=abc&state=1')).toBe(
      'https://h/#access_token=***&state=1',
    );
    expect(redactUrlCredentials('"url":"http://u:p@h/?auth=x"')).toBe('"url":"http://***@h/?auth=***"');
    expect(redactUrlCredentials('no url, a=b and mail@example.com')).toBe('no url, a=b and mail@example.com');
    expect(redactUrlCredentials('https://h/a@b?page=1')).toBe('https://h/a@b?page=1');
  });

  it('redact - masks secret values, also percent- and JSON-encoded, in text and JSON', () => {
    const mask = createSecretMask(['s3cr3t', 'a b+c"d', '']);
    expect(mask.active).toBe(true);
    expect(mask.text('Bearer s3cr3t, s3cr3ts')).toBe('Bearer ***, ***s');
    expect(mask.text('q=a%20b%2Bc%22d and a+b%2Bc%22d and a b+c\\"d')).toBe('q=*** and *** and ***');
    expect(
      mask.json({ h: { authorization: 'Bearer s3cr3t' }, list: ['s3cr3t', 1, null], s3cr3t: true }),
    ).toEqual({
      h: { authorization: 'Bearer ***' },
      list: ['***', 1, null],
      '***': true,
    });
    expect(createSecretMask(['']).active).toBe(false);
  });

  it('redact - walks deep JSON without recursion, and keeps a "__proto__" key a key', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(() => mapStrings(deep, (t) => t.toUpperCase())).not.toThrow();
    const parsed = JSON.parse('{"__proto__": {"a": "x"}}');
    const copy = mapStrings(parsed, (t) => t.toUpperCase()) as Record<string, unknown>;
    expect(Object.keys(copy)).toEqual(['__PROTO__']);
    const cyclic: Record<string, unknown> = { a: 'x' };
    cyclic.self = cyclic;
    expect(mapStrings(cyclic, (t) => t.toUpperCase())).toMatchObject({ A: 'X' });
  });

  it('redact - a stored failure has secrets and URL credentials masked in its message, details and causes', () => {
    const inner = Object.assign(new TypeError('fetch http://u:p@h/ failed'), { code: 'UND_ERR' });
    const error = new RetryAfterError('try later with s3cr3t', 500, {
      code: 'REFLEX_ERR_ACTION_HTTP_STATUS',
      cause: inner,
      details: { body: 'echo s3cr3t' },
    });
    const mask = createSecretMask(['s3cr3t']);
    expect(mapStrings(toErrorInfo(error), (t) => redactUrlCredentials(mask.text(t)))).toEqual({
      code: 'REFLEX_ERR_ACTION_HTTP_STATUS',
      message: 'try later with ***',
      details: { body: 'echo ***' },
      cause: { code: 'UND_ERR', message: 'fetch http://***@h/ failed' },
    });
  });
});

describe('secrets', () => {
  it('secrets - a secrets file holds NAME=value lines', () => {
    const values = parseSecretsFile(
      '# comment\n\nAPI_TOKEN=abc=def\nexport DB_PASSWORD="p w"\nSPACED= x \r\nQUOTED=\'q\'\n',
      's.env',
    );
    expect([...values]).toEqual([
      ['API_TOKEN', 'abc=def'],
      ['DB_PASSWORD', 'p w'],
      ['SPACED', ' x '],
      ['QUOTED', 'q'],
    ]);
  });

  it('secrets - a bad line is named by its number, never by its value', () => {
    for (const [text, line] of [
      ['A=1\nnot a line with secret-value', 2],
      ['1BAD=x', 1],
      ['A=1\nA=2', 2],
    ] as const) {
      try {
        parseSecretsFile(text, 's.env');
        throw new Error('expected a refusal');
      } catch (error) {
        expect((error as ReflexError).code).toBe('REFLEX_ERR_CONFIG_INVALID');
        expect((error as Error).message).toContain(`line ${line}`);
        expect((error as Error).message).not.toContain('secret-value');
      }
    }
  });

  it('secrets - the file wins over the environment; empty counts as unset; a missing one is named', () => {
    const store = createSecretStore({
      file: new Map([['A', 'from-file']]),
      env: { A: 'env', B: 'env-b', C: '' },
    });
    expect(resolveSecrets(store, ['A', 'B', 'A'])).toEqual({ A: 'from-file', B: 'env-b' });
    expect(() => resolveSecrets(store, ['C'])).toThrow(/`C`/);
    store.replace(new Map([['C', 'now']]));
    expect(resolveSecrets(store, ['A', 'C'])).toEqual({ A: 'env', C: 'now' });
  });
});
