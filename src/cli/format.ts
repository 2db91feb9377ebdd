import type { Explanation } from '../engine/queries.js';
import type { ApiEvent, ApiRun, ApiRunDetail } from './client.js';

/**
 * Characters a terminal acts on instead of showing: C0 controls (ESC starts the sequences that move the
 * cursor, recolour or retitle the window; newline and carriage return fake lines), DEL, C1 controls
 * (`\x9b` is CSI on some terminals), the line and paragraph separators, the bidirectional overrides
 * (which reverse what follows), and lone surrogates.
 */
const unprintable =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Text from stored data made safe to print: every character a terminal would act on is written as an
 * escape (`\x1b`, `\n`, `\u202e`), so an event cannot rewrite what the operator sees. Events taken in
 * today are refused when their attributes hold such characters; data stored before, and `data` itself,
 * may still hold them.
 *
 * @example printable('a\x1b[2Jb') // 'a\\x1b[2Jb'
 */
export function printable(text: string): string {
  return text.replace(unprintable, (char) => {
    const code = char.charCodeAt(0);
    if (char === '\n') return '\\n';
    if (char === '\r') return '\\r';
    if (char === '\t') return '\\t';
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * JSON text that is as safe to print as `printable` text: `JSON.stringify` already escapes C0 controls
 * and lone surrogates, but not DEL, C1 controls, the separators and the bidirectional overrides; these
 * become `\uXXXX` escapes, which read back as the same JSON value.
 */
export function printableJson(value: unknown, indent?: number): string {
  return (JSON.stringify(value, null, indent) ?? 'null').replace(
    /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Left-aligned columns, sized to their widest cell, with a header row. Cells are made `printable`. */
export function table(header: readonly string[], rawRows: ReadonlyArray<readonly string[]>): string {
  const rows = rawRows.map((row) => row.map(printable));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const shortTime = (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

export function formatEvents(events: readonly ApiEvent[]): string {
  if (events.length === 0) return 'No events.';
  return table(
    ['SEQ', 'RECEIVED', 'TYPE', 'SOURCE', 'ID'],
    events.map((e) => {
      const ce = e.event as { type: string; source: string; id: string };
      return [String(e.seq), shortTime(e.receivedAt), ce.type, ce.source, ce.id];
    }),
  );
}

export function formatRuns(runs: readonly ApiRun[]): string {
  if (runs.length === 0) return 'No runs.';
  return table(
    ['ID', 'RULE', 'STATUS', 'EVENT', 'CREATED', 'ERROR'],
    runs.map((r) => [
      r.id,
      r.rule,
      r.status,
      String(r.trigger.seq),
      shortTime(r.createdAt),
      r.error?.code ?? '',
    ]),
  );
}

export function formatRun(run: ApiRunDetail): string {
  const p = printable;
  const lines = [
    `run      ${p(run.id)}`,
    `rule     ${p(run.rule)} (rulebook version ${run.rulebookVersion})`,
    `status   ${run.status}`,
    `event    seq ${run.trigger.seq}: ${p(run.trigger.type)} from ${p(run.trigger.source)} (id ${p(run.trigger.id)})`,
    `created  ${shortTime(run.createdAt)}`,
    `started  ${shortTime(run.startedAt)}`,
    `finished ${shortTime(run.finishedAt)}`,
  ];
  if (run.status === 'pending' && run.nextAttemptAt) lines.push(`next try ${shortTime(run.nextAttemptAt)}`);
  if (run.error) lines.push(`error    ${p(run.error.code)}: ${p(run.error.message)}`);
  lines.push('', 'attempts:');
  if (run.attempts.length === 0) lines.push('  (none yet)');
  for (const a of run.attempts) {
    const took = Date.parse(a.finishedAt) - Date.parse(a.startedAt);
    const head = `  step ${p(a.stepId)} (${p(a.action)}) try ${a.attempt}: ${a.status} in ${took}ms at ${shortTime(a.startedAt)}`;
    lines.push(head);
    if (a.error) {
      lines.push(`    ${p(a.error.code)}: ${p(a.error.message)}`);
      lines.push(...outputTails(a.error.details));
    }
  }
  return lines.join('\n');
}

/**
 * The end of what a failed command printed (`exec` keeps the last 2048 bytes of each stream in its
 * error's details), shown under the attempt: the failure's hint sends the reader here.
 */
function outputTails(details: Record<string, unknown> | undefined): string[] {
  if (details === undefined) return [];
  const lines: string[] = [];
  for (const [key, stream] of [
    ['stdoutTail', 'stdout'],
    ['stderrTail', 'stderr'],
  ] as const) {
    const text = details[key];
    if (typeof text !== 'string' || text === '') continue;
    lines.push(`    ${stream} (end):`);
    for (const line of text.replace(/\n$/, '').split('\n')) lines.push(`      ${printable(line)}`);
  }
  return lines;
}

const verdictMark: Record<string, string> = {
  fired: 'FIRED',
  'no-match': 'no match',
  'condition-false': 'condition false',
  'condition-error': 'condition error',
  disabled: 'disabled',
  stopped: 'stopped',
  'chain-too-deep': 'chain too deep',
  'not-dispatched': 'pending',
};

export function formatExplanation(explanation: Explanation): string {
  const e = explanation.event;
  const p = printable;
  const lines = [
    `event seq ${e.seq}: ${p(e.type)} from ${p(e.source)} (id ${p(e.id)}), received ${shortTime(e.receivedAt)}`,
    explanation.dispatched
      ? `dispatched with rulebook version ${explanation.rulebookVersion}`
      : `not dispatched yet${explanation.rulebookVersion === null ? '' : ` (shown against rulebook version ${explanation.rulebookVersion})`}`,
    '',
  ];
  if (explanation.rules.length === 0) lines.push('No rules were loaded.');
  for (const rule of explanation.rules) {
    lines.push(`${p(rule.rule)}: ${verdictMark[rule.verdict] ?? p(rule.verdict)}`);
    lines.push(`  ${p(rule.reason)}`);
  }
  return lines.join('\n');
}
