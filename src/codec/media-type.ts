/** A parsed content type: the media type in lower case, and the `charset` parameter if any. */
export interface MediaType {
  type: string;
  charset: string | undefined;
}

/**
 * Reads a content type (`Content-Type` header, a broker's content-type property). Undefined when absent
 * or empty.
 *
 * @example
 * parseContentType('Text/Plain; charset="latin1"'); // { type: 'text/plain', charset: 'latin1' }
 */
export function parseContentType(value: string | undefined): MediaType | undefined {
  if (value === undefined) return undefined;
  const semicolon = value.indexOf(';');
  const type = (semicolon === -1 ? value : value.slice(0, semicolon)).trim().toLowerCase();
  if (type === '') return undefined;
  let charset: string | undefined;
  if (semicolon !== -1) {
    // Parameters are `name=token` or `name="quoted string"` (RFC 9110, section 8.3.1).
    const params = /;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
    for (const match of value.slice(semicolon).matchAll(params)) {
      if (match[1]?.toLowerCase() !== 'charset') continue;
      const raw = (match[2] ?? '').trim();
      charset = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
    }
  }
  return { type, charset };
}

/** CloudEvents JSON format, section 3.1: JSON data is `application/json` or any `+json` media type. */
export function isJsonMediaType(type: string): boolean {
  return type === 'application/json' || type.endsWith('+json');
}
