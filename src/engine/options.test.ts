import { describe, expect, it } from 'vitest';
import { ReflexError } from '../core/errors.js';
import type { Store } from '../core/ports/store.js';
import { compileEngineOptions, engineDefaults } from './options.js';

// compileEngineOptions never touches the store or the actions; it only carries them through.
const wiring = { store: {} as Store, actions: { get: () => undefined, kinds: () => [] }, compilers: [] };

describe('engine options', () => {
  it('engine options - every setting left out takes its default, given ones are kept', () => {
    const compiled = compileEngineOptions({ ...wiring, concurrency: 4, limits: { maxDepth: 8 } });
    expect(compiled).toMatchObject({
      concurrency: 4,
      leaseMs: engineDefaults.leaseMs,
      maxClaims: engineDefaults.maxClaims,
      maxPendingEvents: engineDefaults.maxPendingEvents,
      maxOutputBytes: engineDefaults.maxOutputBytes,
      maxChainDepth: engineDefaults.maxChainDepth,
      graceMs: engineDefaults.graceMs,
      limits: { maxDepth: 8 },
    });
    expect(Object.isFrozen(compiled)).toBe(true);
  });

  it('engine options - a setting out of range is refused with what to give instead', () => {
    for (const bad of [
      { leaseMs: 999 },
      { concurrency: 0 },
      { maxChainDepth: 1.5 },
      { limits: { maxDepth: 0 } },
    ]) {
      let error: unknown;
      try {
        compileEngineOptions({ ...wiring, ...bad });
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ReflexError);
      expect((error as ReflexError).code).toBe('REFLEX_ERR_CONFIG_INVALID');
      expect((error as ReflexError).message).toMatch(/To fix: give a whole number from \d+ up/);
    }
  });
});
