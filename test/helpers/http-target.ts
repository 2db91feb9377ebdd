import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  json: unknown;
  at: number;
}

/**
 * How the target answers a request: a status and a body (sent as JSON, or `raw` text sent as it is), or
 * `hang` (never answers).
 */
export type TargetResponse =
  | { status: number; body?: unknown; raw?: string; headers?: Record<string, string> }
  | 'hang';

/** A real HTTP server on 127.0.0.1 that records requests and answers as a test tells it. */
export interface HttpTarget {
  url: string;
  requests: ReceivedRequest[];
  /** Sets the answers for the next requests, in order; after they run out, `fallback` answers. */
  respond(...responses: TargetResponse[]): void;
  fallback: TargetResponse;
  close(): Promise<void>;
}

export async function createHttpTarget(): Promise<HttpTarget> {
  const queue: TargetResponse[] = [];
  const requests: ReceivedRequest[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const target: HttpTarget = {
    url: '',
    requests,
    respond: (...responses) => {
      queue.push(...responses);
    },
    fallback: { status: 200, body: { ok: true } },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = body ? JSON.parse(body) : undefined;
      } catch {
        json = undefined;
      }
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
        json,
        at: Date.now(),
      });
      const answer = queue.shift() ?? target.fallback;
      if (answer === 'hang') return;
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      res.end(answer.raw ?? (answer.body === undefined ? '' : JSON.stringify(answer.body)));
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  target.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return target;
}
