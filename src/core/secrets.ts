import { ReflexError } from './errors.js';

/**
 * Where the values of `${{ secrets.NAME }}` come from. Secrets are read when a step runs, never when a
 * rulebook loads, so rulebook versions (stored as written) hold only their names.
 */
export interface Secrets {
  /** The value of the secret `name`, or undefined when it is not set (an empty value counts as not set). */
  get(name: string): string | undefined;
}

/** The name of a secret: what follows `secrets.` in a template, and a line's name in a secrets file. */
export const secretName = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Secrets from a secrets file (see {@link parseSecretsFile}), then from the environment: a name set in
 * both takes the file's value. `replace` swaps the file's values (Reflex reads the file again on SIGHUP).
 */
export interface SecretStore extends Secrets {
  replace(file: ReadonlyMap<string, string>): void;
}

/**
 * Builds the secrets of a Reflex process.
 *
 * @param file the values read from the secrets file; @default none
 * @param env the environment; @default none
 * @example
 * const secrets = createSecretStore({ file: parseSecretsFile(text, path), env: process.env });
 */
export function createSecretStore(
  sources: { file?: ReadonlyMap<string, string>; env?: Readonly<Record<string, string | undefined>> } = {},
): SecretStore {
  let file = sources.file ?? new Map<string, string>();
  const env = sources.env ?? {};
  return {
    get(name) {
      const value = file.get(name) ?? (Object.hasOwn(env, name) ? env[name] : undefined);
      return value === '' ? undefined : value;
    },
    replace(next) {
      file = next;
    },
  };
}

/**
 * Reads a secrets file: one `NAME=value` per line, the way env files are written. The value is the
 * text after the first `=`, as it is (spaces included); a value wholly in single or double quotes loses
 * the quotes (nothing inside is unescaped). Blank lines and lines starting with `#` are skipped; a
 * leading `export ` is allowed. Throws REFLEX_ERR_CONFIG_INVALID naming the line, never its value.
 *
 * @example parseSecretsFile('API_TOKEN=abc\n# a comment\nDB_PASSWORD="p w"\n', 'secrets.env')
 */
export function parseSecretsFile(text: string, file: string): Map<string, string> {
  const values = new Map<string, string>();
  text.split(/\r?\n/).forEach((line, index) => {
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const eq = line.indexOf('=');
    const name = (eq === -1 ? line : line.slice(0, eq)).trim().replace(/^export\s+/, '');
    if (eq === -1 || !secretName.test(name)) {
      throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
        option: '--secrets',
        reason: `line ${index + 1} of ${file} is not \`NAME=value\` with a NAME of letters, digits and _`,
        fix: 'write one `NAME=value` per line; lines starting with # are comments.',
      });
    }
    let value = line.slice(eq + 1);
    const quoted = /^(["'])([\s\S]*)\1$/.exec(value);
    if (quoted) value = quoted[2]!;
    if (values.has(name)) {
      throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
        option: '--secrets',
        reason: `${name} is set twice in ${file} (line ${index + 1})`,
        fix: 'keep one line per secret.',
      });
    }
    values.set(name, value);
  });
  return values;
}

/**
 * The values of the secrets `names`. Throws REFLEX_ERR_SECRET_MISSING for the first one that is not set,
 * naming it (never a value).
 */
export function resolveSecrets(secrets: Secrets, names: Iterable<string>): Record<string, string> {
  const values: Record<string, string> = Object.create(null);
  for (const name of names) {
    if (Object.hasOwn(values, name)) continue;
    const value = secrets.get(name);
    if (value === undefined) throw new ReflexError('REFLEX_ERR_SECRET_MISSING', { name });
    values[name] = value;
  }
  return values;
}
