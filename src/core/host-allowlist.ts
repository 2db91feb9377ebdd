/**
 * The hosts a step may call when event data chooses its URL: `api.example.com`, `*.svc.example.com`
 * (any name below it, not itself), `10.0.0.5:8443` (that port only), `[fd00::5]`.
 */

/** One entry of a step's `hosts`. */
export interface HostPattern {
  /** The entry as written. */
  readonly source: string;
  /** The host as the URL parser writes it (lower case, IPv4 in dotted form, IPv6 in brackets). */
  readonly host: string;
  /** `*.` was written: names below `host` match, `host` itself does not. */
  readonly wildcard: boolean;
  /** Only this port matches; any port when absent. */
  readonly port?: number;
}

const defaultPorts: Record<string, number> = { 'http:': 80, 'https:': 443 };

/**
 * Reads one entry of `hosts`. Returns the reason as a string when it is not a host pattern.
 *
 * @example parseHostPattern('*.svc.example.com') // { host: 'svc.example.com', wildcard: true, ... }
 */
export function parseHostPattern(text: string): HostPattern | string {
  const wildcard = text.startsWith('*.');
  const rest = wildcard ? text.slice(2) : text;
  if (rest === '' || /[/\\?#@*\s]/.test(rest)) {
    return `${JSON.stringify(text)} is not a host: write a name, an address or \`*.\` and a name, with an optional :port`;
  }
  let url: URL;
  try {
    url = new URL(`http://${rest}`);
  } catch {
    return `${JSON.stringify(text)} is not a host name or address`;
  }
  if (url.pathname !== '/' || url.username !== '' || url.password !== '') {
    return `${JSON.stringify(text)} is not a host name or address`;
  }
  const port = /:(\d+)$/.exec(rest)?.[1];
  const pattern: HostPattern = { source: text, host: url.hostname, wildcard };
  return port === undefined ? pattern : { ...pattern, port: Number(port) };
}

/** The host of `url` that the list allows, or undefined when none does. */
export function allowedBy(patterns: readonly HostPattern[], url: URL): HostPattern | undefined {
  const host = url.hostname;
  const port = url.port === '' ? defaultPorts[url.protocol] : Number(url.port);
  return patterns.find(
    (p) =>
      (p.port === undefined || p.port === port) &&
      (p.wildcard ? host.endsWith(`.${p.host}`) : host === p.host),
  );
}
