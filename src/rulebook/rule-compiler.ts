import { ReflexError } from '../core/errors.js';
import { allowedBy, type HostPattern, parseHostPattern } from '../core/host-allowlist.js';
import type { Action } from '../core/ports/action.js';
import { RulebookError, type RulebookFile, type RulebookProblem } from '../core/ports/rulebook-compiler.js';
import {
  type ActionStep,
  defaultRetryPolicy,
  type RetryPolicy,
  type Rule,
  type Rulebook,
  type SourceLocation,
  type Webhook,
} from '../core/rule.js';
import { compileTemplate, type Template } from '../core/template.js';
import { compileFlow } from './flow-compiler.js';
import { type RulebookDocument, type StepDocument, webhookNamePattern } from './schema.js';
import {
  describePath,
  durationAt,
  LocatedProblem,
  locatedCompile,
  type Path,
  rulebookFormatFor,
  SourceFile,
} from './source-file.js';
import { compileWebhook } from './webhook-compiler.js';

/** What the compiler needs to know about actions: which kinds exist, and how each checks its parameters. */
export interface RulebookCompileOptions {
  actions: { get(kind: string): Action | undefined; kinds(): string[] };
}

const maxProblems = 50;

/**
 * Parses, validates and compiles rulebook files into one `Rulebook`. Nothing is half-loaded: any problem
 * in any file throws a `RulebookError` listing them all.
 */
export function compileRulebook(files: readonly RulebookFile[], options: RulebookCompileOptions): Rulebook {
  const problems: RulebookProblem[] = [];
  const rules: Rule[] = [];
  const webhooks = new Map<string, Webhook>();
  const ruleNames = new Map<string, SourceLocation>();
  for (const file of files) {
    const source = new SourceFile(file, rulebookFormatFor(options.actions));
    const read = source.read(problems);
    if (read === undefined) continue;
    // Parts the schema refused are skipped; the rest is compiled all the same, so that a misspelt key in
    // one step does not hide a broken condition in another rule until the next round.
    compileFile(read.value as RulebookDocument, source, options, {
      rules,
      webhooks,
      ruleNames,
      problems,
      refused: read.refused,
    });
    if (problems.length >= maxProblems) break;
  }
  if (problems.length > 0) {
    // Files in the order given, and within a file by position, however the checks found them.
    const order = new Map(files.map((f, i) => [f.path, i]));
    problems.sort(
      (a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line || a.column - b.column,
    );
    throw new RulebookError(problems.slice(0, maxProblems));
  }
  return { rules, webhooks };
}

interface CompileState {
  rules: Rule[];
  webhooks: Map<string, Webhook>;
  ruleNames: Map<string, SourceLocation>;
  problems: RulebookProblem[];
  /** Whether the schema refused the value at `path` (or something in it): it is not compiled. */
  refused: (path: Path) => boolean;
}

/** The keys of a rule that its flow is compiled from. */
const flowKeys = ['when', 'dedupe', 'throttle', 'debounce', 'rateLimit', 'batch', 'concurrency', 'ttl'];

const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

function compileFile(
  document: RulebookDocument,
  source: SourceFile,
  options: RulebookCompileOptions,
  state: CompileState,
) {
  const { refused } = state;
  const vars = Object.freeze({ ...(refused(['vars']) ? {} : (document.vars ?? {})) }) as Record<
    string,
    unknown
  >;
  const fileDefaults = {
    timeoutMs: 30_000,
    retry: defaultRetryPolicy,
    /** Partial matches without a `within` live this long. */
    ttlMs: 86_400_000,
  };
  const attempt = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (error) {
      if (error instanceof LocatedProblem) {
        state.problems.push(error.problem);
        return undefined;
      }
      throw error;
    }
  };
  if (document.defaults && !refused(['defaults'])) {
    const defaults = document.defaults;
    attempt(() => {
      if (defaults.timeout !== undefined)
        fileDefaults.timeoutMs = durationAt(source, ['defaults', 'timeout'], defaults.timeout);
      if (defaults.ttl !== undefined)
        fileDefaults.ttlMs = durationAt(source, ['defaults', 'ttl'], defaults.ttl);
      if (defaults.retry)
        fileDefaults.retry = retryPolicy(source, ['defaults', 'retry'], defaults.retry, defaultRetryPolicy);
    });
  }

  for (const [name, hook] of Object.entries(isObject(document.webhooks) ? document.webhooks : {})) {
    // A name the schema refused is reported at the map (`webhooks`), and its value was never checked.
    if (refused(['webhooks', name]) || !webhookNamePattern.test(name)) continue;
    const location = source.locate(['webhooks', name], { key: name });
    const existing = state.webhooks.get(name);
    if (existing) {
      state.problems.push(
        source.problem(
          ['webhooks', name],
          `the webhook \`${name}\` is declared twice (first at ${at(existing.location)}). To fix: rename one.`,
          {
            key: name,
          },
        ),
      );
      continue;
    }
    const webhook = attempt(() => compileWebhook(source, name, hook, location));
    if (webhook !== undefined) state.webhooks.set(name, webhook);
  }

  (Array.isArray(document.rules) ? document.rules : []).forEach((doc, i) => {
    if (!isObject(doc)) return;
    const path = ['rules', i] as const;
    const location = source.locate([...path, 'name']);
    const earlier = typeof doc.name === 'string' ? state.ruleNames.get(doc.name) : undefined;
    if (earlier) {
      state.problems.push(
        source.problem(
          [...path, 'name'],
          `the rule name \`${doc.name}\` is already used at ${at(earlier)}. To fix: rule names must be unique across all loaded rulebooks.`,
        ),
      );
      // The rest of the rule is still checked, so its own problems are reported in the same round.
    } else if (typeof doc.name === 'string') state.ruleNames.set(doc.name, location);
    const flowRefused = !isObject(doc.when) || flowKeys.some((key) => refused([...path, key]));
    const flow = flowRefused
      ? undefined
      : attempt(() =>
          compileFlow(doc, {
            at: (inner, compile) => locatedCompile(source, [...path, ...inner], compile),
            fail: (inner, message) => {
              throw new LocatedProblem(source.problem([...path, ...inner], message));
            },
            duration: (inner, value) => durationAt(source, [...path, ...inner], value),
            ttlMs: fileDefaults.ttlMs,
          }),
        );
    const then: ActionStep[] = [];
    const stepIds = new Set<string>();
    (Array.isArray(doc.then) ? doc.then : []).forEach((step, j) => {
      if (refused([...path, 'then', j])) return;
      const compiled = attempt(() =>
        compileStep(source, [...path, 'then', j], step, j, options, fileDefaults),
      );
      if (!compiled) return;
      if (stepIds.has(compiled.id)) {
        state.problems.push(
          source.problem(
            [...path, 'then', j, 'id'],
            `the step id \`${compiled.id}\` is used twice in rule \`${doc.name}\`. To fix: give each step its own id.`,
          ),
        );
        return;
      }
      stepIds.add(compiled.id);
      then.push(compiled);
    });
    // A rule with a problem is never loaded: the whole rulebook is refused with its problems.
    if (!flow || earlier || refused(path)) return;
    const rule: Rule = {
      name: doc.name,
      index: state.rules.length,
      subs: flow.subs,
      flow: flow.flow,
      stateful: flow.stateful,
      readsHeldEvents: flow.readsHeldEvents,
      keys: flow.keys,
      flowHash: flow.flowHash,
      then,
      stop: doc.stop ?? false,
      enabled: doc.enabled ?? true,
      vars,
      location: { file: location.file, line: location.line, column: location.column },
    };
    if (doc.description !== undefined) rule.description = doc.description;
    if (flow.concurrency) rule.concurrency = flow.concurrency;
    state.rules.push(rule);
  });
}

function retryPolicy(
  source: SourceFile,
  path: Path,
  value: NonNullable<StepDocument['retry']>,
  base: RetryPolicy,
): RetryPolicy {
  return Object.freeze({
    attempts: value.attempts ?? base.attempts,
    backoffMs:
      value.backoff === undefined ? base.backoffMs : durationAt(source, [...path, 'backoff'], value.backoff),
    maxDelayMs:
      value.maxDelay === undefined
        ? base.maxDelayMs
        : durationAt(source, [...path, 'maxDelay'], value.maxDelay),
  });
}

function compileStep(
  source: SourceFile,
  path: Path,
  step: StepDocument,
  index: number,
  options: RulebookCompileOptions,
  defaults: { timeoutMs: number; retry: RetryPolicy },
): ActionStep {
  const record = step as Record<string, unknown>;
  // The schema let exactly one action of the catalog through.
  const kind = options.actions.kinds().find((k) => record[k] !== undefined)!;
  const action = options.actions.get(kind)!;
  const location = source.locate([...path, kind], { key: kind });
  const params = compileStepParams(source, [...path, kind], action, record[kind]);
  if (params.isStatic) {
    // Parameters without templates can be checked now instead of failing the first run.
    locatedCompile(source, [...path, kind], () => action.parse(params.render(staticContext)));
  }
  return {
    id: step.id ?? String(index),
    kind,
    params,
    timeoutMs:
      step.timeout === undefined
        ? defaults.timeoutMs
        : durationAt(source, [...path, 'timeout'], step.timeout),
    retry: step.retry ? retryPolicy(source, [...path, 'retry'], step.retry, defaults.retry) : defaults.retry,
    location: { file: location.file, line: location.line, column: location.column },
  };
}

/** Where what each action that may not read secrets is given ends up. */
const storedBy: Record<string, string> = {
  emit: 'in the event log',
  fact: 'as a fact, readable over the API',
  log: "in Reflex's log",
};

/**
 * Compiles a step's parameters with what its action needs: URLs in URL mode, their host checked
 * against the step's `hosts` where it is written out, and secrets only where the action may read them.
 */
function compileStepParams(source: SourceFile, path: Path, action: Action, value: unknown): Template {
  const { kind } = action;
  const options = action.templates ?? { secrets: false };
  const hostsKey = options.hostsParam;
  const record = value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  const hostsText = hostsKey === undefined ? undefined : (record[hostsKey] as string[] | undefined);
  let hosts: HostPattern[] | undefined;
  if (hostsKey !== undefined && hostsText !== undefined) {
    hosts = hostsText.map((text, i) => {
      const pattern = text.includes('${{') ? undefined : parseHostPattern(text);
      if (typeof pattern !== 'object') {
        throw new LocatedProblem(
          source.problem(
            [...path, hostsKey, i],
            `${describePath([...path, hostsKey, i])} ${typeof pattern === 'string' ? `is invalid: ${pattern}` : 'holds a template, but the hosts a step may call are written in the rulebook'}. To fix: write a host name or address, \`*.\` and a name for every name below it, and an optional :port.`,
          ),
        );
      }
      return pattern;
    });
  }
  const template = locatedCompile(source, path, () =>
    compileTemplate(value, {
      ...(options.urls === undefined ? {} : { urls: options.urls }),
      templatedHosts: hosts !== undefined,
    }),
  );
  const secret = template.secrets[0];
  if (!options.secrets && secret !== undefined) {
    const error = new ReflexError('REFLEX_ERR_TEMPLATE_SECRET_NOT_ALLOWED', {
      action: kind,
      name: secret.name,
      where: storedBy[kind] ?? 'by Reflex',
    });
    throw new LocatedProblem(source.problem([...path, ...secret.path], `${error.message} [${error.code}]`));
  }
  for (const url of template.urls) {
    if (hosts === undefined || url.host.type !== 'fixed') continue;
    let parsed: URL;
    try {
      parsed = new URL(url.host.origin);
    } catch {
      // Not a URL even without its values: the action says so once it is rendered.
      continue;
    }
    if (allowedBy(hosts, parsed) === undefined) {
      const error = new ReflexError('REFLEX_ERR_ACTION_HTTP_HOST_NOT_ALLOWED', {
        method: 'the request to',
        url: url.host.origin,
        host: parsed.host,
        hosts: hosts.map((h) => h.source).join(', '),
      });
      throw new LocatedProblem(source.problem([...path, ...url.path], `${error.message} [${error.code}]`));
    }
  }
  return template;
}

/** Rendering a template without `${{ }}` reads no variable; this context only satisfies the type. */
const staticContext = Object.freeze({ event: {}, facts: {}, vars: {}, now: 0 });

function at(location: SourceLocation): string {
  return `${location.file}:${location.line}:${location.column}`;
}
