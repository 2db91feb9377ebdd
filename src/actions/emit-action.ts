import Type from 'typebox';
import { ReflexError } from '../core/errors.js';
import { isReservedSource, isReservedType, reflexSource, validateCloudEvent } from '../core/event.js';
import type { Action, ActionContext } from '../core/ports/action.js';
import { describeValue, description, invalidParams, isRecord } from './params.js';

const kind = 'emit';

/**
 * The `emit` step's parameters as a rulebook writes them (see Action.params); templates may stand for
 * the values typed loosely here.
 */
export const emitParamsSchema = Type.Object(
  {
    type: Type.String({ minLength: 1 }),
    source: Type.Optional(Type.String()),
    subject: Type.Optional(Type.String()),
    id: Type.Optional(Type.String()),
    data: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false, ...description('Put a new event into the log.') },
);

/** The `emit` action's parameters once checked: the event to append, without `specversion`. */
export type EmitParams = Parameters<ActionContext['emit']>[0];

/** What an `emit` step outputs: where the event went in the log. */
export interface EmitOutput {
  seq: number;
  id: string;
  /** True when an event with the same (source, id) was already in the log (a retried step, say). */
  duplicate: boolean;
}

/**
 * Checks an `emit` step's rendered parameters: a CloudEvent without `specversion`, whose `id` and
 * `source` may be left out (the engine derives the id from the step's idempotency key, so a retried step
 * does not emit twice; the source defaults to `reflex`). The rulebook schema refuses other keys: extension
 * attributes cannot be set yet (docs/actions.md says so).
 * A `reflex.*` type is refused (those are Reflex's own events), and so is an `id` without a `source` of
 * the rule's own: in source `reflex` the ids are Reflex's. Throws REFLEX_ERR_ACTION_INVALID_PARAMS.
 */
export function parseEmitParams(params: unknown): EmitParams {
  if (!isRecord(params)) {
    invalidParams(
      kind,
      `expected an object, got ${describeValue(params)}`,
      'give at least `type`, e.g. { type: "disk.cleaned" }.',
    );
  }
  const { specversion, ...event } = params;
  if (specversion !== undefined && specversion !== '1.0') {
    invalidParams(
      kind,
      `\`specversion\` is ${JSON.stringify(specversion)}`,
      'leave it out: Reflex emits CloudEvents 1.0.',
    );
  }
  // Rendered templates give numbers where a rule author thinks of an id: accept them as text.
  for (const attribute of ['id', 'source', 'subject'] as const) {
    const value = event[attribute];
    if (typeof value === 'number' && Number.isFinite(value)) event[attribute] = String(value);
  }
  if (event['type'] === undefined) {
    invalidParams(kind, '`type` is missing', 'name the event type, e.g. `type: disk.cleaned`.');
  }
  if (typeof event['type'] === 'string' && isReservedType(event['type'])) {
    invalidParams(
      kind,
      `the type ${JSON.stringify(event['type'])} is reserved for the events Reflex makes itself`,
      'name the type in a namespace of your own, e.g. `ops.restart.failed`.',
    );
  }
  const source = event['source'] ?? reflexSource;
  if (event['id'] !== undefined && typeof source === 'string' && isReservedSource(source)) {
    invalidParams(
      kind,
      `\`id\` is set for source ${JSON.stringify(source)}, whose ids are Reflex's own (an id taken from event data could take the place of a run's outcome or a timer)`,
      'set `source` to one of your own (e.g. `urn:acme:ops`) when you set `id`, or leave `id` out.',
    );
  }
  try {
    // The same checks as for events from outside; the placeholders stand in for what the engine fills in.
    validateCloudEvent({ specversion: '1.0', id: 'placeholder', source: 'reflex', ...event });
  } catch (error) {
    if (!(error instanceof ReflexError)) throw error;
    const [reason, fix] = error.message.split(' To fix: ');
    invalidParams(kind, reason!.replace(/\.$/, ''), fix ?? 'see docs/actions.md#emit.');
  }
  return event as EmitParams;
}

/**
 * The `emit` action: appends a new event to the log, where rules see it like any other.
 *
 * @example
 * // in a rulebook
 * // - emit: { type: host.isolated, subject: "${{ event.subject }}", data: { by: "reflex" } }
 */
export const emitAction: Action<EmitParams> = {
  kind,
  params: emitParamsSchema,
  templates: { secrets: false },
  parse: parseEmitParams,
  async run(params: EmitParams, context: ActionContext): Promise<EmitOutput> {
    const result = await context.emit(params);
    return { seq: result.seq, id: result.id, duplicate: result.duplicate };
  },
};
