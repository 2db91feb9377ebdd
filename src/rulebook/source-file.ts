import Schema, { type Validator } from 'typebox/schema';
import { Settings } from 'typebox/system';
import { type Document, isMap, isPair, isScalar, LineCounter, type Node, Scalar } from 'yaml';
import { parseDuration } from '../core/duration.js';
import { ReflexError } from '../core/errors.js';
import type { RulebookFile, RulebookProblem } from '../core/ports/rulebook-compiler.js';
import type { SourceLocation } from '../core/rule.js';
import { type ActionCatalog, createRulebookSchema, type RulebookDocument } from './schema.js';
import { parseYaml, toPlainValues } from './yaml-source.js';

/** Characters of a line quoted under a problem. */
const maxExcerpt = 160;

/**
 * What the YAML machinery of this file needs to know about a file format: its schema, for validation
 * and "did you mean" hints, and how its messages name things. Rulebooks use {@link rulebookFormatFor};
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
  /** The action kinds a step may name, listed when a step names none or several. */
  actionKinds?: readonly string[];
}

const rulebookFormats = new WeakMap<ActionCatalog, DocumentFormat>();

/**
 * The rulebook file format for the actions of `actions`, whose parameter schemas it validates steps
 * with. Made once per catalog: compiling the schema is the costly part.
 */
export function rulebookFormatFor(actions: ActionCatalog): DocumentFormat {
  let format = rulebookFormats.get(actions);
  if (format === undefined) {
    format = {
      validator: Schema.Compile(createRulebookSchema(actions)),
      root: 'the rulebook',
      empty: 'the file is empty. To fix: add `rules:` with at least one rule.',
      reference: 'docs/rules.md or schemas/rulebook.schema.json',
      actionKinds: actions.kinds(),
    };
    rulebookFormats.set(actions, format);
  }
  return format;
}

/** A place in a document: keys and list indexes from its root. */
export type Path = ReadonlyArray<string | number>;

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

  constructor(file: RulebookFile, format: DocumentFormat) {
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
        // A map of names (webhooks) lists no keys: the name is what is wrong.
        if (allowed.length === 0 && path[path.length - 1] === 'webhooks') {
          return this.problem(
            path,
            `the webhook name \`${name}\` is not allowed. To fix: use letters, digits, \`_\` and \`-\` only (it is the \`<name>\` of \`POST /hooks/<name>\`).`,
            { key: name },
          );
        }
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
        if (this.format.actionKinds !== undefined && /\/then\/items$/.test(error.schemaPath)) {
          return this.problem(
            path,
            `a step needs exactly one action. To fix: give one of ${this.format.actionKinds
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

/** A problem already tied to its place in the file. */
export class LocatedProblem extends Error {
  constructor(readonly problem: RulebookProblem) {
    super(problem.message);
  }
}

/**
 * Runs a core compiler (pattern, condition, template) and turns its coded error into a problem at the
 * right line and column: `details.path` goes deeper into the YAML, `details.offset` into the string.
 */
export function locatedCompile<T>(source: SourceFile, path: Path, compile: () => T): T {
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

/** Reads a duration written at `path`; a bad one is a problem at that place. */
export function durationAt(source: SourceFile, path: Path, value: string | number): number {
  try {
    return parseDuration(value, describePath(path));
  } catch (error) {
    if (error instanceof ReflexError) throw new LocatedProblem(source.problem(path, error.message));
    throw error;
  }
}
