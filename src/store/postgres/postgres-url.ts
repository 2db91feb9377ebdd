import { ReflexError } from '../../core/errors.js';

/** The schema a store uses when its URL names none. */
export const defaultSchema = 'reflex';

/**
 * A schema name Reflex accepts: a plain lower-case SQL identifier, so it never needs quoting and cannot
 * smuggle SQL into the statements that name it.
 */
const schemaPattern = /^[a-z_][a-z0-9_]{0,62}$/;

/** Where a PostgreSQL store lives, read from a `postgres://` URL. */
export interface PostgresLocation {
  /** The URL as `pg` takes it, without Reflex's own `schema` parameter. */
  connectionString: string;
  /** The schema that holds this instance's tables. */
  schema: string;
  host: string;
  port: number;
  database: string;
  user: string | undefined;
  /** The URL with the password replaced by `***`, for messages and logs. */
  display: string;
}

/** Whether `value` names a PostgreSQL store (`postgres://` or `postgresql://`) rather than a directory. */
export function isPostgresUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//i.test(value);
}

/**
 * Reads a store URL: `postgres://[user[:password]@]host[:port]/database[?schema=name&…]`. The `schema`
 * parameter (default {@link defaultSchema}) picks the schema of this instance; every other parameter
 * (`sslmode`, `application_name`, …) goes to `pg` as it is. A URL that cannot be used is
 * REFLEX_ERR_CONFIG_INVALID for `option`.
 *
 * @example
 * parsePostgresUrl('postgres://reflex@db.internal/ops?schema=reflex_prod').schema; // 'reflex_prod'
 */
export function parsePostgresUrl(value: string, option = '--store'): PostgresLocation {
  const invalid = (reason: string) =>
    new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
      option,
      reason,
      fix: 'give a URL of the form postgres://user@host:5432/database?schema=reflex (schema: lower-case letters, digits and _).',
    });
  if (!isPostgresUrl(value)) throw invalid('it does not start with postgres:// or postgresql://');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid('it is not a valid URL');
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (database === '' || database.includes('/')) {
    throw invalid('it names no database (the path after the host, e.g. /reflex)');
  }
  if (url.hostname === '') throw invalid('it names no host');
  const schemas = url.searchParams.getAll('schema');
  if (schemas.length > 1) throw invalid('it gives `schema` more than once');
  const schema = schemas[0] ?? defaultSchema;
  if (!schemaPattern.test(schema)) {
    throw invalid(
      `the schema ${JSON.stringify(schema)} is not a lower-case SQL identifier of at most 63 characters`,
    );
  }
  url.searchParams.delete('schema');
  const port = url.port === '' ? 5432 : Number(url.port);
  const display = new URL(url.href);
  if (display.password !== '') display.password = '***';
  display.searchParams.set('schema', schema);
  return {
    connectionString: url.href,
    schema,
    // An IPv6 host comes back in brackets from URL; pg and messages want it bare.
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port,
    database,
    user: url.username === '' ? undefined : decodeURIComponent(url.username),
    display: display.href,
  };
}
