// A minimal HTTP listener for the approver: /metrics (Prometheus text) and /healthz (the process and its
// event loop are alive). Loopback by default; the Deployment listens on the Pod IP for probes and scrapes.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UserError } from '../errors.ts';
import type { Registry } from 'prom-client';

export interface ApproverHttp {
  server: Server;
  /** "host:port" actually bound (port 0 picks a free one). */
  address: string;
  close(): Promise<void>;
}

export async function startApproverHttp(
  listen: { host: string; port: number },
  registry: Registry,
  status: () => Record<string, unknown>,
): Promise<ApproverHttp> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(`${JSON.stringify({ status: 'ok', ...status() })}\n`);
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) =>
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new UserError(`cannot listen on ${listen.host}:${listen.port}: ${err.code ?? err.message}`, {
          where: '--metrics-listen',
          fix: 'pick a free port, or --metrics-listen off',
          code: 'LISTEN_FAILED',
        }),
      ),
    );
    server.listen(listen.port, listen.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const address = a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  return {
    server,
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
