/**
 * A citylots-style workload, to set the compiled matcher beside aws/event-ruler's published figures:
 * GeoJSON features of about 900 bytes (San Francisco lots: properties plus a polygon of coordinates),
 * generated deterministically, and 5 rules per operator type on nested properties and on the
 * coordinates (numeric ranges over an array of arrays).
 *
 * Run: `npm run bench -- citylots`, or `node --import tsx bench/citylots.ts` (add `--quick` for a short
 * run), which prints the section instead of writing BENCHMARKS.md.
 */
import { cpus, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { createCompiledMatcher } from '../src/core/pattern/compiled-matcher.js';
import { parsePattern } from '../src/core/pattern/pattern.js';
import { createReferenceMatcher } from '../src/core/pattern/reference-matcher.js';
import { type BenchmarkContext, type BenchmarkResult, defineBenchmark, measuredOn } from './lib/benchmark.js';
import { median, throughput } from './lib/throughput.js';
import { random } from './matching.js';

const streets = [
  'OCTAVIA',
  'FULTON',
  'JEFFERSON',
  'ACACIA',
  'BLAKE',
  'BUSH',
  'CALIFORNIA',
  'CLAY',
  'DIVISADERO',
  'EDDY',
  'FILLMORE',
  'FRANKLIN',
  'GEARY',
  'GOUGH',
  'HAYES',
  'JACKSON',
  'KEARNY',
  'LAGUNA',
  'LARKIN',
  'MARKET',
  'MASON',
  'MISSION',
  'PACIFIC',
  'PINE',
  'POLK',
  'POWELL',
  'SACRAMENTO',
  'STOCKTON',
  'SUTTER',
  'TAYLOR',
  'UNION',
  'VALLEJO',
  'VAN NESS',
  'WASHINGTON',
  'WEBSTER',
  'UNKNOWN',
];
const streetTypes = ['ST', 'AVE', 'WAY', 'BLVD', null];

/** A GeoJSON feature like those of citylots.json, about 900 bytes as JSON. */
export function makeFeatures(count: number, seed = 3): string[] {
  const rnd = random(seed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const block = String(1 + Math.floor(rnd() * 7000)).padStart(4, '0');
    const lot = String(1 + Math.floor(rnd() * 300)).padStart(3, '0');
    const lon = -122.52 + rnd() * 0.17;
    const lat = 37.7 + rnd() * 0.11;
    const ring: number[][] = [];
    const points = 13 + Math.floor(rnd() * 4);
    for (let p = 0; p < points; p++) {
      ring.push([lon + (rnd() - 0.5) * 0.001, lat + (rnd() - 0.5) * 0.001, 0.0]);
    }
    const from = Math.floor(rnd() * 3000);
    const feature = {
      type: 'Feature',
      properties: {
        MAPBLKLOT: `${block}${lot}`,
        BLKLOT: `${block}${lot}`,
        BLOCK_NUM: block,
        LOT_NUM: lot,
        FROM_ST: String(from),
        TO_ST: String(from + Math.floor(rnd() * 40)),
        STREET: streets[Math.floor(rnd() * streets.length)]!,
        ST_TYPE: streetTypes[Math.floor(rnd() * streetTypes.length)]!,
        ODD_EVEN: rnd() < 0.5 ? 'E' : 'O',
      },
      geometry: { type: 'Polygon', coordinates: [ring] },
    };
    // Coordinates written with the full precision of the original file (and 0.0 kept as such).
    out.push(JSON.stringify(feature).replace(/,0\]/g, ',0.0]'));
  }
  return out;
}

/** Five rules per operator type, on the fields event-ruler's citylots rules use. */
export const ruleSets: Record<string, unknown[]> = {
  exact: [
    { properties: { MAPBLKLOT: ['1430022'] } },
    { properties: { MAPBLKLOT: ['2607117'] } },
    { properties: { BLKLOT: ['2607218'] } },
    { properties: { STREET: ['OCTAVIA'] } },
    { properties: { FROM_ST: ['227'] } },
  ],
  prefix: ['AC', 'BL', 'CA', 'FU', 'MA'].map((p) => ({ properties: { STREET: [{ prefix: p }] } })),
  'prefix equals-ignore-case': ['ac', 'Bl', 'cA', 'fu', 'mA'].map((p) => ({
    properties: { STREET: [{ prefix: { 'equals-ignore-case': p } }] },
  })),
  suffix: ['ON', 'KE', 'IA', 'RT', 'ER'].map((s) => ({ properties: { STREET: [{ suffix: s }] } })),
  'suffix equals-ignore-case': ['on', 'Ke', 'iA', 'rt', 'eR'].map((s) => ({
    properties: { STREET: [{ suffix: { 'equals-ignore-case': s } }] },
  })),
  'equals-ignore-case': ['jefferson', 'Fulton', 'octavia', 'MARKET', 'Van Ness'].map((s) => ({
    properties: { STREET: [{ 'equals-ignore-case': s }] },
  })),
  wildcard: ['143*', '*07*', 'OCT*VIA', '*ON', 'M*T'].map((w, i) => ({
    properties: { [i < 2 ? 'MAPBLKLOT' : 'STREET']: [{ wildcard: w }] },
  })),
  numeric: [
    { geometry: { type: ['Polygon'], coordinates: [{ numeric: ['>', -122.45, '<', -122.42] }] } },
    { geometry: { type: ['Polygon'], coordinates: [{ numeric: ['>', 37.78, '<', 37.79] }] } },
    { geometry: { coordinates: [{ numeric: ['>=', -122.4, '<', -122.39] }] } },
    { geometry: { coordinates: [{ numeric: ['<', -122.51] }] } },
    { geometry: { coordinates: [{ numeric: ['=', 0] }] }, properties: { ODD_EVEN: ['E'] } },
  ],
  'anything-but': [
    { properties: { STREET: [{ 'anything-but': ['FULTON'] }] } },
    { properties: { STREET: [{ 'anything-but': ['MASON', 'POLK'] }] } },
    { properties: { ST_TYPE: [{ 'anything-but': ['ST'] }] } },
    { properties: { STREET: [{ 'anything-but': { prefix: 'M' } }] } },
    { properties: { STREET: [{ 'anything-but': { suffix: 'ON' } }] } },
  ],
  exists: [
    { properties: { ST_TYPE: [{ exists: true }] } },
    { properties: { ZIP: [{ exists: false }] } },
    { geometry: { coordinates: [{ exists: true }] } },
    { properties: { FROM_ST: [{ exists: true }], TO_ST: [{ exists: true }] } },
    { properties: { LOT_NUM: [{ exists: true }], ODD_EVEN: ['O'] } },
  ],
  'complex arrays': [
    {
      type: ['Feature'],
      geometry: { type: ['Polygon'], coordinates: [{ numeric: ['>', -122.45, '<', -122.44] }] },
      properties: { ODD_EVEN: ['E'] },
    },
    {
      geometry: { coordinates: [{ numeric: ['>', 37.7, '<', 37.71] }] },
      properties: { STREET: [{ prefix: 'M' }] },
    },
    {
      geometry: { coordinates: [{ numeric: ['<', -122.5] }] },
      properties: { STREET: [{ 'anything-but': 'UNKNOWN' }] },
    },
    {
      $or: [
        { geometry: { coordinates: [{ numeric: ['>', -122.36] }] } },
        { properties: { ST_TYPE: [null] } },
      ],
    },
    {
      geometry: { type: ['Polygon'], coordinates: [{ numeric: ['>', 37.8] }] },
      properties: { BLOCK_NUM: [{ prefix: '0' }] },
    },
  ],
};

/** Runs the whole benchmark and returns its BENCHMARKS.md section. */
export function runCitylotsBenchmark(
  quick: boolean,
  command: string,
  progress: (line: string) => void,
): BenchmarkResult {
  const measureMs = quick ? 300 : 1000;
  const rounds = quick ? 1 : 3;
  const lines: string[] = [];
  const print = (line = '') => lines.push(line);
  const summary: BenchmarkResult['summary'] = {};
  const texts = makeFeatures(2000);
  const objects = texts.map((t) => JSON.parse(t) as unknown);
  const bytes = texts.reduce((n, t) => n + t.length, 0) / texts.length;
  print('## 5. Citylots-style workload (compare with aws/event-ruler)');
  print();
  print(measuredOn('citylots', quick));
  print();
  print(
    `Machine: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)} at start), Node ${process.version}.`,
  );
  print(
    `Command: \`${command}\` (also \`node --import tsx bench/citylots.ts\`). One core, median of ${rounds} round(s) of ${measureMs} ms.`,
  );
  print(
    `Events: 2 000 generated GeoJSON features, ${Math.round(bytes)} bytes of JSON on average (13 to 16 coordinate triples). 5 rules per operator type; "all" holds every rule below.`,
  );
  print(
    'For comparison, event-ruler (Java) reports on the real citylots file, from JSON: more than 220 000 events/s for most operator types, about 120 000/s for numeric and 35 000/s for complex arrays.',
  );
  print();
  print(
    '| rules | compiled, JSON text (events/s) | compiled, parsed (events/s) | JSON.parse + compiled (events/s) | reference matcher, parsed (events/s) | matches per event |',
  );
  print('|---|---:|---:|---:|---:|---:|');
  const all = Object.values(ruleSets).flat();
  for (const [name, rules] of [...Object.entries(ruleSets), ['all', all] as const]) {
    const compiled = createCompiledMatcher();
    const reference = createReferenceMatcher();
    rules.forEach((rule, id) => {
      const pattern = parsePattern(rule);
      compiled.add(id, pattern);
      reference.add(id, pattern);
    });
    progress(`${name}: ${rules.length} rules`);
    let matches = 0;
    for (const [i, text] of texts.entries()) {
      const ids = compiled.matchJson(text);
      matches += ids.length;
      if (i < 300 && ids.join() !== reference.match(objects[i]).join())
        throw new Error(`${name}: matchers disagree on feature ${i}`);
    }
    const json: number[] = [];
    const parsed: number[] = [];
    const both: number[] = [];
    const ref: number[] = [];
    const byIndex = new Map(texts.map((t, i) => [t, objects[i]]));
    for (let r = 0; r < rounds; r++) {
      json.push(throughput(texts, (t) => compiled.matchJson(t).length, measureMs));
      parsed.push(throughput(texts, (t) => compiled.match(byIndex.get(t)).length, measureMs));
      both.push(throughput(texts, (t) => compiled.match(JSON.parse(t)).length, measureMs));
      ref.push(throughput(texts, (t) => reference.match(byIndex.get(t)).length, measureMs));
    }
    const f = (n: number) => Math.round(n).toLocaleString('en-US');
    print(
      `| ${name} (${rules.length}) | ${f(median(json))} | ${f(median(parsed))} | ${f(median(both))} | ${f(median(ref))} | ${(matches / texts.length).toFixed(2)} |`,
    );
    summary[`${name} json/s`] = Math.round(median(json));
  }
  print();
  print(
    '"parsed" looks the event up in a prepared map (a few ns), so it slightly understates the matcher alone.',
  );
  print();
  return { markdown: lines.join('\n'), summary };
}

/** `npm run bench -- citylots`, through bench/run.ts. */
export const benchmark = defineBenchmark({
  name: 'citylots',
  run: async (context: BenchmarkContext) =>
    runCitylotsBenchmark(
      context.quick,
      `npm run bench -- citylots${context.quick ? ' --quick' : ''}`,
      context.progress,
    ),
});

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  const result = runCitylotsBenchmark(
    quick,
    `node --import tsx bench/citylots.ts${quick ? ' --quick' : ''}`,
    (line) => process.stderr.write(`[citylots] ${line}\n`),
  );
  process.stdout.write(`${result.markdown}\n`);
}
