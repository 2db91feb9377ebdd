import { afterEach, describe, expect, it } from 'vitest';
import { createActionRegistry } from '../../src/actions/registry.js';
import { RulebookError } from '../../src/core/ports/rulebook-compiler.js';
import { AuditKind, type Run } from '../../src/core/ports/store.js';
import { compileRulebook } from '../../src/rulebook/rule-compiler.js';
import { createEngineHarness, type EngineHarness } from '../helpers/engine-harness.js';
import { createHttpTarget, type HttpTarget } from '../helpers/http-target.js';

/**
 * CEL through the whole engine (real SQLite store, test clock): what the data holds cannot change how
 * conditions, `by` keys and templates read it, and an expression that does too much work is stopped and
 * audited like any failing condition.
 */

let harness: EngineHarness | undefined;
let target: HttpTarget | undefined;

afterEach(async () => {
  await harness?.close();
  await target?.close();
  harness = undefined;
  target = undefined;
});

async function settledRuns(rule: string): Promise<Run[]> {
  await harness!.engine.settled();
  return (await harness!.store.listRuns({ limit: 1000, rule })).reverse();
}

describe('expressions through the engine', () => {
  it('expressions - keys named like Object.prototype members are data in conditions, by keys and templates', async () => {
    target = await createHttpTarget();
    harness = await createEngineHarness(`
rules:
  - name: root-login
    when:
      pattern: { type: [login] }
      if: event.data.user.name == "root" && !(event.data.user.name in facts.constructor)
    then:
      - http: { url: "${target.url}/seen", json: { user: "\${{ event.data.user }}", odd: "\${{ event.data.user.constructor }}" } }
  - name: repeated
    when:
      count: { pattern: { type: [login] }, atLeast: 2, within: 1h }
      by: event.data.user
    then:
      - log: "\${{ size(batch) }} logins of \${{ batch[0].data.user.name }}"
`);
    // A fact of that name used to fail every condition that reads facts, for as long as it was set.
    await harness.engine.facts.set('constructor', ['nobody']);
    const user = '{"name": "root", "constructor": {"__proto__": "x"}, "toString": 1, "valueOf": [2]}';
    const seqs = await harness.send(
      { type: 'login', data: JSON.parse(`{"user": ${user}}`) },
      { type: 'login', data: JSON.parse(`{"user": ${user}}`) },
    );
    const seen = await settledRuns('root-login');
    expect(seen.map((r) => [r.trigger.seq, r.status])).toEqual(seqs.map((seq) => [seq, 'succeeded']));
    expect(target.requests).toHaveLength(2);
    expect(JSON.stringify(target.requests[0]!.json)).toBe(
      JSON.stringify({ user: JSON.parse(user), odd: JSON.parse('{"__proto__": "x"}') }),
    );
    // The `by` key read the whole user: both events fell under one key.
    const repeated = await settledRuns('repeated');
    expect(repeated).toHaveLength(1);
    const detail = await harness.store.getRun(repeated[0]!.id);
    expect(detail!.outputs['0']).toEqual({ message: '2 logins of root' });
    for (const seq of seqs) {
      const kinds = (await harness.store.auditForEvent(seq)).map((entry) => entry.kind);
      expect(kinds).not.toContain(AuditKind.conditionError);
      expect(kinds).not.toContain(AuditKind.keyError);
    }
  });

  it('expressions - a condition over its cost budget is audited as a condition error, and dispatch goes on', async () => {
    harness = await createEngineHarness(`
rules:
  - name: pairs
    when:
      pattern: { type: [list] }
      if: event.data.a.all(x, event.data.a.exists_one(y, x == y))
    then: [ { log: pairs } ]
  - name: next
    when: { pattern: { type: [list] } }
    then: [ { log: next } ]
`);
    const a = Array.from({ length: 10_000 }, (_, i) => i);
    const [big, small] = await harness.send(
      { type: 'list', data: { a } },
      { type: 'list', data: { a: [1, 2, 3] } },
    );
    expect((await settledRuns('pairs')).map((r) => r.trigger.seq)).toEqual([small]);
    expect((await settledRuns('next')).map((r) => r.trigger.seq)).toEqual([big, small]);
    const audit = await harness.store.auditForEvent(big!);
    const failure = audit.find((entry) => entry.rule === 'pairs');
    expect(failure?.kind).toBe(AuditKind.conditionError);
    expect(failure?.detail?.error).toMatchObject({ code: 'REFLEX_ERR_CONDITION_BUDGET_EXCEEDED' });
  });

  it('expressions - a number written as text in an ordering comparison is refused at load with file:line:column', () => {
    const content = `
rules:
  - name: busy
    when:
      pattern: { type: [queue.depth] }
      if: event.data.count > "5"
    then: [ { log: busy } ]
`;
    let problems: RulebookError['problems'] | undefined;
    try {
      compileRulebook([{ path: 'rules.yaml', content }], { actions: createActionRegistry() });
    } catch (error) {
      if (!(error instanceof RulebookError)) throw error;
      problems = error.problems;
    }
    expect(problems).toHaveLength(1);
    expect(problems![0]).toMatchObject({ file: 'rules.yaml', line: 6, column: 30 });
    expect(problems![0]!.message).toContain('REFLEX_ERR_CONDITION_INVALID');
    expect(problems![0]!.message).toContain('`event.data.count > 5`');
    expect(problems![0]!.message).toContain('`string(event.data.count) > "5"`');
  });
});
