import type { EventLimits } from '../core/event.js';
import { type DecodedCloudEvents, decodeCloudEvents, httpBinding } from './cloudevents-binding.js';

/** Request headers as Node gives them: lower-case names; a header sent more than once may be an array. */
export type HttpHeaders = Record<string, string | string[] | undefined>;

/**
 * The value of one header, or `undefined` when absent. `name` must be lower case. A header given more
 * than once is joined with ", ", which is what Node itself does for all but a few well-known headers.
 */
export function headerValue(headers: HttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/**
 * Reads the events of one `POST /api/v1/events` request: {@link decodeCloudEvents} with the HTTP
 * binding (`ce-` headers, the `Content-Type` header, the structured, batched and binary modes).
 * Without `ce-*` headers, `application/json` is read as structured mode and any other type gives
 * REFLEX_ERR_EVENT_UNSUPPORTED_MEDIA_TYPE (415).
 *
 * @example
 * const { events, batch } = decodeCloudEventsRequest(request.headers, rawBody, defaultEventLimits);
 */
export function decodeCloudEventsRequest(
  headers: HttpHeaders,
  body: Uint8Array,
  limits: EventLimits,
): DecodedCloudEvents {
  return decodeCloudEvents(
    httpBinding,
    { contentType: headerValue(headers, 'content-type'), properties: headers, body },
    limits,
  );
}
