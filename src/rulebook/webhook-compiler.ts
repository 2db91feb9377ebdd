import { isReservedSource, isReservedType, reflexTypePrefix } from '../core/event.js';
import type { SecretRef, SourceLocation, Webhook, WebhookAuth } from '../core/rule.js';
import type { RulebookDocument } from './schema.js';
import { durationAt, LocatedProblem, type Path, type SourceFile } from './source-file.js';

function secretRef(value: string | { env: string }): SecretRef {
  return typeof value === 'string' ? { value } : { env: value.env };
}

type WebhookDocument = NonNullable<RulebookDocument['webhooks']>[string];

/** How far from Reflex's clock a timestamped signature may be. */
const defaultReplayWindowMs = 5 * 60_000;

/**
 * Compiles the webhook `name` of a rulebook file: where its events' attributes come from and how a
 * delivery proves its sender. A problem is thrown as a {@link LocatedProblem}.
 */
export function compileWebhook(
  source: SourceFile,
  name: string,
  hook: WebhookDocument,
  location: SourceLocation,
): Webhook {
  const path = ['webhooks', name];
  checkWebhookNotReserved(source, path, hook);
  const attribute = (value: WebhookDocument['type']) =>
    typeof value === 'string'
      ? { value }
      : {
          header: value.header,
          prefix: value.prefix ?? '',
          ...(value.default === undefined ? {} : { fallback: value.default }),
        };
  let auth: WebhookAuth = { type: 'none' };
  for (const scheme of ['stripe', 'slack', 'standard'] as const) {
    const given = hook.auth?.[scheme];
    if (given === undefined) continue;
    if (hook.id !== undefined) {
      throw new LocatedProblem(
        source.problem(
          path,
          `a webhook with \`auth: ${scheme}\` takes its event id from what the signature covers, so a replayed delivery is a duplicate; an id from an unsigned header would let a replay pass as new. To fix: remove \`id\`.`,
          { key: 'id' },
        ),
      );
    }
    auth = {
      type: scheme,
      secret: secretRef(given.secret),
      replayWindowMs:
        given.replayWindow === undefined
          ? defaultReplayWindowMs
          : durationAt(source, [...path, 'auth', scheme, 'replayWindow'], given.replayWindow),
    };
  }
  if (hook.auth?.token) {
    const t = hook.auth.token;
    auth = {
      type: 'token',
      header: t.header ?? 'Authorization',
      prefix: t.prefix ?? 'Bearer ',
      secret: secretRef(t.secret),
    };
  } else if (hook.auth?.hmac) {
    const h = hook.auth.hmac;
    auth = {
      type: 'hmac',
      header: h.header ?? 'X-Hub-Signature-256',
      prefix: h.prefix ?? 'sha256=',
      secret: secretRef(h.secret),
    };
  }
  const webhook: Webhook = {
    name,
    type: attribute(hook.type),
    source: hook.source,
    auth,
    location: { file: location.file, line: location.line, column: location.column },
  };
  if (hook.id) webhook.id = { header: hook.id.header };
  if (hook.subject !== undefined) webhook.subject = attribute(hook.subject);
  return webhook;
}

/**
 * Refuses a webhook that would make events posing as Reflex's own (source `reflex`, a `reflex.*` type):
 * they could trigger the rules that react to run outcomes. A type read from a header needs a prefix
 * that keeps the sender out of `reflex.`, since the sender chooses the header.
 */
function checkWebhookNotReserved(source: SourceFile, path: Path, hook: WebhookDocument): void {
  const problem = (at: Path, message: string, key?: string) =>
    new LocatedProblem(source.problem(at, message, key === undefined ? {} : { key }));
  if (isReservedSource(hook.source)) {
    throw problem(
      [...path, 'source'],
      `the source \`${hook.source}\` is reserved for the events Reflex makes itself (run outcomes, timers, fact changes). To fix: give the webhook a source of its own, such as the URL of the sender.`,
    );
  }
  const ownType = 'To fix: name the type in a namespace of your own, such as `com.example.`.';
  const type = hook.type;
  if (typeof type === 'string') {
    if (isReservedType(type)) {
      throw problem(
        [...path, 'type'],
        `the type \`${type}\` is reserved for the events Reflex makes itself. ${ownType}`,
      );
    }
    return;
  }
  if (type.default !== undefined && isReservedType(type.default)) {
    throw problem(
      [...path, 'type', 'default'],
      `the default type \`${type.default}\` is reserved for the events Reflex makes itself. ${ownType}`,
    );
  }
  const prefix = (type.prefix ?? '').toLowerCase();
  if (reflexTypePrefix.startsWith(prefix) || prefix.startsWith(reflexTypePrefix)) {
    throw problem(
      [...path, 'type', ...(type.prefix === undefined ? [] : ['prefix'])],
      `the type is read from the header \`${type.header}\`${prefix === '' ? ' without a prefix' : ` after the prefix \`${type.prefix}\``}, so a sender could choose a \`reflex.*\` type, which is reserved for the events Reflex makes itself. To fix: give a \`prefix\` of your own, such as \`com.example.\`.`,
    );
  }
}
