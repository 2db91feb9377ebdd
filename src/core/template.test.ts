import { describe, expect, it } from 'vitest';
import { ReflexError } from './errors.js';
import type { ExpressionContext } from './expression.js';
import { compileTemplate } from './template.js';

const ctx: ExpressionContext = {
  event: {
    specversion: '1.0',
    id: 'a1',
    source: 'alertmanager',
    type: 'alert.firing',
    time: '2026-11-27T09:58:30Z',
    data: {
      host: 'web-1',
      port: 8080,
      ratio: 0.5,
      up: false,
      tags: ['a', 'b'],
      labels: { team: 'sre', tier: 1 },
      note: null,
    },
  },
  facts: { owners: { 'web-1': 'alice' } },
  vars: { base: 'https://ops.example.com' },
  now: Date.parse('2026-11-27T10:00:00Z'),
};

function thrown(fn: () => unknown): ReflexError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ReflexError);
    return error as ReflexError;
  }
  throw new Error('expected an error');
}

describe('template', () => {
  it('template - a whole-value template keeps its type', () => {
    const render = (value: unknown) => compileTemplate(value).render(ctx);
    expect(render('${{ event.data.port }}')).toBe(8080);
    expect(render('${{ event.data.ratio }}')).toBe(0.5);
    expect(render('${{ event.data.up }}')).toBe(false);
    expect(render('${{ event.data.tags }}')).toEqual(['a', 'b']);
    expect(render('${{ event.data.labels }}')).toEqual({ team: 'sre', tier: 1 });
    expect(render('${{ event.data.note }}')).toBe(null);
    expect(render('${{ event.data.port + 1 }}')).toBe(8081);
    expect(render('${{ size(event.data.tags) }}')).toBe(2);
    expect(render('  ${{ event.data.port }}\n')).toBe(8080);
    expect(render('${{event.data.port}}')).toBe(8080);
    expect(render('${{ now }}')).toBe('2026-11-27T10:00:00.000Z');
    expect(render('${{ now - timestamp(event.time) }}')).toBe('90s');
  });

  it('template - text around or several parts render each part to text and join them', () => {
    const render = (value: unknown) => compileTemplate(value).render(ctx);
    expect(render('host ${{ event.data.host }}:${{ event.data.port }}')).toBe('host web-1:8080');
    expect(render('${{ vars.base }}/hosts/${{ event.data.host }}')).toBe(
      'https://ops.example.com/hosts/web-1',
    );
    expect(render('up=${{ event.data.up }} tags=${{ event.data.tags }} note=${{ event.data.note }}')).toBe(
      'up=false tags=["a","b"] note=null',
    );
    expect(render('labels: ${{ event.data.labels }}')).toBe('labels: {"team":"sre","tier":1}');
    expect(render('${{ event.data.host }}${{ event.data.port }}')).toBe('web-18080');
    expect(render('at ${{ now }}, waited ${{ now - timestamp(event.time) }}')).toBe(
      'at 2026-11-27T10:00:00.000Z, waited 90s',
    );
    expect(render('owner: ${{ facts.owners[event.data.host] }}')).toBe('owner: alice');
  });

  it('template - walks lists and maps, and leaves keys alone', () => {
    const template = compileTemplate({
      url: '${{ vars.base }}/restart',
      body: {
        host: '${{ event.data.host }}',
        '${{ event.data.host }}': 'key stays',
        ports: ['${{ event.data.port }}', 22],
      },
      retries: 3,
      dry: false,
      none: null,
    });
    expect(template.isStatic).toBe(false);
    expect(template.render(ctx)).toEqual({
      url: 'https://ops.example.com/restart',
      body: { host: 'web-1', '${{ event.data.host }}': 'key stays', ports: [8080, 22] },
      retries: 3,
      dry: false,
      none: null,
    });
  });

  it('template - a value without expressions is static and rendered as a fresh copy', () => {
    const source = {
      cmd: ['systemctl', 'restart', 'nginx'],
      env: { A: '1' },
      n: 2,
      text: 'price: $5 ${HOME}',
    };
    const template = compileTemplate(source);
    expect(template.isStatic).toBe(true);
    expect(template.source).toBe(source);
    const first = template.render(ctx) as typeof source;
    expect(first).toEqual(source);
    expect(first).not.toBe(source);
    first.cmd.push('changed');
    expect(template.render(ctx)).toEqual(source);
    expect(compileTemplate('plain').render(ctx)).toBe('plain');
    expect(compileTemplate(42).isStatic).toBe(true);
    expect(compileTemplate('${{ 1 }}').isStatic).toBe(false);
  });

  it('template - $${{ escapes a literal ${{', () => {
    const escaped = compileTemplate('use $${{ event.data.host }} in your rule');
    expect(escaped.isStatic).toBe(true);
    expect(escaped.render(ctx)).toBe('use ${{ event.data.host }} in your rule');
    const mixed = compileTemplate('$${{ literal }} and ${{ event.data.host }}');
    expect(mixed.isStatic).toBe(false);
    expect(mixed.render(ctx)).toBe('${{ literal }} and web-1');
    // An escaped part is text, so the whole string stays a string.
    expect(compileTemplate('$${{ x }}${{ event.data.port }}').render(ctx)).toBe('${{ x }}8080');
  });

  it('template - closing braces inside strings and map literals do not end the expression', () => {
    const render = (value: string) => compileTemplate(value).render(ctx);
    expect(render('${{ "}}" + event.data.host }}')).toBe('}}web-1');
    expect(render("${{ '}}' }}")).toBe('}}');
    expect(render('${{ "a\\"}}" }}')).toBe('a"}}');
    expect(render('${{ r"a\\"}}" }}')).toBe('a\\"}}');
    expect(render('${{ """x}}""" }}')).toBe('x}}');
    expect(render('${{ {"host": event.data.host, "port": {"n": event.data.port}} }}')).toEqual({
      host: 'web-1',
      port: { n: 8080 },
    });
    expect(render('${{ {"a": 1}}}!')).toBe('{"a":1}!');
  });

  it('template - a compile error names the path and the offset in the string', () => {
    const error = thrown(() => compileTemplate({ http: { headers: ['x', 'Bearer ${{ event.data. }}'] } }));
    expect(error.code).toBe('REFLEX_ERR_TEMPLATE_INVALID');
    expect(error.params.template).toBe('Bearer ${{ event.data. }}');
    expect(error.details?.path).toEqual(['http', 'headers', 1]);
    // The offset points into the string, at the token after `event.data.`.
    expect(error.details?.offset).toBe(22);

    const unknown = thrown(() => compileTemplate({ to: 'x ${{ evnt.data }}' }));
    expect(unknown.code).toBe('REFLEX_ERR_TEMPLATE_INVALID');
    expect(unknown.params.reason).toMatch(/there is no variable `evnt`/);
    expect(unknown.details).toEqual({ path: ['to'], offset: 6 });
  });

  it('template - an unclosed or empty ${{ is invalid', () => {
    const unclosed = thrown(() => compileTemplate(['ok', 'a ${{ event.data.host']));
    expect(unclosed.code).toBe('REFLEX_ERR_TEMPLATE_INVALID');
    expect(unclosed.params.reason).toMatch(/no matching `}}`/);
    expect(unclosed.details).toEqual({ path: [1], offset: 2 });

    const unclosedString = thrown(() => compileTemplate('${{ "}} }}'));
    expect(unclosedString.params.reason).toMatch(/no matching `}}`/);

    const empty = thrown(() => compileTemplate('x ${{   }}'));
    expect(empty.params.reason).toMatch(/empty/);
    expect(empty.details).toEqual({ path: [], offset: 2 });
  });

  it('template - a value that is not JSON is invalid', () => {
    const error = thrown(() => compileTemplate({ when: new Date(0) }));
    expect(error.code).toBe('REFLEX_ERR_TEMPLATE_INVALID');
    expect(error.details).toEqual({ path: ['when'] });
    expect(thrown(() => compileTemplate({ n: 1n })).details).toEqual({ path: ['n'] });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(thrown(() => compileTemplate(cyclic)).params.reason).toMatch(/deeper than/);
  });

  it('template - a failing expression gives REFLEX_ERR_TEMPLATE_FAILED with the path', () => {
    const template = compileTemplate({ body: { text: 'disk ${{ event.data.disk.free }} left' } });
    const error = thrown(() => template.render(ctx));
    expect(error.code).toBe('REFLEX_ERR_TEMPLATE_FAILED');
    expect(error.params).toEqual({
      template: 'disk ${{ event.data.disk.free }} left',
      reason: 'no field `disk` in `event.data`',
      fix: 'guard missing fields with `has(event.data.disk)`',
    });
    expect(error.details).toEqual({ path: ['body', 'text'] });
    expect((error.cause as ReflexError).code).toBe('REFLEX_ERR_CONDITION_FAILED');
  });

  it('template - a "__proto__" key stays a key', () => {
    const source = JSON.parse('{"__proto__": {"polluted": "${{ event.data.host }}"}, "a": 1}');
    const rendered = compileTemplate(source).render(ctx) as Record<string, unknown>;
    expect(Object.getPrototypeOf(rendered)).toBe(Object.prototype);
    expect(Object.keys(rendered)).toEqual(['__proto__', 'a']);
    expect(Object.getOwnPropertyDescriptor(rendered, '__proto__')?.value).toEqual({ polluted: 'web-1' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('template - data keys named like members of Object.prototype render as plain JSON', () => {
    for (const key of [...Object.getOwnPropertyNames(Object.prototype), 'prototype', 'then', 'get', 'size']) {
      const k = JSON.stringify(key);
      const data = JSON.parse(`{"user": {${k}: "x", "name": "root"}, "list": [{${k}: 1}]}`);
      const template = compileTemplate({
        whole: '${{ event.data.user }}',
        list: '${{ event.data.list }}',
        text: `\${{ event.data.user[${k}] }}/\${{ event.data.user.name }}/\${{ event.data.list }}`,
        built: `\${{ {${k}: event.data.user.name} }}`,
        fact: `\${{ facts[${k}] }}`,
      });
      const rendered = template.render({
        ...ctx,
        event: { ...(ctx.event as object), data },
        facts: JSON.parse(`{${k}: 1}`),
      });
      expect(JSON.stringify(rendered), key).toBe(
        JSON.stringify({
          whole: data.user,
          list: data.list,
          text: `x/root/${JSON.stringify(data.list)}`,
          built: JSON.parse(`{${k}: "root"}`),
          fact: 1,
        }),
      );
      const whole = (rendered as { whole: object }).whole;
      expect(Object.getPrototypeOf(whole)).toBe(Object.prototype);
      expect(Object.hasOwn(whole, key)).toBe(true);
    }
  });

  it('template - an expression that exceeds the cost budget fails with the budget error as its cause', () => {
    let source = 'cel.bind(v0, event.data.tags, ';
    for (let i = 1; i <= 8; i++)
      source += `cel.bind(v${i}, [${Array(8)
        .fill(`v${i - 1}`)
        .join(', ')}], `;
    source += `v8${')'.repeat(9)}`;
    const error = thrown(() => compileTemplate(`\${{ ${source} }}`).render(ctx));
    expect(error.code).toBe('REFLEX_ERR_TEMPLATE_FAILED');
    expect((error.cause as ReflexError).code).toBe('REFLEX_ERR_CONDITION_BUDGET_EXCEEDED');
    expect(error.message).toMatch(/cost budget/);
  });
});

describe('template - URLs and secrets', () => {
  const url = (template: string, options: { templatedHosts?: boolean } = {}) =>
    compileTemplate({ url: template }, { urls: ['url'], ...options });
  const render = (template: string, data: Record<string, unknown>, secrets?: Record<string, string>) =>
    (url(template).render({ ...ctx, event: { data } }, secrets) as { url: string }).url;

  it('template - a URL encodes each value for where it lands; text and vars are taken as written', () => {
    expect(
      render('https://api.example.com/u/${{ event.data.id }}?q=${{ event.data.q }}', {
        id: 'a/../b',
        q: 'x&y=1',
      }),
    ).toBe('https://api.example.com/u/a%2F..%2Fb?q=x%26y%3D1');
    expect(render('${{ vars.base }}/hosts/${{ event.data.h }}', { h: 'web 1' })).toBe(
      'https://ops.example.com/hosts/web%201',
    );
    expect(render('${{ vars["base"] }}/${{ event.data.n }}', { n: 7 })).toBe('https://ops.example.com/7');
    // Only a plain read of vars is taken as written: anything that mixes in other data is not.
    expect(() => url('${{ vars.base + event.data.path }}')).toThrow(/REFLEX_ERR_TEMPLATE_URL_HOST|would let/);
  });

  it('template - a URL whose host a value from outside would give is refused at compile time, where it is written', () => {
    for (const [template, offset] of [
      ['https://api.example.com${{ event.data.path }}', 23],
      ['${{ event.data.url }}', 0],
      ['https://${{ event.data.host }}.example.com/', 8],
      ['$${{ x }}https://${{ event.data.h }}/', 17],
    ] as const) {
      const error = thrown(() => url(template));
      expect(error.code).toBe('REFLEX_ERR_TEMPLATE_URL_HOST');
      expect(error.details).toEqual({ path: ['url'], offset });
    }
    // With the step's hosts, the action checks the host once the URL is built.
    expect(url('${{ event.data.url }}', { templatedHosts: true }).urls).toEqual([
      { path: ['url'], host: { type: 'outside', piece: 0 } },
    ]);
  });

  it('template - a vars prefix decides at render time where the host ends', () => {
    const template = compileTemplate({ url: '${{ vars.base }}${{ event.data.path }}' }, { urls: ['url'] });
    expect(template.urls).toEqual([{ path: ['url'], host: { type: 'trusted' } }]);
    const error = thrown(() => template.render({ ...ctx, event: { data: { path: '@evil.io/' } } }));
    expect(error.code).toBe('REFLEX_ERR_TEMPLATE_URL_HOST');
    expect(error.details).toEqual({ path: ['url'] });
    expect(
      compileTemplate({ url: '${{ vars.base }}/${{ event.data.path }}' }, { urls: ['url'] }).render({
        ...ctx,
        event: { data: { path: '@evil.io/' } },
      }),
    ).toEqual({ url: 'https://ops.example.com/%40evil.io%2F' });
  });

  it('template - a URL renders as text even when it is one expression', () => {
    const template = compileTemplate(
      { url: '${{ event.data.url }}' },
      { urls: ['url'], templatedHosts: true },
    );
    expect(template.render({ ...ctx, event: { data: { url: 'https://a.example/x?y=1' } } })).toEqual({
      url: 'https://a.example/x?y=1',
    });
  });

  it('template - credentials written in a URL template do not reach its error messages', () => {
    const error = thrown(() => url('https://bob:hunter2@h.example${{ event.data.p }}'));
    expect(error.message).not.toContain('hunter2');
  });

  it('template - ${{ secrets.NAME }} inserts a secret given at render time, anywhere a string is', () => {
    const template = compileTemplate(
      {
        url: 'https://h.example/${{ secrets.PATH_KEY }}?key=${{ secrets.KEY }}',
        headers: { authorization: 'Bearer ${{ secrets.KEY }}' },
        json: { token: '${{ secrets.KEY }}', n: '${{ event.data.port }}' },
      },
      { urls: ['url'] },
    );
    expect(template.isStatic).toBe(false);
    expect(template.secrets).toEqual([
      { name: 'PATH_KEY', path: ['url'] },
      { name: 'KEY', path: ['url'] },
      { name: 'KEY', path: ['headers', 'authorization'] },
      { name: 'KEY', path: ['json', 'token'] },
    ]);
    expect(template.render(ctx, { KEY: 'k+y/=', PATH_KEY: 'T1/B2' })).toEqual({
      url: 'https://h.example/T1/B2?key=k%2By%2F%3D',
      headers: { authorization: 'Bearer k+y/=' },
      json: { token: 'k+y/=', n: 8080 },
    });
    const missing = thrown(() => template.render(ctx, { KEY: 'k' }));
    expect(missing.code).toBe('REFLEX_ERR_SECRET_MISSING');
    expect(missing.message).toContain('`PATH_KEY`');
  });

  it('template - a secret is read only on its own, never transformed by an expression', () => {
    for (const source of ['${{ secrets.KEY + "x" }}', '${{ has(secrets.KEY) }}', '${{ secrets["KEY"] }}']) {
      const error = thrown(() => compileTemplate(source));
      expect(error.code).toBe('REFLEX_ERR_TEMPLATE_INVALID');
      expect(error.message).toContain('`${{ secrets.NAME }}` on its own');
    }
    // A field named secrets in the data is just a field.
    expect(compileTemplate('${{ event.data.labels }}').secrets).toEqual([]);
  });
});
