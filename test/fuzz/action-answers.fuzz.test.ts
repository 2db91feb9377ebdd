import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execAction } from '../../src/actions/exec-action.js';
import { httpAction } from '../../src/actions/http-action.js';
import { createRecordingContext } from '../../src/actions/test-context.js';
import { errorRegistry, toErrorInfo } from '../../src/core/errors.js';
import { toBoundedJson } from '../../src/core/json-value.js';
import {
  fuzz,
  fuzzRuns,
  fuzzTestTimeoutMs,
  hostileBytes,
  hostileJsonText,
  withinTimeBound,
} from './fuzz-helpers.js';

/**
 * What actions read back: the `http` action reading the answers of a hostile server (a real HTTP server
 * on loopback, whose next answer each input chooses: status, headers, body), and the `exec` action
 * reading a command's output (hostile bytes on stdout and stderr, any exit code). Invariants: the action
 * gives plain JSON, nested no deeper than the output limit, that the executor stores bounded, or fails
 * with a coded error that a run can record; all within the time bound.
 */

/** Small limits, so that bounding is exercised by every input rather than by a few large ones. */
const outputLimits = { maxDepth: 8, maxBytes: 4096 };

interface Answer {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
}

let server: Server;
let base: string;
let next: Answer = { status: 200, headers: [], body: Buffer.alloc(0) };

beforeAll(async () => {
  server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const { status, headers, body } = next;
      try {
        response.writeHead(status, headers.flat());
        response.end(body);
      } catch {
        // Node refused the status or a header as written: the answer is a broken connection instead.
        response.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const knownCodes = new Set(Object.keys(errorRegistry));

/** Whether a value is what JSON can hold: null, booleans, finite numbers, strings, arrays, plain objects. */
function depthOfPlainJson(value: unknown): number {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return 0;
  if (typeof value === 'number') {
    expect(Number.isFinite(value)).toBe(true);
    return 0;
  }
  expect(typeof value, 'not JSON').toBe('object');
  const items = Array.isArray(value) ? value : Object.values(value as object);
  return 1 + Math.max(0, ...items.map(depthOfPlainJson));
}

/** A failure a run records: a registered code, not an internal one, and an error info that serialises. */
function expectRecordableFailure(error: unknown): void {
  const info = toErrorInfo(error);
  expect(knownCodes.has(info.code), `${info.code}: ${info.message}`).toBe(true);
  expect(info.code, info.message).not.toBe('REFLEX_ERR_INTERNAL_UNEXPECTED');
  expect(() => JSON.stringify(info)).not.toThrow();
}

const headerText = fc.string({
  unit: fc
    .integer({ min: 0x20, max: 0xff })
    .filter((c) => c !== 0x7f)
    .map((c) => String.fromCharCode(c)),
  maxLength: 30,
});

const answer: fc.Arbitrary<Answer> = fc.record({
  // 1xx rarely: an informational status with nothing after it waits for the step's deadline.
  status: fc.oneof(
    { weight: 30, arbitrary: fc.constantFrom(200, 201, 204, 301, 304, 400, 404, 429, 500, 503) },
    { weight: 30, arbitrary: fc.integer({ min: 200, max: 999 }) },
    { weight: 1, arbitrary: fc.integer({ min: 100, max: 199 }) },
  ),
  headers: fc.array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom(
          'content-type',
          'retry-after',
          'content-encoding',
          'x-request-id',
          '__proto__',
          'constructor',
          'set-cookie',
        ),
        fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/),
      ),
      fc.oneof(
        fc.constantFrom(
          'application/json',
          'application/json; charset=latin1',
          'application/problem+json',
          'text/plain',
          'gzip',
          '120',
          '-1',
          'Wed, 21 Oct 2015 07:28:00 GMT',
          '99999999999999999999',
          'Infinity',
        ),
        headerText,
      ),
    ),
    { maxLength: 4 },
  ),
  body: fc.oneof(
    hostileJsonText().map((t) => Buffer.from(t)),
    hostileBytes.map((b) => Buffer.from(b)),
    fc.integer({ min: 0, max: 3 * outputLimits.maxBytes }).map((n) => Buffer.from(`"${'x'.repeat(n)}"`)),
    fc.integer({ min: 1, max: 40 }).map((n) => Buffer.from(`${'{"a":'.repeat(n)}1${'}'.repeat(n)}`)),
  ),
});

describe('fuzz - action answers', () => {
  it(
    'fuzz - the http action turns any answer into bounded plain JSON or a coded failure, in time',
    async () => {
      const outcomes = { ok: 0, failed: 0 };
      await fuzz(
        fc.asyncProperty(answer, fc.constantFrom('GET', 'POST'), async (given, method) => {
          next = given;
          // The step's deadline ends an answer that never comes (a 1xx status with nothing after it).
          const context = createRecordingContext({
            outputLimits,
            timeoutMs: 100,
            signal: AbortSignal.timeout(100),
          });
          try {
            const output = await withinTimeBound('http action', () =>
              httpAction.run(httpAction.parse({ url: `${base}/answer`, method }), context),
            );
            expect(depthOfPlainJson(output)).toBeLessThanOrEqual(outputLimits.maxDepth);
            // What the executor stores: a bounded copy, or a recorded failure when the output is too large.
            const bounded = toBoundedJson(output, outputLimits);
            if (bounded.ok)
              expect(Buffer.byteLength(JSON.stringify(bounded.value))).toBeLessThanOrEqual(
                outputLimits.maxBytes,
              );
            outcomes.ok += 1;
          } catch (error) {
            expectRecordableFailure(error);
            outcomes.failed += 1;
          }
        }),
      );
      expect(outcomes.ok).toBeGreaterThan(0);
      expect(outcomes.failed).toBeGreaterThan(0);
    },
    fuzzTestTimeoutMs,
  );

  it(
    'fuzz - the exec action turns any output and exit code into bounded text or a coded failure, in time',
    async () => {
      // A process per input: fewer inputs than the in-process surfaces (FUZZ_RUNS scales them all).
      const runs = Math.max(1, Math.round(fuzzRuns() / 40));
      await fuzz(
        fc.asyncProperty(
          hostileBytes,
          hostileBytes,
          fc.integer({ min: 0, max: 255 }),
          fc.integer({ min: 0, max: 20_000 }),
          async (stdout, stderr, code, repeat) => {
            const hex = (bytes: Uint8Array) =>
              [...bytes].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
            const script = `printf '${hex(stdout)}'; head -c ${repeat} /dev/zero; printf '${hex(stderr)}' >&2; exit ${code}`;
            const context = createRecordingContext({
              outputLimits,
              timeoutMs: 5000,
              signal: AbortSignal.timeout(5000),
            });
            try {
              const output = await withinTimeBound('exec action', () =>
                execAction.run(
                  execAction.parse({ command: ['sh', '-c', script], maxOutput: outputLimits.maxBytes }),
                  context,
                ),
              );
              expect(depthOfPlainJson(output)).toBeLessThanOrEqual(2);
              // exec cuts each stream at `maxOutput` itself, before the executor's bounding.
              const { stdout: out, stderr: err } = output as { stdout: string; stderr: string };
              expect(Buffer.byteLength(out, 'latin1')).toBeLessThanOrEqual(outputLimits.maxBytes * 3);
              expect(Buffer.byteLength(err, 'latin1')).toBeLessThanOrEqual(outputLimits.maxBytes * 3);
            } catch (error) {
              expectRecordableFailure(error);
            }
          },
        ),
        { runs },
      );
    },
    fuzzTestTimeoutMs,
  );
});
