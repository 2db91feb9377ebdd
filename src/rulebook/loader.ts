import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import Schema, { type Validator } from 'typebox/schema';
import { Settings } from 'typebox/system';
import { type Document, isMap, isPair, isScalar, LineCounter, type Node, Scalar } from 'yaml';
import { parseDuration } from '../core/duration.js';
import { ReflexError } from '../core/errors.js';
import { isReservedSource, isReservedType, reflexTypePrefix } from '../core/event.js';
import { allowedBy, type HostPattern, parseHostPattern } from '../core/host-allowlist.js';
import type { Action } from '../core/ports/action.js';
import { RulebookError, type RulebookFile, type RulebookProblem } from '../core/ports/rulebook-compiler.js';
import {
  type ActionStep,
  defaultRetryPolicy,
  type RetryPolicy,
  type Rule,
  type Rulebook,
  type SecretRef,
  type SourceLocation,
  type Webhook,
  type WebhookAuth,
} from '../core/rule.js';
import { compileTemplate, type Template } from '../core/template.js';
import { compileFlow } from './flow-compiler.js';
import {
  actionParamSchemas,
  actionTemplateOptions,
  type RulebookDocument,
  RulebookSchema,
  type StepDocument,
} from './schema.js';
import { parseYaml, readYamlFile, toPlainValues } from './yaml-source.js';

/** What the compiler needs to know about actions: which kinds exist, and how each checks its parameters. */
export interface RulebookCompileOptions {
  actions: ReadonlyMap<string, Action> | { get(kind: string): Action | undefined; kinds(): string[] };
}

const ruleFileName = /\.ya?ml$/i;
const testFileName = /\.test\.ya?ml$/i;
const maxProblems = 50;
/** Characters of a line quoted under a problem. */
const maxExcerpt = 160;

/**
 * What the YAML machinery of this file needs to know about a file format: its schema, for validation
 * and "did you mean" hints, and how its messages name things. Rulebooks use {@link rulebookFormat};
 * another format (rule tests) brings its own and gets the same `file:line:column` problems.
 */
export interface DocumentFormat {
  /** The format's compiled JSON Schema. */
  validator: Validator;
  /** How messages name the whole document, e.g. `the rulebook`. */
  root: string;
  /** The problem reported for an empty file: what is wrong, and what to add. */
  empty: string;
  /** Where the accepted forms are described, for a value that fits none of them. */
  reference: string;
}

/** The rulebook file format. */
export const rulebookFormat: DocumentFormat = {
  validator: Schema.Compile(RulebookSchema),
  root: 'the rulebook',
  empty: 'the file is empty. To fix: add `rules:` with at least one rule.',
  reference: 'docs/rules.md or schemas/rulebook.schema.json',
};

/**
 * Reads rulebook files. A folder stands for every `.yaml`/`.yml` file below it, in path order, except
 * rule tests (`*.test.yaml`) and hidden entries.
 */
export async function readRulebookFiles(paths: readonly string[]): Promise<RulebookFile[]> {
  const files: RulebookFile[] = [];
  const visit = async (path: string, explicit: boolean): Promise<void> => {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(path);
    } catch {
      throw new ReflexError('REFLEX_ERR_RULEBOOK_NOT_FOUND', { path });
    }
    const refuse = (message: string) =>
      unreadable.push({ file: path, line: 1, column: 1, message, excerpt: '' });
    if (info.isDirectory()) {
      let names: string[];
      try {
        names = await readdir(path);
      } catch (error) {
        refuse(
          `the folder cannot be listed (${(error as NodeJS.ErrnoException).code}). To fix: give this user read access, or leave it out.`,
        );
        return;
      }
      for (const name of names.filter((n) => !n.startsWith('.')).sort()) {
        const child = join(path, name);
        const isFolder = await stat(child).then(
          (childInfo) => childInfo.isDirectory(),
          // A dangling link or a file that vanished: read as a file if it is named like one, which
          // reports it.
          () => false,
        );
        if (isFolder) await visit(child, false);
        else if (ruleFileName.test(name) && !testFileName.test(name)) await readOne(child);
      }
      return;
    }
    if (!explicit && !ruleFileName.test(path)) return;
    await readOne(path);
  };
  const readOne = async (path: string) => {
    const read = await readYamlFile(path);
    if ('content' in read) files.push({ path, content: read.content });
    else unreadable.push({ file: path, line: 1, column: 1, message: read.problem, excerpt: '' });
  };
  const unreadable: RulebookProblem[] = [];
  for (const path of paths) await visit(path, true);
  if (unreadable.length > 0) throw new RulebookError(unreadable);
  if (files.length === 0 && paths.length > 0) {
    throw new ReflexError('REFLEX_ERR_RULEBOOK_NOT_FOUND', { path: paths.join(', ') });
  }
  return files;
}

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
    const source = new SourceFile(file);
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

type Path = ReadonlyArray<string | number>;

/**
 * A file with its YAML document, able to turn a path in the document into a line and column. `T` is
 * what a valid document of its format is (a rulebook unless another format is given).
 */
export class SourceFile<T = RulebookDocument> {
  readonly path: string;
  private readonly content: string;
  private readonly format: DocumentFormat;
  private readonly lines: LineCounter = new LineCounter();
  private doc: Document | undefined;

  constructor(file: RulebookFile, format: DocumentFormat = rulebookFormat) {
    this.path = file.path;
    this.content = file.content;
    this.format = format;
  }

  /** Parses and schema-checks the file; records problems and returns undefined when it cannot be used. */
  parse(problems: RulebookProblem[]): T | undefined {
    const read = this.read(problems);
    return read === undefined || read.refused([]) ? undefined : (read.value as T);
  }

  /**
   * Parses and schema-checks the file, recording every problem. Unless the file is not even a YAML
   * document, returns what it holds with the places the schema refused, so that the parts it did not
   * refuse can still be compiled and their problems reported in the same round.
   */
  read(problems: RulebookProblem[]): { value: unknown; refused: (path: Path) => boolean } | undefined {
    const { document: doc, problems: found } = parseYaml(this.content, this.lines);
    for (const problem of found)
      problems.push(this.problemAt(problem.offset, `invalid YAML: ${problem.message}`));
    if (doc === undefined || found.length > 0) return undefined;
    this.doc = doc;
    if (doc.errors.length > 0) {
      for (const error of doc.errors) {
        const reason = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        problems.push(this.problemAt(error.pos[0], `invalid YAML: ${reason}`));
      }
      return undefined;
    }
    const plain = toPlainValues(doc);
    if ('problem' in plain) {
      problems.push(this.problemAt(plain.problem.offset, `invalid YAML: ${plain.problem.message}`));
      return undefined;
    }
    const value = plain.value;
    if (value === null || value === undefined) {
      problems.push(this.problemAt(0, this.format.empty));
      return undefined;
    }
    const [valid, errors] = allSchemaErrors(this.format.validator, value);
    if (valid) return { value, refused: () => false };
    for (const problem of this.schemaProblems(errors)) problems.push(problem);
    // Past the cap, a refused place may be missing from the list: nothing is compiled then.
    if (errors.length >= maxSchemaErrors) return { value, refused: () => true };
    const pointers = errors.map((error) => error.instancePath);
    return {
      value,
      // A place is refused when an error is at it or below it; one at a parent leaves it to the parent.
      refused: (path) => {
        const at = path
          .map((segment) => `/${String(segment).replace(/~/g, '~0').replace(/\//g, '~1')}`)
          .join('');
        return pointers.some((pointer) => pointer === at || pointer.startsWith(`${at}/`) || at === '');
      },
    };
  }

  /** Location of the node at `path` (or of its key, for a key that should not be there). */
  locate(path: Path, options: { key?: string; offset?: number } = {}): SourceLocation & { offset: number } {
    const offset = this.offsetOf(path, options);
    const pos = this.lines.linePos(offset);
    return { file: this.path, line: pos.line, column: pos.col, offset };
  }

  problem(path: Path, message: string, options: { key?: string; offset?: number } = {}): RulebookProblem {
    return this.problemAt(this.offsetOf(path, options), message);
  }

  private problemAt(offset: number, message: string): RulebookProblem {
    const pos = this.lines.lineStarts.length > 0 ? this.lines.linePos(offset) : this.countLines(offset);
    const lineStart = offset - (pos.col - 1);
    const lineEnd = this.content.indexOf('\n', lineStart);
    const lineText = this.content.slice(lineStart, lineEnd === -1 ? undefined : lineEnd).replace(/\r$/, '');
    // A line of a megabyte would be quoted whole: show the part around the column.
    let from = 0;
    if (lineText.length > maxExcerpt)
      from = Math.max(0, Math.min(pos.col - 1 - maxExcerpt / 2, lineText.length - maxExcerpt));
    const shown = lineText.slice(from, from + maxExcerpt);
    const left = from > 0 ? '…' : '';
    const right = from + maxExcerpt < lineText.length ? '…' : '';
    const caret = ' '.repeat(Math.max(0, pos.col - 1 - from + left.length));
    const excerpt = `  ${left}${shown}${right}\n  ${caret}^`;
    return { file: this.path, line: pos.line, column: pos.col, message, excerpt };
  }

  /** Line and column of `offset` for a file refused before the parser counted its lines. */
  private countLines(offset: number): { line: number; col: number } {
    let line = 1;
    let start = 0;
    for (let i = this.content.indexOf('\n'); i !== -1 && i < offset; i = this.content.indexOf('\n', i + 1)) {
      line++;
      start = i + 1;
    }
    return { line, col: offset - start + 1 };
  }

  private offsetOf(path: Path, options: { key?: string; offset?: number }): number {
    const doc = this.doc;
    if (doc === undefined) return 0;
    // Walk down as far as the path exists, so a missing property points at its parent.
    let node: unknown = doc.contents;
    for (const segment of path) {
      if (!isMap(node) && !(node && typeof node === 'object' && 'items' in node)) break;
      const next = isMap(node)
        ? findPair(node, String(segment))?.value
        : (node as { items: unknown[] }).items[Number(segment)];
      if (next === undefined || next === null) break;
      node = next;
    }
    if (options.key !== undefined && isMap(node)) {
      const pair = findPair(node, options.key);
      const key = pair?.key;
      if (isScalar(key) && key.range) return key.range[0];
    }
    const range = (node as Node | undefined)?.range;
    if (!range) return 0;
    if (options.offset !== undefined && isScalar(node)) return range[0] + scalarOffset(node, options.offset);
    return range[0];
  }

  private schemaProblems(errors: ReadonlyArray<SchemaError>): RulebookProblem[] {
    const out: RulebookProblem[] = [];
    const seen = new Set<string>();
    const report = (error: SchemaError) => {
      const key = `${error.instancePath}|${error.keyword}|${JSON.stringify(error.params)}`;
      if (seen.has(key)) return;
      seen.add(key);
      out.push(this.describeSchemaError(error, pointerToPath(error.instancePath)));
    };
    for (const error of errors) {
      // Errors inside one alternative of a oneOf/anyOf say why that alternative failed, which is noise
      // when another alternative was meant. They are reported through the oneOf/anyOf error instead.
      if (error.keyword === 'boolean' || insideAlternative(error.schemaPath)) continue;
      const meant = error.keyword === 'anyOf' ? meantAlternative(errors, error) : undefined;
      if (meant) for (const inner of meant) report(inner);
      else report(error);
    }
    if (out.length === 0 && errors[0])
      out.push(this.describeSchemaError(errors[0], pointerToPath(errors[0].instancePath)));
    return dropShadowed(out);
  }

  private describeSchemaError(error: SchemaError, path: Path): RulebookProblem {
    const where = describePath(path, this.format.root);
    const params = error.params as Record<string, unknown>;
    switch (error.keyword) {
      case 'additionalProperties': {
        const extra = (params.additionalProperties as string[] | undefined) ?? [];
        const name = extra[0] ?? '?';
        const allowed = allowedKeys(error.schemaPath, this.format.validator.Schema());
        const hint = closest(name, allowed);
        return this.problem(
          path,
          `unknown key \`${name}\` in ${where}.${hint ? ` Did you mean \`${hint}\`?` : ''} To fix: use one of ${allowed.map((k) => `\`${k}\``).join(', ')}.`,
          { key: name },
        );
      }
      case 'required': {
        const missing = (params.requiredProperties as string[] | undefined) ?? [];
        return this.problem(path, `${where} needs \`${missing.join('`, `')}\`.`);
      }
      case 'oneOf':
        if (/\/then\/items$/.test(error.schemaPath)) {
          return this.problem(
            path,
            `a step needs exactly one action. To fix: give one of ${Object.keys(actionParamSchemas)
              .map((k) => `\`${k}\``)
              .join(', ')} (other keys: \`id\`, \`timeout\`, \`retry\`).`,
          );
        }
        return this.problem(path, `${where} ${error.message}.`);
      case 'anyOf':
        return this.problem(
          path,
          `${where} is not in any accepted form. To fix: see ${this.format.reference} for its forms.`,
        );
      case 'type':
        return this.problem(
          path,
          `${where} must be ${params.type === 'array' ? 'a list' : `a ${String(params.type)}`}.`,
        );
      case 'minItems':
        return this.problem(path, `${where} must not be empty.`);
      case 'minProperties':
        return this.problem(path, `${where} must not be empty.`);
      case 'pattern':
        return this.problem(path, `${where} has an invalid value (it must match ${String(params.pattern)}).`);
      default:
        return this.problem(path, `${where} ${error.message}.`);
    }
  }
}

/** Raw schema errors gathered for one file (several make one problem); a bound, as TypeBox advises. */
const maxSchemaErrors = 1000;

/**
 * Validates with every error gathered up to {@link maxSchemaErrors}. TypeBox stops at 8 by default (a
 * process-wide setting, raised here only for this call), which hid every problem after the first two
 * or three: `reflex validate` then reported a rulebook's mistakes a few at a time.
 */
function allSchemaErrors(validator: Validator, value: unknown): [boolean, SchemaError[]] {
  const before = Settings.Get().maxErrors;
  Settings.Set({ maxErrors: maxSchemaErrors });
  try {
    return validator.Errors(value) as [boolean, SchemaError[]];
  } finally {
    Settings.Set({ maxErrors: before });
  }
}

interface SchemaError {
  keyword: string;
  schemaPath: string;
  instancePath: string;
  params: unknown;
  message: string;
}

function insideAlternative(schemaPath: string): boolean {
  return /\/(oneOf|anyOf)\/\d+/.test(schemaPath);
}

/**
 * For a failed anyOf, the errors of the alternative the author most likely meant: alternatives whose
 * type does not even fit the value are out, and of the rest the one whose errors reach deepest into the
 * value wins (`command: []` meant the list form; `fact: { set: 1 }` meant the `set` form). Undefined when
 * that is not clear.
 */
function meantAlternative(errors: ReadonlyArray<SchemaError>, anyOf: SchemaError): SchemaError[] | undefined {
  const prefix = `${anyOf.schemaPath}/anyOf/`;
  const groups = new Map<string, SchemaError[]>();
  for (const error of errors) {
    if (!error.schemaPath.startsWith(prefix) || error.keyword === 'boolean') continue;
    const [branch = '', ...rest] = error.schemaPath.slice(prefix.length).split('/');
    // Only this level's alternatives; errors of alternatives nested deeper are theirs to explain.
    if (insideAlternative(`/${rest.join('/')}`)) continue;
    const group = groups.get(branch) ?? [];
    group.push(error);
    groups.set(branch, group);
  }
  let best: SchemaError[] | undefined;
  let bestDepth = -1;
  let tie = false;
  for (const group of groups.values()) {
    if (group.some((e) => e.keyword === 'type' && e.instancePath === anyOf.instancePath)) continue;
    const depth = Math.max(...group.map((e) => e.instancePath.split('/').length));
    if (depth > bestDepth) {
      best = group;
      bestDepth = depth;
      tie = false;
    } else if (depth === bestDepth) tie = true;
  }
  return tie ? undefined : best;
}

function findPair(map: unknown, key: string) {
  if (!isMap(map)) return undefined;
  for (const item of map.items) {
    if (isPair(item) && isScalar(item.key) && String(item.key.value) === key) return item;
  }
  return undefined;
}

/** Characters from the start of a scalar's source to its value's `offset`-th character. */
function scalarOffset(node: Scalar, offset: number): number {
  switch (node.type) {
    case Scalar.PLAIN:
      return offset;
    case Scalar.QUOTE_DOUBLE:
    case Scalar.QUOTE_SINGLE:
      return offset + 1;
    default:
      // Block scalars: the value starts on the next line; pointing at the scalar is the honest answer.
      return 0;
  }
}

function pointerToPath(pointer: string): Array<string | number> {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((part) => {
      const text = part.replace(/~1/g, '/').replace(/~0/g, '~');
      return /^\d+$/.test(text) ? Number(text) : text;
    });
}

/**
 * `rules[2].then[0].http` — how a person names a place in a rulebook (or, with `root`, in another
 * format's document).
 * @param root how the whole document is named; @default 'the rulebook'
 */
export function describePath(path: Path, root = 'the rulebook'): string {
  if (path.length === 0) return root;
  let out = '';
  for (const segment of path)
    out += typeof segment === 'number' ? `[${segment}]` : out === '' ? segment : `.${segment}`;
  return `\`${out}\``;
}

/** The keys that the schema at `schemaPath` of `root` allows (for "did you mean"). */
function allowedKeys(schemaPath: string, root: unknown): string[] {
  let node: unknown = root;
  for (const part of schemaPath.replace(/^#\/?/, '').split('/').filter(Boolean)) {
    if (node === null || typeof node !== 'object') return [];
    node = (node as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  const props = (node as { properties?: Record<string, unknown> } | undefined)?.properties;
  return props ? Object.keys(props) : [];
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/**
 * Several schema errors often describe one mistake (a step with a misspelt action fails `oneOf` and
 * `additionalProperties` at the same place). Keep the most specific: a "step needs exactly one action"
 * is dropped when an unknown key was reported for the same step.
 */
function dropShadowed(problems: RulebookProblem[]): RulebookProblem[] {
  const unknownKeyLines = new Set(
    problems.filter((p) => p.message.startsWith('unknown key')).map((p) => `${p.file}:${p.line}`),
  );
  return problems.filter((p) => {
    if (!p.message.startsWith('a step needs exactly one action')) return true;
    // The oneOf error points at the step (its first key); an unknown key on that line explains it.
    return !unknownKeyLines.has(`${p.file}:${p.line}`);
  });
}

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
        fileDefaults.timeoutMs = duration(source, ['defaults', 'timeout'], defaults.timeout);
      if (defaults.ttl !== undefined)
        fileDefaults.ttlMs = duration(source, ['defaults', 'ttl'], defaults.ttl);
      if (defaults.retry)
        fileDefaults.retry = retryPolicy(source, ['defaults', 'retry'], defaults.retry, defaultRetryPolicy);
    });
  }

  for (const [name, hook] of Object.entries(isObject(document.webhooks) ? document.webhooks : {})) {
    if (refused(['webhooks', name])) continue;
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
            duration: (inner, value) => duration(source, [...path, ...inner], value),
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

/** A problem already tied to its place in the file. */
class LocatedProblem extends Error {
  constructor(readonly problem: RulebookProblem) {
    super(problem.message);
  }
}

/**
 * Runs a core compiler (pattern, condition, template) and turns its coded error into a problem at the
 * right line and column: `details.path` goes deeper into the YAML, `details.offset` into the string.
 */
function locatedCompile<T>(source: SourceFile, path: Path, compile: () => T): T {
  try {
    return compile();
  } catch (error) {
    if (!(error instanceof ReflexError)) throw error;
    const details = error.details ?? {};
    const inner = Array.isArray(details.path) ? (details.path as Array<string | number>) : [];
    const offset = typeof details.offset === 'number' ? details.offset : undefined;
    const message = `${error.message} [${error.code}]`;
    const last = inner[inner.length - 1];
    if (offset === undefined && typeof last === 'string') {
      // A path ending in a key (an unknown operator, a misused field) reads best pointing at the key.
      throw new LocatedProblem(source.problem([...path, ...inner.slice(0, -1)], message, { key: last }));
    }
    throw new LocatedProblem(
      source.problem([...path, ...inner], message, offset === undefined ? {} : { offset }),
    );
  }
}

function duration(source: SourceFile, path: Path, value: string | number): number {
  try {
    return parseDuration(value, describePath(path));
  } catch (error) {
    if (error instanceof ReflexError) throw new LocatedProblem(source.problem(path, error.message));
    throw error;
  }
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
      value.backoff === undefined ? base.backoffMs : duration(source, [...path, 'backoff'], value.backoff),
    maxDelayMs:
      value.maxDelay === undefined
        ? base.maxDelayMs
        : duration(source, [...path, 'maxDelay'], value.maxDelay),
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
  const kind = Object.keys(actionParamSchemas).find((k) => record[k] !== undefined)!;
  const action = options.actions.get(kind);
  const location = source.locate([...path, kind], { key: kind });
  if (!action) {
    throw new LocatedProblem(
      source.problem(path, `the action \`${kind}\` is not available in this Reflex.`, { key: kind }),
    );
  }
  const params = compileStepParams(source, [...path, kind], kind, record[kind]);
  if (params.isStatic) {
    // Parameters without templates can be checked now instead of failing the first run.
    locatedCompile(source, [...path, kind], () => action.parse(params.render(staticContext)));
  }
  return {
    id: step.id ?? String(index),
    kind,
    params,
    timeoutMs:
      step.timeout === undefined ? defaults.timeoutMs : duration(source, [...path, 'timeout'], step.timeout),
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
function compileStepParams(source: SourceFile, path: Path, kind: string, value: unknown): Template {
  const options = actionTemplateOptions[kind as keyof typeof actionTemplateOptions];
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

function secretRef(value: string | { env: string }): SecretRef {
  return typeof value === 'string' ? { value } : { env: value.env };
}

type WebhookDocument = NonNullable<RulebookDocument['webhooks']>[string];

/** How far from Reflex's clock a timestamped signature may be. */
const defaultReplayWindowMs = 5 * 60_000;

function compileWebhook(
  source: SourceFile,
  name: string,
  hook: WebhookDocument,
  location: SourceLocation,
): Webhook {
  const path = ['webhooks', name];
  checkWebhookNotReserved(source, path, hook);
  const attribute = (value: WebhookDocument['type']) =>
    typeof value === 'string'
      ? { value }
      : {
          header: value.header,
          prefix: value.prefix ?? '',
          ...(value.default === undefined ? {} : { fallback: value.default }),
        };
  let auth: WebhookAuth = { type: 'none' };
  for (const scheme of ['stripe', 'slack', 'standard'] as const) {
    const given = hook.auth?.[scheme];
    if (given === undefined) continue;
    if (hook.id !== undefined) {
      throw new LocatedProblem(
        source.problem(
          path,
          `a webhook with \`auth: ${scheme}\` takes its event id from what the signature covers, so a replayed delivery is a duplicate; an id from an unsigned header would let a replay pass as new. To fix: remove \`id\`.`,
          { key: 'id' },
        ),
      );
    }
    auth = {
      type: scheme,
      secret: secretRef(given.secret),
      replayWindowMs:
        given.replayWindow === undefined
          ? defaultReplayWindowMs
          : duration(source, [...path, 'auth', scheme, 'replayWindow'], given.replayWindow),
    };
  }
  if (hook.auth?.token) {
    const t = hook.auth.token;
    auth = {
      type: 'token',
      header: t.header ?? 'Authorization',
      prefix: t.prefix ?? 'Bearer ',
      secret: secretRef(t.secret),
    };
  } else if (hook.auth?.hmac) {
    const h = hook.auth.hmac;
    auth = {
      type: 'hmac',
      header: h.header ?? 'X-Hub-Signature-256',
      prefix: h.prefix ?? 'sha256=',
      secret: secretRef(h.secret),
    };
  }
  const webhook: Webhook = {
    name,
    type: attribute(hook.type),
    source: hook.source,
    auth,
    location: { file: location.file, line: location.line, column: location.column },
  };
  if (hook.id) webhook.id = { header: hook.id.header };
  if (hook.subject !== undefined) webhook.subject = attribute(hook.subject);
  return webhook;
}

/**
 * Refuses a webhook that would make events posing as Reflex's own (source `reflex`, a `reflex.*` type):
 * they could trigger the rules that react to run outcomes. A type read from a header needs a prefix
 * that keeps the sender out of `reflex.`, since the sender chooses the header.
 */
function checkWebhookNotReserved(source: SourceFile, path: Path, hook: WebhookDocument): void {
  const problem = (at: Path, message: string, key?: string) =>
    new LocatedProblem(source.problem(at, message, key === undefined ? {} : { key }));
  if (isReservedSource(hook.source)) {
    throw problem(
      [...path, 'source'],
      `the source \`${hook.source}\` is reserved for the events Reflex makes itself (run outcomes, timers, fact changes). To fix: give the webhook a source of its own, such as the URL of the sender.`,
    );
  }
  const ownType = 'To fix: name the type in a namespace of your own, such as `com.example.`.';
  const type = hook.type;
  if (typeof type === 'string') {
    if (isReservedType(type)) {
      throw problem(
        [...path, 'type'],
        `the type \`${type}\` is reserved for the events Reflex makes itself. ${ownType}`,
      );
    }
    return;
  }
  if (type.default !== undefined && isReservedType(type.default)) {
    throw problem(
      [...path, 'type', 'default'],
      `the default type \`${type.default}\` is reserved for the events Reflex makes itself. ${ownType}`,
    );
  }
  const prefix = (type.prefix ?? '').toLowerCase();
  if (reflexTypePrefix.startsWith(prefix) || prefix.startsWith(reflexTypePrefix)) {
    throw problem(
      [...path, 'type', ...(type.prefix === undefined ? [] : ['prefix'])],
      `the type is read from the header \`${type.header}\`${prefix === '' ? ' without a prefix' : ` after the prefix \`${type.prefix}\``}, so a sender could choose a \`reflex.*\` type, which is reserved for the events Reflex makes itself. To fix: give a \`prefix\` of your own, such as \`com.example.\`.`,
    );
  }
}

function at(location: SourceLocation): string {
  return `${location.file}:${location.line}:${location.column}`;
}
