import { describe, expect, it } from 'vitest';
import type { CloudEvent } from '../event.js';
import { type FlowSpec, type FlowStates, flowEvent, flowTimer, type StageName } from './rule-flow.js';
import type { Firing, Held, StageResult } from './stage.js';

/**
 * Timelines for every flow construct, written the way docs/rules.md tells them. Times are "mm:ss" after
 * 10:00; a timer that falls due before an event is run first, as the dispatcher sees it in the log.
 */

const base = Date.parse('2026-11-27T10:00:00Z');
const at = (mmss: string) => {
  const [m, s] = mmss.split(':').map(Number);
  return base + (m! * 60 + (s ?? 0)) * 1000;
};
const min = 60_000;

interface Options {
  /** Which sub-conditions an event matches (by type). */
  subs: Record<string, number[]>;
  /** Key of an event (`by`); default one key. */
  by?: (event: CloudEvent) => string;
  /** Key of a firing for storm stages; default one key. */
  key?: (firing: Firing) => string;
  /** A sub-condition's `if`. */
  check?: (sub: number, event: Held, held: Record<string, Held>) => boolean;
}

/** A rule flow with in-memory states and timers: what the dispatcher does, minus the store. */
function rule(spec: FlowSpec, options: Options) {
  const states = new Map<string, unknown>();
  const timers = new Map<string, { stage: StageName; key: string; at: number }>();
  let seq = 0;
  const store: FlowStates = {
    get: (stage, key) => states.get(`${stage}/${key}`),
    put(stage, key, result: StageResult<unknown>) {
      const id = `${stage}/${key}`;
      if (result.state === undefined) states.delete(id);
      else states.set(id, result.state);
      if (result.timer === null) timers.delete(id);
      else if (result.timer !== undefined) timers.set(id, { stage, key, at: result.timer });
    },
  };
  const expressions = {
    keyOf: (_stage: string, event: Held) => (options.by ? options.by(event.event!) : ''),
    firingKey: (_stage: string, firing: Firing) => (options.key ? options.key(firing) : ''),
    check: options.check ?? (() => true),
  };
  const names = (firing: Firing) => ({
    event: firing.event.event?.id,
    ...(firing.events
      ? { events: Object.fromEntries(Object.entries(firing.events).map(([k, v]) => [k, v.event?.id])) }
      : {}),
    ...(firing.batch ? { batch: firing.batch.map((h) => h.event?.id) } : {}),
  });
  const fired: Array<{ at: string; firing: ReturnType<typeof names> }> = [];
  const label = (t: number) => {
    const s = (t - base) / 1000;
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  };
  const runTimers = (until: number) => {
    for (;;) {
      const due = [...timers.entries()]
        .filter(([, timer]) => timer.at <= until)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) return;
      timers.delete(due[0]);
      const outcome = flowTimer(spec, due[1].stage, due[1].key, due[1].at, store, expressions);
      for (const firing of outcome.firings) fired.push({ at: label(due[1].at), firing: names(firing) });
    }
  };
  return {
    states,
    timers,
    fired,
    /** An event at "mm:ss" with a type (its id is `type#n`) and data. */
    send(mmss: string, type: string, data: Record<string, unknown> = {}) {
      const t = at(mmss);
      runTimers(t);
      const event = { specversion: '1.0', id: `${type}#${++seq}`, source: 'test', type, data } as CloudEvent;
      const outcome = flowEvent(spec, { seq, t, event }, options.subs[type] ?? [], store, expressions);
      for (const firing of outcome.firings) fired.push({ at: mmss, firing: names(firing) });
      return outcome;
    },
    /** Lets time pass to "mm:ss". */
    wait(mmss: string) {
      runTimers(at(mmss));
    },
  };
}

const service = (event: CloudEvent) => String((event.data as { service?: string }).service);

describe('flow - all', () => {
  it('all - fires when every sub-condition matched within the window, per key, in any order', () => {
    const r = rule(
      { when: { type: 'all', subs: [{ name: 'deploy' }, { name: 'errors' }], windowMs: 10 * min } },
      { subs: { deploy: [0], error: [1] }, by: service },
    );
    r.send('0:00', 'deploy', { service: 'a' });
    r.send('2:00', 'error', { service: 'b' }); // another key: held apart
    r.send('4:00', 'error', { service: 'a' });
    expect(r.fired).toEqual([
      { at: '4:00', firing: { event: 'error#3', events: { deploy: 'deploy#1', errors: 'error#3' } } },
    ]);
    // The partial match of a was cleared by firing; b's still waits.
    expect([...r.states.keys()]).toEqual(['when/"b"'.replace(/"/g, '')]);
  });

  it('all - events older than the window drop out of the partial match', () => {
    const r = rule(
      { when: { type: 'all', subs: [{ name: 'deploy' }, { name: 'errors' }], windowMs: 10 * min } },
      { subs: { deploy: [0], error: [1] } },
    );
    r.send('5:00', 'error');
    r.send('20:00', 'deploy'); // error@5:00 is before 10:00: dropped, deploy waits alone
    expect(r.fired).toEqual([]);
    r.send('29:00', 'error');
    expect(r.fired).toEqual([
      { at: '29:00', firing: { event: 'error#3', events: { deploy: 'deploy#2', errors: 'error#3' } } },
    ]);
  });

  it('all - a later event replaces the held one for its sub-condition, and conditions see the held events', () => {
    const r = rule(
      { when: { type: 'all', subs: [{ name: 'deploy' }, { name: 'errors' }], windowMs: 10 * min } },
      {
        subs: { deploy: [0], error: [1] },
        check: (sub, event, held) =>
          sub === 0 ||
          (event.event!.data as { v: number }).v ===
            (held.deploy?.event?.data as { v: number } | undefined)?.v,
      },
    );
    r.send('0:00', 'deploy', { v: 1 });
    r.send('1:00', 'deploy', { v: 2 }); // replaces v1
    r.send('2:00', 'error', { v: 1 }); // its condition wants the held deploy's version: no
    expect(r.fired).toEqual([]);
    r.send('3:00', 'error', { v: 2 });
    expect(r.fired).toEqual([
      { at: '3:00', firing: { event: 'error#4', events: { deploy: 'deploy#2', errors: 'error#4' } } },
    ]);
  });
});

describe('flow - any', () => {
  it('any - each event matching a sub-condition fires once, naming what it matched', () => {
    const r = rule(
      { when: { type: 'any', subs: [{ name: 'cpu' }, { name: 'mem' }] } },
      { subs: { cpu: [0], mem: [1], both: [0, 1] } },
    );
    r.send('0:00', 'cpu');
    r.send('0:01', 'both');
    r.send('0:02', 'disk');
    expect(r.fired).toEqual([
      { at: '0:00', firing: { event: 'cpu#1', events: { cpu: 'cpu#1' } } },
      { at: '0:01', firing: { event: 'both#2', events: { cpu: 'both#2', mem: 'both#2' } } },
    ]);
  });
});

describe('flow - sequence', () => {
  const spec: FlowSpec = {
    when: {
      type: 'sequence',
      subs: [{ name: 'login' }, { name: 'sudo' }, { name: 'wipe' }],
      windowMs: 10 * min,
    },
  };
  const subs = { login: [0], sudo: [1], wipe: [2] };

  it('sequence - fires when the sub-conditions match in order within the window', () => {
    const r = rule(spec, { subs });
    r.send('0:00', 'sudo'); // out of order: ignored
    r.send('1:00', 'login');
    r.send('2:00', 'wipe'); // not next: ignored
    r.send('3:00', 'sudo');
    r.send('4:00', 'wipe');
    expect(r.fired).toEqual([
      {
        at: '4:00',
        firing: { event: 'wipe#5', events: { login: 'login#2', sudo: 'sudo#4', wipe: 'wipe#5' } },
      },
    ]);
  });

  it('sequence - a new first event replaces a lone first one; progress beyond it is kept; expiry restarts', () => {
    const r = rule(spec, { subs });
    r.send('0:00', 'login');
    r.send('5:00', 'login'); // replaces: the window now runs from 5:00
    r.send('12:00', 'sudo'); // 7 min after 5:00: in time
    r.send('13:00', 'login'); // progress beyond login is not thrown away
    r.send('14:00', 'wipe');
    expect(r.fired).toEqual([
      {
        at: '14:00',
        firing: { event: 'wipe#5', events: { login: 'login#2', sudo: 'sudo#3', wipe: 'wipe#5' } },
      },
    ]);
    r.send('20:00', 'login');
    r.send('31:00', 'sudo'); // 11 min after 20:00: expired, and sudo cannot start a sequence
    r.send('32:00', 'wipe');
    expect(r.fired).toHaveLength(1);
  });
});

describe('flow - absence', () => {
  const spec: FlowSpec = {
    when: { type: 'absence', subs: [{ name: 'after' }, { name: 'expect' }], windowMs: 2 * min },
  };

  it('absence - fires at the deadline when nothing expected followed, with the event that started the wait', () => {
    const r = rule(spec, { subs: { started: [0], finished: [1] }, by: service });
    r.send('0:00', 'started', { service: 'a' });
    r.send('0:30', 'started', { service: 'b' });
    const answered = r.send('1:00', 'finished', { service: 'b' }); // b is answered in time
    // The answer says which wait it ended, for the audit trail and explain.
    expect(answered.notes).toEqual([
      {
        stage: 'when',
        key: 'b',
        note: { kind: 'ended', detail: { slot: 'expect', deadline: new Date(at('2:30')).toISOString() } },
      },
    ]);
    r.wait('5:00');
    expect(r.fired).toEqual([{ at: '2:00', firing: { event: 'started#1', events: { after: 'started#1' } } }]);
    expect(r.timers.size).toBe(0);
    // With no wait pending, an expected event ends nothing.
    expect(r.send('6:00', 'finished', { service: 'a' }).notes).toEqual([]);
  });

  it('absence - heartbeats: each one cancels the previous wait and starts a new one', () => {
    const r = rule(spec, { subs: { heartbeat: [0, 1] } });
    r.send('0:00', 'heartbeat');
    r.send('1:30', 'heartbeat');
    r.send('3:00', 'heartbeat');
    r.wait('4:59');
    expect(r.fired).toEqual([]);
    r.wait('5:00');
    expect(r.fired).toEqual([
      { at: '5:00', firing: { event: 'heartbeat#3', events: { after: 'heartbeat#3' } } },
    ]);
  });

  it('absence - an event after the deadline that reaches the dispatcher before the timer still sees it missed', () => {
    const r = rule(spec, { subs: { heartbeat: [0, 1] } });
    r.send('0:00', 'heartbeat');
    // No timer is run here: the late heartbeat itself settles the deadline first.
    const outcome = flowEvent(
      spec,
      { seq: 99, t: at('2:30'), event: { specversion: '1.0', id: 'late', source: 't', type: 'heartbeat' } },
      [0, 1],
      {
        get: (stage, key) => r.states.get(`${stage}/${key}`),
        put: (stage, key, res) => void r.states.set(`${stage}/${key}`, res.state),
      },
      { keyOf: () => '', firingKey: () => '', check: () => true },
    );
    expect(outcome.firings.map((f) => f.event.event!.id)).toEqual(['heartbeat#1']);
  });
});

describe('flow - count', () => {
  it('count - fires with the events once at least N fell within the sliding window, then starts afresh', () => {
    const r = rule(
      { when: { type: 'count', subs: [{ name: 'failed' }], atLeast: 3, windowMs: min } },
      { subs: { failed: [0] }, by: (e) => String((e.data as { ip: string }).ip) },
    );
    r.send('0:00', 'failed', { ip: '10.0.0.7' });
    r.send('0:20', 'failed', { ip: '10.0.0.7' });
    r.send('0:30', 'failed', { ip: '10.0.0.8' });
    r.send('1:10', 'failed', { ip: '10.0.0.7' }); // 0:00 has left the window (1:10 − 1m = 0:10)
    expect(r.fired).toEqual([]);
    r.send('1:15', 'failed', { ip: '10.0.0.7' });
    expect(r.fired).toEqual([
      { at: '1:15', firing: { event: 'failed#5', batch: ['failed#2', 'failed#4', 'failed#5'] } },
    ]);
    r.send('1:16', 'failed', { ip: '10.0.0.7' });
    expect(r.fired).toHaveLength(1);
  });
});

describe('flow - storm control', () => {
  const single: FlowSpec['when'] = { type: 'single' };
  const host = (firing: Firing) => String((firing.event.event!.data as { host: string }).host);

  it('throttle - the first firing per key passes, the rest are dropped until the window after it ends', () => {
    const r = rule({ when: single, throttle: { windowMs: 10 * min } }, { subs: { alert: [0] }, key: host });
    r.send('0:00', 'alert', { host: 'web-1' });
    const dropped = r.send('3:00', 'alert', { host: 'web-1' });
    r.send('4:00', 'alert', { host: 'web-2' });
    r.send('10:00', 'alert', { host: 'web-1' });
    expect(r.fired.map((f) => [f.at, f.firing.event])).toEqual([
      ['0:00', 'alert#1'],
      ['4:00', 'alert#3'],
      ['10:00', 'alert#4'],
    ]);
    expect(dropped.notes).toEqual([
      {
        stage: 'throttle',
        key: 'web-1',
        note: { kind: 'suppressed', until: at('10:00'), detail: { by: 'throttle' } },
      },
    ]);
  });

  it('dedupe - an event whose key was accepted less than the window ago is dropped before correlation', () => {
    // The dedupe key is the event's host: the same host twice within 5 minutes counts once.
    const r = rule(
      {
        when: { type: 'count', subs: [{ name: 'login' }], atLeast: 2, windowMs: 10 * min },
        dedupe: { windowMs: 5 * min },
      },
      { subs: { login: [0] }, by: (e) => String((e.data as { host: string }).host) },
    );
    r.send('0:00', 'login', { host: 'a' });
    const duplicate = r.send('1:00', 'login', { host: 'a' });
    expect(r.fired).toEqual([]);
    expect(duplicate.notes[0]).toMatchObject({
      stage: 'dedupe',
      key: 'a',
      note: { kind: 'suppressed', until: at('5:00') },
    });
    r.send('6:00', 'login', { host: 'a' }); // the window from 0:00 is over: it counts
    expect(r.fired.map((f) => f.at)).toEqual(['6:00']);
  });

  it('debounce - holds firings until the key is quiet, then passes the last one', () => {
    const r = rule({ when: single, debounce: { quietMs: 2 * min, pass: 'last' } }, { subs: { alert: [0] } });
    r.send('0:00', 'alert');
    r.send('1:00', 'alert');
    r.send('2:30', 'alert');
    r.wait('4:29');
    expect(r.fired).toEqual([]);
    r.wait('4:30');
    expect(r.fired).toEqual([{ at: '4:30', firing: { event: 'alert#3' } }]);
  });

  it('debounce - first and all, and maxWait bounds the wait under a steady stream (ansible once_after)', () => {
    const first = rule({ when: single, debounce: { quietMs: 2 * min, pass: 'first' } }, { subs: { a: [0] } });
    first.send('0:00', 'a');
    first.send('1:00', 'a');
    first.wait('9:00');
    expect(first.fired).toEqual([{ at: '3:00', firing: { event: 'a#1' } }]);

    const all = rule(
      { when: single, debounce: { quietMs: 5 * min, maxWaitMs: 5 * min, pass: 'all' } },
      { subs: { a: [0] } },
    );
    for (const mmss of ['0:00', '2:00', '4:00', '6:00', '8:00']) all.send(mmss, 'a');
    all.wait('20:00');
    expect(all.fired).toEqual([
      { at: '5:00', firing: { event: 'a#3', batch: ['a#1', 'a#2', 'a#3'] } },
      { at: '11:00', firing: { event: 'a#5', batch: ['a#4', 'a#5'] } },
    ]);
  });

  it('rateLimit - at most N per period; the excess is dropped', () => {
    const r = rule(
      { when: single, rateLimit: { max: 2, perMs: min, excess: 'drop', maxQueue: 10 } },
      { subs: { a: [0] } },
    );
    r.send('0:00', 'a');
    r.send('0:10', 'a');
    const dropped = r.send('0:20', 'a');
    r.send('1:00', 'a'); // 0:00 left the window (1:00 − 1m): a slot is free
    expect(r.fired.map((f) => f.at)).toEqual(['0:00', '0:10', '1:00']);
    expect(dropped.notes[0]!.note).toMatchObject({ kind: 'suppressed', until: at('1:00') });
  });

  it('rateLimit - with excess: delay, the excess waits in order for free slots', () => {
    const r = rule(
      { when: single, rateLimit: { max: 2, perMs: min, excess: 'delay', maxQueue: 10 } },
      { subs: { a: [0] } },
    );
    for (const mmss of ['0:00', '0:10', '0:20', '0:30', '0:40']) r.send(mmss, 'a');
    r.wait('5:00');
    expect(r.fired.map((f) => [f.at, f.firing.event])).toEqual([
      ['0:00', 'a#1'],
      ['0:10', 'a#2'],
      ['1:00', 'a#3'],
      ['1:10', 'a#4'],
      ['2:00', 'a#5'],
    ]);
  });

  it('batch - collects firings per key; size or window, whichever comes first, passes them as one', () => {
    const r = rule({ when: single, batch: { size: 3, windowMs: min } }, { subs: { a: [0] } });
    r.send('0:00', 'a');
    r.send('0:10', 'a');
    r.send('0:20', 'a'); // size reached
    r.send('0:30', 'a');
    r.wait('2:00'); // the window from 0:30 ends at 1:30
    expect(r.fired).toEqual([
      { at: '0:20', firing: { event: 'a#3', batch: ['a#1', 'a#2', 'a#3'] } },
      { at: '1:30', firing: { event: 'a#4', batch: ['a#4'] } },
    ]);
  });

  it('stages compose: a count feeds a throttle', () => {
    const r = rule(
      {
        when: { type: 'count', subs: [{ name: 'f' }], atLeast: 2, windowMs: min },
        throttle: { windowMs: 10 * min },
      },
      { subs: { f: [0] } },
    );
    for (const mmss of ['0:00', '0:10', '0:20', '0:30', '11:00', '11:10']) r.send(mmss, 'f');
    expect(r.fired.map((f) => f.at)).toEqual(['0:10', '11:10']);
  });
});
