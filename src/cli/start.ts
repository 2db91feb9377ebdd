import { resolve } from 'node:path';
import { watch } from 'chokidar';
import pino from 'pino';
import { createActionRegistry } from '../actions/registry.js';
import { ReflexError, toErrorInfo } from '../core/errors.js';
import type { Logger } from '../core/ports/logger.js';
import { createEngine, type Engine } from '../engine/engine.js';
import { newSortableId } from '../engine/ids.js';
import { compileRulebook, RulebookError, readRulebookFiles } from '../rulebook/loader.js';
import { createServer } from '../server/server.js';
import { createSqliteStore } from '../store/index.js';

/** `reflex start` options once checked: durations in ms, defaults filled. */
export interface StartConfig {
  rulebooks: string[];
  host: string;
  port: number;
  dataDir: string;
  watch: boolean;
  durability: 'full' | 'normal';
  bodyLimit: number;
  maxDepth: number;
  graceMs: number;
  concurrency: number;
  maxChainDepth: number;
  logLevel: string;
  apiToken: string | undefined;
}

/**
 * Starts a Reflex node: store, engine, HTTP server, rulebook reloads on SIGHUP (and on change with
 * `--watch`), and a drain on SIGTERM/SIGINT. Resolves with the exit code once it has stopped.
 */
export async function runStart(
  config: StartConfig,
  out: { stdout: (line: string) => void },
): Promise<number> {
  const logger = pino(
    { level: config.logLevel, base: { pid: process.pid } },
    pino.destination(2),
  ) as unknown as Logger & pino.Logger;
  const actions = createActionRegistry();

  const files = await readRulebookFiles(config.rulebooks);
  // Checked before the data directory is touched: an invalid rulebook creates nothing.
  compileRulebook(files, { actions });
  // A failed fsync of the event log stops the node (see stop below): the store already refuses writes.
  let syncFailed: (error: ReflexError) => void = () => {};
  const storeFailure = new Promise<ReflexError>((resolve) => {
    syncFailed = resolve;
  });
  const store = await createSqliteStore({
    dir: resolve(config.dataDir),
    durability: config.durability,
    onSyncFailure: (error) => syncFailed(error),
  });
  let engine: Engine;
  try {
    engine = await createEngine({
      store,
      actions,
      logger,
      limits: { maxDepth: config.maxDepth },
      concurrency: config.concurrency,
      maxChainDepth: config.maxChainDepth,
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
  } catch (error) {
    await engine.close();
    throw error;
  }
  await engine.start();

  const server = await createServer({
    engine,
    logger,
    bodyLimit: config.bodyLimit,
    newEventId: () => newSortableId(Date.now()),
    ...(config.apiToken ? { apiToken: config.apiToken } : {}),
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
        const next = await readRulebookFiles(config.rulebooks);
        const before = engine.rulebook?.id;
        const version = await engine.loadRulebook(next);
        if (version.id !== before) {
          logger.info(
            { why, version: version.id, rules: version.rulebook.rules.length },
            'rulebook reloaded',
          );
        }
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
        await engine.drain(config.graceMs);
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

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
