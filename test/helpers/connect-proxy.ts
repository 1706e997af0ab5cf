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
  /** With `hold`: answers the CONNECTs held so far (and every later one at once). */
  release(): void;
  /** Tunnels whose client closed its side, and bytes the API server sent through the tunnels. */
  clientCloses(): number;
  bytesFromServer(): number;
  close(): Promise<void>;
}

export async function startConnectProxy(
  opts: {
    requireAuth?: string;
    /** Listen address, 127.0.0.1 by default. */
    host?: string;
    /** Hold every CONNECT unanswered until release(): a connection still being made. */
    hold?: boolean;
  } = {},
): Promise<ConnectProxy> {
  const host = opts.host ?? '127.0.0.1';
  let held: (() => void)[] | undefined = opts.hold ? [] : undefined;
  let clientCloses = 0;
  let bytesFromServer = 0;
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((_req, res) => {
    res.writeHead(405).end('CONNECT only\n');
  });
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    if (held) {
      held.push(() => tunnel(req, client, head));
      requests.push(req.url ?? '');
      sockets.add(client);
      client.on('error', () => {});
      return;
    }
    requests.push(req.url ?? '');
    tunnel(req, client, head);
  });
  function tunnel(req: IncomingMessage, client: Socket, head: Buffer) {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    // FIN, or a reset when the client closed with bytes unread (a TLS 1.3 session ticket).
    let closed = false;
    const closedByClient = () => {
      if (!closed) clientCloses++;
      closed = true;
    };
    client.on('end', closedByClient);
    client.on('error', closedByClient);
    const target = req.url ?? '';
    if (opts.requireAuth && req.headers['proxy-authorization'] !== `Basic ${btoa(opts.requireAuth)}`) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n');
      return;
    }
    const port = Number(/:(\d+)$/.exec(target)?.[1]);
    const upstream = connect(port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.on('data', (d: Buffer) => (bytesFromServer += d.length));
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  }
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://${host}:${port}`,
    requests,
    release: () => {
      const waiting = held ?? [];
      held = undefined;
      for (const go of waiting) go();
    },
    clientCloses: () => clientCloses,
    bytesFromServer: () => bytesFromServer,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
