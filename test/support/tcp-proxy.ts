import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 in front of a real server (e.g. PostgreSQL on
 * 5432), so a test can make the server "unreachable" without touching it:
 *  - `stop()`: the port refuses connections and open ones are cut (server down);
 *  - `mode = 'silent'`: connections are accepted but nothing is forwarded
 *    (a black-holed server: only deadlines notice);
 *  - `start()`: forwarding again, on the same port.
 */
export interface TcpProxy {
  readonly port: number;
  mode: 'forward' | 'silent';
  /** Connections accepted so far. */
  readonly connections: number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }, port = 0): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  let accepted = 0;

  const proxy: TcpProxy = {
    port,
    mode: 'forward',
    get connections() {
      return accepted;
    },
    async start() {
      if (server) return;
      const s = createServer((client) => {
        accepted++;
        sockets.add(client);
        client.on('close', () => sockets.delete(client));
        client.on('error', () => client.destroy());
        if (proxy.mode === 'silent') return; // hold the connection, say nothing
        const upstream = createConnection(target);
        sockets.add(upstream);
        upstream.on('close', () => {
          sockets.delete(upstream);
          client.destroy();
        });
        upstream.on('error', () => upstream.destroy());
        client.on('close', () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(proxy.port, '127.0.0.1', () => resolve());
      });
      server = s;
      (proxy as { port: number }).port = (s.address() as { port: number }).port;
    },
    async stop() {
      const s = server;
      server = null;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
  await proxy.start();
  return proxy;
}
