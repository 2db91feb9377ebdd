/**
 * Writes the files generated from code: `schemas/rulebook.schema.json` and `schemas/rule-test.schema.json`
 * (from the TypeBox schemas) and `docs/errors.md` (from the error registry). Run with `npm run gen`; a test fails when they are stale.
 */
import { writeFileSync } from 'node:fs';
import { renderErrorsDoc, renderRulebookSchema, renderRuleTestSchema } from './generated.js';

const root = new URL('../', import.meta.url);
writeFileSync(new URL('schemas/rulebook.schema.json', root), renderRulebookSchema());
writeFileSync(new URL('schemas/rule-test.schema.json', root), renderRuleTestSchema());
writeFileSync(new URL('docs/errors.md', root), renderErrorsDoc());
console.log('wrote schemas/rulebook.schema.json, schemas/rule-test.schema.json and docs/errors.md');
