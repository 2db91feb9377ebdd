import Type, { type Static, type TSchema } from 'typebox';

/**
 * The JSON Schema of a rulebook file: the one description of the format, used by the YAML loader,
 * published as `schemas/rulebook.schema.json` for editors (`npm run gen`, with the built-in actions),
 * and documented in docs/rules.md. A step's parameters are described by its action (`Action.params`):
 * the schema is made from the actions a Reflex offers.
 *
 * Values that templates may fill at run time (`${{ ... }}`) are typed loosely here; the action checks
 * them once rendered. Keys are strict everywhere, because a misspelt key is the most common mistake.
 */

/** The actions a rulebook schema is made for: each kind with the schema of its parameters, in order. */
export interface ActionCatalog {
  kinds(): string[];
  get(kind: string): { readonly params: TSchema } | undefined;
}

const description = (text: string) => ({ description: text });

const Duration = Type.Union(
  [Type.String({ pattern: '^(\\d+(\\.\\d+)?(ms|s|m|h|d))+$|^\\d+$' }), Type.Integer({ minimum: 0 })],
  {
    ...description('A duration: 500ms, 10s, 5m, 1h30m, 2d, or a number of milliseconds.'),
  },
);

const Secret = Type.Union(
  [
    Type.String({ minLength: 1, ...description('The secret itself (prefer `{ env: NAME }`).') }),
    Type.Object(
      {
        env: Type.String({
          minLength: 1,
          ...description('Name of the environment variable that holds the secret.'),
        }),
      },
      { additionalProperties: false },
    ),
  ],
  description('A secret: read from an environment variable with `{ env: NAME }`, or given inline.'),
);

const HeaderAttribute = Type.Object(
  {
    header: Type.String({ minLength: 1, ...description('The request header to read the value from.') }),
    prefix: Type.Optional(Type.String(description('Prepended to the header value, e.g. `com.github.`.'))),
    default: Type.Optional(Type.String(description('Used when the header is absent.'))),
  },
  { additionalProperties: false },
);

const Attribute = Type.Union([Type.String({ minLength: 1 }), HeaderAttribute]);

/** A provider's timestamped signature scheme: the secret and how far from now a signature may be. */
const timestampedAuth = (what: string) =>
  Type.Object(
    {
      secret: Secret,
      replayWindow: Type.Optional(
        Type.Union([Duration], {
          ...description(
            "A delivery signed further than this from Reflex's clock (either way) is refused as a possible replay. @default 5m",
          ),
        }),
      ),
    },
    { additionalProperties: false, ...description(what) },
  );

/** Webhook names: letters, digits, `_` and `-`, so that `/hooks/<name>` needs no escaping. */
export const webhookNamePattern = /^[A-Za-z0-9_-]+$/;

const Webhook = Type.Object(
  {
    type: Attribute,
    source: Type.String({
      minLength: 1,
      ...description('The CloudEvents `source` of events from this webhook.'),
    }),
    id: Type.Optional(
      Type.Object(
        { header: Type.String({ minLength: 1, ...description('e.g. X-GitHub-Delivery') }) },
        {
          additionalProperties: false,
          ...description('Take the event id from a header; a fresh id is made when absent.'),
        },
      ),
    ),
    subject: Type.Optional(Attribute),
    auth: Type.Optional(
      Type.Object(
        {
          token: Type.Optional(
            Type.Object(
              {
                secret: Secret,
                header: Type.Optional(
                  Type.String({ minLength: 1, ...description('@default Authorization') }),
                ),
                prefix: Type.Optional(Type.String(description('@default "Bearer "'))),
              },
              { additionalProperties: false, ...description('A static token the sender puts in a header.') },
            ),
          ),
          hmac: Type.Optional(
            Type.Object(
              {
                secret: Secret,
                header: Type.Optional(
                  Type.String({ minLength: 1, ...description('@default X-Hub-Signature-256') }),
                ),
                prefix: Type.Optional(Type.String(description('@default "sha256="'))),
              },
              {
                additionalProperties: false,
                ...description('An HMAC-SHA256 signature of the raw body, hex-encoded (GitHub style).'),
              },
            ),
          ),
          stripe: Type.Optional(
            timestampedAuth(
              "Stripe's `Stripe-Signature: t=…,v1=…`; the secret is the endpoint's signing secret (`whsec_…`).",
            ),
          ),
          slack: Type.Optional(
            timestampedAuth(
              "Slack's `X-Slack-Request-Timestamp` and `X-Slack-Signature: v0=…`; the secret is the app's signing secret.",
            ),
          ),
          standard: Type.Optional(
            timestampedAuth(
              'Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,…`); the secret is `whsec_<base64>`.',
            ),
          ),
        },
        { additionalProperties: false, minProperties: 1, maxProperties: 1 },
      ),
    ),
  },
  {
    additionalProperties: false,
    ...description('A webhook: `POST /hooks/<name>` turns its JSON body into an event.'),
  },
);

const Retry = Type.Object(
  {
    attempts: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100, ...description('Tries in all. @default 3') }),
    ),
    backoff: Type.Optional(
      Type.Union(
        [Duration],
        description(
          'Base delay: the wait before try n is between half and all of backoff × 2^(n-2), capped at maxDelay. @default 1s',
        ),
      ),
    ),
    maxDelay: Type.Optional(Type.Union([Duration], description('Longest delay between tries. @default 1m'))),
  },
  { additionalProperties: false },
);

/** The keys a step may carry besides its action. */
export const stepOptionKeys = ['id', 'timeout', 'retry'] as const;

const Pattern = Type.Record(
  Type.String(),
  Type.Unknown(),
  description('An EventBridge event pattern over the CloudEvent.'),
);
const Condition = Type.String({
  minLength: 1,
  ...description('A CEL condition over event, events, facts, vars, now.'),
});
const KeyExpression = Type.String({
  minLength: 1,
  ...description('A CEL expression whose value groups events (e.g. event.data.host). Default: one group.'),
});
const Identifier = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' });

const SubCondition = Type.Object(
  {
    name: Type.Optional(Identifier),
    pattern: Type.Optional(Pattern),
    if: Type.Optional(Condition),
    by: Type.Optional(KeyExpression),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    ...description('One event of a correlation; later ones read it as `events.<name>`.'),
  },
);

const When = Type.Object(
  {
    pattern: Type.Optional(Pattern),
    if: Type.Optional(Condition),
    all: Type.Optional(
      Type.Array(SubCondition, {
        minItems: 2,
        ...description('Every one matched by distinct events, in any order.'),
      }),
    ),
    any: Type.Optional(Type.Array(SubCondition, { minItems: 1, ...description('Any one of them.') })),
    sequence: Type.Optional(
      Type.Array(SubCondition, { minItems: 2, ...description('All of them, in this order.') }),
    ),
    absence: Type.Optional(
      Type.Object(
        { after: SubCondition, expect: SubCondition, within: Duration },
        {
          additionalProperties: false,
          ...description('`after` happened and no `expect` followed within the time: fires at the deadline.'),
        },
      ),
    ),
    count: Type.Optional(
      Type.Object(
        {
          name: Type.Optional(Identifier),
          pattern: Type.Optional(Pattern),
          if: Type.Optional(Condition),
          by: Type.Optional(KeyExpression),
          atLeast: Type.Integer({ minimum: 1 }),
          within: Duration,
        },
        {
          additionalProperties: false,
          ...description('At least N matching events within a sliding window.'),
        },
      ),
    ),
    within: Type.Optional(Type.Union([Duration], description('The window of an all/sequence correlation.'))),
    by: Type.Optional(KeyExpression),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    ...description('What makes the rule fire: one event (pattern/if), or a correlation of several.'),
  },
);

const Window = (what: string) =>
  Type.Object(
    { key: Type.Optional(KeyExpression), window: Duration },
    { additionalProperties: false, ...description(what) },
  );

/** A step: one action of the catalog with its parameters, and the step's options. */
function stepSchema(actions: ActionCatalog) {
  const kinds = actions.kinds();
  return Type.Object(
    {
      id: Type.Optional(
        Type.String({
          pattern: '^[A-Za-z_][A-Za-z0-9_-]*$',
          ...description('Names the step; later steps read `steps.<id>.output`.'),
        }),
      ),
      timeout: Type.Optional(Type.Union([Duration], description('@default 30s'))),
      retry: Type.Optional(Retry),
      ...Object.fromEntries(kinds.map((kind) => [kind, Type.Optional(actions.get(kind)!.params)])),
    },
    {
      additionalProperties: false,
      // Exactly one action per step. The loader turns a failure here into a message that lists the kinds.
      oneOf: kinds.map((kind) => ({ required: [kind] })),
      ...description(`One action (${kinds.join(', ')}) with its options.`),
    },
  );
}

/** A rule, its steps made of the catalog's actions. */
function ruleSchema(actions: ActionCatalog) {
  return Type.Object(
    {
      name: Type.String({ minLength: 1, ...description('Unique among all loaded rules.') }),
      description: Type.Optional(Type.String()),
      enabled: Type.Optional(Type.Boolean(description('@default true'))),
      when: When,
      dedupe: Type.Optional(Window('An event whose key was accepted less than `window` ago is dropped.')),
      throttle: Type.Optional(
        Window('The first firing per key passes; the rest are dropped for `window` after it.'),
      ),
      debounce: Type.Optional(
        Type.Object(
          {
            key: Type.Optional(KeyExpression),
            quiet: Duration,
            maxWait: Type.Optional(Duration),
            pass: Type.Optional(
              Type.Union(
                [Type.Literal('first'), Type.Literal('last'), Type.Literal('all')],
                description('@default last'),
              ),
            ),
          },
          { additionalProperties: false, ...description('Fire once the key has been quiet for `quiet`.') },
        ),
      ),
      rateLimit: Type.Optional(
        Type.Object(
          {
            key: Type.Optional(KeyExpression),
            max: Type.Integer({ minimum: 1 }),
            per: Duration,
            excess: Type.Optional(
              Type.Union([Type.Literal('drop'), Type.Literal('delay')], description('@default drop')),
            ),
            maxQueue: Type.Optional(Type.Integer({ minimum: 1, ...description('@default 1000') })),
          },
          { additionalProperties: false, ...description('At most `max` firings per key in any `per`.') },
        ),
      ),
      batch: Type.Optional(
        Type.Object(
          { key: Type.Optional(KeyExpression), size: Type.Integer({ minimum: 1 }), window: Duration },
          {
            additionalProperties: false,
            ...description('`size` firings, or what came within `window`, as one run.'),
          },
        ),
      ),
      concurrency: Type.Optional(
        Type.Object(
          {
            key: Type.Optional(KeyExpression),
            max: Type.Optional(Type.Integer({ minimum: 1, ...description('@default 1') })),
          },
          {
            additionalProperties: false,
            ...description('At most `max` runs per key at once; the rest wait in order.'),
          },
        ),
      ),
      ttl: Type.Optional(
        Type.Union(
          [Duration],
          description('How long a partial match without `within` lives. @default defaults.ttl or 24h'),
        ),
      ),
      then: Type.Array(stepSchema(actions), { minItems: 1 }),
      stop: Type.Optional(
        Type.Boolean(description('Later rules do not see an event this rule fired on. @default false')),
      ),
    },
    { additionalProperties: false },
  );
}

/**
 * The JSON Schema of rulebook files whose steps use the actions of `actions`.
 * @example createRulebookSchema(createActionRegistry()) // what schemas/rulebook.schema.json holds
 */
export function createRulebookSchema(actions: ActionCatalog) {
  return Type.Object(
    {
      $schema: Type.Optional(Type.String()),
      name: Type.Optional(Type.String(description('A name for people reading the file.'))),
      vars: Type.Optional(
        Type.Record(Type.String(), Type.Unknown(), description('Values readable as `vars.<name>`.')),
      ),
      defaults: Type.Optional(
        Type.Object(
          { timeout: Type.Optional(Duration), retry: Type.Optional(Retry), ttl: Type.Optional(Duration) },
          {
            additionalProperties: false,
            ...description('Step options, and the partial-match ttl, that apply to every rule of this file.'),
          },
        ),
      ),
      // Without `additionalProperties: false` a name outside the pattern would be accepted, its value unchecked.
      webhooks: Type.Optional(
        Type.Record(Type.String({ pattern: webhookNamePattern.source }), Webhook, {
          additionalProperties: false,
        }),
      ),
      rules: Type.Array(ruleSchema(actions)),
    },
    {
      additionalProperties: false,
      $id: 'https://reflex.dev/schemas/rulebook.schema.json',
      title: 'Reflex rulebook',
    },
  );
}

/** A rulebook file as written, after YAML parsing and schema validation. */
export type RulebookDocument = Static<ReturnType<typeof createRulebookSchema>>;
export type StepDocument = Static<ReturnType<typeof stepSchema>>;
export type RuleDocument = Static<ReturnType<typeof ruleSchema>>;
export type SubConditionDocument = Static<typeof SubCondition>;
