import { createHash } from 'node:crypto';
import { compileCondition } from '../core/condition.js';
import { impliedPattern } from '../core/condition-index.js';
import { compileExpression, type Expression } from '../core/expression.js';
import {
  type FlowSpec,
  isStateful,
  type StormSpecs,
  stormStages,
  type WhenSpec,
} from '../core/flow/rule-flow.js';
import { checkCompilable } from '../core/pattern/compiled-matcher.js';
import { type Pattern, parsePattern } from '../core/pattern/pattern.js';
import type { KeyedStage, SubCondition } from '../core/rule.js';
import type { RuleDocument, SubConditionDocument } from './schema.js';

/** Where a compile step is in the file, and how to report a problem there. */
export interface FlowCompileContext {
  /** Runs a core compiler at `path` (relative to the rule) and reports its error there. */
  at<T>(path: ReadonlyArray<string | number>, compile: () => T): T;
  /** Reports a problem at `path` (relative to the rule). */
  fail(path: ReadonlyArray<string | number>, message: string): never;
  /** Parses a duration at `path` (relative to the rule). */
  duration(path: ReadonlyArray<string | number>, value: string | number): number;
  /** The partial-match ttl of the file (`defaults.ttl`), in ms. */
  ttlMs: number;
}

export interface CompiledFlow {
  subs: SubCondition[];
  flow: FlowSpec;
  stateful: boolean;
  readsHeldEvents: boolean;
  keys: Partial<Record<KeyedStage, Expression>>;
  concurrency?: { max: number };
  flowHash: string;
}

const forms = ['all', 'any', 'sequence', 'absence', 'count'] as const;

/**
 * Compiles a rule's `when` and its storm control into the sub-conditions the matcher indexes and the
 * flow the dispatcher runs. Problems are reported at their place through `ctx`.
 */
export function compileFlow(doc: RuleDocument, ctx: FlowCompileContext): CompiledFlow {
  const when = doc.when;
  const used = forms.filter((form) => when[form] !== undefined);
  const single = when.pattern !== undefined || when.if !== undefined;
  if (used.length > 1 || (used.length === 1 && single)) {
    const names = [...(single ? ['pattern/if'] : []), ...used];
    ctx.fail(
      ['when'],
      `\`when\` has ${names.join(' and ')}; a rule has one of them. To fix: split it into several rules.`,
    );
  }
  if (when.within !== undefined && used[0] !== 'all' && used[0] !== 'sequence') {
    ctx.fail(
      ['when', 'within'],
      '`within` belongs to `all` and `sequence` (`absence` and `count` have their own). To fix: move or remove it.',
    );
  }
  if (when.by !== undefined && used[0] === 'any') {
    ctx.fail(
      ['when', 'by'],
      '`by` has no effect on `any`: each matching event fires on its own. To fix: remove it, or key a storm control with `key`.',
    );
  }
  if (doc.ttl !== undefined && used[0] !== 'all' && used[0] !== 'sequence') {
    ctx.fail(
      ['ttl'],
      '`ttl` bounds partial matches of `all` and `sequence` without `within`; this rule has none. To fix: remove it.',
    );
  }
  if (when.by !== undefined && used.length === 0) {
    ctx.fail(
      ['when', 'by'],
      '`by` groups the events of a correlation; a single-event rule has nothing to group. To fix: remove it, or use `key` on a storm control.',
    );
  }
  const ruleBy =
    when.by !== undefined ? ctx.at(['when', 'by'], () => compileExpression(when.by as string)) : undefined;
  const windowOf = (path: ReadonlyArray<string | number>, value: string | number | undefined) =>
    value === undefined
      ? doc.ttl === undefined
        ? ctx.ttlMs
        : ctx.duration(['ttl'], doc.ttl)
      : ctx.duration(path, value);

  const sub = (
    path: ReadonlyArray<string | number>,
    written: SubConditionDocument,
    name: string,
  ): SubCondition => {
    const compiled: SubCondition = { name: written.name ?? name };
    if (written.pattern !== undefined) {
      compiled.pattern = ctx.at([...path, 'pattern'], () => {
        const pattern = parsePattern(written.pattern);
        checkCompilable(pattern);
        return pattern;
      });
      compiled.indexPattern = compiled.pattern;
    }
    if (written.if !== undefined) {
      compiled.condition = ctx.at([...path, 'if'], () => compileCondition(written.if as string));
      if (!compiled.pattern) {
        const implied = impliedIndex(written.if);
        if (implied) compiled.indexPattern = implied;
      }
    }
    if (written.by !== undefined)
      compiled.by = ctx.at([...path, 'by'], () => compileExpression(written.by as string));
    else if (ruleBy) compiled.by = ruleBy;
    return compiled;
  };
  const list = (form: 'all' | 'any' | 'sequence', written: SubConditionDocument[]) => {
    const subs = written.map((w, i) => sub(['when', form, i], w, `e${i}`));
    const seen = new Set<string>();
    subs.forEach((s, i) => {
      if (seen.has(s.name))
        ctx.fail(
          ['when', form, i, 'name'],
          `the name \`${s.name}\` is used twice in this \`${form}\`. To fix: name each event differently.`,
        );
      seen.add(s.name);
    });
    return subs;
  };

  let subs: SubCondition[];
  let whenSpec: WhenSpec;
  if (when.all) {
    subs = list('all', when.all);
    whenSpec = { type: 'all', subs, windowMs: windowOf(['when', 'within'], when.within) };
  } else if (when.any) {
    subs = list('any', when.any);
    whenSpec = { type: 'any', subs };
  } else if (when.sequence) {
    subs = list('sequence', when.sequence);
    whenSpec = { type: 'sequence', subs, windowMs: windowOf(['when', 'within'], when.within) };
  } else if (when.absence) {
    const a = when.absence;
    subs = [
      sub(['when', 'absence', 'after'], a.after, 'after'),
      sub(['when', 'absence', 'expect'], a.expect, 'expect'),
    ];
    if (subs[0]!.name === subs[1]!.name)
      ctx.fail(['when', 'absence', 'expect', 'name'], '`after` and `expect` need different names.');
    whenSpec = { type: 'absence', subs, windowMs: ctx.duration(['when', 'absence', 'within'], a.within) };
  } else if (when.count) {
    const c = when.count;
    subs = [sub(['when', 'count'], { ...c }, 'matched')];
    whenSpec = {
      type: 'count',
      subs,
      atLeast: c.atLeast,
      windowMs: ctx.duration(['when', 'count', 'within'], c.within),
    };
  } else {
    subs = [
      sub(
        ['when'],
        { ...(when.pattern ? { pattern: when.pattern } : {}), ...(when.if ? { if: when.if } : {}) },
        'event',
      ),
    ];
    whenSpec = { type: 'single' };
  }

  const flow: FlowSpec = { when: whenSpec };
  const keys: Partial<Record<KeyedStage, Expression>> = {};
  const key = (stage: KeyedStage, written: { key?: string } | undefined) => {
    if (written?.key !== undefined)
      keys[stage] = ctx.at([stage, 'key'], () => compileExpression(written.key as string));
  };
  if (doc.dedupe) {
    key('dedupe', doc.dedupe);
    flow.dedupe = { windowMs: ctx.duration(['dedupe', 'window'], doc.dedupe.window) };
  }
  const storm: StormSpecs = {};
  for (const stage of stormStages) compileStormStage(storm, stage, doc[stage], key, ctx);
  Object.assign(flow, storm);
  const compiled: CompiledFlow = {
    subs,
    flow,
    stateful: isStateful(flow),
    readsHeldEvents: [...subs.flatMap((s) => [s.condition, s.by]), ...Object.values(keys)].some(
      (expression) => expression !== undefined && /\bevents\b/.test(expression.source),
    ),
    keys,
    flowHash: hashOf({
      when: doc.when,
      dedupe: doc.dedupe,
      throttle: doc.throttle,
      debounce: doc.debounce,
      rateLimit: doc.rateLimit,
      batch: doc.batch,
      ttl: doc.ttl ?? ctx.ttlMs,
    }),
  };
  if (doc.concurrency) {
    key('concurrency', doc.concurrency);
    compiled.concurrency = { max: doc.concurrency.max ?? 1 };
  }
  return compiled;
}

type StormStage = (typeof stormStages)[number];

/** How each storm-control stage of the registry is compiled from what a rule writes. */
const stormCompilers: {
  readonly [K in StormStage]: (
    written: NonNullable<RuleDocument[K]>,
    ctx: FlowCompileContext,
  ) => NonNullable<StormSpecs[K]>;
} = {
  throttle: (written, ctx) => ({ windowMs: ctx.duration(['throttle', 'window'], written.window) }),
  debounce: (written, ctx) => ({
    quietMs: ctx.duration(['debounce', 'quiet'], written.quiet),
    pass: written.pass ?? 'last',
    ...(written.maxWait === undefined
      ? {}
      : { maxWaitMs: ctx.duration(['debounce', 'maxWait'], written.maxWait) }),
  }),
  rateLimit: (written, ctx) => ({
    max: written.max,
    perMs: ctx.duration(['rateLimit', 'per'], written.per),
    excess: written.excess ?? 'drop',
    maxQueue: written.maxQueue ?? 1000,
  }),
  batch: (written, ctx) => ({
    size: written.size,
    windowMs: ctx.duration(['batch', 'window'], written.window),
  }),
};

/** Compiles the storm stage `stage` of a rule, if it has one, into `storm` (and its key). */
function compileStormStage<K extends StormStage>(
  storm: StormSpecs,
  stage: K,
  written: RuleDocument[K],
  key: (stage: KeyedStage, written: { key?: string }) => void,
  ctx: FlowCompileContext,
): void {
  if (written === undefined) return;
  key(stage, written);
  storm[stage] = stormCompilers[stage](written, ctx);
}

/** The pattern a condition implies, if the compiled matcher can take it; else none (the sub matches all). */
function impliedIndex(condition: string): Pattern | undefined {
  const implied = impliedPattern(condition);
  if (!implied) return undefined;
  try {
    checkCompilable(implied);
    return implied;
  } catch {
    return undefined;
  }
}

function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}
