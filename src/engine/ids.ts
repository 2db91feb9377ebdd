import { randomBytes } from 'node:crypto';

const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32: sorts as text in time order

/**
 * A new identifier that sorts by creation time: 10 characters of milliseconds, then 16 random ones
 * (the ULID layout). Run ids use it, so "newest first" is "largest id first".
 *
 * @example newSortableId(Date.now()) // '01JDQ6Z3W8X4T9K2M5N7P8R0S1'
 */
export function newSortableId(now: number): string {
  let time = '';
  let t = Math.max(0, Math.floor(now));
  for (let i = 0; i < 10; i++) {
    time = alphabet[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const bytes = randomBytes(10);
  let random = '';
  // 10 bytes = 80 bits = 16 characters of 5 bits.
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      random += alphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return time + random;
}
