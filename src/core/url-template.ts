/**
 * How values are put into a URL that a template builds: each value is encoded for the component it lands
 * in, so that it cannot add structure (`/`, `?`, `#`, `@`, `..`) or move the URL to another host.
 *
 * The components are found the way the WHATWG URL parser (Node's `URL`, undici) finds them for `http:`
 * and `https:`, including its lenient forms: `\` counts as `/`, any number of slashes may follow the
 * scheme, and tabs and newlines are dropped.
 */

/** Where in a URL the next character of a text lands. */
export type UrlComponent = 'scheme' | 'authority' | 'path' | 'query' | 'fragment';

/** One piece of a URL template: text written in the rulebook, or a value computed when it is rendered. */
export type UrlPiece =
  | { text: string }
  | {
      value: string;
      /**
       * Whether the value comes from the rulebook or the operator (`vars`, `secrets`) rather than from
       * an event, a fact or an answer. Trusted values may give the start of the URL, its host and its
       * path as they are; others are always encoded.
       */
      trusted: boolean;
      /** Whether the value sits before an `@` that the template writes in the authority: it is userinfo. */
      userinfo: boolean;
    };

/** Why a URL could not be built from its pieces: the host was to come from outside, or a `..` was made. */
export class UrlTemplateError extends Error {
  constructor(
    readonly reason: 'host' | 'dot-segment',
    message: string,
  ) {
    super(message);
  }
}

const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/** What the URL parser ignores: leading C0 controls and spaces, and tabs and newlines anywhere. */
function normalise(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the URL parser strips exactly these.
  return text.replace(/[\t\n\r]/g, '').replace(/^[\u0000-\u0020]+/, '');
}

/**
 * The component that text appended to `prefix` would land in.
 *
 * @example urlComponentAt('https://api.example.com/items/') // 'path'
 */
export function urlComponentAt(prefix: string): UrlComponent {
  const text = normalise(prefix);
  const found = scheme.exec(text);
  if (!found) return 'scheme';
  let i = found[0].length;
  while (i < text.length && (text[i] === '/' || text[i] === '\\')) i++;
  const rest = text.slice(i);
  const end = rest.search(/[/\\?#]/);
  if (end === -1) return 'authority';
  const after = rest.slice(end);
  if (after.includes('#')) return 'fragment';
  if (after.includes('?')) return 'query';
  return 'path';
}

/**
 * Where the authority (userinfo, host, port) of the URL in `prefix` ends, or -1 while it has not ended.
 */
function authorityEnd(prefix: string): number {
  const found = scheme.exec(prefix);
  if (!found) return -1;
  let i = found[0].length;
  while (i < prefix.length && (prefix[i] === '/' || prefix[i] === '\\')) i++;
  const end = prefix.slice(i).search(/[/\\?#]/);
  return end === -1 ? -1 : i + end;
}

/** Lone surrogates cannot be percent-encoded (`encodeURIComponent` throws): they become U+FFFD first. */
function encode(value: string): string {
  return encodeURIComponent(
    value.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD'),
  );
}

/** Characters a value may bring into a host when the step allows templated hosts: a name, an address, a port. */
const hostText = /^[A-Za-z0-9._~:[\]-]*$/;

/**
 * Builds the URL: text as written, values encoded for where they land.
 *
 * - userinfo, query and fragment: every value is percent-encoded (`encodeURIComponent`);
 * - path: values from outside are percent-encoded, so `/` and `?` stay inside one segment, and a
 *   segment they make `.` or `..` is refused (the parser would resolve it, also as `%2e%2e`);
 *   trusted values are kept as they are;
 * - the start (scheme) and the host: trusted values are kept; a value from outside is refused unless
 *   `templatedHosts` (the step lists the hosts it may call, checked once the URL is built), and then it
 *   must be a host name or address (and port) in the host, or it is taken as the start of the URL.
 *
 * Throws {@link UrlTemplateError}.
 */
export function buildUrl(pieces: readonly UrlPiece[], templatedHosts: boolean): string {
  let out = '';
  /** Ranges of `out` that values from outside wrote into the path. */
  const pathValues: Array<[number, number]> = [];
  for (const piece of pieces) {
    if ('text' in piece) {
      out += piece.text;
      continue;
    }
    const component = urlComponentAt(out);
    if (component === 'authority' && piece.userinfo) {
      out += encode(piece.value);
    } else if (component === 'scheme' || component === 'authority') {
      if (!piece.trusted) {
        if (!templatedHosts) {
          throw new UrlTemplateError(
            'host',
            component === 'scheme'
              ? 'a value from outside the rulebook would give the start of the URL, and with it the host'
              : 'a value from outside the rulebook would be part of the host',
          );
        }
        if (component === 'authority' && !hostText.test(piece.value)) {
          throw new UrlTemplateError(
            'host',
            'a value in the host holds characters a host name cannot have (/ \\ ? # @ % or spaces)',
          );
        }
      }
      out += piece.value;
    } else if (component === 'path' && piece.trusted) {
      out += piece.value;
    } else {
      const encoded = encode(piece.value);
      if (component === 'path') pathValues.push([out.length, out.length + encoded.length]);
      out += encoded;
    }
  }
  checkDotSegments(out, pathValues);
  return out;
}

/** Refuses a path segment that values made `.` or `..` (also as `%2e`): the parser would drop or climb it. */
function checkDotSegments(url: string, ranges: ReadonlyArray<[number, number]>): void {
  if (ranges.length === 0) return;
  const start = authorityEnd(url);
  if (start === -1) return;
  const stop = url.slice(start).search(/[?#]/);
  const end = stop === -1 ? url.length : start + stop;
  let segmentStart = start;
  for (let i = start; i <= end; i++) {
    if (i < end && url[i] !== '/' && url[i] !== '\\') continue;
    const segment = url.slice(segmentStart, i).replace(/^[/\\]/, '');
    const from = segmentStart;
    segmentStart = i;
    if (!/^(\.|%2e){1,2}$/i.test(segment)) continue;
    if (ranges.some(([a, b]) => a < i && b > from)) {
      throw new UrlTemplateError(
        'dot-segment',
        `a value makes the path segment \`${segment}\`, which would move the request to another path`,
      );
    }
  }
}

/**
 * How the host of a URL template is given, judged from its text before any value is known:
 * - `fixed`: the scheme and host are written out (`origin` holds them), so no value can change them;
 * - `outside`: a value from outside the rulebook lands in the start or the host;
 * - `trusted`: a value from `vars` or `secrets` gives the start or the host, so only rendering shows it.
 */
export type UrlHost =
  | { type: 'fixed'; origin: string }
  | { type: 'outside'; piece: number }
  | { type: 'trusted' };

/** A piece of a template before rendering: its text, or a value still to come (trusted or not). */
export type UrlTemplatePiece = { text: string } | { trusted: boolean };

/** Judges how the host of a URL template is given; see {@link UrlHost}. */
export function urlHost(pieces: readonly UrlTemplatePiece[]): UrlHost {
  let text = '';
  for (const [i, piece] of pieces.entries()) {
    if ('text' in piece) {
      text += piece.text;
      continue;
    }
    const component = urlComponentAt(text);
    if (component !== 'scheme' && component !== 'authority') {
      // Past the host: nothing after can change it.
      break;
    }
    if (component === 'authority' && isUserinfo(pieces, i)) {
      // Encoded, so it cannot add structure: a placeholder keeps the text's shape.
      text += 'x';
      continue;
    }
    return piece.trusted ? { type: 'trusted' } : { type: 'outside', piece: i };
  }
  const end = authorityEnd(normalise(text));
  const origin = end === -1 ? normalise(text) : normalise(text).slice(0, end);
  return { type: 'fixed', origin };
}

/**
 * Whether the value at `index` sits before an `@` that the template's own text writes in the authority,
 * with only values between that cannot add structure: the parser then takes it as userinfo.
 */
export function isUserinfo(pieces: readonly UrlTemplatePiece[], index: number): boolean {
  for (let i = index + 1; i < pieces.length; i++) {
    const piece = pieces[i]!;
    if (!('text' in piece)) continue;
    const text = normalise(piece.text);
    const at = text.search(/[@/\\?#]/);
    if (at === -1) continue;
    return text[at] === '@';
  }
  return false;
}
