import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { matchWildcard, parseWildcard, type Wildcard } from '../wildcard.js';
import { createWildcardAutomaton, maxDfaStates } from './wildcard-automaton.js';

const w = (source: string): Wildcard => parseWildcard(source) as Wildcard;

function found(automaton: { collect(t: string, out: string[], at: number): number }, text: string): string[] {
  const out: string[] = [];
  out.length = automaton.collect(text, out, 0);
  return out.sort();
}

describe('wildcard automaton', () => {
  it('wildcard automaton - matches whole texts, stars for any run, escapes literally', () => {
    const automaton = createWildcardAutomaton<string>();
    for (const source of ['arn:*:bus/*', '*.png', 'a*', '\\*', '', 'x\\\\y'])
      automaton.add(w(source), source);
    expect(found(automaton, 'arn:aws:bus/main')).toEqual(['a*', 'arn:*:bus/*']);
    expect(found(automaton, 'a.png')).toEqual(['*.png', 'a*']);
    expect(found(automaton, '*')).toEqual(['\\*']);
    expect(found(automaton, '')).toEqual(['']);
    expect(found(automaton, 'x\\y')).toEqual(['x\\\\y']);
    expect(automaton.remove(w('a*'), 'a*')).toBe(true);
    expect(found(automaton, 'a.png')).toEqual(['*.png']);
  });

  it('wildcard automaton - agrees with matchWildcard for random wildcards and texts', () => {
    const part = fc.string({ unit: fc.constantFrom('a', 'b', 'ab', '*', '\\*'), maxLength: 5 });
    fc.assert(
      fc.property(
        fc.array(
          part.filter((s) => typeof parseWildcard(s) !== 'string'),
          { minLength: 1, maxLength: 8 },
        ),
        fc.array(fc.string({ unit: fc.constantFrom('a', 'b', '*', 'c'), maxLength: 8 }), {
          minLength: 1,
          maxLength: 8,
        }),
        (sources, texts) => {
          const automaton = createWildcardAutomaton<number>();
          sources.forEach((s, i) => {
            automaton.add(w(s), i);
          });
          for (const text of texts) {
            const out: number[] = [];
            out.length = automaton.collect(text, out, 0);
            const expected = sources.flatMap((s, i) => (matchWildcard(w(s), text) ? [i] : []));
            expect(out.sort((a, b) => a - b)).toEqual(expected);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('wildcard automaton - keeps answering correctly when its DFA cache overflows', () => {
    const automaton = createWildcardAutomaton<string>();
    for (let i = 0; i < 40; i++) automaton.add(w(`*${String.fromCharCode(65 + (i % 26))}*${i}*`), `w${i}`);
    // Many distinct texts force more DFA states than the cache keeps.
    for (let i = 0; i < maxDfaStates * 2; i++) {
      const text = `${String.fromCharCode(65 + (i % 26))}-${i}-${(i * 7919) % 1000}`;
      const out: string[] = [];
      out.length = automaton.collect(text, out, 0);
      const expected = Array.from({ length: 40 }, (_, k) => k).filter((k) =>
        matchWildcard(w(`*${String.fromCharCode(65 + (k % 26))}*${k}*`), text),
      );
      expect(out.sort()).toEqual(expected.map((k) => `w${k}`).sort());
    }
  });
});
