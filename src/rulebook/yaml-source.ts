import { open, stat } from 'node:fs/promises';
import {
  Composer,
  type CST,
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  Lexer,
  type LineCounter,
  type Node,
  Parser,
} from 'yaml';

/**
 * The bounds within which Reflex reads a YAML file (a rulebook, a rule test). A file is written by a
 * person; these are far beyond any such file, and they keep a hostile or broken one — an alias bomb, a
 * thousand levels of brackets, a megabyte of keys — from costing more than about a second, or from
 * crashing the process (the YAML composer recurses once per level: past a few thousand, V8 runs out of
 * stack inside it and aborts the whole process).
 */
export const yamlLimits = {
  /** Bytes in one file (the `yaml` package reads about a megabyte a second; rulebooks are kilobytes). */
  maxBytes: 262_144,
  /** Levels of nested mappings and sequences. */
  maxDepth: 64,
  /** How far aliases (`*name`) may multiply what they point at (the `yaml` package's measure). */
  maxAliasCount: 100,
} as const;

/** A problem found while reading YAML, at an offset into the text. */
export interface YamlProblem {
  offset: number;
  message: string;
}

/** What {@link parseYaml} gives: the document when it could be built, and what was wrong. */
export interface ParsedYaml {
  document: Document.Parsed | undefined;
  problems: YamlProblem[];
}

/**
 * Parses one YAML document within {@link yamlLimits}: its size, its depth and the number of its
 * documents are checked on the parser's tokens (built without recursion) before the document is
 * composed, and duplicate keys, and keys that are not text, are found in one pass (the `yaml` package's
 * own check compares every key of a mapping with every other). The document's own errors stay in `document.errors`.
 */
export function parseYaml(content: string, lines: LineCounter): ParsedYaml {
  const bytes = Buffer.byteLength(content, 'utf8');
  if (bytes > yamlLimits.maxBytes) {
    return {
      document: undefined,
      problems: [
        {
          offset: 0,
          message: `the file is ${bytes} bytes, more than the limit of ${yamlLimits.maxBytes}. To fix: split it into several files (a folder of them loads as one).`,
        },
      ],
    };
  }
  // The parser spends about 15 µs per level of nesting, and builds every document of the file, so a
  // megabyte of `[` or of `---` costs seconds there; the lexer, stopped at the first sign, costs nothing.
  const lexed = lex(content, yamlLimits.maxDepth);
  if ('problem' in lexed) return { document: undefined, problems: [lexed.problem] };
  // The parser is given the lexer's tokens rather than the text: the file is lexed once.
  const parser = new Parser(lines.addNewLine);
  lines.addNewLine(0);
  const tokens: CST.Token[] = [];
  for (const lexeme of lexed.lexemes) for (const token of parser.next(lexeme)) tokens.push(token);
  for (const token of parser.end()) tokens.push(token);
  const tooDeep = firstTooDeep(tokens, yamlLimits.maxDepth);
  if (tooDeep !== undefined) return { document: undefined, problems: [tooDeepAt(tooDeep)] };
  const composer = new Composer({ prettyErrors: false, uniqueKeys: false });
  const [document] = [...composer.compose(tokens, true, content.length)];
  return { document, problems: document === undefined ? [] : keyProblems(document) };
}

/**
 * Turns a document into plain values within the alias bound; a document whose aliases would multiply it
 * past the bound gives a problem at its first alias instead.
 */
export function toPlainValues(document: Document.Parsed): { value: unknown } | { problem: YamlProblem } {
  try {
    return { value: document.toJS({ maxAliasCount: yamlLimits.maxAliasCount }) };
  } catch (error) {
    if (!(error instanceof ReferenceError)) throw error;
    const alias = firstAlias(document);
    return {
      problem: {
        offset: alias?.range?.[0] ?? 0,
        message: /excessive alias count/i.test(error.message)
          ? `aliases (\`*name\`) here multiply the document past the limit (${yamlLimits.maxAliasCount}); this is how an "alias bomb" exhausts memory. To fix: write the values out instead of aliasing aliases.`
          : `${error.message}. To fix: set the anchor (\`&name\`) before the alias that uses it.`,
      },
    };
  }
}

function tooDeepAt(offset: number): YamlProblem {
  return {
    offset,
    message: `the document is nested deeper than ${yamlLimits.maxDepth} levels here. To fix: flatten it.`,
  };
}

/** The lexer's token for "a document begins here". */
const documentMode = '\u0002';
/** Lexer tokens that stand for no text of the source (document start, scalar start, flow error end). */
const syntheticTokens = new Set([documentMode, '\u001f', '\u0018']);

/**
 * A first, cheap look on the lexer's tokens (which know quotes, comments and block scalars): a second
 * document, flow brackets open past `max`, or more than `max` `-`/`?` indicators on one line (`- - - x`
 * nests a sequence per dash). Nesting by indentation needs a column per level, so the size limit bounds
 * it; the exact depth is counted on the parser's tokens ({@link firstTooDeep}).
 */
function lex(content: string, max: number): { lexemes: string[] } | { problem: YamlProblem } {
  const lexemes: string[] = [];
  const problem = (found: YamlProblem) => ({ problem: found });
  let flow = 0;
  let onLine = 0;
  let offset = 0;
  let documents = 0;
  /** Right after a document began, where a `---` still belongs to it. */
  let fresh = false;
  for (const token of new Lexer().lex(content)) {
    lexemes.push(token);
    if (token === documentMode) {
      documents++;
      fresh = true;
    } else if (token === '---') {
      if (!fresh) documents++;
      fresh = false;
    } else if (!syntheticTokens.has(token) && token.trim() !== '' && !token.startsWith('#')) {
      fresh = false;
    }
    if (documents > 1) {
      return problem({
        offset,
        message:
          'the file holds more than one YAML document (a `---` line starts another). To fix: keep one document per file.',
      });
    }
    if (token === '[' || token === '{') {
      if (++flow > max) return problem(tooDeepAt(offset));
    } else if (token === ']' || token === '}') {
      flow = Math.max(0, flow - 1);
    } else if (token === '-' || token === '?') {
      if (++onLine > max) return problem(tooDeepAt(offset));
    } else if (token === '\n' || token === '\r\n') {
      onLine = 0;
    }
    if (!syntheticTokens.has(token)) offset += token.length;
  }
  return { lexemes };
}

/** The offset of the first collection nested deeper than `max`, walking the tokens without recursion. */
function firstTooDeep(tokens: readonly CST.Token[], max: number): number | undefined {
  const stack: Array<[CST.Token, number]> = tokens.map((token) => [token, 0]);
  while (stack.length > 0) {
    const [token, depth] = stack.pop()!;
    if (token.type === 'document') {
      if (token.value) stack.push([token.value, depth]);
      continue;
    }
    if (token.type !== 'block-map' && token.type !== 'block-seq' && token.type !== 'flow-collection')
      continue;
    const inner = depth + 1;
    if (inner > max) return token.offset;
    for (const item of token.items) {
      if (item.key) stack.push([item.key, inner]);
      if (item.value) stack.push([item.value, inner]);
    }
  }
  return undefined;
}

/** Keys given twice in one mapping (YAML would keep only one of them), found with one set per mapping. */
function keyProblems(document: Document.Parsed): YamlProblem[] {
  const problems: YamlProblem[] = [];
  const stack: unknown[] = [document.contents];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        const key = pair.key as Node | null;
        if (isScalar(key)) {
          const name = String(key.value);
          if (seen.has(name)) {
            problems.push({
              offset: key.range?.[0] ?? 0,
              message: `the key \`${name}\` appears twice in this mapping; map keys must be unique. To fix: remove or rename one.`,
            });
          }
          seen.add(name);
        } else if (key !== null) {
          // A list, mapping or alias as a key (`? [a, b]`) would become text, with a raw Node warning.
          problems.push({
            offset: key.range?.[0] ?? 0,
            message:
              'this key is a list, a mapping or an alias; keys must be text. To fix: write the key as a plain word.',
          });
        }
        stack.push(pair.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) stack.push(item);
    }
  }
  return problems;
}

function firstAlias(document: Document.Parsed): Node | undefined {
  const stack: unknown[] = [document.contents];
  let first: Node | undefined;
  while (stack.length > 0) {
    const node = stack.pop();
    if (isAlias(node)) {
      if (first === undefined || (node.range?.[0] ?? 0) < (first.range?.[0] ?? 0)) first = node;
    } else if (isMap(node)) {
      for (const pair of node.items) stack.push(pair.key, pair.value);
    } else if (isSeq(node)) {
      for (const item of node.items) stack.push(item);
    }
  }
  return first;
}

/** A YAML file as read from disk: its text, or why it cannot be read (as a problem at its start). */
export type YamlFileRead = { content: string } | { problem: string };

/**
 * Reads a YAML file within {@link yamlLimits.maxBytes}, without hanging or filling memory on what is not
 * a plain file: a named pipe would block the read until someone writes, and a device such as /dev/zero
 * never ends. A file that cannot be read (missing, no permission) is a problem too.
 */
export async function readYamlFile(path: string): Promise<YamlFileRead> {
  try {
    return await readPlainFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'an error';
    const why = code === 'ENOENT' ? 'it does not exist (a link to nowhere?)' : `it cannot be read (${code})`;
    return {
      problem: `\`${path}\` is named as a YAML file, but ${why}. To fix: give this user read access, or remove it.`,
    };
  }
}

async function readPlainFile(path: string): Promise<YamlFileRead> {
  const info = await stat(path);
  if (!info.isFile()) {
    return { problem: `\`${path}\` is not a regular file. To fix: give the path of a YAML file.` };
  }
  const tooLarge = (bytes: string) =>
    `the file is ${bytes} bytes, more than the limit of ${yamlLimits.maxBytes}. To fix: split it into several files (a folder of them loads as one).`;
  if (info.size > yamlLimits.maxBytes) return { problem: tooLarge(String(info.size)) };
  // The size may be wrong (/proc reports 0) or change meanwhile: read at most one byte past the limit.
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(yamlLimits.maxBytes + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await file.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > yamlLimits.maxBytes) return { problem: tooLarge(`over ${yamlLimits.maxBytes}`) };
    return { content: buffer.subarray(0, length).toString('utf8') };
  } finally {
    await file.close();
  }
}
