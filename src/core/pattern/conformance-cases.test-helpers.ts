import { readFileSync } from 'node:fs';

/** One line of the shared EventBridge conformance file (see its README.md), with the line as written. */
export interface ConformanceCase {
  name: string;
  pattern: unknown;
  event: unknown;
  expect: 'match' | 'no-match' | 'invalid';
  /** The JSON line itself: numbers keep their notation (`300.0`), as `JSON.parse` would not. */
  line: string;
}

// Read in place from the shared folder beside the repository; never copied into it.
const casesFile = new URL('../../../../shared/conformance/eventbridge/cases.jsonl', import.meta.url);

/** Every case of ../shared/conformance/eventbridge/cases.jsonl, in file order. */
export function readConformanceCases(): ConformanceCase[] {
  return readFileSync(casesFile, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => ({ ...(JSON.parse(line) as Omit<ConformanceCase, 'line'>), line }));
}
