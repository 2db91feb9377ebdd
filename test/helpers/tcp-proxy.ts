import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 in front of a real server, which a test uses to cut a client's connection
 * (an outage) without stopping the server that other tests share.
 *
 * `cut()` destroys every open connection and refuses new ones (they are closed as soon as accepted, as
 * a dead peer would) until `restore()`.
 *
 * @example
 * const proxy = await startTcpProxy({ port: 4222 });
 * // connect the client under test to `proxy.port`
 * await proxy.cut();
 * proxy.restore();
 * await proxy.close();
 */
export interface TcpProxy {
  /** The port clients connect to. */
  readonly port: number;
  /** Open client connections now. */
  readonly connections: number;
  /** Connections accepted so far, including those refused while cut. */
  readonly accepted: number;
  /** Closes every connection and refuses new ones until `restore`. */
  cut(): Promise<void>;
  /** Lets connections through again. */
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { port: number; host?: string }): Promise<TcpProxy> {
  const host = target.host ?? '127.0.0.1';
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  let refusing = false;
  let accepted = 0;
  const server: Server = createServer((client) => {
    accepted += 1;
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(target.port, host);
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP port');
  const destroyAll = async () => {
    const closing = [...pairs].map(
      ({ client, upstream }) =>
        new Promise<void>((resolve) => {
          client.once('close', () => resolve());
          client.destroy();
          upstream.destroy();
        }),
    );
    await Promise.all(closing);
  };
  return {
    port: address.port,
    get connections() {
      return pairs.size;
    },
    get accepted() {
      return accepted;
    },
    async cut() {
      refusing = true;
      await destroyAll();
    },
    restore() {
      refusing = false;
    },
    async close() {
      refusing = true;
      await destroyAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
