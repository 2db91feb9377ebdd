/** The RulebookStore port: every distinct set of rulebook files, kept by content hash. */
export interface RulebookStore {
  /** Saves a rulebook version, or returns the id of the stored version with the same hash. */
  saveRulebookVersion(version: NewRulebookVersion): Promise<number>;
  getRulebookVersion(id: number): Promise<RulebookVersion | undefined>;
}

export interface NewRulebookVersion {
  /** Hash of the files' contents: saving the same rulebooks twice gives the same version. */
  hash: string;
  /** The rulebook files as loaded, so the version can be compiled again later (explain, runs after restart). */
  files: Array<{ path: string; content: string }>;
  createdAt: number;
}

export interface RulebookVersion extends NewRulebookVersion {
  id: number;
}
