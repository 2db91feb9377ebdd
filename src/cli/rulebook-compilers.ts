import type { RulebookCompiler } from '../core/ports/rulebook-compiler.js';
import { yamlRulebookCompiler } from '../rulebook/yaml-rulebook-compiler.js';

/**
 * The rulebook front ends the CLI gives the engine, in the order they are asked whether they read a
 * file: a format that recognises its own files comes before the YAML one, which takes any file.
 */
export const rulebookCompilers: readonly RulebookCompiler[] = Object.freeze([yamlRulebookCompiler]);
