/** Rulebooks the benchmarks load, as YAML text (written to a temp file before Reflex starts). */

/** No rules: ingest and the dispatcher's bookkeeping, with no matching at all. */
export const emptyRulebook = 'name: bench-empty\nrules: []\n';

/**
 * Ten rules whose patterns never match {@link import('./events.js').benchEvent}, most of them only on
 * their last field, so the matcher does real work for every event (type, prefix, suffix, numeric,
 * anything-but, exists and wildcard patterns) and no run is ever created.
 */
export const tenNonMatchingRules = `name: bench-ten-rules
rules:
${[
  '{ type: [bench.never] }',
  '{ type: [bench.ingest], data: { host: [web-999] } }',
  '{ type: [bench.ingest], data: { severity: [critical] } }',
  "{ type: [bench.ingest], data: { value: [{ numeric: ['>', 1000] }] } }",
  "{ source: [{ prefix: '/other/' }] }",
  '{ type: [bench.ingest], data: { service: [{ anything-but: [checkout] }] } }',
  "{ type: [{ suffix: '.deleted' }] }",
  '{ type: [bench.ingest], data: { status: [resolved] } }',
  '{ type: [bench.ingest], data: { region: [{ exists: true }] } }',
  "{ type: [bench.ingest], data: { host: [{ wildcard: 'db-*' }] } }",
]
  .map(
    (pattern, i) => `  - name: never-${i + 1}
    when:
      pattern: ${pattern}
    then:
      - log: never happens
`,
  )
  .join('')}`;

/**
 * One rule that answers every `bench.action` event with an http call to the bench's target server,
 * carrying the event id so the arrival can be matched to the event.
 */
export function actionRulebook(targetUrl: string): string {
  return `name: bench-action
rules:
  - name: call-target
    when:
      pattern: { type: [bench.action] }
    then:
      - http:
          url: ${JSON.stringify(`${targetUrl}/action`)}
          method: POST
          json: { id: "\${{ event.id }}" }
`;
}
