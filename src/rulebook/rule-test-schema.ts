import { dirname, isAbsolute, join } from 'node:path';
import Type, { type Static } from 'typebox';
import Schema from 'typebox/schema';
import { formatDuration, parseDuration } from '../core/duration.js';
import { ReflexError } from '../core/errors.js';
import { type CloudEvent, validateCloudEvent } from '../core/event.js';
import { factNameRule, isFactName } from '../core/fact-name.js';
import { formatProblems, type RulebookFile, type RulebookProblem } from '../core/ports/rulebook-compiler.js';
import type { Rule, Rulebook } from '../core/rule.js';
import { type DocumentFormat, describePath, SourceFile } from './source-file.js';

/** The largest distance from 1970 a JavaScript date (and so an event's `time`) can hold, in ms. */
const maxTimestampMs = 8.64e15;
/**
 * The format of rule tests (`*.test.yaml` beside a rulebook): its JSON Schema, published as
 * `schemas/rule-test.schema.json` (`npm run gen`), and the compiler that turns a test file into cases
 * ready to run, with `file:line:column` problems the way the rulebook loader reports them.
 */

const description = (text: string) => ({ description: text });

// The same duration syntax as rulebooks (schema.ts keeps its own private).
const Duration = Type.Union(
  [Type.String({ pattern: '^(\\d+(\\.\\d+)?(ms|s|m|h|d))+$|^\\d+$' }), Type.Integer({ minimum: 0 })],
  description('A duration: 500ms, 10s, 5m, 1h30m, 2d, or a number of milliseconds.'),
);

const Offset = (text: string) => Type.Union([Duration], description(text));

const FactMap = (text: string) => Type.Record(Type.String(), Type.Unknown(), description(text));

const TestEvent = Type.Object(
  {
    at: Type.Optional(
      Offset(
        'When the event arrives, counted from the start. @default the `at` of the event before, else 0s',
      ),
    ),
    type: Type.String({ minLength: 1, ...description('The CloudEvents `type`.') }),
    id: Type.Optional(
      Type.String({ minLength: 1, ...description('@default `event-<n>`, n its position in the case') }),
    ),
    source: Type.Optional(Type.String({ minLength: 1, ...description('@default reflex-test') })),
    subject: Type.Optional(Type.String()),
    time: Type.Optional(
      Type.String(description('RFC 3339. @default the instant the event arrives (start + at)')),
    ),
    datacontenttype: Type.Optional(Type.String(description('@default application/json when data is given'))),
    data: Type.Optional(Type.Unknown(description('The payload.'))),
    extensions: Type.Optional(
      Type.Record(
        Type.String({ pattern: '^[a-z0-9]+$' }),
        Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]),
        description('Extension attributes, put at the top level of the event (e.g. `tenant: acme`).'),
      ),
    ),
  },
  { additionalProperties: false, ...description('An event the case sends, at its time.') },
);

const RunStatusText = Type.Union(
  [Type.Literal('succeeded'), Type.Literal('failed'), Type.Literal('pending')],
  description('The run status after the case. @default succeeded'),
);

const RunExpectation = Type.Object(
  {
    rule: Type.String({ minLength: 1, ...description('The rule that ran.') }),
    count: Type.Optional(
      Type.Integer({
        minimum: 1,
        ...description('This many consecutive runs of the rule, each as described. @default 1'),
      }),
    ),
    at: Type.Optional(Offset('When the run was created, counted from the start.')),
    actions: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), description('The kinds of the steps that ran, in order.')),
    ),
    params: Type.Optional(
      Type.Record(
        Type.String(),
        Type.Unknown(),
        description(
          'By step id (or index): what the rendered parameters must contain. Objects match partially.',
        ),
      ),
    ),
    event: Type.Optional(
      Type.Record(
        Type.String(),
        Type.Unknown(),
        description("What the run's `event` must contain (partially), e.g. `{ data: { ip: 10.0.0.7 } }`."),
      ),
    ),
    status: Type.Optional(RunStatusText),
    attempts: Type.Optional(
      Type.Record(
        Type.String(),
        Type.Integer({ minimum: 1 }),
        description('By step id (or index): how many attempts the step took, retries included.'),
      ),
    ),
  },
  { additionalProperties: false, ...description('One run, in the order runs were created.') },
);

const Outcome = Type.Object(
  {
    rule: Type.String({ minLength: 1, ...description('The rule whose step this answers.') }),
    step: Type.Union([Type.String({ minLength: 1 }), Type.Integer({ minimum: 0 })], {
      ...description('The step, by id or index.'),
    }),
    fail: Type.Optional(
      Type.String({ minLength: 1, ...description('The attempt fails with this message.') }),
    ),
    retry: Type.Optional(
      Type.Boolean(
        description(
          'With `fail`: whether the step may be tried again (as its `retry` allows). false: the run fails at once, as after an HTTP 4xx. @default true',
        ),
      ),
    ),
    output: Type.Optional(
      Type.Unknown(description('The attempt succeeds with this output (what `steps.<id>.output` reads).')),
    ),
    times: Type.Optional(
      Type.Integer({
        minimum: 1,
        ...description('How many attempts of the step, in every run, this answers. @default 1'),
      }),
    ),
  },
  {
    additionalProperties: false,
    ...description(
      "How attempts of one step turn out, in place of the recorded action's success: `fail` or `output`.",
    ),
  },
);

const RuleRef = Type.Union([
  Type.String({ minLength: 1 }),
  Type.Object({ rule: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
]);

const Expect = Type.Object(
  {
    runs: Type.Optional(
      Type.Array(RunExpectation, description('The runs of the case, in creation order (see `only`).')),
    ),
    only: Type.Optional(
      Type.Boolean(
        description(
          'true: `runs` lists every run of the case. false: only the runs of the rules it names. @default true',
        ),
      ),
    ),
    not: Type.Optional(Type.Array(RuleRef, description('Rules that must not have run.'))),
    facts: Type.Optional(FactMap('Facts after the case (partially); `null` means the fact must not be set.')),
  },
  { additionalProperties: false, minProperties: 1, ...description('What must be true after the case.') },
);

const Case = Type.Object(
  {
    name: Type.String({ minLength: 1, ...description('Unique in the file.') }),
    facts: Type.Optional(FactMap("Facts set before the case, over the file's `facts`.")),
    events: Type.Optional(Type.Array(TestEvent, description('The events, sent in `at` order.'))),
    until: Type.Optional(
      Offset('Let time run to this point (from the start) after the last event. @default the last event'),
    ),
    outcomes: Type.Optional(
      Type.Array(
        Outcome,
        description(
          "How steps' attempts turn out, in order: for each rule and step, the first entry answers the first `times` attempts of every run, the next entry the following ones; attempts past them succeed as usual.",
        ),
      ),
    ),
    expect: Expect,
  },
  { additionalProperties: false },
);

/** The JSON Schema of a rule test file. */
export const RuleTestSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    rulebook: Type.Union(
      [Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })],
      description('The rulebook file(s) or folder(s) under test, relative to this file.'),
    ),
    start: Type.Optional(
      Type.String(description('The instant the cases start at (RFC 3339). @default 2026-01-01T00:00:00Z')),
    ),
    facts: Type.Optional(FactMap('Facts set before every case.')),
    secrets: Type.Optional(
      Type.Record(
        Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }),
        Type.String(),
        description(
          'Stand-in values of `${{ secrets.NAME }}` for the cases (never real ones). A secret not given renders as `<secret:NAME>`.',
        ),
      ),
    ),
    cases: Type.Array(Case, { minItems: 1 }),
  },
  {
    additionalProperties: false,
    $id: 'https://reflex.dev/schemas/rule-test.schema.json',
    title: 'Reflex rule test',
  },
);

/** A rule test file as written, after YAML parsing and schema validation. */
export type RuleTestDocument = Static<typeof RuleTestSchema>;

const ruleTestFormat: DocumentFormat = {
  validator: Schema.Compile(RuleTestSchema),
  root: 'the rule test',
  empty: 'the file is empty. To fix: add `rulebook:` and `cases:` (see docs/testing.md).',
  reference: 'docs/testing.md or schemas/rule-test.schema.json',
};

/** Where cases start unless a file says `start:`. */
export const defaultTestStart = Date.parse('2026-01-01T00:00:00Z');

/** A place in a test file, for messages that point back at it. */
export interface TestLocation {
  file: string;
  line: number;
  column: number;
}

/** One run a case expects (a `count` of n stands for n of these in a row). */
export interface RunExpectation {
  rule: string;
  count: number;
  /** Milliseconds from the start. */
  at?: number;
  actions?: string[];
  params?: Record<string, unknown>;
  event?: Record<string, unknown>;
  status: 'succeeded' | 'failed' | 'pending';
  /** By step id (or index, as written): attempts the step took. */
  attempts?: Record<string, number>;
  /** Where the expectation is written. */
  location: TestLocation;
  /** Where each of its keys is written (`params.<step>` and `attempts.<step>` per step). */
  fields: Record<string, TestLocation>;
}

/** What a case checks after its events. */
export interface CaseExpectation {
  /** Where `expect:` is written. */
  location: TestLocation;
  /** Where `runs:` is written. */
  runsLocation?: TestLocation;
  runs?: RunExpectation[];
  /** Whether `runs` lists every run (true) or only those of the rules it names. */
  only: boolean;
  not: Array<{ rule: string; location: TestLocation }>;
  facts?: Record<string, unknown>;
  /** Where each expected fact is written, by name. */
  factLocations: Record<string, TestLocation>;
}

/** One case, ready to run: events in time order with their offsets, the facts to set first. */
export interface RuleTestCase {
  name: string;
  location: TestLocation;
  /** The facts before the case: the file's, then the case's over them. */
  facts: Record<string, unknown>;
  /** Stand-in values of secrets, from the file's `secrets`. */
  secrets: Record<string, string>;
  events: Array<{ at: number; event: CloudEvent }>;
  /** Milliseconds from the start that time runs to after the last event. */
  until: number;
  /** Scripted attempts, by rule and step id: see {@link scriptedOutcome}. */
  outcomes: Map<string, ScriptedOutcome[]>;
  expect: CaseExpectation;
}

/** How some attempts of a step turn out in a test, instead of the recorded action's success. */
export type ScriptedOutcome =
  | { readonly kind: 'fail'; readonly message: string; readonly retry: boolean; readonly times: number }
  | { readonly kind: 'output'; readonly output: unknown; readonly times: number };

/** The key of a rule's step in {@link RuleTestCase.outcomes}. */
export function outcomeKey(rule: string, stepId: string): string {
  return `${rule}\u0000${stepId}`;
}

/**
 * The scripted outcome of attempt `attempt` (1 for the first) of a step, or undefined when the attempt
 * is not scripted: the outcomes cover the attempts of every run in order, each `times` of them.
 */
export function scriptedOutcome(
  outcomes: readonly ScriptedOutcome[] | undefined,
  attempt: number,
): ScriptedOutcome | undefined {
  let covered = 0;
  for (const outcome of outcomes ?? []) {
    covered += outcome.times;
    if (attempt <= covered) return outcome;
  }
  return undefined;
}

/** A compiled rule test file. */
export interface RuleTest {
  path: string;
  /** The rulebook paths, resolved against the test file's folder. */
  rulebooks: string[];
  /** Milliseconds since the epoch. */
  start: number;
  cases: RuleTestCase[];
}

/** A test file that parsed; `compile` checks it against the rulebook it names. */
export interface ParsedRuleTest {
  path: string;
  /** The rulebook paths, resolved against the test file's folder. */
  rulebooks: string[];
  /**
   * Checks the cases against the compiled rulebook (rule names, step ids and kinds exist) and builds
   * them. Throws a {@link RuleTestError}.
   */
  compile(rulebook: Rulebook): RuleTest;
  /** A problem at `path` of the test file (e.g. `['rulebook']` when the rulebook cannot be read). */
  problem(path: Path, message: string): RulebookProblem;
}

/**
 * Rule test files that cannot be used (REFLEX_ERR_RULETEST_INVALID). `problems` lists all found, test
 * files' and their rulebooks' alike, rendered as `file:line:column: message` with the offending text.
 */
export class RuleTestError extends ReflexError {
  readonly problems: RulebookProblem[];
  constructor(problems: RulebookProblem[]) {
    super(
      'REFLEX_ERR_RULETEST_INVALID',
      { count: problems.length, problems: formatProblems(problems) },
      { details: { problems } },
    );
    this.problems = problems;
  }
}

/** A place in a document: keys and list indexes from the top. */
export type Path = ReadonlyArray<string | number>;

/**
 * Parses and schema-checks a rule test file. Throws a {@link RuleTestError}.
 *
 * @example
 * const parsed = parseRuleTest({ path: 'examples/heartbeat/rulebook.test.yaml', content });
 * const test = parsed.compile(compileRulebook(await readRulebookFiles(parsed.rulebooks), { actions }));
 */
export function parseRuleTest(file: RulebookFile): ParsedRuleTest {
  const source = new SourceFile<RuleTestDocument>(file, ruleTestFormat);
  const problems: RulebookProblem[] = [];
  const document = source.parse(problems);
  if (document === undefined) throw new RuleTestError(problems);
  const folder = dirname(file.path);
  const written = typeof document.rulebook === 'string' ? [document.rulebook] : document.rulebook;
  const rulebooks = written.map((path) => (isAbsolute(path) ? path : join(folder, path)));
  return {
    path: file.path,
    rulebooks,
    compile(rulebook) {
      const found: RulebookProblem[] = [];
      const compiled = compileTest(document, source, rulebook, found);
      if (found.length > 0) {
        found.sort((a, b) => a.line - b.line || a.column - b.column);
        throw new RuleTestError(found);
      }
      return { ...compiled, path: file.path, rulebooks };
    },
    problem: (path, message) => source.problem(path, message),
  };
}

function compileTest(
  document: RuleTestDocument,
  source: SourceFile<RuleTestDocument>,
  rulebook: Rulebook,
  problems: RulebookProblem[],
): Omit<RuleTest, 'path' | 'rulebooks'> {
  const rules = new Map(rulebook.rules.map((rule) => [rule.name, rule]));
  const where = (path: Path): TestLocation => {
    const { file, line, column } = source.locate(path);
    return { file, line, column };
  };
  const fail = (path: Path, message: string, options: { key?: string } = {}) => {
    problems.push(source.problem(path, message, options));
  };
  const duration = (path: Path, value: string | number): number | undefined => {
    try {
      return parseDuration(value, describePath(path, 'the rule test'));
    } catch (error) {
      if (!(error instanceof ReflexError)) throw error;
      fail(path, error.message);
      return undefined;
    }
  };
  const rule = (path: Path, name: string): Rule | undefined => {
    const found = rules.get(name);
    if (!found) {
      const known = [...rules.keys()];
      const names = known.slice(0, 20).map((n) => `\`${n}\``);
      if (known.length > names.length) names.push('...');
      fail(
        path,
        known.length === 0
          ? `the rulebook has no rule named \`${name}\` (it has no rules). To fix: check \`rulebook:\`.`
          : `the rulebook has no rule named \`${name}\`. To fix: use one of ${names.join(', ')}.`,
      );
    }
    return found;
  };
  /** Reports a step that the rule does not have; `path` is the map whose key names it, or the value. */
  const checkStep = (path: Path, target: Rule | undefined, ruleName: string, key: string, asKey = true) => {
    if (!target || stepOf(target, key) !== undefined) return;
    fail(
      path,
      `the rule \`${ruleName}\` has no step \`${key}\`. To fix: name a step by its id or index (${target.then
        .map((step, n) => (step.id === String(n) ? step.id : `${step.id} or ${n}`))
        .join(', ')}).`,
      asKey ? { key } : {},
    );
  };
  const checkFacts = (path: Path, facts: Record<string, unknown> | undefined) => {
    for (const name of Object.keys(facts ?? {})) {
      if (!isFactName(name))
        fail(path, `\`${name}\` cannot be a fact name. To fix: ${factNameRule}`, { key: name });
    }
  };

  let start = defaultTestStart;
  if (document.start !== undefined) {
    const parsed = /^\d{4}-\d{2}-\d{2}T/.test(document.start) ? Date.parse(document.start) : Number.NaN;
    if (Number.isNaN(parsed))
      fail(['start'], `\`start\` is not an RFC 3339 instant. To fix: write it like "2026-01-01T09:00:00Z".`);
    else start = parsed;
  }
  checkFacts(['facts'], document.facts);

  const names = new Map<string, number>();
  const cases = document.cases.map((written, i): RuleTestCase => {
    const path = ['cases', i] as const;
    const earlier = names.get(written.name);
    if (earlier !== undefined) {
      const first = where(['cases', earlier, 'name']);
      fail(
        [...path, 'name'],
        `the case name \`${written.name}\` is already used at line ${first.line}. To fix: give each case its own name.`,
      );
    } else names.set(written.name, i);
    checkFacts([...path, 'facts'], written.facts);

    let previous = 0;
    const events = (written.events ?? []).map((e, j) => {
      let at = e.at === undefined ? previous : (duration([...path, 'events', j, 'at'], e.at) ?? previous);
      if (Math.abs(start + at) > maxTimestampMs) {
        fail(
          [...path, 'events', j, 'at'],
          '`at` puts the event past the last instant a timestamp can hold (the year 275760). To fix: give a shorter offset from `start`.',
        );
        at = previous;
      }
      previous = at;
      const contentType = e.datacontenttype ?? (e.data === undefined ? undefined : 'application/json');
      const event: CloudEvent = {
        specversion: '1.0',
        id: e.id ?? `event-${j + 1}`,
        source: e.source ?? 'reflex-test',
        type: e.type,
        ...(e.subject === undefined ? {} : { subject: e.subject }),
        time: e.time ?? new Date(start + at).toISOString(),
        ...(contentType === undefined ? {} : { datacontenttype: contentType }),
        ...(e.data === undefined ? {} : { data: e.data }),
        ...(e.extensions ?? {}),
      };
      try {
        validateCloudEvent(event);
      } catch (error) {
        if (!(error instanceof ReflexError)) throw error;
        fail([...path, 'events', j], `the event is not valid: ${error.message}`);
      }
      return { at, event };
    });
    // A stable sort: events written at the same `at` keep their order.
    events.sort((a, b) => a.at - b.at);
    const last = events.length === 0 ? 0 : events[events.length - 1]!.at;
    let until = last;
    if (written.until !== undefined) {
      const value = duration([...path, 'until'], written.until);
      if (value !== undefined && value < last) {
        fail(
          [...path, 'until'],
          `\`until\` is before the last event (at ${formatDuration(last)}). To fix: give a later time, or leave it out.`,
        );
      } else if (value !== undefined) until = value;
    }

    const outcomes = new Map<string, ScriptedOutcome[]>();
    (written.outcomes ?? []).forEach((o, k) => {
      const outcomePath = [...path, 'outcomes', k] as const;
      const target = rule([...outcomePath, 'rule'], o.rule);
      const stepKey = String(o.step);
      checkStep([...outcomePath, 'step'], target, o.rule, stepKey, false);
      const step = target ? stepOf(target, stepKey) : undefined;
      const times = o.times ?? 1;
      const hasOutput = 'output' in o;
      if ((o.fail === undefined) === !hasOutput) {
        fail(
          outcomePath,
          'an outcome needs exactly one of `fail` (the attempt fails with this message) and `output` (it succeeds with this output).',
        );
        return;
      }
      if (o.retry !== undefined && o.fail === undefined) {
        fail([...outcomePath, 'retry'], '`retry` only goes with `fail`. To fix: remove it, or give `fail`.');
      }
      if (!step) return;
      const scripted: ScriptedOutcome =
        o.fail !== undefined
          ? { kind: 'fail', message: o.fail, retry: o.retry ?? true, times }
          : { kind: 'output', output: o.output, times };
      const key = outcomeKey(o.rule, step.id);
      outcomes.set(key, [...(outcomes.get(key) ?? []), scripted]);
    });

    const expectPath = [...path, 'expect'] as const;
    const exp = written.expect;
    checkFacts([...expectPath, 'facts'], exp.facts);
    const expectation: CaseExpectation = {
      location: where(expectPath),
      only: exp.only ?? true,
      factLocations: Object.fromEntries(
        Object.keys(exp.facts ?? {}).map((name) => [name, where([...expectPath, 'facts', name])]),
      ),
      not: (exp.not ?? []).map((ref, k) => {
        const name = typeof ref === 'string' ? ref : ref.rule;
        const refPath =
          typeof ref === 'string' ? [...expectPath, 'not', k] : [...expectPath, 'not', k, 'rule'];
        rule(refPath, name);
        return { rule: name, location: where(refPath) };
      }),
    };
    if (exp.facts !== undefined) expectation.facts = exp.facts;
    if (exp.runs !== undefined) {
      expectation.runsLocation = where([...expectPath, 'runs']);
      expectation.runs = exp.runs.map((r, k) => {
        const runPath = [...expectPath, 'runs', k] as const;
        const target = rule([...runPath, 'rule'], r.rule);
        const run: RunExpectation = {
          rule: r.rule,
          count: r.count ?? 1,
          status: r.status ?? 'succeeded',
          location: where(runPath),
          fields: {},
        };
        for (const key of ['at', 'actions', 'status', 'event'] as const) {
          if (r[key] !== undefined) run.fields[key] = where([...runPath, key]);
        }
        for (const key of Object.keys(r.params ?? {})) {
          run.fields[`params.${key}`] = where([...runPath, 'params', key]);
        }
        for (const key of Object.keys(r.attempts ?? {})) {
          run.fields[`attempts.${key}`] = where([...runPath, 'attempts', key]);
        }
        if (r.at !== undefined) {
          const at = duration([...runPath, 'at'], r.at);
          if (at !== undefined) run.at = at;
        }
        if (r.actions !== undefined) {
          run.actions = r.actions;
          const kinds = target?.then.map((step) => step.kind) ?? [];
          r.actions.forEach((kind, n) => {
            if (target && kinds[n] !== kind) {
              fail(
                [...runPath, 'actions', n],
                kinds[n] === undefined
                  ? `the rule \`${r.rule}\` has only ${kinds.length} step(s) (${kinds.join(', ')}). To fix: list the kinds of its steps that run, in order.`
                  : `step ${n} of the rule \`${r.rule}\` is \`${kinds[n]}\`, not \`${kind}\`. To fix: list the kinds of its steps in order (${kinds.join(', ')}).`,
              );
            }
          });
        }
        if (r.params !== undefined) {
          run.params = r.params;
          for (const key of Object.keys(r.params)) checkStep([...runPath, 'params'], target, r.rule, key);
        }
        if (r.attempts !== undefined) {
          run.attempts = r.attempts;
          for (const key of Object.keys(r.attempts)) checkStep([...runPath, 'attempts'], target, r.rule, key);
        }
        if (r.event !== undefined) run.event = r.event;
        return run;
      });
    }
    return {
      name: written.name,
      location: where([...path, 'name']),
      facts: { ...(document.facts ?? {}), ...(written.facts ?? {}) },
      secrets: { ...(document.secrets ?? {}) },
      events,
      until,
      outcomes,
      expect: expectation,
    };
  });
  return { start, cases };
}

/** The step of `rule` that `key` names: by id, else by index. */
export function stepOf(rule: Rule, key: string): { index: number; id: string; kind: string } | undefined {
  const byId = rule.then.findIndex((step) => step.id === key);
  const index = byId >= 0 ? byId : /^\d+$/.test(key) ? Number(key) : -1;
  const step = rule.then[index];
  return step ? { index, id: step.id, kind: step.kind } : undefined;
}
