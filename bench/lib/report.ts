import { readFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem, type } from 'node:os';

/** A whole number grouped by thousands with spaces, for tables: 12345.6 → "12 346". */
export function formatCount(value: number): string {
  if (!Number.isFinite(value)) return '–';
  return Math.round(value)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
}

/** Milliseconds for tables: two decimals below 10 ms, one below 100, none above. */
export function formatMs(value: number): string {
  if (!Number.isFinite(value)) return '–';
  if (Math.abs(value) < 10) return value.toFixed(2);
  if (Math.abs(value) < 100) return value.toFixed(1);
  return formatCount(value);
}

/** A ratio as a percentage with no decimals: 0.634 → "63 %". */
export function formatPercent(ratio: number): string {
  return Number.isFinite(ratio) ? `${Math.round(ratio * 100)} %` : '–';
}

/** Whether a goal was met, in bold so that a reader finds it. */
export function goalVerdict(met: boolean): string {
  return met ? '**met**' : '**not met**';
}

/** Bytes in GiB with one decimal. */
export function formatGiB(bytes: number): string {
  return `${(bytes / 1024 / 1024 / 1024).toFixed(1)} GiB`;
}

/** Bytes in MiB with one decimal. */
export function formatMiB(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * A warning for a section whose figures were taken while other processes kept the machine busy, or ''
 * when they were not; a note ends with a blank line, so it goes right before what it qualifies. `otherCpu` are the "other CPU" shares of the runs shown (100 = one core).
 * @param thresholdPercent other CPU above which the figures are called unreliable. @default 50
 */
export function disturbanceNote(name: string, otherCpu: readonly number[], thresholdPercent = 50): string {
  const worst = Math.max(0, ...otherCpu.filter(Number.isFinite));
  if (worst <= thresholdPercent) return '';
  return `> **Disturbed run.** Other processes on the machine used up to ${Math.round(worst)} % CPU (100 % = one core)
> while these figures were taken, so they, and the ratios between them, say more about that load than about
> Reflex. Rerun \`npm run bench -- ${name}\` on a quiet machine before drawing conclusions.

`;
}

/** A Markdown table. Cells are written as given; the first column is left-aligned, the rest right. */
export function markdownTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const align = headers.map((_, i) => (i === 0 ? ':---' : '---:'));
  return [headers, align, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

/** The machine the figures were taken on. */
export interface MachineInfo {
  cpu: string;
  cores: number;
  ramBytes: number;
  node: string;
  os: string;
  /** The file system holding the temp dir where the data dirs go, e.g. `ext4 on /dev/vda`. */
  tempFileSystem: string;
}

/** Reads the machine's description from Node and `/proc/mounts`. */
export function describeMachine(): MachineInfo {
  const cpuList = cpus();
  return {
    cpu: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    ramBytes: totalmem(),
    node: process.version,
    os: `${type()} ${release()}`,
    tempFileSystem: fileSystemOf(tmpdir()),
  };
}

/** `<type> on <device>` of the mount that holds `path` (the longest mount point that prefixes it). */
function fileSystemOf(path: string): string {
  try {
    let best: { point: string; text: string } | undefined;
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [device, point, fsType] = line.split(' ');
      if (!device || !point || !fsType) continue;
      const inside = point === '/' || path === point || path.startsWith(`${point}/`);
      if (inside && (!best || point.length > best.point.length))
        best = { point, text: `${fsType} on ${device}` };
    }
    return best?.text ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const marker = (name: string, end: 'start' | 'end') => `<!-- bench:${name}:${end} -->`;

/** Wraps a benchmark's Markdown in the markers that let a later run replace just that section. */
export function wrapSection(name: string, markdown: string): string {
  return `${marker(name, 'start')}\n${markdown.trim()}\n${marker(name, 'end')}`;
}

/** The sections found in an existing BENCHMARKS.md, by name, each with its markers. */
export function readSections(text: string): Map<string, string> {
  const sections = new Map<string, string>();
  const pattern = /<!-- bench:([a-z0-9-]+):start -->[\s\S]*?<!-- bench:\1:end -->/g;
  for (const found of text.matchAll(pattern)) sections.set(found[1]!, found[0]);
  return sections;
}

/**
 * Builds BENCHMARKS.md: `header`, then one section per name in `order`, taken from `fresh` when this run
 * measured it and otherwise kept from `previous` (the file as it was). Sections of names no longer in
 * `order` are kept at the end rather than silently dropped.
 */
export function composeBenchmarksFile(
  header: string,
  order: readonly string[],
  fresh: ReadonlyMap<string, string>,
  previous: string | undefined,
): string {
  const kept = previous ? readSections(previous) : new Map<string, string>();
  const parts = [header.trim()];
  for (const name of order) {
    const markdown = fresh.get(name);
    if (markdown !== undefined) parts.push(wrapSection(name, markdown));
    else if (kept.has(name)) parts.push(kept.get(name)!);
  }
  for (const [name, section] of kept) if (!order.includes(name)) parts.push(section);
  return `${parts.join('\n\n')}\n`;
}
