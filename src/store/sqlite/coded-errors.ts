import { ReflexError } from '../../core/errors.js';

/**
 * Turns what SQLite, or the file system under it, throws into Reflex's coded errors: a full disk is
 * REFLEX_ERR_STORE_DISK_FULL (503: the write can be retried once there is room), a damaged file
 * REFLEX_ERR_STORE_CORRUPT, and so is stored JSON that no longer parses. Anything else is returned as it
 * is.
 *
 * `SQLITE_FULL` is also what SQLite says when the file would pass its `max_page_count`, which Reflex
 * never sets, and when a temporary file cannot grow; both are "no room".
 */
export function codedStoreError(error: unknown, path: string): unknown {
  if (error instanceof ReflexError) return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') {
    return new ReflexError('REFLEX_ERR_STORE_DISK_FULL', { path }, { cause: error });
  }
  // The store parses JSON only from its own columns: text that does not parse was damaged on disk.
  if (error instanceof SyntaxError) {
    return new ReflexError(
      'REFLEX_ERR_STORE_CORRUPT',
      { path, reason: `a stored value is not valid JSON (${error.message})` },
      { cause: error },
    );
  }
  if (code === 'SQLITE_NOTADB' || (typeof code === 'string' && code.startsWith('SQLITE_CORRUPT'))) {
    return new ReflexError(
      'REFLEX_ERR_STORE_CORRUPT',
      { path, reason: (error as Error).message },
      { cause: error },
    );
  }
  return error;
}

/**
 * Wraps every method of `store` so that what it throws (or rejects with) goes through
 * {@link codedStoreError}. Generic over the methods, so one added to the store later is covered too.
 */
export function withCodedErrors<T extends object>(store: T, path: string): T {
  const wrapped: Record<PropertyKey, unknown> = {};
  const seen = new Set<PropertyKey>();
  for (let proto: object | null = store; proto !== null && proto !== Object.prototype; ) {
    for (const key of Reflect.ownKeys(proto)) {
      if (key === 'constructor' || seen.has(key)) continue;
      seen.add(key);
      const descriptor = Reflect.getOwnPropertyDescriptor(proto, key)!;
      if (typeof descriptor.value !== 'function') {
        Object.defineProperty(wrapped, key, {
          enumerable: true,
          get: () => (store as Record<PropertyKey, unknown>)[key],
        });
        continue;
      }
      const method = descriptor.value as (...args: unknown[]) => unknown;
      wrapped[key] = (...args: unknown[]) => {
        let result: unknown;
        try {
          result = method.apply(store, args);
        } catch (error) {
          throw codedStoreError(error, path);
        }
        return result instanceof Promise
          ? result.catch((error: unknown) => {
              throw codedStoreError(error, path);
            })
          : result;
      };
    }
    proto = Object.getPrototypeOf(proto) as object | null;
  }
  return wrapped as T;
}
