import fc from 'fast-check';
import { expect } from 'vitest';
import { errorRegistry, ReflexError } from '../../src/core/errors.js';
import type { EventLog } from '../../src/core/ports/store.js';

/**
 * What every fuzz file shares: how many inputs to try, the seed, the per-input time bound, the check
 * that a refusal is a coded error, and generators of hostile text and JSON.
 *
 * - `FUZZ_RUNS` sets the inputs per surface (default 10 000; `FUZZ_RUNS=1000000` for a long run).
 * - `FUZZ_SEED` (and `FUZZ_PATH`) replay a failure: a failing run prints both. Without it, a run under
 *   CI=true takes the fixed {@link ciFuzzSeed} and any other run a new seed: CI must not turn red on
 *   inputs no change brought in, while every local run tries new ones.
 * - `FUZZ_TIME_BOUND_MS` sets the per-input time bound (default 250 ms).
 */

/** Inputs per surface: `FUZZ_RUNS`, else `runs`. */
export function fuzzRuns(runs = 10_000): number {
  const given = Number(process.env.FUZZ_RUNS);
  return Number.isInteger(given) && given > 0 ? given : runs;
}

/**
 * How long one fuzz test may run: 10 minutes for the default 10 000 inputs, scaled with `FUZZ_RUNS`. Far
 * above what a quiet machine needs (seconds): the bound is per input, this only stops a stuck run.
 */
export const fuzzTestTimeoutMs = Math.max(600_000, Math.ceil(fuzzRuns() / 10_000) * 600_000);

/** The time one input may take, in milliseconds: `FUZZ_TIME_BOUND_MS`, else 250. */
export const timeBoundMs = (() => {
  const given = Number(process.env.FUZZ_TIME_BOUND_MS);
  return Number.isFinite(given) && given > 0 ? given : 250;
})();

/** The seed CI runs with when `FUZZ_SEED` is not set. */
export const ciFuzzSeed = 20261206;

/** `FUZZ_SEED`; else, under CI, {@link ciFuzzSeed}; else a new seed. */
export function fuzzSeed(): number {
  if (process.env.FUZZ_SEED !== undefined) return Number(process.env.FUZZ_SEED);
  if (process.env.CI === 'true' || process.env.CI === '1') return ciFuzzSeed;
  return Date.now() ^ (Math.random() * 2 ** 31);
}

/**
 * Runs a property with the shared run count (or exactly `options.runs`, for a surface that scales it
 * from {@link fuzzRuns}) and seed ({@link fuzzSeed}), and on failure throws the
 * command that replays it, the seed, the path and the shrunk counterexample, with the property's own
 * error as the cause.
 */
export async function fuzz<T>(
  property: fc.IAsyncProperty<T> | fc.IProperty<T>,
  options: { runs?: number } = {},
): Promise<void> {
  const seed = fuzzSeed();
  const path = process.env.FUZZ_PATH;
  const parameters: fc.Parameters<T> = {
    numRuns: options.runs ?? fuzzRuns(),
    seed,
    ...(path === undefined ? {} : { path }),
    // Shrink a failure to the smallest input that still fails: that is the counterexample reported.
    endOnFailure: false,
  };
  const details = await fc.check(property as fc.IAsyncProperty<T>, parameters);
  if (details.failed) {
    const replay = `FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath ?? ''}`;
    throw new Error(`fuzz failure; replay with ${replay} npx vitest run <this file>\n${report(details)}`, {
      cause: details.errorInstance,
    });
  }
}

/** fast-check's report, with the counterexample cut short: a generated body can be megabytes long. */
function report<T>(details: fc.RunDetails<T>): string {
  const shown = fc.stringify(details.counterexample);
  const counterexample =
    shown.length > 4000 ? `${shown.slice(0, 4000)}… (${shown.length} characters)` : shown;
  return `Property failed after ${details.numRuns} inputs (seed ${details.seed}, path ${details.counterexamplePath}, shrunk ${details.numShrinks} times)\nCounterexample: ${counterexample}`;
}

/**
 * Runs `work` for one input and fails when it takes longer than the time bound. A slow first run is
 * timed again before failing, so that a pause of the shared machine (GC, another process) is not taken
 * for an input that is slow in itself; an input that hangs fails after the bound either way.
 */
export async function withinTimeBound<T>(what: string, work: () => Promise<T> | T): Promise<T> {
  const timed = async (): Promise<{ result: T; ms: number }> => {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what} did not finish within ${4 * timeBoundMs} ms`)),
        4 * timeBoundMs,
      );
    });
    try {
      const result = await Promise.race([Promise.resolve().then(work), hang]);
      return { result, ms: performance.now() - started };
    } finally {
      clearTimeout(timer);
    }
  };
  const first = await timed();
  if (first.ms <= timeBoundMs) return first.result;
  const second = await timed();
  if (second.ms > timeBoundMs)
    throw new Error(
      `${what} took ${Math.round(first.ms)} ms, then ${Math.round(second.ms)} ms (bound ${timeBoundMs} ms)`,
    );
  return second.result;
}

/**
 * {@link withinTimeBound} for synchronous work, with the same bound and the same second timing. Work that
 * never returns cannot be stopped from the same thread: vitest's test timeout ends it.
 */
export function withinTimeBoundSync<T>(what: string, work: () => T): T {
  const timed = (): { result: T; ms: number } => {
    const started = performance.now();
    const result = work();
    return { result, ms: performance.now() - started };
  };
  const first = timed();
  if (first.ms <= timeBoundMs) return first.result;
  const second = timed();
  if (second.ms > timeBoundMs)
    throw new Error(
      `${what} took ${Math.round(first.ms)} ms, then ${Math.round(second.ms)} ms (bound ${timeBoundMs} ms)`,
    );
  return second.result;
}

/** Every code of the registry, to check that a refusal carries one of them. */
const knownCodes = new Set<string>(Object.keys(errorRegistry));

/**
 * Fails unless `error` is a coded Reflex error a user may meet: a `ReflexError` with a registered code
 * that is not `REFLEX_ERR_INTERNAL_UNEXPECTED`, and (when `status` says so) a 4xx status.
 */
export function expectCodedRefusal(error: unknown, options: { clientError?: boolean } = {}): ReflexError {
  if (!(error instanceof ReflexError)) throw error;
  expect(knownCodes.has(error.code), error.code).toBe(true);
  expect(error.code).not.toBe('REFLEX_ERR_INTERNAL_UNEXPECTED');
  if (options.clientError !== false)
    expect(error.statusCode, `${error.code}: ${error.message}`).toBeLessThan(500);
  return error;
}

/** An answer of the HTTP API as `inject` gives it. */
export interface InjectedAnswer {
  statusCode: number;
  body: string;
}

/**
 * Fails unless an HTTP answer is a success (2xx) or a coded refusal: a 4xx whose body is
 * `{ error: { code: "REFLEX_ERR_…", message } }`. Returns the code of a refusal, else undefined.
 */
export function expectSuccessOrCodedRefusal(answer: InjectedAnswer): string | undefined {
  if (answer.statusCode >= 200 && answer.statusCode < 300) return undefined;
  const status = `${answer.statusCode} ${answer.body.slice(0, 500)}`;
  expect(answer.statusCode, status).toBeGreaterThanOrEqual(400);
  expect(answer.statusCode, status).toBeLessThan(500);
  const body = JSON.parse(answer.body) as { error?: { code?: unknown; message?: unknown } };
  expect(typeof body.error?.code, status).toBe('string');
  expect(knownCodes.has(body.error?.code as string), status).toBe(true);
  expect(typeof body.error?.message, status).toBe('string');
  return body.error?.code as string;
}

/** Keys that objects inherit or that libraries read as types: the keys a hostile sender tries first. */
export const hostileKeys = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  'then',
  'length',
  'size',
  '$ref',
  '',
] as const;

/** Strings a hostile sender tries: control characters, unusual unicode, lone surrogates, long runs. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom(
    '\u0000',
    '\u001b[31mred\u001b[0m',
    'line\nbreak',
    '\r\n',
    '\t',
    '\u007f',
    '\u0085',
    '\u2028\u2029',
    '\ufeff',
    '\u200b\u200d',
    '\u202e',
    '\ud800',
    '\udfff',
    'e\u0301',
    '𝕏🏳️‍🌈',
    'ＡＢＣ',
    '%00',
    '%2e%2e/',
    '../../etc/passwd',
    '${{ event.id }}',
    '{{ x }}',
    'a'.repeat(5000),
    '1e400',
    'NaN',
    'null',
    ...hostileKeys,
  ),
);

/** Numbers a hostile sender tries, written as JSON text (some beyond double range). */
export const hostileNumberText: fc.Arbitrary<string> = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  fc.constantFrom(
    '1e400',
    '-1e400',
    '1e-400',
    '123456789012345678901234567890',
    '9007199254740993',
    '-0',
    '0.0000000000000000000000001',
    '1E+308',
    '1.7976931348623157e309',
    '5e-324',
  ),
);

/**
 * JSON text (not always valid: a share is broken on purpose) with hostile keys, duplicate keys, deep
 * nesting, numbers beyond double range and strange strings. `depth` bounds the recursion of the
 * ordinary values; `deep` adds the occasional value nested thousands of levels.
 */
export function hostileJsonText(options: { depth?: number } = {}): fc.Arbitrary<string> {
  const key = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...hostileKeys) },
    hostileString,
    fc.constantFrom('a', 'b', 'id'),
  );
  const { value } = fc.letrec<{ value: string }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', maxDepth: options.depth ?? 4, withCrossShrink: true },
      fc.constantFrom('null', 'true', 'false'),
      hostileNumberText,
      hostileString.map((s) => JSON.stringify(s)),
      fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
      // Not unique: duplicate keys are part of the test.
      fc
        .array(fc.tuple(key, tie('value')), { maxLength: 4 })
        .map((entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
    ),
  }));
  return fc.oneof(
    { weight: 8, arbitrary: value },
    fc.integer({ min: 100, max: 5000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
    fc.integer({ min: 100, max: 5000 }).map((n) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`),
  );
}

/** Bytes that are not UTF-8, or not what they seem: for bodies read as text. */
export const hostileBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.constantFrom(
    Uint8Array.from([0xff, 0xfe]),
    Uint8Array.from([0xc0, 0x80]),
    Uint8Array.from([0xed, 0xa0, 0x80]),
    Uint8Array.from([0xef, 0xbb, 0xbf]),
    Uint8Array.from([0xf4, 0x90, 0x80, 0x80]),
    Uint8Array.from([0x80]),
    Uint8Array.from([0x00]),
  ),
);

/**
 * Mutations of a valid input: cut a range, insert hostile bytes or text, repeat a range, replace a byte.
 * Generators start from inputs that are accepted and push them just past what is accepted.
 */
export function mutated(valid: fc.Arbitrary<string>): fc.Arbitrary<Buffer> {
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), length: fc.nat({ max: 16 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: hostileBytes }),
    fc.record({
      kind: fc.constant('text' as const),
      at: fc.nat(),
      text: fc.oneof(hostileString, hostileJsonText({ depth: 2 })),
    }),
    fc.record({
      kind: fc.constant('repeat' as const),
      at: fc.nat(),
      length: fc.nat({ max: 16 }),
      times: fc.integer({ min: 2, max: 50 }),
    }),
    fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  );
  return fc.tuple(valid, fc.array(edit, { minLength: 1, maxLength: 3 })).map(([text, edits]) => {
    let bytes = Buffer.from(text);
    for (const e of edits) {
      const at = bytes.length === 0 ? 0 : e.at % (bytes.length + 1);
      if (e.kind === 'cut') bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + e.length)]);
      else if (e.kind === 'insert')
        bytes = Buffer.concat([bytes.subarray(0, at), e.bytes, bytes.subarray(at)]);
      else if (e.kind === 'text')
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(e.text), bytes.subarray(at)]);
      else if (e.kind === 'repeat') {
        const piece = bytes.subarray(at, at + e.length);
        bytes = Buffer.concat([
          bytes.subarray(0, at),
          ...Array<Buffer>(e.times).fill(piece),
          bytes.subarray(at),
        ]);
      } else if (at < bytes.length) {
        bytes = Buffer.from(bytes);
        bytes[at] = e.byte;
      }
    }
    return bytes;
  });
}

/**
 * How many events from outside (any source but `reflex`) the log holds after `seq`. The rulebooks of the
 * fuzzers fire rules, and each run ends with an outcome event (source `reflex`) whenever it finishes, so
 * the log's last seq can grow during an unrelated input: what a request stored is what is not Reflex's own.
 */
export async function outsideEventsAfter(log: Pick<EventLog, 'readEvents'>, seq: number): Promise<number> {
  const { events } = await log.readEvents({ partition: 0, seq }, 100_000);
  return events.filter((logged) => logged.event.source !== 'reflex').length;
}
