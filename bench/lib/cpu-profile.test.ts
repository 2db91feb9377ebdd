import { describe, expect, it } from 'vitest';
import { type CpuProfile, type CpuProfileNode, summarizeCpuProfile } from './cpu-profile.js';

/** A profile whose stacks are given leaf first, each sampled `count` times 100 µs apart. */
function profileOf(stacks: Array<{ frames: string[]; count: number }>): CpuProfile {
  const nodes: CpuProfileNode[] = [{ id: 1, callFrame: { functionName: '(root)', url: '' }, children: [] }];
  const samples: number[] = [];
  for (const { frames, count } of stacks) {
    let parent = nodes[0]!;
    for (const frame of [...frames].reverse()) {
      const [url = '', functionName = ''] = frame.split(' ');
      const node: CpuProfileNode = { id: nodes.length + 1, callFrame: { functionName, url }, children: [] };
      parent.children!.push(node.id);
      nodes.push(node);
      parent = node;
    }
    for (let i = 0; i < count; i++) samples.push(parent.id);
  }
  return { nodes, samples, timeDeltas: samples.map(() => 100) };
}

describe('cpu profile summary', () => {
  const areas = [
    { name: 'dispatcher', patterns: [/dispatcher\.ts/], anywhere: true },
    { name: 'SQLite', patterns: [/better-sqlite3/] },
    { name: 'HTTP', patterns: [/node:_http/] },
  ];

  it('cpu profile - a native frame without a file counts for its nearest caller with an area', () => {
    const summary = summarizeCpuProfile(
      profileOf([
        {
          frames: [' run', 'file:///x/node_modules/better-sqlite3/lib/t.js tx', 'file:///x/store.ts append'],
          count: 3,
        },
        { frames: [' writev', 'node:_http_outgoing end'], count: 1 },
      ]),
      areas,
    );
    expect(summary.areas).toEqual([
      { name: 'dispatcher', micros: 0, share: 0 },
      { name: 'SQLite', micros: 300, share: 0.75 },
      { name: 'HTTP', micros: 100, share: 0.25 },
      { name: 'other', micros: 0, share: 0 },
    ]);
  });

  it('cpu profile - an area that claims its whole stack wins over a nearer frame', () => {
    const summary = summarizeCpuProfile(
      profileOf([
        {
          frames: [
            ' run',
            'file:///x/node_modules/better-sqlite3/lib/t.js tx',
            'file:///x/dispatcher.ts batch',
          ],
          count: 2,
        },
        { frames: ['file:///x/cli.ts main'], count: 2 },
      ]),
      areas,
    );
    expect(summary.areas.map((a) => [a.name, a.share])).toEqual([
      ['dispatcher', 0.5],
      ['SQLite', 0],
      ['HTTP', 0],
      ['other', 0.5],
    ]);
  });

  it('cpu profile - idle time is set apart and the shares are of the busy time', () => {
    const summary = summarizeCpuProfile(
      profileOf([
        { frames: [' (idle)'], count: 6 },
        { frames: ['node:_http_server parserOnIncoming'], count: 4 },
      ]),
      areas,
    );
    expect(summary.totalMicros).toBe(1000);
    expect(summary.idleMicros).toBe(600);
    expect(summary.areas.find((a) => a.name === 'HTTP')).toEqual({ name: 'HTTP', micros: 400, share: 1 });
  });
});
