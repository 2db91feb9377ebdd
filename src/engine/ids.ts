import { randomBytes } from 'node:crypto';

const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32: sorts as text in time order

let lastTime = -1;
let lastRandom = 0n;
const randomSpace = 1n << 80n;

/**
 * A new identifier that sorts by creation time: 10 characters of milliseconds, then 16 random ones
 * (the ULID layout). Within one millisecond (or if the clock steps back) the random part counts up
 * from the previous id, so ids made one after another in this process always sort in that order: run
 * ids use it, and runs of one concurrency key start in id order.
 *
 * @example newSortableId(Date.now()) // '01JDQ6Z3W8X4T9K2M5N7P8R0S1'
 */
export function newSortableId(now: number): string {
  let time = Math.max(0, Math.floor(now));
  let random: bigint;
  if (time <= lastTime) {
    time = lastTime;
    random = (lastRandom + 1n) % randomSpace;
    // 2^80 ids in one millisecond will not happen; wrapping would only cost order, never uniqueness of time.
  } else {
    random = BigInt(`0x${randomBytes(10).toString('hex')}`);
  }
  lastTime = time;
  lastRandom = random;
  let head = '';
  for (let i = 0; i < 10; i++) {
    head = alphabet[time % 32] + head;
    time = Math.floor(time / 32);
  }
  let tail = '';
  for (let i = 0; i < 16; i++) {
    tail = alphabet[Number(random & 31n)] + tail;
    random >>= 5n;
  }
  return head + tail;
}

function base32(value: number, width: number): string {
  let out = '';
  let rest = Math.max(0, Math.floor(value));
  for (let i = 0; i < width; i++) {
    out = alphabet[rest % 32] + out;
    rest = Math.floor(rest / 32);
  }
  return out;
}

/**
 * A run's id, made from what caused it: the log time of the event being dispatched, its seq, the rule's
 * position and the ordinal of the run among that rule's runs for the event. Deciding the same batch again
 * (after a crash, or a power cut that lost a commit) gives the same ids, so the actions of a run carry
 * the same idempotency keys whichever decision executed them. Ids sort in creation order — by time,
 * then seq, rule and ordinal — which is the order runs of one concurrency key start in. 28 characters of
 * Crockford base32, like a ULID with a counter for its random part.
 *
 * @example runId(Date.parse('2026-11-27T10:00:00Z'), 42, 3, 0)
 */
export function runId(t: number, seq: number, ruleIndex: number, ordinal: number): string {
  return base32(t, 10) + base32(seq, 11) + base32(ruleIndex, 4) + base32(ordinal, 3);
}
