import { describe, expect, it } from 'vitest';
import { readCpuSeconds, readMemory, startBareServer, startServer } from './processes.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('processes', () => {
  it('processes - the bare server answers 202 like Reflex and is gone after stop', async () => {
    const bare = await startBareServer();
    try {
      const response = await fetch(`${bare.url}/api/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents+json' },
        body: JSON.stringify({ specversion: '1.0', id: 'a', source: '/s', type: 't' }),
      });
      expect(response.status).toBe(202);
      expect(await response.json()).toEqual({ seq: 1, id: 'a', source: '/s' });
      const broken = await fetch(`${bare.url}/api/v1/events`, { method: 'POST', body: '{' });
      expect(broken.status).toBe(400);
    } finally {
      await bare.stop();
    }
    expect(bare.running).toBe(false);
    expect(alive(bare.pid)).toBe(false);
  });

  it('processes - a server that exits before it is ready rejects with its stderr', async () => {
    await expect(
      startServer('broken', ['-e', 'process.stderr.write("boom"); process.exit(3)']),
    ).rejects.toThrow(/exited \(code 3\)[\s\S]*boom/);
  });

  it('processes - a server that never gets ready is killed after the timeout', async () => {
    await expect(
      startServer('silent', ['-e', 'setInterval(() => {}, 1000)'], { readyTimeoutMs: 300 }),
    ).rejects.toThrow(/did not get ready within 300 ms/);
  });

  it('processes - memory and CPU time are read from /proc', () => {
    const memory = readMemory(process.pid);
    expect(memory.rss).toBeGreaterThan(1024 * 1024);
    expect(memory.peakRss).toBeGreaterThanOrEqual(memory.rss);
    const before = readCpuSeconds(process.pid);
    const own = process.cpuUsage();
    // Burn 100 ms of CPU by Node's own count (wall time would depend on what else the machine runs).
    for (;;) {
      const used = process.cpuUsage(own);
      if (used.user + used.system >= 100_000) break;
    }
    expect(readCpuSeconds(process.pid) - before).toBeGreaterThanOrEqual(0.05);
  });
});
