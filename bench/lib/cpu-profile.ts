/**
 * Reads a V8 CPU profile (the `.cpuprofile` JSON of `node --cpu-prof` or the inspector's
 * `Profiler.stop`) and says which share of the process's busy time each area of a request's path took.
 */

/** One frame of a profile's call tree. */
export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber?: number };
  children?: number[];
}

/** The parts of a `.cpuprofile` this module reads. */
export interface CpuProfile {
  nodes: CpuProfileNode[];
  /** The node that was on top of the stack at each sample. */
  samples: number[];
  /** Microseconds since the previous sample, one per sample. */
  timeDeltas: number[];
}

/**
 * An area of the code: a sample counts for the first area, from the sampled frame outwards, that has a
 * frame matching one of its patterns. Frames that match no area (native functions without a file, Node's
 * event emitter and promise glue) pass the sample on to their caller, so `writev` counts for whoever
 * wrote.
 */
export interface ProfileArea {
  name: string;
  /** Tested against `<url> <functionName>` of each frame. */
  patterns: readonly RegExp[];
  /**
   * The area claims every sample with a matching frame anywhere on its stack, before the nearest-frame
   * rule: for work known by who started it (the dispatcher's SQLite commit counts as the dispatcher's).
   * @default false
   */
  anywhere?: boolean;
}

/** One line of {@link summarizeCpuProfile}. */
export interface AreaShare {
  name: string;
  /** Microseconds of samples counted for the area. */
  micros: number;
  /** Share of the busy time (everything but `(idle)`), 0 to 1. */
  share: number;
}

/** What a profile says about where a process spent its time. */
export interface ProfileSummary {
  /** The areas in the order given, then `other`, each with its share of the busy time. */
  areas: AreaShare[];
  /** Microseconds the profile covers, idle included. */
  totalMicros: number;
  /** Microseconds the main thread waited for work (`(idle)`): its event loop had nothing to do. */
  idleMicros: number;
}

/** The name of the line that takes samples no area claims. */
export const otherArea = 'other';

/**
 * Sums the samples of `profile` per area; `(idle)` is set apart, and the shares are of the busy time.
 *
 * @example
 * const summary = summarizeCpuProfile(profile, [{ name: 'SQLite', patterns: [/better-sqlite3/] }]);
 */
export function summarizeCpuProfile(profile: CpuProfile, areas: readonly ProfileArea[]): ProfileSummary {
  const parent = new Map<number, number>();
  const byId = new Map<number, CpuProfileNode>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  // The area of each sampled node, found once: many samples share a node.
  const areaOf = new Map<number, string>();
  const find = (id: number): string => {
    const known = areaOf.get(id);
    if (known !== undefined) return known;
    const stack: string[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      stack.push(`${frame.url} ${frame.functionName}`);
    }
    const matches = (area: ProfileArea, text: string) => area.patterns.some((p) => p.test(text));
    let found = areas.find((a) => a.anywhere === true && stack.some((text) => matches(a, text)))?.name;
    for (const text of stack) {
      if (found !== undefined) break;
      found = areas.find((a) => a.anywhere !== true && matches(a, text))?.name;
    }
    found ??= otherArea;
    areaOf.set(id, found);
    return found;
  };

  const micros = new Map<string, number>([...areas.map((a) => [a.name, 0] as const), [otherArea, 0]]);
  let totalMicros = 0;
  let idleMicros = 0;
  profile.samples.forEach((id, i) => {
    // A sample's delta is the time since the one before: it belongs to the sample it leads to.
    const delta = Math.max(0, profile.timeDeltas[i] ?? 0);
    totalMicros += delta;
    if (byId.get(id)?.callFrame.functionName === '(idle)') {
      idleMicros += delta;
      return;
    }
    const area = find(id);
    micros.set(area, micros.get(area)! + delta);
  });
  const busy = totalMicros - idleMicros;
  return {
    areas: [...micros].map(([name, value]) => ({ name, micros: value, share: busy > 0 ? value / busy : 0 })),
    totalMicros,
    idleMicros,
  };
}
