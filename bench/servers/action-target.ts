/**
 * The downstream system of the event-to-action benchmark: Reflex's `http` action calls
 * `POST /action` with `{ "id": "<event id>" }`, and this server notes when each call arrived.
 * Run as its own process so its timestamps are not delayed by the load generator's work:
 *
 *   node --import tsx bench/servers/action-target.ts [port]
 *
 * Arrival times are `process.hrtime.bigint()` values, taken when the request's headers have been parsed.
 * That clock is CLOCK_MONOTONIC, shared by every process on the machine, so the bench can subtract its
 * own readings from them.
 *
 * - `POST /action`: records `{id}` → arrival; answers 200 `{}`. A repeat of an id keeps the first arrival.
 * - `GET /count`: `{ "count": n }`, the number of distinct ids seen.
 * - `GET /arrivals`: `{ "<id>": "<ns>" }` for every id seen.
 * - `POST /reset`: forgets everything (between warm-up and measurement).
 */
import { createServer } from 'node:http';

const arrivals = new Map<string, bigint>();
let repeats = 0;

const server = createServer((request, response) => {
  const arrivedAt = process.hrtime.bigint();
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const send = (status: number, body: unknown) =>
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (request.method === 'POST' && request.url === '/action') {
      try {
        const { id } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: unknown };
        if (typeof id !== 'string') return send(400, { error: 'no id' });
        if (arrivals.has(id)) repeats++;
        else arrivals.set(id, arrivedAt);
        return send(200, {});
      } catch {
        return send(400, { error: 'invalid JSON' });
      }
    }
    if (request.method === 'GET' && request.url === '/count')
      return send(200, { count: arrivals.size, repeats });
    if (request.method === 'GET' && request.url === '/arrivals') {
      const out: Record<string, string> = {};
      for (const [id, at] of arrivals) out[id] = at.toString();
      return send(200, out);
    }
    if (request.method === 'POST' && request.url === '/reset') {
      arrivals.clear();
      repeats = 0;
      return send(200, {});
    }
    return send(404, { error: 'not found' });
  });
});

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const address = server.address();
  const port = address !== null && typeof address === 'object' ? address.port : 0;
  process.stdout.write(`target listening on http://127.0.0.1:${port}\n`);
});

process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
