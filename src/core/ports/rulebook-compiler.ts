import { ReflexError } from '../errors.js';
import type { Rule, Rulebook, SourceLocation } from '../rule.js';
import type { Action } from './action.js';

/** A rulebook file as read from disk (or given by a test): what a front end compiles. */
export interface RulebookFile {
  path: string;
  content: string;
}

/** One thing wrong in a rulebook, pointing at the place to fix. */
export interface RulebookProblem {
  file: string;
  line: number;
  column: number;
  message: string;
  /** The offending line of the file, with a caret under the column; empty when there is none to show. */
  excerpt: string;
}

/**
 * A rulebook that cannot be loaded. `problems` lists everything found (up to a limit), in file order;
 * the message renders them as `file:line:column: message` followed by the offending text.
 */
export class RulebookError extends ReflexError {
  readonly problems: RulebookProblem[];
  constructor(problems: RulebookProblem[]) {
    super(
      'REFLEX_ERR_RULEBOOK_INVALID',
      { count: problems.length, problems: formatProblems(problems) },
      { details: { problems } },
    );
    this.problems = problems;
  }
}

/** Renders problems the way compilers do, so editors and terminals can jump to them. */
export function formatProblems(problems: readonly RulebookProblem[]): string {
  return problems
    .map((p) => `${p.file}:${p.line}:${p.column}: ${p.message}${p.excerpt === '' ? '' : `\n${p.excerpt}`}`)
    .join('\n');
}

/** What a front end is told while it compiles: the actions rules may use, which check their parameters. */
export interface RulebookCompileContext {
  actions: { get(kind: string): Action | undefined; kinds(): string[] };
}

/**
 * The RulebookCompiler port: a front end that turns the files of one rulebook format (Reflex's YAML;
 * later Event-Driven Ansible rulebooks, TypeScript) into the engine's rule model. The engine is given
 * its compilers and never reads a format itself; a stored rulebook version is compiled again by the
 * same compilers, recognising each file as they did when it was saved.
 */
export interface RulebookCompiler {
  /** The format's name, for messages, e.g. `reflex-yaml`. */
  readonly format: string;
  /**
   * Whether `file` is written in this format, from its name or its content. Each file goes to the
   * first compiler, in the order given, that accepts it; a general format goes last.
   */
  accepts(file: RulebookFile): boolean;
  /**
   * Compiles the files (all accepted, in path order) into one rulebook, rules indexed from 0 in firing
   * order. Compiles all or nothing: any problem in any file throws a {@link RulebookError} that lists
   * them all at their file:line:column.
   */
  compile(files: readonly RulebookFile[], context: RulebookCompileContext): Rulebook;
}

/**
 * Compiles a set of rulebook files with the first compiler that accepts each. Files of one format make
 * one rulebook as that compiler gives it; files of several formats are compiled per format, and the
 * rulebooks are joined in the order of each format's first file: rules keep firing in that order (and
 * are indexed again), and a rule or webhook name used by two formats is refused like one used twice
 * in one. A file no compiler accepts is a problem of its own.
 * @example compileRulebookFiles([yamlRulebookCompiler], files, { actions })
 */
export function compileRulebookFiles(
  compilers: readonly RulebookCompiler[],
  files: readonly RulebookFile[],
  context: RulebookCompileContext,
): Rulebook {
  const groups = new Map<RulebookCompiler, RulebookFile[]>();
  const unclaimed: RulebookProblem[] = [];
  for (const file of files) {
    const compiler = compilers.find((candidate) => candidate.accepts(file));
    if (compiler === undefined) {
      unclaimed.push({
        file: file.path,
        line: 1,
        column: 1,
        message: `no rulebook format recognises this file (known: ${compilers.map((c) => c.format).join(', ') || 'none'}). To fix: leave it out, or give it the name and content of one of those formats.`,
        excerpt: '',
      });
      continue;
    }
    const group = groups.get(compiler);
    if (group === undefined) groups.set(compiler, [file]);
    else group.push(file);
  }
  if (unclaimed.length > 0) throw new RulebookError(unclaimed);
  const compiled = [...groups].map(([compiler, group]) => compiler.compile(group, context));
  if (compiled.length === 1) return compiled[0]!;
  return joinRulebooks(compiled);
}

/** Joins rulebooks of different formats, refusing a rule or webhook name that two of them use. */
function joinRulebooks(rulebooks: readonly Rulebook[]): Rulebook {
  const rules: Rule[] = [];
  const webhooks: Rulebook['webhooks'] = new Map();
  const ruleNames = new Map<string, SourceLocation>();
  const problems: RulebookProblem[] = [];
  const clash = (what: string, name: string, at: SourceLocation, earlier: SourceLocation) =>
    problems.push({
      ...at,
      message: `the ${what} name \`${name}\` is already used at ${earlier.file}:${earlier.line}:${earlier.column}. To fix: ${what} names must be unique across all loaded rulebooks.`,
      excerpt: '',
    });
  for (const rulebook of rulebooks) {
    for (const rule of rulebook.rules) {
      const earlier = ruleNames.get(rule.name);
      if (earlier !== undefined) clash('rule', rule.name, rule.location, earlier);
      else ruleNames.set(rule.name, rule.location);
      rules.push({ ...rule, index: rules.length });
    }
    for (const [name, webhook] of rulebook.webhooks) {
      const earlier = webhooks.get(name);
      if (earlier !== undefined) clash('webhook', name, webhook.location, earlier.location);
      else webhooks.set(name, webhook);
    }
  }
  if (problems.length > 0) throw new RulebookError(problems);
  return { rules, webhooks };
}
