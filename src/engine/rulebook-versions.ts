import { createHash } from 'node:crypto';
import { ReflexError } from '../core/errors.js';
import {
  compileRulebookFiles,
  type RulebookCompileContext,
  type RulebookCompiler,
  type RulebookFile,
} from '../core/ports/rulebook-compiler.js';
import type { RulebookStore } from '../core/ports/store.js';
import type { Rulebook } from '../core/rule.js';

/** A compiled rulebook version. (The dispatcher indexes the one in force for matching.) */
export interface CompiledVersion {
  id: number;
  rulebook: Rulebook;
}

/**
 * Rulebook versions by id, compiled once and kept. Runs and explanations refer to the version that was
 * active when their event was dispatched, which may be older than the one in force now.
 */
export interface RulebookVersions {
  get(id: number): Promise<CompiledVersion>;
  /** Compiles files, stores them as a version (or finds the identical stored one) and returns it. */
  save(files: readonly RulebookFile[], at: number): Promise<CompiledVersion>;
}

/** How rulebook versions are compiled. */
export interface RulebookVersionsOptions extends RulebookCompileContext {
  /**
   * The front ends, in the order they are asked whether they accept a file (see
   * {@link RulebookCompiler.accepts}); a stored version is compiled again with the same ones.
   */
  compilers: readonly RulebookCompiler[];
}

export function createRulebookVersions(
  store: RulebookStore,
  options: RulebookVersionsOptions,
): RulebookVersions {
  const cache = new Map<number, Promise<CompiledVersion>>();
  const compileFiles = (files: readonly RulebookFile[]) =>
    compileRulebookFiles(options.compilers, files, { actions: options.actions });
  const compile = (id: number, files: readonly RulebookFile[]): CompiledVersion => {
    return { id, rulebook: compileFiles(files) };
  };
  return {
    get(id) {
      let entry = cache.get(id);
      if (!entry) {
        entry = store.getRulebookVersion(id).then((stored) => {
          if (!stored)
            throw new ReflexError('REFLEX_ERR_RULEBOOK_NOT_FOUND', { path: `(stored version ${id})` });
          return compile(id, stored.files);
        });
        entry.catch(() => cache.delete(id));
        cache.set(id, entry);
      }
      return entry;
    },
    async save(files, at) {
      // Compile first: an invalid rulebook must not be stored as a version.
      const probe = compileFiles(files);
      const id = await store.saveRulebookVersion({
        hash: hashFiles(files),
        files: files.map((f) => ({ path: f.path, content: f.content })),
        createdAt: at,
      });
      const cached = cache.get(id);
      if (cached) return cached;
      const version: CompiledVersion = { id, rulebook: probe };
      cache.set(id, Promise.resolve(version));
      return version;
    },
  };
}

function hashFiles(files: readonly RulebookFile[]): string {
  const hash = createHash('sha256');
  for (const file of files) hash.update(`${file.path}\0${file.content}\0`);
  return hash.digest('hex');
}
