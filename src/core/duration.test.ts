import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from './duration.js';

describe('duration', () => {
  it('duration - reads units and sums compound durations', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('10s')).toBe(10_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('2d')).toBe(172_800_000);
    expect(parseDuration('1500')).toBe(1500);
    expect(parseDuration(42)).toBe(42);
  });

  it('duration - rejects text that is not a duration, naming the option', () => {
    expect(() => parseDuration('10 minutes', 'timeout')).toThrow(
      /`timeout` is invalid: "10 minutes" is not a duration/,
    );
    expect(() => parseDuration('', 'x')).toThrow(/REFLEX|not a duration/);
    expect(() => parseDuration(-1)).toThrow(/not a duration/);
  });

  it('duration - formats for people', () => {
    expect(formatDuration(250)).toBe('250ms');
    expect(formatDuration(1500)).toBe('1.5s');
    expect(formatDuration(5_400_000)).toBe('1h30m');
  });
});
