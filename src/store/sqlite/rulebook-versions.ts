import type { NewRulebookVersion, RulebookStore, RulebookVersion } from '../../core/ports/store.js';
import type { SqliteContext } from './context.js';

interface RulebookRow {
  id: number;
  hash: string;
  files: string;
  created_at: number;
}

/** Rulebook versions on SQLite, one row per distinct content hash. */
export class SqliteRulebookStore implements RulebookStore {
  readonly #insertRulebook;
  readonly #rulebookIdByHash;
  readonly #getRulebook;

  constructor({ db }: SqliteContext) {
    this.#insertRulebook = db.prepare<[string, string, number]>(
      'INSERT INTO rulebook_versions (hash, files, created_at) VALUES (?, ?, ?) ON CONFLICT (hash) DO NOTHING',
    );
    this.#rulebookIdByHash = db.prepare<[string], { id: number }>(
      'SELECT id FROM rulebook_versions WHERE hash = ?',
    );
    this.#getRulebook = db.prepare<[number], RulebookRow>(
      'SELECT id, hash, files, created_at FROM rulebook_versions WHERE id = ?',
    );
  }

  async saveRulebookVersion(version: NewRulebookVersion): Promise<number> {
    this.#insertRulebook.run(version.hash, JSON.stringify(version.files), version.createdAt);
    return this.#rulebookIdByHash.get(version.hash)!.id;
  }

  async getRulebookVersion(id: number): Promise<RulebookVersion | undefined> {
    const row = this.#getRulebook.get(id);
    if (row === undefined) return undefined;
    return {
      id: row.id,
      hash: row.hash,
      files: JSON.parse(row.files) as RulebookVersion['files'],
      createdAt: row.created_at,
    };
  }
}
