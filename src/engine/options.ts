import { ReflexError } from '../core/errors.js';
import { defaultEventLimits, type EventLimits } from '../core/event.js';
import type { Matcher } from '../core/pattern/matcher.js';
import { type Action, defaultOutputLimits } from '../core/ports/action.js';
import type { Clock } from '../core/ports/clock.js';
import type { Logger } from '../core/ports/logger.js';
import type { RulebookCompiler } from '../core/ports/rulebook-compiler.js';
import type { SourceDeclaration, SourceRegistry } from '../core/ports/source.js';
import type { Store } from '../core/ports/store.js';
import type { Secrets } from '../core/secrets.js';

/**
 * The engine's tuning: every setting that has a number for a default. The CLI's flags, their help
 * text and docs/cli.md all read {@link engineDefaults}; nothing else states these numbers.
 */
export interface EngineSettings {
  /**
   * How many partitions the log is split into. An event goes to the partition of its `partitionkey`
   * extension, or else of its `source` (FNV-1a modulo this); each partition has its own dispatcher,
   * offset, flow states and timers, so events of one key stay in order while the partitions are decided
   * side by side. Facts are shared: every dispatcher applies every fact change in seq order.
   * @default 1
   */
  partitions?: number;
  /**
   * Events waiting for a commit beyond which new appends are refused (HTTP: 503 with Retry-After) or
   * wait for room: back-pressure rather than unbounded memory.
   * @default 20000
   */
  maxPendingEvents?: number;
  /**
   * Runs executed at the same time. Actions mostly wait on the network, so many can run at once on one
   * core (`reflex start --concurrency`).
   * @default 128
   */
  concurrency?: number;
  /**
   * How long a claimed run stays reserved, in milliseconds (at least 1000); renewed every third of it
   * while a step runs (`--lease`).
   * @default 30000
   */
  leaseMs?: number;
  /**
   * Claims of a run that may die with their process before the next claim fails the run with
   * REFLEX_ERR_RUN_ABANDONED (`--max-claims`).
   * @default 5
   */
  maxClaims?: number;
  /**
   * Largest JSON text, in UTF-8 bytes, of what an action hands over (output, emitted event, fact value).
   * Its nesting is bounded by `limits.maxDepth`, like incoming events.
   * @default 1048576
   */
  maxOutputBytes?: number;
  /**
   * Rules do not fire on events that more rule outcomes led to (`--max-chain-depth`); 0: only on
   * events from outside.
   * @default 8
   */
  maxChainDepth?: number;
  /**
   * How long running steps get to finish when the engine drains (`--grace`), in milliseconds.
   * @default 10000
   */
  graceMs?: number;
}

/** What `createEngine` is given. */
export interface EngineOptions extends EngineSettings {
  store: Store;
  /** The actions rules may use, by kind. */
  actions: { get(kind: string): Action | undefined; kinds(): string[] };
  /**
   * The rulebook front ends (`reflex start`: the YAML one), asked in this order which one reads a file.
   * The engine reads no rulebook format itself.
   */
  compilers: readonly RulebookCompiler[];
  /** @default the system clock */
  clock?: Clock;
  /** @default a silent logger */
  logger?: Logger;
  /** Limits checked on every incoming event. @default {@link defaultEventLimits} */
  limits?: Partial<EventLimits>;
  /** @default Math.random — retry jitter */
  random?: () => number;
  /**
   * Makes the matcher all rules' patterns go into.
   * @default the compiled matcher (one automaton for all patterns)
   */
  createMatcher?: () => Matcher;
  /**
   * Where steps read `${{ secrets.NAME }}` from.
   * @default the environment of the process
   */
  secrets?: Secrets;
  /**
   * The kinds of sources the engine can run. With them, every webhook a rulebook declares runs as a
   * `webhook` source, and {@link EngineOptions.sources} run beside them.
   * @default none: events come in only through `ingest.append`
   */
  sourceKinds?: SourceRegistry;
  /**
   * Sources that run whatever the rulebook declares (`reflex start`: the CloudEvents HTTP endpoint).
   * @default []
   */
  sources?: readonly SourceDeclaration[];
}

/** The defaults of {@link EngineSettings} and of the event limits; frozen. */
export const engineDefaults: Readonly<Required<EngineSettings> & { limits: Readonly<EventLimits> }> =
  Object.freeze({
    partitions: 1,
    maxPendingEvents: 20_000,
    concurrency: 128,
    leaseMs: 30_000,
    maxClaims: 5,
    maxOutputBytes: defaultOutputLimits.maxBytes,
    maxChainDepth: 8,
    graceMs: 10_000,
    limits: defaultEventLimits,
  });

/**
 * {@link EngineOptions} once checked, with every setting and the event limits filled in; frozen. What
 * has no default value (clock, logger, secrets…) is filled by the engine, which owns those objects.
 */
export type CompiledEngineOptions = Readonly<
  Omit<EngineOptions, keyof EngineSettings | 'limits'> & Required<EngineSettings> & { limits: EventLimits }
>;

/** The least each setting may be. */
const minimum: Readonly<Record<keyof EngineSettings, number>> = {
  partitions: 1,
  maxPendingEvents: 1,
  concurrency: 1,
  leaseMs: 1000,
  maxClaims: 1,
  maxOutputBytes: 1024,
  maxChainDepth: 0,
  graceMs: 0,
};

/**
 * Checks the engine's options and fills in the defaults. Throws REFLEX_ERR_CONFIG_INVALID for a setting
 * that is not a whole number in range.
 */
export function compileEngineOptions(options: EngineOptions): CompiledEngineOptions {
  const settings = {} as Record<keyof EngineSettings, number>;
  for (const name of Object.keys(minimum) as Array<keyof EngineSettings>) {
    const value = options[name] ?? engineDefaults[name];
    if (!Number.isSafeInteger(value) || value < minimum[name]) {
      throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
        option: name,
        reason: `${JSON.stringify(value)} is not a whole number of at least ${minimum[name]}`,
        fix: `give a whole number from ${minimum[name]} up, or leave it out for ${engineDefaults[name]}.`,
      });
    }
    settings[name] = value;
  }
  const maxDepth = options.limits?.maxDepth ?? engineDefaults.limits.maxDepth;
  if (!Number.isSafeInteger(maxDepth) || maxDepth < 1) {
    throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
      option: 'limits.maxDepth',
      reason: `${JSON.stringify(maxDepth)} is not a whole number of at least 1`,
      fix: `give a whole number from 1 up, or leave it out for ${engineDefaults.limits.maxDepth}.`,
    });
  }
  return Object.freeze({ ...options, ...settings, limits: Object.freeze({ maxDepth }) });
}
