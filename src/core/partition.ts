/**
 * The partition an event goes to among `partitions`: FNV-1a (32 bits) of its CloudEvents
 * `partitionkey` extension when it has one (a string), else of its `source`, modulo `partitions`. So
 * events of one source (or one partition key) stay in one partition, in order, and a correlation over
 * them sees them all. With one partition this is 0 without hashing.
 *
 * @example partitionOf({ specversion: '1.0', id: '1', source: 'shop', type: 'order' }, 4) // 0..3
 */
export function partitionOf(event: { source: string; partitionkey?: unknown }, partitions: number): number {
  if (partitions <= 1) return 0;
  const key = typeof event.partitionkey === 'string' ? event.partitionkey : event.source;
  return fnv1a(key) % partitions;
}

/** FNV-1a over the UTF-16 code units of `text`, as an unsigned 32-bit number. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
