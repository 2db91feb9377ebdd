import type { Explanation } from '../engine/queries.js';
import type { ApiEvent, ApiRun, ApiRunDetail } from './client.js';

/** Left-aligned columns, sized to their widest cell, with a header row. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
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
  const lines = [
    `run      ${run.id}`,
    `rule     ${run.rule} (rulebook version ${run.rulebookVersion})`,
    `status   ${run.status}`,
    `event    seq ${run.trigger.seq}: ${run.trigger.type} from ${run.trigger.source} (id ${run.trigger.id})`,
    `created  ${shortTime(run.createdAt)}`,
    `started  ${shortTime(run.startedAt)}`,
    `finished ${shortTime(run.finishedAt)}`,
  ];
  if (run.status === 'pending' && run.nextAttemptAt) lines.push(`next try ${shortTime(run.nextAttemptAt)}`);
  if (run.error) lines.push(`error    ${run.error.code}: ${run.error.message}`);
  lines.push('', 'attempts:');
  if (run.attempts.length === 0) lines.push('  (none yet)');
  for (const a of run.attempts) {
    const took = Date.parse(a.finishedAt) - Date.parse(a.startedAt);
    const head = `  step ${a.stepId} (${a.action}) try ${a.attempt}: ${a.status} in ${took}ms at ${shortTime(a.startedAt)}`;
    lines.push(head);
    if (a.error) {
      lines.push(`    ${a.error.code}: ${a.error.message}`);
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

/** Control characters of a program's output as escapes, so they cannot steer the terminal. */
function printable(text: string): string {
  let out = '';
  for (const char of text) {
    const code = char.charCodeAt(0);
    const control = (code < 0x20 && char !== '\t') || (code >= 0x7f && code <= 0x9f);
    out += control ? `\\u${code.toString(16).padStart(4, '0')}` : char;
  }
  return out;
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
  const lines = [
    `event seq ${e.seq}: ${e.type} from ${e.source} (id ${e.id}), received ${shortTime(e.receivedAt)}`,
    explanation.dispatched
      ? `dispatched with rulebook version ${explanation.rulebookVersion}`
      : `not dispatched yet${explanation.rulebookVersion === null ? '' : ` (shown against rulebook version ${explanation.rulebookVersion})`}`,
    '',
  ];
  if (explanation.rules.length === 0) lines.push('No rules were loaded.');
  for (const rule of explanation.rules) {
    lines.push(`${rule.rule}: ${verdictMark[rule.verdict] ?? rule.verdict}`);
    lines.push(`  ${rule.reason}`);
  }
  return lines.join('\n');
}
