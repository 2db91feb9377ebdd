import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ReflexError } from '../core/errors.js';
import { parseSecretsFile, secretName } from '../core/secrets.js';

/** What `--secrets` gave: the values, and whether others than the owner may read them. */
export interface SecretsFile {
  values: Map<string, string>;
  /** True when the file (or folder) can be read by its group or by anyone. */
  readableByOthers: boolean;
}

/**
 * Reads `--secrets`: a file of `NAME=value` lines (see parseSecretsFile), or a folder with one file per
 * secret, named after it, the way Docker and Kubernetes mount secrets (`/run/secrets/API_TOKEN`); a
 * file's content is the value, without one trailing newline. In a folder, hidden files and names that
 * are not secret names are skipped. Throws REFLEX_ERR_CONFIG_INVALID when it cannot be read.
 */
export async function readSecretsFile(path: string): Promise<SecretsFile> {
  const unreadable = (reason: string) =>
    new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
      option: '--secrets',
      reason: `${JSON.stringify(path)} ${reason}`,
      fix: 'give a file of NAME=value lines, or a folder with one file per secret, readable by Reflex.',
    });
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch {
    throw unreadable('does not exist');
  }
  const readableByOthers = (info.mode & 0o044) !== 0;
  try {
    if (!info.isDirectory()) {
      return { values: parseSecretsFile(await readFile(path, 'utf8'), path), readableByOthers };
    }
    const values = new Map<string, string>();
    for (const name of (await readdir(path)).sort()) {
      if (!secretName.test(name)) continue;
      const file = join(path, name);
      if (!(await stat(file)).isFile()) continue;
      values.set(name, (await readFile(file, 'utf8')).replace(/\r?\n$/, ''));
    }
    return { values, readableByOthers };
  } catch (error) {
    if (error instanceof ReflexError) throw error;
    throw unreadable(`cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
