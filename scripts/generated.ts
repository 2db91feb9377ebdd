import { createActionRegistry } from '../src/actions/registry.js';
import { errorRegistry } from '../src/core/errors.js';
import { RuleTestSchema } from '../src/rulebook/rule-test-schema.js';
import { createRulebookSchema } from '../src/rulebook/schema.js';

/** The published JSON Schema of rulebook files, with the steps of the built-in actions. */
export function renderRulebookSchema(): string {
  const schema = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    ...JSON.parse(JSON.stringify(createRulebookSchema(createActionRegistry()))),
  };
  return `${JSON.stringify(schema, null, 2)}\n`;
}

/** The published JSON Schema of rule test files (`*.test.yaml`). */
export function renderRuleTestSchema(): string {
  const schema = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    ...JSON.parse(JSON.stringify(RuleTestSchema)),
  };
  return `${JSON.stringify(schema, null, 2)}\n`;
}

/** docs/errors.md: every coded error, its HTTP status and what to do. */
export function renderErrorsDoc(): string {
  const lines = [
    '# Errors',
    '',
    '<!-- Generated from src/core/errors.ts by `npm run gen`. Do not edit by hand. -->',
    '',
    'Every error Reflex reports has a stable code. HTTP answers carry it as',
    '`{ "error": { "code": "...", "message": "...", "details": { ... } } }` with the status below; the',
    'CLI prints `error <code>: <message>` and exits with 2 for invalid input, 1 otherwise. Words in',
    '`{braces}` are filled in with the particulars.',
    '',
    '| code | status | message |',
    '| --- | --- | --- |',
  ];
  for (const entry of Object.values(errorRegistry)) {
    const message = entry.message.replace(/\|/g, '\\|').replace(/\n/g, ' ');
    lines.push(`| \`${entry.code}\` | ${entry.status} | ${message} |`);
  }
  return `${lines.join('\n')}\n`;
}
