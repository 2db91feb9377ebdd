import { shortText, toBoundedJson } from './json-value.js';

/**
 * The registry of Reflex's coded errors.
 *
 * Every error a user can meet has a stable code `REFLEX_ERR_<AREA>_<WHAT>`, an HTTP status and a message
 * that says what happened and what to do about it. `docs/errors.md` is generated from this registry
 * (`npm run gen`), and a test checks that every key equals its code. A code is never reused for another
 * meaning: retire it instead.
 *
 * Messages are templates: `{name}` is replaced by the parameter of that name.
 */
export const errorRegistry = {
  // --- events (ingest) ---
  REFLEX_ERR_EVENT_INVALID_JSON: {
    code: 'REFLEX_ERR_EVENT_INVALID_JSON',
    status: 400,
    message: 'The request body is not valid JSON: {reason}. To fix: send a JSON document.',
  },
  REFLEX_ERR_EVENT_MISSING_ATTRIBUTE: {
    code: 'REFLEX_ERR_EVENT_MISSING_ATTRIBUTE',
    status: 400,
    message:
      'The event has no `{attribute}` attribute{where}. To fix: CloudEvents 1.0 requires `specversion`, `id`, `source` and `type` as non-empty strings.',
  },
  REFLEX_ERR_EVENT_INVALID_ATTRIBUTE: {
    code: 'REFLEX_ERR_EVENT_INVALID_ATTRIBUTE',
    status: 400,
    message: 'The event attribute `{attribute}` is invalid{where}: {reason}. To fix: {fix}',
  },
  REFLEX_ERR_EVENT_NOT_OBJECT: {
    code: 'REFLEX_ERR_EVENT_NOT_OBJECT',
    status: 400,
    message:
      'Expected {expected}, got {got}. To fix: send a CloudEvent as a JSON object (a batch as a JSON array).',
  },
  REFLEX_ERR_EVENT_TOO_LARGE: {
    code: 'REFLEX_ERR_EVENT_TOO_LARGE',
    status: 413,
    message:
      'The request body is larger than the limit of {limit} bytes. To fix: send a smaller event, or raise `--body-limit` (REFLEX_BODY_LIMIT).',
  },
  REFLEX_ERR_EVENT_TOO_DEEP: {
    code: 'REFLEX_ERR_EVENT_TOO_DEEP',
    status: 400,
    message:
      'The event is nested deeper than the limit of {limit} levels. To fix: flatten the payload, or raise `--max-depth` (REFLEX_MAX_DEPTH).',
  },
  REFLEX_ERR_EVENT_EMPTY_BATCH: {
    code: 'REFLEX_ERR_EVENT_EMPTY_BATCH',
    status: 400,
    message: 'The batch holds no events. To fix: send at least one CloudEvent in the JSON array.',
  },
  REFLEX_ERR_EVENT_NUMBER_OUT_OF_RANGE: {
    code: 'REFLEX_ERR_EVENT_NUMBER_OUT_OF_RANGE',
    status: 400,
    message:
      'The number at `{path}` is beyond the range of a 64-bit float (about ±1.8e308), so it cannot be kept as sent. To fix: send it as a string, or in other units.',
  },
  REFLEX_ERR_EVENT_RESERVED: {
    code: 'REFLEX_ERR_EVENT_RESERVED',
    status: 400,
    message:
      'The event{where} has {attribute} {value}, which is reserved for the events Reflex makes itself (run outcomes, timers, fact changes): taken from outside, such an event could pose as one of them. To fix: {fix}',
  },
  REFLEX_ERR_EVENT_UNSUPPORTED_MEDIA_TYPE: {
    code: 'REFLEX_ERR_EVENT_UNSUPPORTED_MEDIA_TYPE',
    status: 415,
    message:
      'Cannot read an event from content type `{contentType}` without {attributes}. To fix: send {structured}, or binary mode with {required}.',
  },
  REFLEX_ERR_EVENT_NOT_FOUND: {
    code: 'REFLEX_ERR_EVENT_NOT_FOUND',
    status: 404,
    message: 'No event {what} is in the log. To fix: list events with `reflex events ls`.',
  },
  REFLEX_ERR_INGEST_OVERLOADED: {
    code: 'REFLEX_ERR_INGEST_OVERLOADED',
    status: 503,
    message:
      'Reflex is taking in more events than it can store right now ({pending} waiting). To fix: retry after the time in the Retry-After header.',
  },
  REFLEX_ERR_INGEST_STOPPED: {
    code: 'REFLEX_ERR_INGEST_STOPPED',
    status: 503,
    message: 'Reflex is shutting down and takes no more events. To fix: retry against a running instance.',
  },

  // --- sources ---
  REFLEX_ERR_SOURCE_MESSAGE_TOO_LARGE: {
    code: 'REFLEX_ERR_SOURCE_MESSAGE_TOO_LARGE',
    status: 413,
    message:
      "The message is {size} bytes, more than the limit of {limit} bytes. To fix: publish smaller messages, or raise the source's `maxMessageBytes`.",
  },
  REFLEX_ERR_SOURCE_MESSAGE_UNMAPPED: {
    code: 'REFLEX_ERR_SOURCE_MESSAGE_UNMAPPED',
    status: 400,
    message: 'The message gives no {attribute}: {reason}. To fix: {fix}',
  },
  REFLEX_ERR_SOURCE_UNREACHABLE: {
    code: 'REFLEX_ERR_SOURCE_UNREACHABLE',
    status: 503,
    message:
      'The {kind} source `{name}` cannot reach {target}: {reason}. Reflex keeps trying with backoff; nothing acknowledged is lost meanwhile. To fix: check that the server runs and that the address and credentials are right.',
  },
  REFLEX_ERR_SOURCE_REFUSED: {
    code: 'REFLEX_ERR_SOURCE_REFUSED',
    status: 400,
    message: 'The {kind} source `{name}` cannot run: {reason}. Reflex does not retry this. To fix: {fix}',
  },
  REFLEX_ERR_SOURCE_UNKNOWN_KIND: {
    code: 'REFLEX_ERR_SOURCE_UNKNOWN_KIND',
    status: 400,
    message:
      'The source `{name}` is of kind `{kind}`, which this Reflex cannot run (it knows {kinds}). To fix: use one of the kinds it knows, or register the kind before loading the rulebook.',
  },

  // --- webhooks ---
  REFLEX_ERR_WEBHOOK_NOT_FOUND: {
    code: 'REFLEX_ERR_WEBHOOK_NOT_FOUND',
    status: 404,
    message:
      'No webhook named `{name}` is declared. To fix: declare it under `webhooks:` in a loaded rulebook.',
  },
  REFLEX_ERR_WEBHOOK_UNAUTHORIZED: {
    code: 'REFLEX_ERR_WEBHOOK_UNAUTHORIZED',
    status: 401,
    message: 'The request to webhook `{name}` is not authorized: {reason}. To fix: {fix}',
  },
  REFLEX_ERR_WEBHOOK_SECRET_MISSING: {
    code: 'REFLEX_ERR_WEBHOOK_SECRET_MISSING',
    status: 500,
    message:
      'Webhook `{name}` takes its secret from the environment variable `{env}`, which is not set. To fix: set {env} in the environment of Reflex and restart it (a reload does not change the environment).',
  },
  REFLEX_ERR_WEBHOOK_MISSING_HEADER: {
    code: 'REFLEX_ERR_WEBHOOK_MISSING_HEADER',
    status: 400,
    message:
      'The request to webhook `{name}` has no `{header}` header, from which the event takes its `{attribute}`. To fix: send the header, or give the webhook a `default` for `{attribute}`.',
  },
  REFLEX_ERR_WEBHOOK_OUTSIDE_REPLAY_WINDOW: {
    code: 'REFLEX_ERR_WEBHOOK_OUTSIDE_REPLAY_WINDOW',
    status: 401,
    message:
      "The request to webhook `{name}` was signed {age} {when} than Reflex's clock, outside its replay window of {window}, so it may be a replayed delivery. To fix: deliver requests as they are signed; if the clocks of the sender and of Reflex disagree, synchronise them (NTP), or widen `replayWindow` in the webhook's `auth`.",
  },

  // --- API ---
  REFLEX_ERR_API_UNAUTHORIZED: {
    code: 'REFLEX_ERR_API_UNAUTHORIZED',
    status: 401,
    message:
      'This API needs a bearer token. To fix: send `Authorization: Bearer <token>` with the token set in REFLEX_API_TOKEN.',
  },
  REFLEX_ERR_API_INVALID_QUERY: {
    code: 'REFLEX_ERR_API_INVALID_QUERY',
    status: 400,
    message: 'The query parameter `{param}` is invalid: {reason}. To fix: {fix}',
  },
  REFLEX_ERR_API_INVALID_BODY: {
    code: 'REFLEX_ERR_API_INVALID_BODY',
    status: 400,
    message: 'The request body is invalid: {reason}. To fix: {fix}',
  },
  REFLEX_ERR_API_NOT_FOUND: {
    code: 'REFLEX_ERR_API_NOT_FOUND',
    status: 404,
    message: 'No route {method} {url}. To fix: see docs/api.md for the routes.',
  },
  REFLEX_ERR_API_METHOD_NOT_ALLOWED: {
    code: 'REFLEX_ERR_API_METHOD_NOT_ALLOWED',
    status: 405,
    message: 'The route {url} does not take {method}. To fix: use {allowed} (the `Allow` header lists them).',
  },
  REFLEX_ERR_API_HOST_NOT_ALLOWED: {
    code: 'REFLEX_ERR_API_HOST_NOT_ALLOWED',
    status: 403,
    message:
      'The request is addressed to the host {host}, which this Reflex does not answer to (it answers to {allowed}); a web page could otherwise reach it through a DNS name it controls. To fix: address Reflex by one of those names, or add this one with `--allowed-hosts` (REFLEX_ALLOWED_HOSTS).',
  },
  REFLEX_ERR_API_ORIGIN_NOT_ALLOWED: {
    code: 'REFLEX_ERR_API_ORIGIN_NOT_ALLOWED',
    status: 403,
    message:
      'A {method} from the web page at {origin} is refused: a page of another site must not change anything in Reflex through a browser. To fix: send the request from a program or the command line (they send no `Origin` header), not from a web page.',
  },
  REFLEX_ERR_API_REQUEST_TIMEOUT: {
    code: 'REFLEX_ERR_API_REQUEST_TIMEOUT',
    status: 408,
    message:
      'The request did not arrive in time (headers within {headersTimeout}, the whole request within {requestTimeout}), so Reflex closed the connection. To fix: send each request without pauses, or raise `--headers-timeout` / `--request-timeout`.',
  },
  REFLEX_ERR_API_HEADERS_TOO_LARGE: {
    code: 'REFLEX_ERR_API_HEADERS_TOO_LARGE',
    status: 431,
    message:
      'The request headers are larger than the limit of {limit} bytes. To fix: send fewer or shorter headers.',
  },
  REFLEX_ERR_API_URL_TOO_LONG: {
    code: 'REFLEX_ERR_API_URL_TOO_LONG',
    status: 414,
    message:
      'A path segment of {url} is longer than the limit of {limit} characters. To fix: look the event up by its seq, or list events with a filter instead.',
  },
  REFLEX_ERR_API_EXPECTATION_FAILED: {
    code: 'REFLEX_ERR_API_EXPECTATION_FAILED',
    status: 417,
    message:
      'The request asks for `Expect: {expect}`, which Reflex does not support. To fix: send it without `Expect` (or with `Expect: 100-continue`).',
  },
  REFLEX_ERR_API_MALFORMED_REQUEST: {
    code: 'REFLEX_ERR_API_MALFORMED_REQUEST',
    status: 400,
    message: 'The HTTP request is malformed: {reason}. To fix: {fix}',
  },
  REFLEX_ERR_API_UNREACHABLE: {
    code: 'REFLEX_ERR_API_UNREACHABLE',
    status: 502,
    message:
      'Cannot reach Reflex at {url}: {reason}. To fix: start it with `reflex start`, or point `--url` (REFLEX_URL) at a running instance.',
  },

  // --- patterns ---
  REFLEX_ERR_PATTERN_INVALID: {
    code: 'REFLEX_ERR_PATTERN_INVALID',
    status: 400,
    message: 'The event pattern is invalid at `{path}`: {reason}. To fix: {fix}',
  },
  REFLEX_ERR_PATTERN_TOO_COMPLEX: {
    code: 'REFLEX_ERR_PATTERN_TOO_COMPLEX',
    status: 400,
    message:
      'The event pattern{rule} is too complex to match efficiently at `{path}`: {reason}. To fix: {fix}',
  },
  REFLEX_ERR_PATTERN_TEST_TOO_LARGE: {
    code: 'REFLEX_ERR_PATTERN_TEST_TOO_LARGE',
    status: 400,
    message:
      'Testing this pattern against this event needs {work} units of work (for each `$or` alternative of the pattern, the values the event holds at its fields), more than the {limit} allowed. To fix: test the pattern on a smaller event (only the fields the pattern names matter), or with fewer `$or` alternatives.',
  },

  // --- CEL conditions and templates ---
  REFLEX_ERR_CONDITION_INVALID: {
    code: 'REFLEX_ERR_CONDITION_INVALID',
    status: 400,
    message: 'The CEL expression `{expression}` is invalid: {reason}. To fix: {fix}.',
  },
  REFLEX_ERR_CONDITION_FAILED: {
    code: 'REFLEX_ERR_CONDITION_FAILED',
    status: 500,
    message: 'The CEL expression `{expression}` failed: {reason}. To fix: {fix}.',
  },
  REFLEX_ERR_CONDITION_BUDGET_EXCEEDED: {
    code: 'REFLEX_ERR_CONDITION_BUDGET_EXCEEDED',
    status: 500,
    message:
      'The CEL expression `{expression}` was stopped: {reason}. To fix: make it do less work per event: a macro nested in another over long lists costs the product of their sizes, and building long text or lists, or matching regular expressions over long text, costs their length (see docs/rules.md#limits).',
  },
  REFLEX_ERR_CONDITION_NOT_BOOLEAN: {
    code: 'REFLEX_ERR_CONDITION_NOT_BOOLEAN',
    status: 500,
    message:
      'The condition `{expression}` gave {got}, not a boolean. To fix: make the `if` expression return true or false.',
  },
  REFLEX_ERR_TEMPLATE_INVALID: {
    code: 'REFLEX_ERR_TEMPLATE_INVALID',
    status: 400,
    message: 'The template `{template}` is invalid: {reason}. To fix: write `${{ <CEL expression> }}`.',
  },
  REFLEX_ERR_TEMPLATE_FAILED: {
    code: 'REFLEX_ERR_TEMPLATE_FAILED',
    status: 500,
    message: 'The template `{template}` failed: {reason}. To fix: {fix}.',
  },
  REFLEX_ERR_TEMPLATE_URL_HOST: {
    code: 'REFLEX_ERR_TEMPLATE_URL_HOST',
    status: 400,
    message:
      'The URL template `{template}` would let data from outside the rulebook choose where the request goes: {reason}. To fix: write the scheme and host in the rulebook and end the host with `/` before the first `${{ }}` (or take them from `vars` or `secrets`), or list the hosts the step may call in `hosts`.',
  },
  REFLEX_ERR_TEMPLATE_SECRET_NOT_ALLOWED: {
    code: 'REFLEX_ERR_TEMPLATE_SECRET_NOT_ALLOWED',
    status: 400,
    message:
      'The `{action}` action cannot read the secret `{name}`: what it is given is stored ({where}), and the secret would be stored with it. To fix: use secrets in `http` and `exec` steps only, which send them out without storing them.',
  },
  REFLEX_ERR_SECRET_MISSING: {
    code: 'REFLEX_ERR_SECRET_MISSING',
    status: 500,
    message:
      'The step reads the secret `{name}`, which is neither in the secrets file nor in the environment of Reflex. To fix: add `{name}` to the file given with `--secrets` (REFLEX_SECRETS; it is read again on SIGHUP), or set the environment variable `{name}` and restart Reflex.',
  },

  // --- rulebooks ---
  REFLEX_ERR_RULEBOOK_INVALID: {
    code: 'REFLEX_ERR_RULEBOOK_INVALID',
    status: 400,
    message:
      'The rulebook has {count} problem(s); fix each at the file:line:column given, then reload:\n{problems}',
  },
  REFLEX_ERR_RULEBOOK_NOT_FOUND: {
    code: 'REFLEX_ERR_RULEBOOK_NOT_FOUND',
    status: 400,
    message:
      'No rulebook at `{path}`. To fix: give the path of a .yaml/.yml file or of a folder holding some.',
  },

  // --- rule tests ---
  REFLEX_ERR_RULETEST_INVALID: {
    code: 'REFLEX_ERR_RULETEST_INVALID',
    status: 400,
    message:
      'The rule tests have {count} problem(s); fix each at the file:line:column given, then run them again:\n{problems}',
  },
  REFLEX_ERR_RULETEST_SIMULATED_FAILURE: {
    code: 'REFLEX_ERR_RULETEST_SIMULATED_FAILURE',
    status: 500,
    message:
      'Step `{step}` failed because the rule test said so: {reason}. To fix: nothing; this is the failure the case asks for in `outcomes`.',
  },
  REFLEX_ERR_RULETEST_NOT_FOUND: {
    code: 'REFLEX_ERR_RULETEST_NOT_FOUND',
    status: 400,
    message:
      'No rule tests at `{path}`. To fix: give a `*.test.yaml`/`*.test.yml` file, or a folder with such files below it (see docs/testing.md).',
  },

  // --- facts ---
  REFLEX_ERR_FACT_NOT_FOUND: {
    code: 'REFLEX_ERR_FACT_NOT_FOUND',
    status: 404,
    message:
      'No fact named `{name}` is set. To fix: list facts with GET /api/v1/facts; set one with PUT /api/v1/facts/{name}.',
  },

  // --- runs and actions ---
  REFLEX_ERR_RUN_NOT_FOUND: {
    code: 'REFLEX_ERR_RUN_NOT_FOUND',
    status: 404,
    message: 'No run `{id}`. To fix: list runs with `reflex runs ls`.',
  },
  REFLEX_ERR_RUN_INTERRUPTED: {
    code: 'REFLEX_ERR_RUN_INTERRUPTED',
    status: 503,
    message:
      'The step was interrupted because Reflex is stopping. Nothing to fix: it runs again (with the same idempotency key) when Reflex restarts.',
  },
  REFLEX_ERR_RUN_STEP_CRASHED: {
    code: 'REFLEX_ERR_RUN_STEP_CRASHED',
    status: 500,
    message:
      'Step `{step}` of run `{id}` failed inside Reflex, not in its action: {reason}. The attempt is recorded as failed and the step is retried under its `retry` policy. To fix: this is a bug in Reflex or in a plugin action; report it with this message.',
  },
  REFLEX_ERR_RUN_ABANDONED: {
    code: 'REFLEX_ERR_RUN_ABANDONED',
    status: 500,
    message:
      'Run `{id}` was claimed {claims} times for step `{step}`, and each time the process executing it stopped (killed, out of memory, a crash of Node.js or of a native module) before the attempt was recorded; it is failed rather than tried forever. To fix: find out why Reflex stops during this step (its log and the system log, e.g. out-of-memory kills, around the times of the claims), fix that, then do the work again with a new event; raise `--max-claims` only if the step is expected to outlive several restarts.',
  },
  REFLEX_ERR_ACTION_TIMEOUT: {
    code: 'REFLEX_ERR_ACTION_TIMEOUT',
    status: 504,
    message:
      'The `{action}` action did not finish within {timeout}. To fix: raise its `timeout`, or make the target faster.',
  },
  REFLEX_ERR_ACTION_HTTP_STATUS: {
    code: 'REFLEX_ERR_ACTION_HTTP_STATUS',
    status: 502,
    message:
      '{method} {url} answered {status}, expected {expected}. To fix: check the target, or set `expect` on the action.',
  },
  REFLEX_ERR_ACTION_HTTP_UNREACHABLE: {
    code: 'REFLEX_ERR_ACTION_HTTP_UNREACHABLE',
    status: 502,
    message: '{method} {url} failed: {reason}. To fix: check that the target is up and the URL is right.',
  },
  REFLEX_ERR_ACTION_HTTP_BLOCKED: {
    code: 'REFLEX_ERR_ACTION_HTTP_BLOCKED',
    status: 403,
    message:
      '{method} {url} was not sent: {reason}. To fix: call another address; if Reflex is meant to reach this one, start it with a `--http-deny` (REFLEX_HTTP_DENY) list that leaves it out.',
  },
  REFLEX_ERR_ACTION_HTTP_HOST_NOT_ALLOWED: {
    code: 'REFLEX_ERR_ACTION_HTTP_HOST_NOT_ALLOWED',
    status: 403,
    message:
      "{method} {url} was not sent: the host `{host}` is not in the step's `hosts` ({hosts}). To fix: add the host to `hosts` if the step may call it; otherwise the event asked for a host it must not reach.",
  },
  REFLEX_ERR_ACTION_PUBLISH_FAILED: {
    code: 'REFLEX_ERR_ACTION_PUBLISH_FAILED',
    status: 502,
    message:
      'Publishing to {target} failed: {reason}. To fix: check that the broker is up, and that the address, credentials and destination are right.',
  },
  REFLEX_ERR_ACTION_EXEC_FAILED: {
    code: 'REFLEX_ERR_ACTION_EXEC_FAILED',
    status: 502,
    message: '`{command}` {reason}. To fix: see the captured output in `reflex runs show`.',
  },
  REFLEX_ERR_ACTION_EXEC_NOT_FOUND: {
    code: 'REFLEX_ERR_ACTION_EXEC_NOT_FOUND',
    status: 502,
    message: 'Cannot start `{command}`: {reason}. To fix: give an absolute path or a command on the PATH.',
  },
  REFLEX_ERR_ACTION_INVALID_PARAMS: {
    code: 'REFLEX_ERR_ACTION_INVALID_PARAMS',
    status: 400,
    message: 'The `{action}` action got invalid parameters: {reason}. To fix: {fix}',
  },
  REFLEX_ERR_ACTION_OUTPUT_INVALID: {
    code: 'REFLEX_ERR_ACTION_OUTPUT_INVALID',
    status: 502,
    message:
      'The `{action}` action {what} that Reflex cannot store: {reason}. To fix: make it plain JSON data (no cycles, BigInts, or getters that throw) nested at most {maxDepth} levels deep and at most {maxBytes} bytes long; for `exec`, lower `maxOutput`.',
  },
  REFLEX_ERR_ACTION_UNKNOWN: {
    code: 'REFLEX_ERR_ACTION_UNKNOWN',
    status: 400,
    message: 'There is no `{action}` action. To fix: use one of {known}.',
  },

  // --- store ---
  REFLEX_ERR_STORE_LOCKED: {
    code: 'REFLEX_ERR_STORE_LOCKED',
    status: 500,
    message:
      'The data directory `{dir}` is in use by another Reflex process (pid {pid}). To fix: stop that process, or start this one with another `--data`.',
  },
  REFLEX_ERR_STORE_NEWER_SCHEMA: {
    code: 'REFLEX_ERR_STORE_NEWER_SCHEMA',
    status: 500,
    message:
      'The database at `{path}` has schema version {found}, newer than this Reflex knows ({known}). To fix: run a newer Reflex, or use another `--data`.',
  },
  REFLEX_ERR_STORE_OLDER_SCHEMA: {
    code: 'REFLEX_ERR_STORE_OLDER_SCHEMA',
    status: 500,
    message:
      'The database at `{path}` has schema version {found}, older than this Reflex reads ({known}), and it is open for reading only. To fix: start Reflex once on this `--data` so it upgrades the database.',
  },
  REFLEX_ERR_STORE_NOT_FOUND: {
    code: 'REFLEX_ERR_STORE_NOT_FOUND',
    status: 500,
    message:
      'No Reflex database at `{path}`. To fix: point `--data` at the data directory of a Reflex instance, or start Reflex there once.',
  },
  REFLEX_ERR_STORE_SYNC_FAILED: {
    code: 'REFLEX_ERR_STORE_SYNC_FAILED',
    status: 503,
    message:
      'The event log at `{path}` could not be synced to disk ({reason}), so whether the last writes are stored is unknown; Reflex accepts no more events and stops. To fix: check the disk (free space, the kernel log), then start Reflex again; senders resend what was refused.',
  },
  REFLEX_ERR_STORE_DISK_FULL: {
    code: 'REFLEX_ERR_STORE_DISK_FULL',
    status: 503,
    message:
      'The disk that holds `{path}` is full, so Reflex cannot store anything more; what failed was not stored. To fix: free space on that disk, or move the data directory to a larger one. A running Reflex takes writes again by itself once there is room (senders retry after the time in the Retry-After header); one that was starting must be started again.',
  },
  REFLEX_ERR_STORE_CORRUPT: {
    code: 'REFLEX_ERR_STORE_CORRUPT',
    status: 500,
    message:
      'The database `{path}` is damaged: {reason}. To fix: stop Reflex and restore the data directory from a backup (docs/operations.md#backups); or, to start empty, move the data directory (or the damaged file) away and start again.',
  },
  REFLEX_ERR_STORE_DATA_DIR_INVALID: {
    code: 'REFLEX_ERR_STORE_DATA_DIR_INVALID',
    status: 400,
    message: 'The data directory `{dir}` cannot be used: {reason}. To fix: {fix}',
  },
  REFLEX_ERR_STORE_DUPLICATE_RUN: {
    code: 'REFLEX_ERR_STORE_DUPLICATE_RUN',
    status: 500,
    message:
      'A run of rule `{rule}` for the event at seq {seq} already exists, so the dispatch was not recorded. To fix: nothing to do on your side; this is a bug in Reflex (a match must never be doubled), please report it.',
  },

  REFLEX_ERR_STORE_UNREACHABLE: {
    code: 'REFLEX_ERR_STORE_UNREACHABLE',
    status: 503,
    message:
      'Cannot use the PostgreSQL database `{database}` at {host}:{port}: {reason}. To fix: start PostgreSQL there (or correct host and port in `--store`), create the database, and let the user in the URL connect to it (pg_hba.conf, password); a running Reflex takes writes again by itself once the server answers.',
  },
  REFLEX_ERR_STORE_SCHEMA_IN_USE: {
    code: 'REFLEX_ERR_STORE_SCHEMA_IN_USE',
    status: 500,
    message:
      'The schema `{schema}` of `{url}` is in use by another Reflex process. To fix: stop that process, or give this one its own schema (`?schema=` in `--store`).',
  },

  // --- anything else ---
  REFLEX_ERR_INTERNAL_UNEXPECTED: {
    code: 'REFLEX_ERR_INTERNAL_UNEXPECTED',
    status: 500,
    message:
      'An unexpected error happened: {reason}. To fix: this is a bug in Reflex or in a plugin; report it with the log line that carries this message.',
  },
  REFLEX_ERR_NON_RETRIABLE: {
    code: 'REFLEX_ERR_NON_RETRIABLE',
    status: 500,
    message:
      'A step failed in a way that trying again cannot fix: {reason}. To fix: see the cause, correct it, and replay the run.',
  },
  REFLEX_ERR_RETRY_AFTER: {
    code: 'REFLEX_ERR_RETRY_AFTER',
    status: 503,
    message: 'A step asked to be retried later: {reason}. Nothing to fix unless it keeps happening.',
  },

  // --- configuration ---
  REFLEX_ERR_CONFIG_INVALID: {
    code: 'REFLEX_ERR_CONFIG_INVALID',
    status: 400,
    message: 'The option `{option}` is invalid: {reason}. To fix: {fix}',
  },
} as const satisfies Record<string, { code: string; status: number; message: string }>;

/** A coded error's key, e.g. `REFLEX_ERR_EVENT_INVALID_JSON`. */
export type ErrorCode = keyof typeof errorRegistry;

/** Parameters that fill a message template. */
export type ErrorParams = Readonly<Record<string, string | number>>;

/** The shape in which a failure is stored (in runs, attempts, dead letters) and sent over HTTP. */
export interface ErrorInfo {
  code: string;
  message: string;
  /** Extra facts about the failure, such as the HTTP status an action got. */
  details?: Record<string, unknown>;
  cause?: ErrorInfo;
}

function render(template: string, params: ErrorParams): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const value = params[name];
    return value === undefined ? whole : String(value);
  });
}

/**
 * An error with a registered code. Throw it for every failure a user can meet.
 *
 * @example
 * throw new ReflexError('REFLEX_ERR_EVENT_MISSING_ATTRIBUTE', { attribute: 'id', where: '' });
 */
export class ReflexError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly params: ErrorParams;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    params: ErrorParams = {},
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    const entry = errorRegistry[code];
    super(render(entry.message, params), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ReflexError';
    this.code = code;
    this.statusCode = entry.status;
    this.params = params;
    this.details = options.details;
  }

  toJSON(): ErrorInfo {
    return toErrorInfo(this);
  }
}

/**
 * Thrown by an action or workflow step to say that trying again cannot help (a 4xx answer, a bad
 * parameter). The run fails at once and goes to the dead-letter list.
 */
export class NonRetriableError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  constructor(
    message: string,
    options: { code?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NonRetriableError';
    this.code = options.code ?? 'REFLEX_ERR_NON_RETRIABLE';
    this.details = options.details;
  }
}

/**
 * Thrown by an action or workflow step to ask for the next attempt no earlier than `retryAfterMs` from
 * now (an HTTP 429 or 503 with Retry-After). It still counts as an attempt.
 */
export class RetryAfterError extends Error {
  readonly code: string;
  readonly retryAfterMs: number;
  readonly details: Record<string, unknown> | undefined;
  constructor(
    message: string,
    retryAfterMs: number,
    options: { code?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RetryAfterError';
    this.code = options.code ?? 'REFLEX_ERR_RETRY_AFTER';
    this.retryAfterMs = retryAfterMs;
    this.details = options.details;
  }
}

/**
 * Bounds of a stored failure. Errors come from plugins and from answers of remote systems, and each is
 * written to the run, its attempt, the dead letter, the outcome event and the log: a message or details
 * of any size would go everywhere.
 */
export const errorInfoLimits = Object.freeze({
  /** Longest message kept (a rulebook's 50 problems fit); longer ones are cut and end in `…`. */
  maxMessageChars: 65_536,
  /** `details` as JSON: larger, deeper or unreadable details are replaced by `{ omitted: <why> }`. */
  details: Object.freeze({ maxDepth: 16, maxBytes: 65_536 }),
  /** Causes kept below the error itself. */
  maxCauses: 5,
  /** Longest `code` taken from an error; another value gives REFLEX_ERR_INTERNAL_UNEXPECTED. */
  maxCodeChars: 128,
});

/**
 * Turns anything thrown into the one stored error shape, keeping the chain of causes. Never throws and
 * never gives more than {@link errorInfoLimits} allow, whatever was thrown: an object without a
 * prototype, a proxy whose traps throw, an error whose getters throw, cyclic or BigInt details.
 */
export function toErrorInfo(error: unknown, depth = 0): ErrorInfo {
  let isError = false;
  try {
    isError = error instanceof Error;
  } catch {
    // A proxy whose prototype cannot be read: described below like any other thrown value.
  }
  if (!isError) {
    return {
      code: unexpectedCode,
      message: boundedMessage(readSafely(() => shortText(error, Number.POSITIVE_INFINITY))),
    };
  }
  const coded = error as Error & { code?: unknown; details?: unknown };
  const code = readSafely(() => coded.code);
  const info: ErrorInfo = {
    code:
      typeof code === 'string' && code !== '' && code.length <= errorInfoLimits.maxCodeChars
        ? code
        : unexpectedCode,
    message: boundedMessage(readSafely(() => coded.message)),
  };
  const details = readSafely(() => coded.details);
  if (details !== undefined && details !== null && typeof details === 'object') {
    const bounded = toBoundedJson(details, errorInfoLimits.details);
    info.details =
      bounded.ok && isPlainRecord(bounded.value)
        ? bounded.value
        : { omitted: `the details were left out: ${bounded.ok ? 'they are not an object' : bounded.reason}` };
  }
  const cause = readSafely(() => coded.cause);
  if (cause !== undefined && depth < errorInfoLimits.maxCauses) info.cause = toErrorInfo(cause, depth + 1);
  return info;
}

const unexpectedCode = 'REFLEX_ERR_INTERNAL_UNEXPECTED';

/** Reads a field of a thrown value; a getter or trap that throws reads as a note saying so. */
function readSafely(read: () => unknown): unknown {
  try {
    return read();
  } catch (error) {
    return `(unreadable: ${shortText(error)})`;
  }
}

function boundedMessage(message: unknown): string {
  const text = typeof message === 'string' ? message : shortText(message, errorInfoLimits.maxMessageChars);
  return text.length > errorInfoLimits.maxMessageChars
    ? `${text.slice(0, errorInfoLimits.maxMessageChars)}…`
    : text;
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Whether the executor may try an action again after this error. */
export function isRetriable(error: unknown): boolean {
  if (error instanceof NonRetriableError) return false;
  if (error instanceof ReflexError) {
    return (
      error.code !== 'REFLEX_ERR_ACTION_INVALID_PARAMS' &&
      error.code !== 'REFLEX_ERR_TEMPLATE_FAILED' &&
      error.code !== 'REFLEX_ERR_ACTION_UNKNOWN' &&
      error.code !== 'REFLEX_ERR_ACTION_EXEC_NOT_FOUND' &&
      // The same parameters, secrets and addresses give the same refusal on every attempt.
      error.code !== 'REFLEX_ERR_TEMPLATE_URL_HOST' &&
      error.code !== 'REFLEX_ERR_SECRET_MISSING' &&
      error.code !== 'REFLEX_ERR_ACTION_HTTP_BLOCKED' &&
      error.code !== 'REFLEX_ERR_ACTION_HTTP_HOST_NOT_ALLOWED' &&
      // The action has done its work: another try gives an answer of the same shape again.
      error.code !== 'REFLEX_ERR_ACTION_OUTPUT_INVALID' &&
      error.code !== 'REFLEX_ERR_RUN_ABANDONED'
    );
  }
  return true;
}
