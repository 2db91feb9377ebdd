/** Content type of one CloudEvent in structured mode. */
export const cloudEventType = 'application/cloudevents+json';
/** Content type of a JSON array of CloudEvents. */
export const cloudEventBatchType = 'application/cloudevents-batch+json';

/** The CloudEvents `source` of every event the benchmarks send. */
export const benchSource = '/bench/load-generator';

/** A fixed `time`: formatting a Date per event would be generator work that the server never sees. */
const fixedTime = '2025-01-01T00:00:00.000Z';

/**
 * A CloudEvent shaped like a small monitoring alert; with an id of about ten characters its JSON is
 * close to 300 bytes, the size the ingest goal is stated for.
 */
export function benchEvent(id: string, type = 'bench.ingest'): Record<string, unknown> {
  return {
    specversion: '1.0',
    id,
    source: benchSource,
    type,
    time: fixedTime,
    datacontenttype: 'application/json',
    data: {
      host: 'web-042',
      service: 'checkout',
      status: 'firing',
      severity: 'warning',
      value: 87.5,
      message: 'disk usage above threshold',
    },
  };
}

/** The JSON body of {@link benchEvent}. */
export function benchEventBody(id: string, type?: string): string {
  return JSON.stringify(benchEvent(id, type));
}

/**
 * Makes ids that are unique within one benchmark process and short enough to keep the event at its
 * size: `<prefix>-<counter>`, counter zero-padded to seven digits.
 *
 * @example
 * const nextId = createIdMaker('r2-full');
 * nextId(); // 'r2-full-0000000'
 */
export function createIdMaker(prefix: string): () => string {
  let counter = 0;
  return () => `${prefix}-${String(counter++).padStart(7, '0')}`;
}
