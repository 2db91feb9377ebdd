import type Database from 'better-sqlite3';

/**
 * What the parts of the SQLite store share: the one open connection (every part prepares its statements
 * on it, so a transaction of one part may call into another's and stay ONE transaction — better-sqlite3
 * turns a nested transaction into a savepoint) and the database file, for errors.
 */
export interface SqliteContext {
  readonly db: Database.Database;
  /** The database file. */
  readonly path: string;
}
