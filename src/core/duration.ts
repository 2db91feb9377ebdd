import { ReflexError } from './errors.js';

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const durationText = /^(\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/**
 * Reads a duration written as `250ms`, `10s`, `5m`, `1h30m`, `2d`, or a number of milliseconds.
 * Throws REFLEX_ERR_CONFIG_INVALID naming `what` when the text is not a duration.
 *
 * @example parseDuration('1m30s') // 90000
 */
export function parseDuration(value: string | number, what = 'duration'): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value;
  } else {
    const text = value.trim();
    if (/^\d+$/.test(text)) return Number(text);
    if (durationText.test(text)) {
      let ms = 0;
      for (const [, amount, unit] of text.matchAll(part)) ms += Number(amount) * units[unit!]!;
      return Math.round(ms);
    }
  }
  throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
    option: what,
    reason: `${JSON.stringify(value)} is not a duration`,
    fix: 'write it like 500ms, 10s, 5m, 1h30m or 2d.',
  });
}

/** Writes milliseconds the short way a person reads them: `1.5s`, `2m`, `1h30m`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(3))}s`;
  let rest = Math.round(ms / 1000);
  let out = '';
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}
