import { describe, expect, it } from 'vitest';
import { benchEventBody, createIdMaker } from './events.js';
import {
  composeBenchmarksFile,
  describeMachine,
  disturbanceNote,
  formatCount,
  formatMs,
  markdownTable,
  readSections,
  wrapSection,
} from './report.js';

describe('report', () => {
  it('report - a run of one benchmark replaces its section and keeps the others as they were', () => {
    const previous = composeBenchmarksFile(
      '# old header',
      ['ingest', 'event-to-action', 'log-memory'],
      new Map([
        ['ingest', '## 1. old ingest'],
        ['log-memory', '## 3. old memory'],
      ]),
      undefined,
    );
    const next = composeBenchmarksFile(
      '# new header',
      ['ingest', 'event-to-action', 'log-memory'],
      new Map([['event-to-action', '## 2. fresh latency']]),
      previous,
    );
    expect(next.startsWith('# new header\n')).toBe(true);
    expect(next).not.toContain('old header');
    const sections = readSections(next);
    expect([...sections.keys()]).toEqual(['ingest', 'event-to-action', 'log-memory']);
    expect(sections.get('ingest')).toContain('## 1. old ingest');
    expect(sections.get('event-to-action')).toContain('## 2. fresh latency');
    expect(sections.get('log-memory')).toContain('## 3. old memory');
  });

  it('report - a section of a benchmark that no longer exists is kept at the end, not dropped', () => {
    const previous = `# h\n\n${wrapSection('retired', '## old figures')}\n`;
    const next = composeBenchmarksFile('# h2', ['ingest'], new Map([['ingest', '## ingest']]), previous);
    expect(next.indexOf('## ingest')).toBeLessThan(next.indexOf('## old figures'));
  });

  it('report - numbers are grouped and latencies keep meaningful digits', () => {
    expect(formatCount(1234567.4)).toBe('1 234 567');
    expect(formatCount(999)).toBe('999');
    expect(formatMs(1.2345)).toBe('1.23');
    expect(formatMs(12.345)).toBe('12.3');
    expect(formatMs(1234.5)).toBe('1 235');
    expect(formatMs(Number.NaN)).toBe('–');
  });

  it('report - figures taken while other processes were busy carry a warning, quiet ones none', () => {
    expect(disturbanceNote('ingest', [10, 45])).toBe('');
    const note = disturbanceNote('ingest', [10, 163.4]);
    expect(note).toContain('up to 163 % CPU');
    expect(note).toContain('`npm run bench -- ingest`');
  });

  it('report - a Markdown table has a header, an alignment row and one line per row', () => {
    expect(markdownTable(['a', 'b'], [['x', '1']])).toBe('| a | b |\n| :--- | ---: |\n| x | 1 |');
  });

  it('report - the machine description names CPU, cores, RAM, Node and the temp file system', () => {
    const machine = describeMachine();
    expect(machine.cores).toBeGreaterThan(0);
    expect(machine.ramBytes).toBeGreaterThan(0);
    expect(machine.node).toBe(process.version);
    expect(machine.tempFileSystem).toMatch(/ on /);
  });
});

describe('events', () => {
  it('events - the bench event is a valid CloudEvent of about 300 bytes with the id given', () => {
    const nextId = createIdMaker('c1f');
    const body = benchEventBody(nextId());
    const event = JSON.parse(body) as Record<string, unknown>;
    expect(event).toMatchObject({ specversion: '1.0', id: 'c1f-0000000', type: 'bench.ingest' });
    expect(body.length).toBeGreaterThanOrEqual(280);
    expect(body.length).toBeLessThanOrEqual(320);
    expect(nextId()).toBe('c1f-0000001');
  });
});
