import type { RetryPolicy } from './rule.js';

/**
 * The delay before the next try after `attempt` failed tries (1 after the first failure): exponential
 * (`backoffMs * 2^(attempt-1)`, capped at `maxDelayMs`) with "equal jitter" — half the delay is fixed,
 * half random — so many runs failing together do not retry in lockstep, yet no retry comes too soon.
 * `random` is in [0, 1); pass Math.random in production and a constant in tests.
 *
 * @example retryDelay({ attempts: 5, backoffMs: 1000, maxDelayMs: 60000 }, 3, () => 0.5) // 3000
 */
export function retryDelay(policy: RetryPolicy, attempt: number, random: () => number): number {
  const exponential = policy.backoffMs * 2 ** Math.max(0, attempt - 1);
  const capped = Math.min(policy.maxDelayMs, exponential);
  return Math.round(capped / 2 + (capped / 2) * random());
}
