import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderErrorsDoc, renderRulebookSchema, renderRuleTestSchema } from '../../scripts/generated.js';
import { errorRegistry } from '../../src/core/errors.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

describe('generated files', () => {
  it('errors - every registry key equals its code and follows REFLEX_ERR_<AREA>_<WHAT>', () => {
    for (const [key, entry] of Object.entries(errorRegistry)) {
      expect(entry.code).toBe(key);
      expect(key).toMatch(/^REFLEX_ERR_[A-Z]+_[A-Z_]+$/);
    }
  });

  it('errors - every message tells the user what to do', () => {
    for (const entry of Object.values(errorRegistry)) {
      expect(entry.message, entry.code).toMatch(/To fix:|Nothing to fix|fix each/);
    }
  });

  it('docs/errors.md is up to date with the registry (run `npm run gen`)', () => {
    expect(read('docs/errors.md')).toBe(renderErrorsDoc());
  });

  it('schemas/rulebook.schema.json is up to date with src/rulebook/schema.ts (run `npm run gen`)', () => {
    expect(read('schemas/rulebook.schema.json')).toBe(renderRulebookSchema());
  });

  it('schemas/rule-test.schema.json is up to date with src/rulebook/rule-test-schema.ts (run `npm run gen`)', () => {
    expect(read('schemas/rule-test.schema.json')).toBe(renderRuleTestSchema());
  });
});
