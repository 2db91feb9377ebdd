/**
 * The physical limit of HTTP ingest on this machine: a bare `node:http` server that reads the body,
 * parses the JSON, and answers 202 with the same shape Reflex answers (`{seq,id,source}`), with no log,
 * no validation and no disk. Run as its own process:
 *
 *   node --import tsx bench/servers/bare-server.ts [port]
 *
 * Prints `bare listening on http://127.0.0.1:P` when ready; SIGTERM stops it.
 */
import { createServer } from 'node:http';

let seq = 0;

const server = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    let answer: string;
    try {
      const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: unknown; source?: unknown };
      answer = JSON.stringify({ seq: ++seq, id: event.id, source: event.source });
    } catch {
      response.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid JSON"}');
      return;
    }
    response.writeHead(202, { 'content-type': 'application/json' }).end(answer);
  });
});

// Same keep-alive behaviour as Fastify's default, so neither side pays for reconnects the other avoids.
server.keepAliveTimeout = 72_000;

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const address = server.address();
  const port = address !== null && typeof address === 'object' ? address.port : 0;
  process.stdout.write(`bare listening on http://127.0.0.1:${port}\n`);
});

process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
