import type { RulebookCompiler } from '../core/ports/rulebook-compiler.js';
import { compileRulebook } from './rule-compiler.js';

/**
 * Reflex's own rulebook format (YAML, docs/rules.md) as a front end. It takes every file, so it goes
 * last among the compilers: a format that recognises its files by name or content comes before it.
 */
export const yamlRulebookCompiler: RulebookCompiler = Object.freeze({
  format: 'reflex-yaml',
  accepts: () => true,
  compile: compileRulebook,
});
