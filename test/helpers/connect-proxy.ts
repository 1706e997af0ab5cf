// An HTTP forward proxy that only tunnels (CONNECT), as corporate egress proxies do for HTTPS. It resolves
// every host to 127.0.0.1 (the test cluster's address), so a client that reaches the API server under a name
// only this proxy can resolve (kubernetes.default.svc, in the serving certificate's SANs) provably went
// through it. TLS passes through: the client still verifies the real API server.
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface ConnectProxy {
  url: string;
  /** The CONNECT targets asked for, in order ("host:port"). */
  requests: string[];
  close(): Promise<void>;
}

export async function startConnectProxy(
  opts: { requireAuth?: string /** listen address, 127.0.0.1 by default */; host?: string } = {},
): Promise<ConnectProxy> {
  const host = opts.host ?? '127.0.0.1';
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((_req, res) => {
    res.writeHead(405).end('CONNECT only\n');
  });
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    const target = req.url ?? '';
    requests.push(target);
    if (opts.requireAuth && req.headers['proxy-authorization'] !== `Basic ${btoa(opts.requireAuth)}`) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n');
      return;
    }
    const port = Number(/:(\d+)$/.exec(target)?.[1]);
    const upstream = connect(port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://${host}:${port}`,
    requests,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
