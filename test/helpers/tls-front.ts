// An HTTPS endpoint on loopback that stands where the API server should be, for the threats token discovery
// must survive: it answers GET kube-public/cluster-info with a ConfigMap the test composes (what a holder of
// the bootstrap token with a network position can serve: the JWS is only as secret as the token), and
// forwards every other request to the real API server (or refuses it). It records what reached it, so a test
// can prove that no credential was sent to it.
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface FrontRequest {
  method: string;
  path: string;
  /** True when the request carried an Authorization header (a bearer token, for discovery). */
  authorization: boolean;
}

export interface TlsFront {
  url: string;
  requests: FrontRequest[];
  /** TLS handshakes completed: a client that refused the certificate never completes one. */
  handshakes(): number;
  close(): Promise<void>;
}

export interface TlsFrontOptions {
  certPem: string;
  keyPem: string;
  /** The cluster-info ConfigMap's data to serve. */
  clusterInfo: Record<string, string>;
  /** Forward everything else here (the real API server); without it every other request gets a 502. */
  upstream?: { url: string; caPem: string };
}

const CLUSTER_INFO_PATH = '/api/v1/namespaces/kube-public/configmaps/cluster-info';

export async function startTlsFront(opts: TlsFrontOptions): Promise<TlsFront> {
  const requests: FrontRequest[] = [];
  let handshakes = 0;
  const server: Server = createServer({ cert: opts.certPem, key: opts.keyPem }, (req, res) => {
    const path = req.url ?? '/';
    requests.push({ method: req.method ?? '', path, authorization: req.headers.authorization !== undefined });
    if (req.method === 'GET' && new URL(path, 'https://front').pathname === CLUSTER_INFO_PATH) {
      const body = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'cluster-info', namespace: 'kube-public' },
        data: opts.clusterInfo,
      };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
      return;
    }
    if (!opts.upstream) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('not forwarded\n');
      return;
    }
    const target = new URL(path, opts.upstream.url);
    const headers = { ...req.headers, host: target.host };
    const up = request(target, { method: req.method, headers, ca: opts.upstream.caPem }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
    res.on('close', () => up.destroy());
  });
  server.on('secureConnection', () => handshakes++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    requests,
    handshakes: () => handshakes,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
