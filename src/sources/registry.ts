import { ReflexError } from '../core/errors.js';
import type { SourceKind, SourceRegistry } from '../core/ports/source.js';
import { createHttpSourceKind } from './http-source.js';
import { createWebhookSourceKind, type WebhookSourceOptions } from './webhook-source.js';

/**
 * Builds a registry of source kinds. Two kinds with one name are refused (REFLEX_ERR_CONFIG_INVALID).
 *
 * @example
 * const sourceKinds = createSourceRegistry(httpSourceKinds({ routes, newEventId }));
 */
export function createSourceRegistry(kinds: readonly SourceKind[]): SourceRegistry {
  const byKind = new Map<string, SourceKind>();
  for (const kind of kinds) {
    if (byKind.has(kind.kind)) {
      throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
        option: 'sources',
        reason: `two source kinds are named \`${kind.kind}\``,
        fix: 'register each kind once; to replace a built-in kind, leave the built-in out.',
      });
    }
    byKind.set(kind.kind, kind);
  }
  return {
    get: (kind) => byKind.get(kind),
    kinds: () => [...byKind.keys()],
  };
}

/**
 * The source kinds served on the HTTP server: `http` (the CloudEvents endpoint) and `webhook`, both
 * mounting their routes in `options.routes`, which the server serves.
 */
export function httpSourceKinds(options: WebhookSourceOptions): SourceKind[] {
  return [createHttpSourceKind({ routes: options.routes }), createWebhookSourceKind(options) as SourceKind];
}
