/**
 * Keeping credentials out of what Reflex stores, logs and answers: credentials written in URLs, and the
 * values of secrets that steps used.
 */

/** What a credential is replaced by. */
export const redacted = '***';

/** Query and fragment parameters whose value is taken for a credential, by a part of their name. */
const credentialName = /token|secret|passw|pwd|key|sig|auth|credential|session|jwt|cookie/i;

const userinfo = /\b([A-Za-z][A-Za-z0-9+.-]*:[/\\]{2})[^/\\\s?#@"'<>]*@/g;
const parameter = /([?&;#])([^=&#?\s"'<>]+)=([^&#\s"'<>]*)/g;

/**
 * Replaces credentials in URLs found in `text`: the userinfo (`https://user:pass@host` becomes
 * `https://***@host`) and the values of query or fragment parameters whose name says they are one
 * (`token`, `access_token`, `api_key`, `key`, `sig`, `signature`, `password`, `secret`, `auth`, ...).
 * The text need not be a URL: URLs inside a message are found too.
 *
 * @example redactUrlCredentials('GET https://a:b@x.io/?token=t&page=2') // 'GET https://***@x.io/?token=***&page=2'
 */
export function redactUrlCredentials(text: string): string {
  if (!text.includes('@') && !text.includes('=')) return text;
  return text
    .replace(userinfo, `$1${redacted}@`)
    .replace(parameter, (whole, separator: string, name: string, value: string) => {
      if (value === '' || value === redacted) return whole;
      let decoded = name;
      try {
        decoded = decodeURIComponent(name);
      } catch {
        // A name that is not valid percent-encoding is judged as written.
      }
      return credentialName.test(decoded) ? `${separator}${name}=${redacted}` : whole;
    });
}

/** Lone surrogates cannot be percent-encoded; the forms that can are enough to mask. */
function encodedForms(value: string): string[] {
  const forms = [value, JSON.stringify(value).slice(1, -1)];
  try {
    const encoded = encodeURIComponent(value);
    forms.push(encoded, encoded.replace(/%20/g, '+'));
  } catch {
    // Not encodable, so it cannot appear encoded either.
  }
  return forms;
}

function isContainer(value: unknown): value is object {
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return true;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Replaces, in a JSON value, every string by `fn(string)` (object keys too), without recursion. Only
 * plain objects and arrays are entered; anything else is kept as it is, and a container met twice is
 * copied once.
 */
export function mapStrings<T>(value: T, fn: (text: string) => string): T {
  if (typeof value === 'string') return fn(value) as T;
  if (!isContainer(value)) return value;
  const copies = new Map<object, object>();
  const copyOf = (item: object): object => {
    let copy = copies.get(item);
    if (copy === undefined) {
      copy = Array.isArray(item) ? [] : {};
      copies.set(item, copy);
      stack.push([item, copy]);
    }
    return copy;
  };
  const stack: Array<[object, object]> = [];
  const root = copyOf(value);
  while (stack.length > 0) {
    const [from, to] = stack.pop()!;
    const entries: Array<[string | number, unknown]> = Array.isArray(from)
      ? from.map((item, i) => [i, item])
      : Object.entries(from);
    for (const [key, item] of entries) {
      const copy = typeof item === 'string' ? fn(item) : isContainer(item) ? copyOf(item) : item;
      const name = typeof key === 'number' ? key : fn(key);
      // A key "__proto__" must stay a key: plain assignment would set the prototype instead.
      Object.defineProperty(to, name, { value: copy, enumerable: true, writable: true, configurable: true });
    }
  }
  return root as T;
}

/** Hides secret values; see {@link createSecretMask}. */
export interface SecretMask {
  /** Whether there is anything to hide. */
  readonly active: boolean;
  /** The text with every secret value (also percent- or JSON-encoded) replaced by `***`. */
  text(text: string): string;
  /** A copy of a JSON value with every string masked by {@link SecretMask.text}. */
  json<T>(value: T): T;
}

/**
 * Builds a mask for the values of the secrets a step used, the safety net for what a target or a
 * program echoes back (an answer that repeats the Authorization header, a script that prints its
 * token), the way CI systems mask secrets in their logs. Empty values are not masked.
 *
 * @example createSecretMask(['s3cret']).text('token=s3cret') // 'token=***'
 */
export function createSecretMask(values: readonly string[]): SecretMask {
  const forms = [...new Set(values.filter((v) => v !== '').flatMap(encodedForms))]
    .filter((form) => form !== '')
    // The longest first, so a value that holds another is replaced whole.
    .sort((a, b) => b.length - a.length);
  if (forms.length === 0) {
    return { active: false, text: (text) => text, json: (value) => value };
  }
  const pattern = new RegExp(forms.map((f) => f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
  const text = (input: string): string => (input.length === 0 ? input : input.replace(pattern, redacted));
  return { active: true, text, json: (value) => mapStrings(value, text) };
}
