import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ReflexError } from '../core/errors.js';
import { RulebookError, type RulebookFile, type RulebookProblem } from '../core/ports/rulebook-compiler.js';
import { readYamlFile } from './yaml-source.js';

const ruleFileName = /\.ya?ml$/i;
const testFileName = /\.test\.ya?ml$/i;

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
