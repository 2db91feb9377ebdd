// Loaded into a server under test with `NODE_OPTIONS=--import=<this file>` (Node 20 refuses
// `--cpu-prof` in NODE_OPTIONS). The first SIGUSR2 starts the inspector's sampling profiler, the second
// stops it and writes a `.cpuprofile` (the format of `node --cpu-prof`) into BENCH_CPU_PROFILE_DIR, then
// writes `<file>.done` so that the bench knows it is complete. The signals let the bench profile only
// its measured window, not the start-up. The variable is read when the profile is written: bin/reflex
// hands Reflex its environment only after the preloads ran.
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const session = new Session();
let profiling = false;
process.on('SIGUSR2', () => {
  if (!profiling) {
    profiling = true;
    session.connect();
    session.post('Profiler.enable');
    session.post('Profiler.setSamplingInterval', { interval: 250 });
    session.post('Profiler.start');
    return;
  }
  profiling = false;
  session.post('Profiler.stop', (error, result) => {
    session.disconnect();
    if (error) return;
    const path = join(process.env.BENCH_CPU_PROFILE_DIR || tmpdir(), `server-${process.pid}.cpuprofile`);
    // Written under another name first: the bench reads the file as soon as its name appears.
    writeFileSync(`${path}.part`, JSON.stringify(result.profile));
    renameSync(`${path}.part`, path);
  });
});
