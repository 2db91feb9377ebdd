/** Names that read as `facts.<name>` in CEL: an identifier. */
const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * CEL's reserved words (cel-spec, "Syntax") cannot follow `facts.`; `__proto__` would reach an object's
 * prototype wherever facts are held in a plain object.
 */
const reserved = new Set([
  'true',
  'false',
  'null',
  'in',
  'as',
  'break',
  'const',
  'continue',
  'else',
  'for',
  'function',
  'if',
  'import',
  'let',
  'loop',
  'package',
  'namespace',
  'return',
  'var',
  'void',
  'while',
  '__proto__',
]);

/** Whether `name` can be a fact's name: an identifier that is not a CEL keyword, so `facts.<name>` reads. */
export function isFactName(name: string): boolean {
  return identifier.test(name) && !reserved.has(name);
}

/** What to tell a user whose fact name was refused. */
export const factNameRule =
  'use letters, digits and _ (not first a digit, not a CEL keyword), so that it reads as `facts.<name>`.';
