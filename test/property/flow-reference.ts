/**
 * A reference model of issue 4's correlation and storm-control semantics (briefs/issue4-spec.md), written
 * from the spec alone, as plainly as possible, to check the engine against in property tests.
 *
 * It works on a whole, finished history: a list of events with their log times. Each stage is a loop
 * over its time-ordered input that keeps only what the spec's words keep (held events, the last pass, a
 * deadline), and turns deadlines into outputs at their own time before it looks at an input at or after
 * that time — which is what the engine's logged timers do when the clock reaches them first. The stages
 * are chained: dedupe → when → throttle → debounce → rateLimit → batch. No CEL here: predicates and
 * keys are given twice, as CEL for the rulebook and as a JavaScript function for the model.
 */

/** One event of the history: its log time `t` (ms) and what expressions can see of it. */
export interface RefEvent {
  seq: number;
  t: number;
  type: string;
  data: Record<string, unknown>;
}

/** What a run would see, and when it was decided (the log time of the event or timer that triggered it). */
export interface RefFiring {
  at: number;
  event: number;
  events?: Record<string, number>;
  batch?: number[];
}

/** A condition, as CEL for the rulebook and as a function for the model. */
export interface RefPredicate {
  cel: string;
  /** `events` holds what the spec says the condition sees (held events of other subs, by name). */
  test(event: RefEvent, events: Readonly<Record<string, RefEvent>>): boolean;
}

/** What a key expression may read: the event, or for storm stages the firing. */
export interface RefKeyInput {
  event: RefEvent;
  events?: Readonly<Record<string, RefEvent>>;
  batch?: readonly RefEvent[];
}

/** A key expression, as CEL and as a function that returns its value, or `keyError` when CEL would fail. */
export interface RefKey {
  cel: string;
  value(input: RefKeyInput): unknown;
}

/** Returned by {@link RefKey.value} where the CEL expression fails (a missing field). */
export const keyError: unique symbol = Symbol('key error');

/** One sub-condition: a type pattern and an optional condition. */
export interface RefSub {
  name: string;
  types: readonly string[];
  if?: RefPredicate;
}

/** A rule's `when`, one construct of the spec; windows in ms. */
export type RefWhen =
  | { kind: 'single'; sub: RefSub }
  | { kind: 'any'; subs: readonly RefSub[] }
  | { kind: 'all'; subs: readonly RefSub[]; within: number; by?: RefKey }
  | { kind: 'sequence'; subs: readonly RefSub[]; within: number; by?: RefKey }
  | { kind: 'absence'; after: RefSub; expect: RefSub; within: number; by?: RefKey }
  | { kind: 'count'; sub: RefSub; atLeast: number; within: number; by?: RefKey };

/** A rule: its `when` and the storm-control stages it has, with durations in ms. */
export interface RefRule {
  when: RefWhen;
  dedupe?: { key?: RefKey; window: number };
  throttle?: { key?: RefKey; window: number };
  debounce?: { key?: RefKey; quiet: number; maxWait?: number; pass?: 'first' | 'last' | 'all' };
  rateLimit?: { key?: RefKey; max: number; per: number; excess?: 'drop' | 'delay'; maxQueue?: number };
  batch?: { key?: RefKey; size: number; window: number };
}

/** A firing inside the model: the events themselves, so keys can be evaluated on it. */
interface Firing {
  at: number;
  event: RefEvent;
  events?: Record<string, RefEvent>;
  batch?: RefEvent[];
}

/**
 * The firings of `rule` over `history` (ordered by seq, with non-decreasing times), with every timer
 * that falls due up to `end` fired. Results are ordered by time, then by the order the stages made them.
 */
export function referenceFirings(rule: RefRule, history: readonly RefEvent[], end: number): RefFiring[] {
  const accepted = rule.dedupe ? dedupe(rule, history) : history;
  let firings = when(rule.when, accepted, end);
  if (rule.throttle) firings = throttle(rule.throttle, firings);
  if (rule.debounce) firings = debounce(rule.debounce, firings, end);
  if (rule.rateLimit) firings = rateLimit(rule.rateLimit, firings, end);
  if (rule.batch) firings = batch(rule.batch, firings, end);
  return firings.map(toRefFiring);
}

function toRefFiring(f: Firing): RefFiring {
  const out: RefFiring = { at: f.at, event: f.event.seq };
  if (f.events) out.events = Object.fromEntries(Object.entries(f.events).map(([n, e]) => [n, e.seq]));
  if (f.batch) out.batch = f.batch.map((e) => e.seq);
  return out;
}

/** The key of `input` as a string: JSON of the value, "" without an expression, undefined when it fails. */
function keyOf(key: RefKey | undefined, input: RefKeyInput): string | undefined {
  if (!key) return '';
  const value = key.value(input);
  return value === keyError ? undefined : JSON.stringify(value);
}

function matches(sub: RefSub, e: RefEvent, events: Readonly<Record<string, RefEvent>>): boolean {
  return sub.types.includes(e.type) && (sub.if === undefined || sub.if.test(e, events));
}

function subsOf(w: RefWhen): readonly RefSub[] {
  switch (w.kind) {
    case 'single':
    case 'count':
      return [w.sub];
    case 'absence':
      return [w.after, w.expect];
    default:
      return w.subs;
  }
}

/** Before `when`: events the rule considers (by pattern only) are dropped while their key's window is open. */
function dedupe(rule: RefRule, history: readonly RefEvent[]): RefEvent[] {
  const spec = rule.dedupe!;
  const acceptedAt = new Map<string, number>();
  const out: RefEvent[] = [];
  for (const e of history) {
    const considered = subsOf(rule.when).some((s) => s.types.includes(e.type));
    if (!considered) continue;
    const key = keyOf(spec.key, { event: e });
    if (key === undefined) continue;
    const last = acceptedAt.get(key);
    if (last !== undefined && e.t - last < spec.window) continue;
    acceptedAt.set(key, e.t);
    out.push(e);
  }
  return out;
}

function when(w: RefWhen, history: readonly RefEvent[], end: number): Firing[] {
  switch (w.kind) {
    case 'single':
      return history.filter((e) => matches(w.sub, e, {})).map((e) => ({ at: e.t, event: e }));
    case 'any':
      return anyOf(w.subs, history);
    case 'all':
      return allOf(w.subs, w.within, w.by, history);
    case 'sequence':
      return sequence(w.subs, w.within, w.by, history);
    case 'absence':
      return absence(w, history, end);
    case 'count':
      return count(w, history);
  }
}

function anyOf(subs: readonly RefSub[], history: readonly RefEvent[]): Firing[] {
  const out: Firing[] = [];
  for (const e of history) {
    const matched = subs.filter((s) => matches(s, e, {}));
    if (matched.length === 0) continue;
    out.push({ at: e.t, event: e, events: Object.fromEntries(matched.map((s) => [s.name, e])) });
  }
  return out;
}

function allOf(
  subs: readonly RefSub[],
  within: number,
  by: RefKey | undefined,
  history: readonly RefEvent[],
): Firing[] {
  const slotsByKey = new Map<string, Array<RefEvent | undefined>>();
  const out: Firing[] = [];
  for (const e of history) {
    if (!subs.some((s) => s.types.includes(e.type))) continue;
    const key = keyOf(by, { event: e });
    if (key === undefined) continue;
    const slots = slotsByKey.get(key) ?? subs.map(() => undefined);
    // Held events older than the window are gone before the conditions look at what is held.
    const live = slots.map((held) => (held !== undefined && held.t < e.t - within ? undefined : held));
    const others = (i: number) =>
      Object.fromEntries(
        subs.flatMap((s, j) => (j !== i && live[j] !== undefined ? [[s.name, live[j]!] as const] : [])),
      );
    const matching = subs.map((s, i) => matches(s, e, others(i)));
    let slot = matching.findIndex((m, i) => m && live[i] === undefined);
    if (slot < 0) slot = matching.indexOf(true);
    if (slot < 0) continue;
    live[slot] = e;
    if (live.every((held) => held !== undefined)) {
      out.push({
        at: e.t,
        event: e,
        events: Object.fromEntries(subs.map((s, i) => [s.name, live[i]!])),
      });
      slotsByKey.delete(key);
    } else {
      slotsByKey.set(key, live);
    }
  }
  return out;
}

function sequence(
  subs: readonly RefSub[],
  within: number,
  by: RefKey | undefined,
  history: readonly RefEvent[],
): Firing[] {
  const heldByKey = new Map<string, RefEvent[]>();
  const out: Firing[] = [];
  const named = (held: readonly RefEvent[]) => Object.fromEntries(held.map((e, i) => [subs[i]!.name, e]));
  for (const e of history) {
    if (!subs.some((s) => s.types.includes(e.type))) continue;
    const key = keyOf(by, { event: e });
    if (key === undefined) continue;
    let held = heldByKey.get(key) ?? [];
    if (held.length > 0 && e.t - held[0]!.t > within) held = [];
    const next = subs[held.length]!;
    if (matches(next, e, named(held))) {
      held = [...held, e];
      if (held.length === subs.length) {
        out.push({ at: e.t, event: e, events: named(held) });
        held = [];
      }
    } else if (held.length <= 1 && matches(subs[0]!, e, {})) {
      held = [e];
    }
    heldByKey.set(key, held);
  }
  return out;
}

function absence(
  w: Extract<RefWhen, { kind: 'absence' }>,
  history: readonly RefEvent[],
  end: number,
): Firing[] {
  const waits = new Map<string, { after: RefEvent; deadline: number }>();
  const out: Firing[] = [];
  const fireDue = (until: number) => {
    const due = [...waits].filter(([, wait]) => wait.deadline <= until);
    due.sort((a, b) => a[1].deadline - b[1].deadline);
    for (const [key, wait] of due) {
      out.push({ at: wait.deadline, event: wait.after, events: { after: wait.after } });
      waits.delete(key);
    }
  };
  for (const e of history) {
    fireDue(e.t);
    const isAfter = matches(w.after, e, {});
    const isExpect = matches(w.expect, e, {});
    if (!isAfter && !isExpect) continue;
    const key = keyOf(w.by, { event: e });
    if (key === undefined) continue;
    if (isExpect) waits.delete(key);
    if (isAfter) waits.set(key, { after: e, deadline: e.t + w.within });
  }
  fireDue(end);
  return out;
}

function count(w: Extract<RefWhen, { kind: 'count' }>, history: readonly RefEvent[]): Firing[] {
  const heldByKey = new Map<string, RefEvent[]>();
  const out: Firing[] = [];
  for (const e of history) {
    if (!matches(w.sub, e, {})) continue;
    const key = keyOf(w.by, { event: e });
    if (key === undefined) continue;
    const held = [...(heldByKey.get(key) ?? []).filter((h) => h.t > e.t - w.within), e];
    if (held.length >= w.atLeast) {
      out.push({ at: e.t, event: e, batch: held });
      heldByKey.delete(key);
    } else {
      heldByKey.set(key, held);
    }
  }
  return out;
}

function firingKey(key: RefKey | undefined, f: Firing): string | undefined {
  return keyOf(key, {
    event: f.event,
    ...(f.events ? { events: f.events } : {}),
    ...(f.batch ? { batch: f.batch } : {}),
  });
}

function throttle(spec: NonNullable<RefRule['throttle']>, input: readonly Firing[]): Firing[] {
  const passedAt = new Map<string, number>();
  const out: Firing[] = [];
  for (const f of input) {
    const key = firingKey(spec.key, f);
    if (key === undefined) continue;
    const last = passedAt.get(key);
    if (last !== undefined && f.at - last < spec.window) continue;
    passedAt.set(key, f.at);
    out.push(f);
  }
  return out;
}

function debounce(spec: NonNullable<RefRule['debounce']>, input: readonly Firing[], end: number): Firing[] {
  const pass = spec.pass ?? 'last';
  const waiting = new Map<string, { held: Firing[]; deadline: number }>();
  const out: Firing[] = [];
  const release = (until: number) => {
    const due = [...waiting].filter(([, w]) => w.deadline <= until);
    due.sort((a, b) => a[1].deadline - b[1].deadline);
    for (const [key, w] of due) {
      waiting.delete(key);
      const chosen = pass === 'first' ? w.held[0]! : w.held[w.held.length - 1]!;
      const f: Firing = { ...chosen, at: w.deadline };
      if (pass === 'all') f.batch = w.held.map((h) => h.event);
      out.push(f);
    }
  };
  for (const f of input) {
    release(f.at);
    const key = firingKey(spec.key, f);
    if (key === undefined) continue;
    const w = waiting.get(key) ?? { held: [], deadline: 0 };
    w.held.push(f);
    const first = w.held[0]!.at;
    w.deadline = f.at + spec.quiet;
    if (spec.maxWait !== undefined) w.deadline = Math.min(w.deadline, first + spec.maxWait);
    waiting.set(key, w);
  }
  release(end);
  return sortByTime(out);
}

function rateLimit(spec: NonNullable<RefRule['rateLimit']>, input: readonly Firing[], end: number): Firing[] {
  const delay = spec.excess === 'delay';
  const maxQueue = spec.maxQueue ?? 1000;
  const passedByKey = new Map<string, number[]>();
  const queueByKey = new Map<string, Firing[]>();
  const out: Firing[] = [];
  const passed = (key: string) => passedByKey.get(key) ?? [];
  // The time at which a firing could pass at or after `t`: when fewer than max passed in (at − per, at].
  const slotFreeAt = (key: string, t: number) => {
    const times = passed(key);
    if (times.length < spec.max) return t;
    return Math.max(t, times[times.length - spec.max]! + spec.per);
  };
  const pass = (key: string, f: Firing, at: number) => {
    passedByKey.set(key, [...passed(key), at]);
    out.push({ ...f, at });
  };
  // Queued firings pass, in order, each when a slot frees, up to `until`.
  const releaseQueued = (until: number) => {
    for (;;) {
      let best: { key: string; at: number } | undefined;
      for (const [key, queue] of queueByKey) {
        if (queue.length === 0) continue;
        const at = slotFreeAt(key, queue[0]!.at);
        if (at <= until && (best === undefined || at < best.at)) best = { key, at };
      }
      if (!best) return;
      const queue = queueByKey.get(best.key)!;
      pass(best.key, queue.shift()!, best.at);
    }
  };
  for (const f of input) {
    releaseQueued(f.at);
    const key = firingKey(spec.key, f);
    if (key === undefined) continue;
    const queue = queueByKey.get(key) ?? [];
    if (queue.length === 0 && slotFreeAt(key, f.at) === f.at) {
      pass(key, f, f.at);
    } else if (delay && queue.length < maxQueue) {
      queueByKey.set(key, [...queue, f]);
    }
  }
  releaseQueued(end);
  return sortByTime(out);
}

function batch(spec: NonNullable<RefRule['batch']>, input: readonly Firing[], end: number): Firing[] {
  const heldByKey = new Map<string, Firing[]>();
  const out: Firing[] = [];
  const flush = (key: string, at: number) => {
    const held = heldByKey.get(key)!;
    heldByKey.delete(key);
    out.push({
      at,
      event: held[held.length - 1]!.event,
      batch: held.flatMap((h) => h.batch ?? [h.event]),
    });
  };
  const flushDue = (until: number) => {
    const due = [...heldByKey]
      .map(([key, held]) => ({ key, at: held[0]!.at + spec.window }))
      .filter((d) => d.at <= until)
      .sort((a, b) => a.at - b.at);
    for (const d of due) flush(d.key, d.at);
  };
  for (const f of input) {
    flushDue(f.at);
    const key = firingKey(spec.key, f);
    if (key === undefined) continue;
    const held = [...(heldByKey.get(key) ?? []), f];
    heldByKey.set(key, held);
    if (held.length >= spec.size) flush(key, f.at);
  }
  flushDue(end);
  return sortByTime(out);
}

/** Stable sort by time: outputs made at a deadline may come after inputs that passed later. */
function sortByTime(firings: Firing[]): Firing[] {
  return firings
    .map((f, i) => ({ f, i }))
    .sort((a, b) => a.f.at - b.f.at || a.i - b.i)
    .map(({ f }) => f);
}
