// A TCP proxy on loopback in front of the real API server, for fault tests that must not disturb the shared
// control plane: 'refuse' closes the listener (connection refused, as a down API server), 'stall' silently
// stops forwarding on every open connection while new ones still work (a half-open stream after a NAT or
// load balancer forgot it), reset() drops every connection (API server restarted). TLS passes through, so
// nodecred still verifies the real API server's certificate.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface FaultProxy {
  url: string;
  port: number;
  refuse(): Promise<void>;
  forward(): Promise<void>;
  stallOpenConnections(): void;
  reset(): void;
  connections(): number;
  /** Connections accepted since start: how many TCP (so TLS) connections the client opened. */
  accepted(): number;
  close(): Promise<void>;
}

/** `host`: the loopback address to listen on (127.0.0.1 by default). */
export async function startProxy(target: string, host = '127.0.0.1'): Promise<FaultProxy> {
  const { hostname, port: targetPort } = new URL(target);
  const open = new Set<{ client: Socket; upstream: Socket; stalled: boolean }>();
  let server: Server | undefined;
  let port = 0;
  let accepted = 0;

  function handle(client: Socket) {
    accepted++;
    const upstream = connect(Number(targetPort), hostname);
    const pair = { client, upstream, stalled: false };
    open.add(pair);
    client.on('data', (d) => {
      if (!pair.stalled) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!pair.stalled) client.write(d);
    });
    const end = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    // A stalled pair swallows closes too: the client must notice by itself.
    client.on('close', () => {
      if (!pair.stalled) end();
      else open.delete(pair);
    });
    upstream.on('close', () => {
      if (!pair.stalled) end();
    });
    client.on('error', () => {});
    upstream.on('error', () => {});
  }

  async function listen(): Promise<void> {
    server = createServer(handle);
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(port, host, () => resolve());
    });
    port = (server.address() as { port: number }).port;
  }

  await listen();
  return {
    get url() {
      return `https://${host}:${port}`;
    },
    get port() {
      return port;
    },
    async refuse() {
      if (!server) return;
      const s = server;
      server = undefined;
      for (const p of open) {
        p.client.destroy();
        p.upstream.destroy();
      }
      open.clear();
      await new Promise((r) => s.close(r));
    },
    async forward() {
      if (!server) await listen();
    },
    stallOpenConnections() {
      for (const p of open) p.stalled = true;
    },
    reset() {
      for (const p of open) {
        p.client.destroy();
        p.upstream.destroy();
      }
      open.clear();
    },
    connections: () => [...open].filter((p) => !p.stalled).length,
    accepted: () => accepted,
    async close() {
      for (const p of open) {
        p.client.destroy();
        p.upstream.destroy();
      }
      open.clear();
      if (server) await new Promise((r) => server!.close(r));
    },
  } as FaultProxy;
}
