import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { ReflexError } from '../core/errors.js';
import { type Cidr, inCidr, parseCidr, parseIpAddress } from '../core/pattern/ip-address.js';

/**
 * Where the `http` action never sends a request unless the operator says otherwise (`--http-deny`):
 * link-local addresses, where clouds answer for their instance metadata service (credentials of the
 * machine's role, startup scripts), the metadata services' other addresses and names, and the
 * "unspecified" addresses, which reach the local host on Linux. Loopback and private ranges stay
 * reachable: calling services next to Reflex is what rules do.
 *
 * This is the one place the default is written; `reflex start --http-deny default` stands for it.
 */
export const defaultHttpDeny: readonly string[] = Object.freeze([
  // IPv4 link-local: 169.254.169.254 (AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle), 169.254.170.2 (ECS).
  '169.254.0.0/16',
  // IPv6 link-local.
  'fe80::/10',
  // AWS instance metadata over IPv6.
  'fd00:ec2::254/128',
  // GCP metadata over IPv6.
  'fd20:ce::254/128',
  // Alibaba Cloud metadata.
  '100.100.100.200/32',
  // Azure's WireServer (VM agent configuration, extension settings).
  '168.63.129.16/32',
  // "This host": connecting to 0.0.0.0 or :: reaches the local host.
  '0.0.0.0/8',
  '::/128',
  // Metadata service names, refused before they are even resolved.
  'metadata.google.internal',
  'metadata.goog',
]);

/** A compiled `--http-deny` list. */
export interface HttpDenyList {
  /** The entries as given, `default` expanded. */
  readonly entries: readonly string[];
  readonly cidrs: readonly Cidr[];
  /** Host names, lower case, without a trailing dot. */
  readonly names: ReadonlySet<string>;
}

/**
 * Reads a deny list: entries separated by commas or spaces, each a CIDR block, an address (a block of
 * one) or a host name; `default` stands for {@link defaultHttpDeny}, `none` for nothing.
 * Throws REFLEX_ERR_CONFIG_INVALID naming `option`.
 *
 * @example parseHttpDeny('default, 10.0.0.0/8') // the defaults, and the 10/8 network too
 */
export function parseHttpDeny(text: string | readonly string[], option = '--http-deny'): HttpDenyList {
  const given = typeof text === 'string' ? text.split(/[\s,]+/).filter(Boolean) : [...text];
  const entries: string[] = [];
  for (const entry of given) {
    if (entry === 'default') entries.push(...defaultHttpDeny);
    else if (entry !== 'none') entries.push(entry);
  }
  const cidrs: Cidr[] = [];
  const names = new Set<string>();
  for (const entry of entries) {
    const address = parseIpAddress(entry.replace(/^\[(.*)\]$/, '$1'));
    const cidr = entry.includes('/')
      ? parseCidr(entry)
      : address === undefined
        ? undefined
        : parseCidr(`${entry.replace(/^\[(.*)\]$/, '$1')}/${address.length * 8}`);
    if (typeof cidr === 'object') {
      cidrs.push(cidr);
    } else if (typeof cidr === 'string' || !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\.?$/.test(entry)) {
      throw new ReflexError('REFLEX_ERR_CONFIG_INVALID', {
        option,
        reason: `${JSON.stringify(entry)} is neither a CIDR block, an IP address nor a host name${typeof cidr === 'string' ? ` (${cidr})` : ''}`,
        fix: 'give CIDR blocks (169.254.0.0/16, fe80::/10), addresses and host names separated by commas; `default` stands for the built-in list, `none` for no list.',
      });
    } else {
      names.add(entry.toLowerCase().replace(/\.$/, ''));
    }
  }
  return Object.freeze({ entries: Object.freeze(entries), cidrs: Object.freeze(cidrs), names });
}

/** The default list, compiled. */
export const defaultHttpDenyList: HttpDenyList = parseHttpDeny(defaultHttpDeny);

/**
 * The IPv4 address an IPv6 address stands for, if it embeds one the network would reach: IPv4-mapped
 * (`::ffff:a.b.c.d`, how dual-stack sockets reach IPv4), IPv4-compatible (`::a.b.c.d`) and NAT64
 * (`64:ff9b::a.b.c.d`).
 */
function embeddedIpv4(bytes: readonly number[]): number[] | undefined {
  if (bytes.length !== 16) return undefined;
  const head = bytes.slice(0, 12);
  const zeros = (from: number, to: number) => head.slice(from, to).every((b) => b === 0);
  const mapped = zeros(0, 10) && head[10] === 0xff && head[11] === 0xff;
  const compatible = zeros(0, 12) && bytes.slice(12).some((b, i) => b !== 0 && !(i === 3 && b === 1));
  const nat64 = head[0] === 0x00 && head[1] === 0x64 && head[2] === 0xff && head[3] === 0x9b && zeros(4, 12);
  return mapped || compatible || nat64 ? bytes.slice(12) : undefined;
}

/**
 * The entry of the list an address (IPv4 or IPv6 text) falls in, e.g. `169.254.0.0/16` for
 * `169.254.169.254`, or undefined when the list does not refuse it.
 */
export function deniedAddress(list: HttpDenyList, address: string): string | undefined {
  const bytes = parseIpAddress(address.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, ''));
  if (bytes === undefined) return undefined;
  const candidates = [bytes];
  const ipv4 = embeddedIpv4(bytes);
  if (ipv4) candidates.push(ipv4);
  for (const candidate of candidates) {
    const cidr = list.cidrs.find((c) => inCidr(c, candidate));
    if (cidr) return cidr.source;
  }
  return undefined;
}

/** Why the list refuses a host name, or undefined when it does not. */
export function deniedName(list: HttpDenyList, host: string): string | undefined {
  const name = host.toLowerCase().replace(/\.$/, '');
  return list.names.has(name) ? `${name} is on the deny list` : undefined;
}

/** The error a guarded lookup fails with; the action turns it into REFLEX_ERR_ACTION_HTTP_BLOCKED. */
export class DeniedAddressError extends Error {
  readonly code = 'REFLEX_ERR_ACTION_HTTP_BLOCKED';
}

/** Node's `dns.lookup`, in the form `net.connect` calls it (with `all: true` for happy eyeballs). */
export type LookupFunction = (
  hostname: string,
  options: { all?: boolean; family?: number | string; hints?: number },
  callback: (error: Error | null, address: string | LookupAddress[], family?: number) => void,
) => void;

/**
 * Wraps a lookup so that a connection to a name that resolves to a denied address fails: every answer
 * is checked when the connection is made, so a name that answers differently later (DNS rebinding) is
 * caught on the connection that would use the new answer. Any denied address refuses the name.
 */
export function guardedLookup(list: HttpDenyList, lookup: LookupFunction = dnsLookup as LookupFunction) {
  return (
    hostname: string,
    options: { all?: boolean; family?: number | string; hints?: number },
    callback: (error: Error | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    const byName = deniedName(list, hostname);
    if (byName !== undefined) {
      callback(new DeniedAddressError(byName), options.all ? [] : '', 0);
      return;
    }
    lookup(hostname, options, (error, address, family) => {
      if (error) {
        callback(error, address, family);
        return;
      }
      const addresses = typeof address === 'string' ? [address] : address.map((a) => a.address);
      for (const each of addresses) {
        const entry = deniedAddress(list, each);
        if (entry !== undefined) {
          const reason = `${hostname} resolves to ${each}, which is in ${entry}`;
          callback(new DeniedAddressError(reason), options.all ? [] : '', 0);
          return;
        }
      }
      callback(null, address, family);
    });
  };
}
