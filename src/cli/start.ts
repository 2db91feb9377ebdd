import { resolve } from 'node:path';
import { watch } from 'chokidar';
import pino from 'pino';
import { createHttpAction } from '../actions/http-action.js';
import { parseHttpDeny } from '../actions/http-deny.js';
import { builtinActions, createActionRegistry } from '../actions/registry.js';
import { ReflexError, toErrorInfo } from '../core/errors.js';
import { createLogLimiter } from '../core/log-limiter.js';
import type { Logger } from '../core/ports/logger.js';
import { compileRulebookFiles, RulebookError } from '../core/ports/rulebook-compiler.js';
import type { Rulebook } from '../core/rule.js';
import { createSecretStore, type Secrets } from '../core/secrets.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { newSortableId } from '../engine/ids.js';
import { systemClock } from '../engine/system-clock.js';
import { readRulebookFiles } from '../rulebook/discovery.js';
import { compileServerTimeouts } from '../server/front-door.js';
import { createServer } from '../server/server.js';
import { createHttpRoutes } from '../sources/http-routes.js';
import { cloudEventsEndpoint } from '../sources/http-source.js';
import { createSourceRegistry, httpSourceKinds } from '../sources/registry.js';
import { openStore } from '../store/index.js';
import { exposedEnvironment } from './environment.js';
import { rulebookCompilers } from './rulebook-compilers.js';
import { readSecretsFile } from './secrets-file.js';

/** `reflex start` options once checked: durations in ms, defaults filled. */
export interface StartConfig {
  rulebooks: string[];
  host: string;
  port: number;
  dataDir: string;
  /** `--store`: `sqlite` (the database in the data directory) or a `postgres://…?schema=…` URL. */
  store: string;
  watch: boolean;
  durability: 'full' | 'normal';
  bodyLimit: number;
  maxDepth: number;
  graceMs: number;
  concurrency: number;
  /** How long a claimed run stays reserved (see ExecutorSettings.leaseMs). */
  leaseMs: number;
  /** Claims that die before a run is failed (see ExecutorSettings.maxClaims). */
  maxClaims: number;
  maxChainDepth: number;
  logLevel: string;
  apiToken: string | undefined;
  /** `--http-deny`: where `http` steps may not send requests (`default` stands for the built-in list). */
  httpDeny: string;
  /** `--secrets`: a file of NAME=value lines, or a folder of one file per secret. */
  secrets: string | undefined;
  /** Names beyond the defaults that requests may address (`--allowed-hosts`); see `compileHostPolicy`. */
  allowedHosts: string[];
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

/**
 * Starts a Reflex node: store, engine, HTTP server, rulebook reloads on SIGHUP (and on change with
 * `--watch`), and a drain on SIGTERM/SIGINT. Resolves with the exit code once it has stopped.
 */
export async function runStart(
  config: StartConfig,
  out: { stdout: (line: string) => void },
): Promise<number> {
  const pinoLogger = pino({ level: config.logLevel, base: { pid: process.pid } }, pino.destination(2));
  // Everything logs through the limiter, so a line repeated many times a second is summarised.
  const limited = createLogLimiter(pinoLogger as unknown as Logger, systemClock);
  const logger = {
    debug: limited.debug,
    info: limited.info,
    warn: limited.warn,
    error: limited.error,
    fatal: (obj: object, msg?: string) => pinoLogger.fatal(obj, msg),
    // Summaries still pending go out before pino's buffer is flushed.
    flush: () => {
      limited.flush();
      pinoLogger.flush();
    },
  };
  const http = createHttpAction({ deny: parseHttpDeny(config.httpDeny) });
  const actions = createActionRegistry([http, ...builtinActions.filter((a) => a.kind !== 'http')]);
  const secretsFile = config.secrets === undefined ? undefined : await readSecretsFile(config.secrets);
  const secrets = createSecretStore({
    ...(secretsFile ? { file: secretsFile.values } : {}),
    env: process.env,
  });
  if (secretsFile?.readableByOthers) {
    logger.warn(
      { secrets: config.secrets },
      'the secrets file can be read by other users; make it readable by its owner only (chmod 600)',
    );
  }
  const timeouts = compileServerTimeouts({
    headersMs: config.headersTimeoutMs,
    requestMs: config.requestTimeoutMs,
    keepAliveMs: config.keepAliveTimeoutMs,
  });

  const files = await readRulebookFiles(config.rulebooks);
  // Checked before the data directory is touched: an invalid rulebook creates nothing.
  compileRulebookFiles(rulebookCompilers, files, { actions });
  // A failed fsync of the event log stops the node (see stop below): the store already refuses writes.
  let syncFailed: (error: ReflexError) => void = () => {};
  const storeFailure = new Promise<ReflexError>((resolve) => {
    syncFailed = resolve;
  });
  const store = await openStore({
    store: config.store,
    dataDir: resolve(config.dataDir),
    durability: config.durability,
    onSyncFailure: (error) => syncFailed(error),
  });
  // The HTTP sources mount their routes here; the server, made once the engine runs, serves them.
  const routes = createHttpRoutes();
  const sourceKinds = createSourceRegistry(
    httpSourceKinds({ routes, newEventId: () => newSortableId(Date.now()), env: process.env }),
  );
  let engine: Engine;
  try {
    engine = await createEngine({
      store,
      actions,
      compilers: rulebookCompilers,
      sourceKinds,
      sources: [cloudEventsEndpoint],
      logger,
      limits: { maxDepth: config.maxDepth },
      concurrency: config.concurrency,
      leaseMs: config.leaseMs,
      maxClaims: config.maxClaims,
      maxChainDepth: config.maxChainDepth,
      graceMs: config.graceMs,
      secrets,
    });
  } catch (error) {
    await store.close();
    throw error;
  }
  try {
    const version = await engine.loadRulebook(files);
    logger.info(
      { version: version.id, rules: version.rulebook.rules.length, files: files.map((f) => f.path) },
      'rulebook loaded',
    );
    warnMissingSecrets(version.rulebook, secrets, logger);
  } catch (error) {
    await engine.close();
    throw error;
  }
  await engine.start();

  const server = await createServer({
    engine,
    routes,
    logger,
    bodyLimit: config.bodyLimit,
    ...(config.apiToken ? { apiToken: config.apiToken } : {}),
    listenHost: config.host,
    allowedHosts: config.allowedHosts,
    timeouts,
  });
  try {
    await server.listen({ host: config.host, port: config.port });
  } catch (error) {
    await engine.close();
    const code = (error as { code?: string }).code;
    if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL' || code === 'EACCES') {
      throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
        option: '--port',
        reason: `cannot listen on ${config.host}:${config.port} (${code})`,
        fix: 'stop what uses that port, or give another --port (0 picks a free one) or --host.',
      });
    }
    throw error;
  }
  let reloading = Promise.resolve();
  const reload = (why: string) => {
    reloading = reloading.then(async () => {
      try {
        if (config.secrets !== undefined) secrets.replace((await readSecretsFile(config.secrets)).values);
        const next = await readRulebookFiles(config.rulebooks);
        const before = engine.rulebook?.id;
        const version = await engine.loadRulebook(next);
        if (version.id !== before) {
          logger.info(
            { why, version: version.id, rules: version.rulebook.rules.length },
            'rulebook reloaded',
          );
        }
        warnMissingSecrets(version.rulebook, secrets, logger);
      } catch (error) {
        // The rules in force stay in force; the message carries file:line:column for each problem.
        const message = error instanceof RulebookError ? error.message : (error as Error).message;
        logger.error(
          { why, error: toErrorInfo(error) },
          `rulebook not reloaded; the previous rules stay in force:\n${message}`,
        );
      }
    });
  };
  const onHangup = () => reload('SIGHUP');
  process.on('SIGHUP', onHangup);
  const watcher = config.watch
    ? watch(config.rulebooks, {
        ignoreInitial: true,
        awaitWriteFinish: { stabilityThreshold: 100, pollInterval: 20 },
      })
    : undefined;
  if (watcher) {
    let timer: NodeJS.Timeout | undefined;
    watcher.on('all', (_event, path) => {
      if (!/\.ya?ml$/i.test(path) || /\.test\.ya?ml$/i.test(path)) return;
      clearTimeout(timer);
      timer = setTimeout(() => reload(`changed: ${path}`), 50);
    });
    // Announce readiness only once edits are seen, and pick up any edit made while the watcher started.
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    reload('watch started');
  }

  const exposed = await exposedEnvironment();
  if (exposed !== undefined && exposed.length > 0) {
    // Names only: the values are what must not spread.
    logger.warn(
      { variables: exposed },
      "Reflex's own environment holds variables that commands run by exec steps can read from /proc/<pid>/environ; start Reflex with bin/reflex, which hands the environment over a pipe (docs/security.md)",
    );
  }

  const bound = server.server.address();
  const address = bound !== null && typeof bound === 'object' ? bound : undefined;
  const shownHost = address?.family === 'IPv6' ? `[${address.address}]` : (address?.address ?? config.host);
  out.stdout(`reflex listening on http://${shownHost}:${address?.port ?? config.port}`);
  if (!isLoopback(config.host)) {
    const open = [...(engine.rulebook?.rulebook.webhooks.values() ?? [])].filter(
      (w) => w.auth.type === 'none',
    );
    if (!config.apiToken)
      logger.warn(
        { host: config.host },
        'listening beyond loopback without REFLEX_API_TOKEN: the API is open',
      );
    if (open.length > 0)
      logger.warn(
        { webhooks: open.map((w) => w.name) },
        'webhooks without auth are reachable from the network',
      );
  }

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = async (signal: string, failed = false) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal, graceMs: config.graceMs }, 'stopping: no new events; finishing work in hand');
      process.off('SIGHUP', onHangup);
      await watcher?.close();
      let code = failed ? 1 : 0;
      try {
        // Closing the server first stops intake; requests in flight still get their commit and answer.
        await server.close();
        await reloading;
        await engine.drain();
      } catch (error) {
        logger.error({ error: toErrorInfo(error) }, 'error while stopping');
        code = 1;
      }
      try {
        // Whatever failed above, the store is closed and the data directory's lock released.
        await engine.close();
        logger.info({}, 'stopped');
      } catch (error) {
        logger.error({ error: toErrorInfo(error) }, 'error while closing the store');
        code = 1;
      }
      logger.flush?.();
      resolveExit(code);
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
    // Exit non-zero so that a supervisor restarts the node, which then reads what the disk really holds.
    void storeFailure.then((error) => {
      logger.fatal({ error: toErrorInfo(error) }, error.message);
      void stop('event log sync failed', true);
    });
  });
}

/**
 * The secrets the rulebook's steps read (`${{ secrets.NAME }}`), by name, in order of first use.
 * @example secretsOf(rulebook) // ['API_TOKEN', 'DEPLOY_KEY']
 */
export function secretsOf(rulebook: Rulebook): string[] {
  const names = new Set<string>();
  for (const rule of rulebook.rules)
    for (const step of rule.then) for (const secret of step.params.secrets) names.add(secret.name);
  return [...names];
}

/** Says, at load, which secrets steps will miss: each such step would fail with REFLEX_ERR_SECRET_MISSING. */
function warnMissingSecrets(rulebook: Rulebook, secrets: Secrets, logger: Logger): void {
  const missing = secretsOf(rulebook).filter((name) => secrets.get(name) === undefined);
  if (missing.length > 0) {
    logger.warn(
      { secrets: missing },
      'secrets that steps read are set neither in the secrets file nor in the environment; those steps will fail',
    );
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
