import { connect, type Socket } from 'node:net';

/** An HTTP response as read off a socket. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** What a raw exchange saw: the bytes received, whether the server closed, and when (ms after start). */
export interface RawExchange {
  text: string;
  closed: boolean;
  closedAfterMs: number | undefined;
  response: RawResponse | undefined;
}

/**
 * Opens a TCP connection to `port` on 127.0.0.1, writes `parts` one after another (`delayMs` apart),
 * and reads until the server closes the connection or `timeoutMs` pass. No HTTP client sits in between,
 * so malformed requests reach the server exactly as written.
 */
export async function rawExchange(
  port: number,
  parts: ReadonlyArray<string | Buffer>,
  options: { delayMs?: number; timeoutMs?: number; closeAfterWrite?: boolean } = {},
): Promise<RawExchange> {
  const started = Date.now();
  const socket: Socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  let closedAfterMs: number | undefined;
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) =>
    socket.on('close', () => {
      closedAfterMs = Date.now() - started;
      resolve();
    }),
  );
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const deadline = new Promise<void>((resolve) => setTimeout(resolve, options.timeoutMs ?? 3000));
  const writing = (async () => {
    for (const [i, part] of parts.entries()) {
      if (socket.destroyed) return;
      if (i > 0 && options.delayMs) await Promise.race([delay(options.delayMs), closed]);
      if (socket.destroyed || closedAfterMs !== undefined) return;
      socket.write(part);
    }
    if (options.closeAfterWrite) socket.end();
  })();
  await Promise.race([closed, deadline]);
  await Promise.race([writing, delay(10)]);
  const wasClosed = closedAfterMs !== undefined;
  socket.destroy();
  const text = Buffer.concat(chunks).toString('latin1');
  return { text, closed: wasClosed, closedAfterMs, response: parseResponse(text) };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The first HTTP/1.1 response in `text` (Content-Length framing), or undefined when there is none. */
export function parseResponse(text: string): RawResponse | undefined {
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  if (status === null) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = headers['content-length'];
  const rest = text.slice(end + 4);
  return {
    status: Number(status[1]),
    headers,
    body: length === undefined ? rest : rest.slice(0, Number(length)),
  };
}
