import { ReflexError } from '../../core/errors.js';
import type { PostgresLocation } from './postgres-url.js';

/** Error codes of the network and the client that mean "the server cannot be reached or used now". */
const unreachableNetworkCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/**
 * SQLSTATE classes and codes that mean the server cannot be used: connection exceptions (08), a server
 * shutting down or restarting (57P01–57P03), too many connections (53300), refused credentials (28) or
 * a database that does not exist (3D000).
 */
function unreachableState(state: string): boolean {
  return (
    state.startsWith('08') ||
    state.startsWith('28') ||
    state === '57P01' ||
    state === '57P02' ||
    state === '57P03' ||
    state === '53300' ||
    state === '3D000'
  );
}

/**
 * Turns what `pg` throws into Reflex's coded errors: a server that cannot be reached or refuses us is
 * REFLEX_ERR_STORE_UNREACHABLE (503: the write can be retried once it answers), a full disk on the
 * server REFLEX_ERR_STORE_DISK_FULL, stored JSON that no longer parses REFLEX_ERR_STORE_CORRUPT.
 * Anything else is returned as it is.
 */
export function codedPostgresError(error: unknown, location: PostgresLocation): unknown {
  if (error instanceof ReflexError) return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const where = { host: location.host, port: location.port, database: location.database };
  if (typeof code === 'string' && (unreachableNetworkCodes.has(code) || unreachableState(code))) {
    return new ReflexError('REFLEX_ERR_STORE_UNREACHABLE', { ...where, reason: message }, { cause: error });
  }
  // pg reports a socket that closed under a query without a code.
  if (code === undefined && /Connection terminated|connection timeout|not queryable/i.test(message)) {
    return new ReflexError('REFLEX_ERR_STORE_UNREACHABLE', { ...where, reason: message }, { cause: error });
  }
  if (code === '53100') {
    return new ReflexError('REFLEX_ERR_STORE_DISK_FULL', { path: location.display }, { cause: error });
  }
  if (error instanceof SyntaxError) {
    return new ReflexError(
      'REFLEX_ERR_STORE_CORRUPT',
      { path: location.display, reason: `a stored value is not valid JSON (${error.message})` },
      { cause: error },
    );
  }
  return error;
}
