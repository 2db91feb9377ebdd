import Type from 'typebox';
import type { Action, ActionContext } from '../core/ports/action.js';
import { describeValue, description, invalidParams, isRecord, readObject, scalarText } from './params.js';

const kind = 'log';

/**
 * The `log` step's parameters as a rulebook writes them (see Action.params); templates may stand for
 * the values typed loosely here.
 */
export const logParamsSchema = Type.Union(
  [
    Type.String(),
    Type.Object(
      {
        message: Type.String(),
        level: Type.Optional(Type.Union([Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')])),
      },
      { additionalProperties: false },
    ),
  ],
  description("Write a line to Reflex's log."),
);

/** Levels a `log` step may write at. */
export const LogLevel = { info: 'info', warn: 'warn', error: 'error' } as const;
export type LogLevel = (typeof LogLevel)[keyof typeof LogLevel];

/** The `log` action's parameters once checked. */
export interface LogParams {
  message: string;
  level: LogLevel;
}

/** What a `log` step outputs. */
export interface LogOutput {
  message: string;
}

function isLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && Object.hasOwn(LogLevel, value);
}

/**
 * Checks a `log` step's rendered parameters: a message, or `{ message, level? }` (level `info` by default).
 * A number or boolean (a template that rendered one) is logged as its text.
 * Throws REFLEX_ERR_ACTION_INVALID_PARAMS.
 */
export function parseLogParams(params: unknown): LogParams {
  const direct = scalarText(params);
  if (direct !== undefined) return { message: direct, level: 'info' };
  if (!isRecord(params)) {
    invalidParams(
      kind,
      `expected a message or an object, got ${describeValue(params)}`,
      'write `log: "text"` or `log: { message, level }`.',
    );
  }
  const raw = readObject(kind, params);
  const message = scalarText(raw['message']);
  if (message === undefined) {
    invalidParams(
      kind,
      raw['message'] === undefined
        ? '`message` is missing'
        : `\`message\` is ${describeValue(raw['message'])}`,
      'give the text to log; use toJson() to log structured data.',
    );
  }
  const level = raw['level'] ?? 'info';
  if (!isLevel(level)) {
    invalidParams(kind, `\`level\` is ${JSON.stringify(level)}`, 'use info, warn or error.');
  }
  return { message, level };
}

/**
 * The `log` action: writes a line to the engine's log, tagged with the run, rule and step.
 *
 * @example
 * // in a rulebook
 * // - log: "disk ${{ event.data.mount }} at ${{ event.data.used }}%"
 * // - log: { message: "paging on-call", level: warn }
 */
export const logAction: Action<LogParams> = {
  kind,
  params: logParamsSchema,
  templates: { secrets: false },
  parse: parseLogParams,
  async run(params: LogParams, context: ActionContext): Promise<LogOutput> {
    context.logger[params.level](
      { runId: context.runId, rule: context.rule, step: context.stepId },
      params.message,
    );
    return { message: params.message };
  },
};
