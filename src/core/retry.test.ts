import { describe, expect, it } from 'vitest';
import { retryDelay } from './retry.js';

const policy = { attempts: 6, backoffMs: 1000, maxDelayMs: 10_000 };

describe('retry', () => {
  it('retry - delay doubles per attempt and stays within [half, full] of the exponential step', () => {
    expect(retryDelay(policy, 1, () => 0)).toBe(500);
    expect(retryDelay(policy, 1, () => 0.999999)).toBe(1000);
    expect(retryDelay(policy, 2, () => 0.5)).toBe(1500);
    expect(retryDelay(policy, 3, () => 0)).toBe(2000);
  });

  it('retry - delay is capped at maxDelay', () => {
    expect(retryDelay(policy, 10, () => 0.999999)).toBe(10_000);
    expect(retryDelay(policy, 50, () => 0)).toBe(5000);
  });
});
