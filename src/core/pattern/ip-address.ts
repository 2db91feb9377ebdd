/**
 * IP addresses and CIDR blocks for the `cidr` operator of event patterns.
 *
 * Written by hand rather than with `node:net` because `core/` is pure.
 */

/** A CIDR block from a pattern, e.g. `10.0.0.0/24` or `2001:db8::/32`. */
export interface Cidr {
  /** The block as written in the pattern. */
  readonly source: string;
  /** The address part: 4 bytes for IPv4, 16 for IPv6. */
  readonly bytes: readonly number[];
  /** How many leading bits an address must share with `bytes`. */
  readonly prefixLength: number;
}

const ipv4Text = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const hexGroup = /^[0-9a-fA-F]{1,4}$/;

function parseIpv4(text: string): number[] | undefined {
  const found = ipv4Text.exec(text);
  if (found === null) return undefined;
  const bytes = found.slice(1).map(Number);
  return bytes.every((byte) => byte <= 255) ? bytes : undefined;
}

/** Reads the groups on one side of `::`; an IPv4 tail (`::ffff:1.2.3.4`) counts as two groups. */
function parseGroups(text: string, mayEndWithIpv4: boolean): number[] | undefined {
  if (text === '') return [];
  const parts = text.split(':');
  const words: number[] = [];
  for (const [i, part] of parts.entries()) {
    if (i === parts.length - 1 && mayEndWithIpv4 && part.includes('.')) {
      const v4 = parseIpv4(part);
      if (v4 === undefined) return undefined;
      words.push(v4[0]! * 256 + v4[1]!, v4[2]! * 256 + v4[3]!);
    } else if (hexGroup.test(part)) {
      words.push(Number.parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return words;
}

function parseIpv6(text: string): number[] | undefined {
  const halves = text.split('::');
  let words: number[];
  if (halves.length === 1) {
    const all = parseGroups(text, true);
    if (all === undefined || all.length !== 8) return undefined;
    words = all;
  } else if (halves.length === 2) {
    const head = parseGroups(halves[0]!, false);
    const tail = parseGroups(halves[1]!, true);
    // `::` stands for at least one group of zeros.
    if (head === undefined || tail === undefined || head.length + tail.length > 7) return undefined;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    return undefined;
  }
  return words.flatMap((word) => [word >> 8, word & 0xff]);
}

/**
 * Reads an IPv4 (`10.0.0.1`) or IPv6 (`2001:db8::1`, leading zeros allowed) address as bytes.
 * Returns undefined for anything else, including zone ids (`fe80::1%eth0`) and host names.
 *
 * @example parseIpAddress('10.0.0.255') // [10, 0, 0, 255]
 */
export function parseIpAddress(text: string): number[] | undefined {
  return text.includes(':') ? parseIpv6(text) : parseIpv4(text);
}

/**
 * Reads a CIDR block `address/bits`. Returns the reason as a string when the text is not one.
 * Host bits may be set (`10.0.0.7/24`); the block is then the whole network they belong to.
 */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  if (slash < 0 || slash !== text.lastIndexOf('/')) {
    return `${JSON.stringify(text)} is not a CIDR block (it needs exactly one "/")`;
  }
  const bytes = parseIpAddress(text.slice(0, slash));
  if (bytes === undefined) {
    return `${JSON.stringify(text.slice(0, slash))} is not an IPv4 or IPv6 address`;
  }
  const bitsText = text.slice(slash + 1);
  const maxBits = bytes.length * 8;
  if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > maxBits) {
    return `the prefix length ${JSON.stringify(bitsText)} is not a whole number from 0 to ${maxBits}`;
  }
  return Object.freeze({ source: text, bytes: Object.freeze(bytes), prefixLength: Number(bitsText) });
}

/** Whether the address (as bytes from {@link parseIpAddress}) lies in the block. IPv4 never lies in an IPv6 block. */
export function inCidr(cidr: Cidr, address: readonly number[]): boolean {
  if (address.length !== cidr.bytes.length) return false;
  let bits = cidr.prefixLength;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((address[i]! & mask) !== (cidr.bytes[i]! & mask)) return false;
  }
  return true;
}
