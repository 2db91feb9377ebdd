import { accessSync, constants, mkdirSync, rmdirSync, type Stats, statSync } from 'node:fs';
import { dirname, parse, sep } from 'node:path';
import { ReflexError } from '../../core/errors.js';

/** What a data directory entry is, in words, for a message about something that is not a directory. */
function kindOf(info: Stats): string {
  if (info.isFile()) return 'a file';
  if (info.isFIFO()) return 'a named pipe';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device';
  return 'not a directory';
}

const pickAnother =
  'give `--data` (REFLEX_DATA) the path of a directory Reflex may write to, or of one it may create.';

/**
 * Turns a file-system error met while preparing or locking the data directory into a coded error: a
 * full disk is REFLEX_ERR_STORE_DISK_FULL (it passes), anything else REFLEX_ERR_STORE_DATA_DIR_INVALID
 * (the operator picks another place). Errors without an errno code are returned as they are.
 */
export function dataDirError(dir: string, error: unknown, doing: string, path = dir): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string') return error;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new ReflexError('REFLEX_ERR_STORE_DISK_FULL', { path: dir }, { cause: error });
  }
  const reasons: Record<string, string> = {
    EACCES: `this user may not ${doing} in \`${path}\``,
    EPERM: `this user may not ${doing} in \`${path}\``,
    EROFS: `\`${path}\` is on a read-only file system`,
    ENOTDIR: `a part of \`${path}\` is a file, not a directory`,
    ENAMETOOLONG: 'the path is too long for the file system',
    ELOOP: `\`${path}\` goes through a loop of symbolic links`,
    EEXIST: `\`${path}\` exists and is not a directory`,
  };
  const reason = reasons[code] ?? `cannot ${doing} in \`${path}\` (${code})`;
  return new ReflexError(
    'REFLEX_ERR_STORE_DATA_DIR_INVALID',
    { dir, reason, fix: pickAnother },
    { cause: error, details: { errno: code } },
  );
}

/**
 * Makes sure `dir` (absolute) is a directory this process can write to, creating it and its missing
 * parents with mode 0700. Throws REFLEX_ERR_STORE_DATA_DIR_INVALID (or REFLEX_ERR_STORE_DISK_FULL)
 * with the part of the path that is wrong, and then leaves nothing created behind.
 *
 * The parents are walked one by one, at most once each, instead of `mkdir -p`: Node's recursive mkdir
 * loops forever on paths whose parent exists but refuses new entries the way /proc does (`/proc/1/fd/x`).
 */
export function prepareDataDir(dir: string): void {
  const { root } = parse(dir);
  const parts = dir
    .slice(root.length)
    .split(sep)
    .filter((part) => part !== '');
  const created: string[] = [];
  try {
    let path = root;
    for (const part of parts) {
      path = path === root ? `${root}${part}` : `${path}${sep}${part}`;
      let info = lookAt(dir, path);
      if (info === undefined) {
        if (created.length === 0) refuseTooLong(dir);
        info = createOne(dir, path, created);
      }
      if (!info.isDirectory()) {
        throw new ReflexError('REFLEX_ERR_STORE_DATA_DIR_INVALID', {
          dir,
          reason: `\`${path}\` is ${kindOf(info)}`,
          fix: pickAnother,
        });
      }
    }
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
    } catch (error) {
      throw dataDirError(dir, error, 'write');
    }
  } catch (error) {
    for (const path of created.reverse()) {
      try {
        rmdirSync(path);
      } catch {
        // Someone put something into it meanwhile: it stays.
      }
    }
    throw error;
  }
}

/** What `path` is, or undefined when it does not exist. */
function lookAt(dir: string, path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw dataDirError(dir, error, 'look', dirname(path));
  }
}

/**
 * Refuses, before the first directory is created, a path the file system would refuse half-way (its
 * parts are created one by one, and the deepest ones would pass the length limit).
 */
function refuseTooLong(dir: string): void {
  try {
    statSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENAMETOOLONG') throw dataDirError(dir, error, 'create a directory');
  }
}

function createOne(dir: string, path: string, created: string[]): Stats {
  try {
    mkdirSync(path, { mode: 0o700 });
    created.push(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      // The parent exists (it was just looked at) yet refuses the entry: /proc, /sys and the like.
      throw new ReflexError(
        'REFLEX_ERR_STORE_DATA_DIR_INVALID',
        { dir, reason: `\`${dirname(path)}\` takes no new directories (ENOENT)`, fix: pickAnother },
        { cause: error, details: { errno: code } },
      );
    }
    // Created by someone else meanwhile: look at what it is.
    if (code !== 'EEXIST') throw dataDirError(dir, error, 'create a directory', dirname(path));
  }
  return statSync(path);
}
