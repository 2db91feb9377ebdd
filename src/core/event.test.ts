import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReflexError } from './errors.js';
import { checkNotReserved, validateCloudEvent } from './event.js';

const base = { specversion: '1.0', id: 'e-1', source: 'shop', type: 'order.created' };

/** Runs validation and says whether it passed; anything thrown but a coded 400 fails the property. */
function accepted(event: Record<string, unknown>): boolean {
  try {
    validateCloudEvent(event);
    return true;
  } catch (error) {
    if (!(error instanceof ReflexError) || error.statusCode !== 400) throw error;
    return false;
  }
}

describe('event validation properties', () => {
  it('event - every time it accepts is a real instant that Date.parse reads', () => {
    const digits = (n: number) =>
      fc.integer({ min: 0, max: 10 ** n - 1 }).map((v) => String(v).padStart(n, '0'));
    const shaped = fc
      .tuple(
        digits(4),
        digits(2),
        digits(2),
        digits(2),
        digits(2),
        digits(2),
        fc.constantFrom('Z', '+01:00', '-23:59', '+24:00', 'z'),
      )
      .map(([y, mo, d, h, mi, s, z]) => `${y}-${mo}-${d}T${h}:${mi}:${s}${z}`);
    fc.assert(
      fc.property(fc.oneof(shaped, fc.string({ maxLength: 30 })), (time) => {
        if (accepted({ ...base, time })) {
          expect(Number.isFinite(Date.parse(time.toUpperCase()))).toBe(true);
          // Date.parse rolls February 30 over into March; an accepted time must not roll.
          const [date] = time.split(/[Tt ]/);
          const iso = new Date(`${date}T00:00:00Z`).toISOString().slice(0, 10);
          expect(iso).toBe(date);
        }
      }),
      { numRuns: 20_000 },
    );
  });

  it('event - every data_base64 it accepts is standard, padded base64', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.base64String(),
          fc.string({ maxLength: 20 }),
          fc.uint8Array().map((b) => Buffer.from(b).toString('base64url')),
        ),
        (data_base64) => {
          if (accepted({ ...base, data_base64 })) {
            expect(data_base64.length % 4).toBe(0);
            expect(data_base64).toMatch(/^[A-Za-z0-9+/]*={0,2}$/);
          }
        },
      ),
      { numRuns: 10_000 },
    );
  });

  it('event - every attribute it accepts prints as itself: no control characters, separators or overrides', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('id', 'source', 'type', 'subject', 'ext'),
        fc.string({ unit: 'binary', maxLength: 20 }),
        (name, value) => {
          if (value === '') return;
          if (accepted({ ...base, [name]: value })) {
            // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
            expect(value).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
          }
        },
      ),
      { numRuns: 10_000 },
    );
  });

  it('event - checkNotReserved refuses source reflex and reflex.* types in any case, and nothing else', () => {
    const refused = (source: string, type: string) => {
      try {
        checkNotReserved({ ...base, source, type } as never);
        return false;
      } catch (error) {
        expect((error as ReflexError).code).toBe('REFLEX_ERR_EVENT_RESERVED');
        return true;
      }
    };
    expect(refused('reflex', 'x')).toBe(true);
    expect(refused('ReFlEx', 'x')).toBe(true);
    expect(refused('shop', 'reflex.timer')).toBe(true);
    expect(refused('shop', 'REFLEX.run.failed')).toBe(true);
    expect(refused('reflex-cli', 'reflexive.thing')).toBe(false);
    expect(refused('urn:reflex', 'com.reflex.run')).toBe(false);
  });
});
