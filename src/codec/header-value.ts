import { isUtf8 } from 'node:buffer';

/** Why a header value could not be read, and what the sender should do; the caller makes the coded error. */
export interface HeaderValueProblem {
  reason: string;
  fix: string;
}

const hexDigit = /^[0-9a-fA-F]{2}$/;

/**
 * Decodes an attribute value carried in an HTTP or NATS header (CloudEvents HTTP binding, section
 * 3.1.3.2; NATS binding, section 3.1.3.2): first undo RFC 7230 double-quoted strings (older senders
 * quote instead of percent-encoding), then one round of percent-decoding, whose bytes must be valid
 * UTF-8 (an overlong `%C0%A0` is refused). Returns the problem instead of throwing, so each binding
 * can name the header in its own words.
 *
 * @example
 * percentDecode('Euro%20%E2%82%AC'); // 'Euro €'
 */
export function percentDecode(value: string): string | HeaderValueProblem {
  // Printable ASCII without quote or percent needs no work: the common case.
  if (/^[\x20\x21\x23\x24\x26-\x7e]*$/.test(value)) return value;
  let unquoted = '';
  for (let i = 0; i < value.length; i++) {
    if (value[i] !== '"') {
      unquoted += value[i];
      continue;
    }
    let closed = false;
    for (i++; i < value.length; i++) {
      const char = value[i];
      if (char === '"') {
        closed = true;
        break;
      }
      unquoted += char === '\\' && i + 1 < value.length ? value[++i] : char;
    }
    if (!closed) {
      return {
        reason: 'it has a double-quoted string with no closing quote',
        fix: 'percent-encode `"` as %22.',
      };
    }
  }
  const bytes: number[] = [];
  for (let i = 0; i < unquoted.length; i++) {
    const code = unquoted.charCodeAt(i);
    if (code === 0x25) {
      const hex = unquoted.slice(i + 1, i + 3);
      if (!hexDigit.test(hex)) {
        return {
          reason: `the \`%\` at position ${i} is not followed by two hex digits`,
          fix: 'percent-encode `%` itself as %25.',
        };
      }
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (code <= 0xff) {
      // Node reads header bytes as latin1, so each char is one byte as sent (raw UTF-8 stays intact).
      bytes.push(code);
    } else {
      // A caller that built the headers itself may hand over any string: take its UTF-8 bytes.
      const char = String.fromCodePoint(unquoted.codePointAt(i)!);
      bytes.push(...Buffer.from(char, 'utf8'));
      i += char.length - 1;
    }
  }
  const buffer = Buffer.from(bytes);
  if (!isUtf8(buffer)) {
    return {
      reason: 'its bytes are not valid UTF-8 once percent-decoded',
      fix: 'encode the value as UTF-8, then percent-encode each byte outside printable ASCII.',
    };
  }
  return buffer.toString('utf8');
}

/**
 * Encodes an attribute value for an HTTP or NATS header, as the bindings ask: space, `"`, `%` and
 * every character outside printable ASCII become `%XY` escapes of their UTF-8 bytes (upper-case hex),
 * so no quoting is ever needed.
 *
 * @example
 * percentEncode('Euro € 😀'); // 'Euro%20%E2%82%AC%20%F0%9F%98%80'
 */
export function percentEncode(value: string): string {
  if (/^[\x21\x23\x24\x26-\x7e]*$/.test(value)) return value;
  let out = '';
  for (const char of value) {
    const code = char.codePointAt(0)!;
    if (code >= 0x21 && code <= 0x7e && code !== 0x22 && code !== 0x25) {
      out += char;
      continue;
    }
    for (const byte of Buffer.from(char, 'utf8'))
      out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
