// kubeadm-style token discovery over the network: fetch kube-public/cluster-info, verify its JWS with the
// token, pin the CA, then fetch it again over a connection that trusts only the pinned CA(s) and require the
// same content. The first fetch cannot verify the server (we do not know the CA yet: that is what discovery
// is for); its content is trusted only after the signature and the pin both check out.
import { request } from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { UserError } from '../errors.ts';
import { caPinHash } from '../pki/cert.ts';
import {
  parseDiscoveryToken,
  verifyClusterInfoJws,
  extractClusterCa,
  pinnedCaCertificates,
  clusterInfoJwsKey,
  splitPemCertificates,
} from './discovery.ts';
import { tlsTrustCode, type ApiConnection } from './api.ts';
import { tunnelThrough, verifyIdentityAs } from './http/connect.ts';
import { hostOf, portOf, proxyFor } from './http/url.ts';

const CLUSTER_INFO_PATH = '/api/v1/namespaces/kube-public/configmaps/cluster-info';

interface ConfigMap {
  data?: Record<string, string>;
}

function fetchClusterInfo(
  apiServer: string,
  tls: { ca?: string; servername?: string },
  timeoutMs: number,
): Promise<ConfigMap> {
  return new Promise((resolve, reject) => {
    const url = new URL(CLUSTER_INFO_PATH, apiServer);
    // Only the unauthenticated first fetch runs without a CA; see the file comment.
    const trust = tls.ca ? { ca: tls.ca, rejectUnauthorized: true } : { rejectUnauthorized: false };
    // Through HTTPS_PROXY unless NO_PROXY (or loopback) says otherwise, as the API client and kubeadm do.
    const proxy = proxyFor(url, process.env);
    const req = request(
      url,
      {
        method: 'GET',
        headers: { accept: 'application/json' },
        timeout: timeoutMs,
        ...trust,
        ...(tls.servername ? { servername: tls.servername } : {}),
        ...(proxy ? { createConnection: tunnelled(proxy, url, { ...trust, ...tls }, timeoutMs) } : {}),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
          if (body.length > 1 << 20) req.destroy(new Error('cluster-info response larger than 1 MiB'));
        });
        res.on('end', () => {
          if (res.statusCode === 404) {
            return reject(
              new UserError('kube-public/cluster-info does not exist', {
                where: apiServer,
                fix: 'run scripts/setup-cluster-info on the cluster (kubeadm clusters have it)',
                code: 'DISCOVERY_NO_CLUSTER_INFO',
              }),
            );
          }
          if (res.statusCode === 401 || res.statusCode === 403) {
            return reject(
              new UserError(`anonymous read of kube-public/cluster-info refused (HTTP ${res.statusCode})`, {
                where: apiServer,
                fix:
                  'allow anonymous get on that ConfigMap (scripts/setup-cluster-info creates the Role and ' +
                  'RoleBinding)',
                code: 'DISCOVERY_FORBIDDEN',
              }),
            );
          }
          if (res.statusCode !== 200) return reject(new Error(`GET cluster-info: HTTP ${res.statusCode}`));
          try {
            resolve(JSON.parse(body) as ConfigMap);
          } catch {
            reject(
              new UserError('cluster-info is not JSON', {
                where: apiServer,
                fix: 'check --api-server points at a Kubernetes API server',
                code: 'DISCOVERY_BAD_RESPONSE',
              }),
            );
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', (err) => {
      const code = tls.ca ? tlsTrustCode(err) : undefined;
      if (!code) return reject(err);
      reject(
        new UserError(`the API server's certificate does not chain to a pinned CA (${code}); refusing to go on`, {
          where: apiServer,
          fix:
            'the server you reached is not the cluster you pinned (or its certificate comes from a CA you did not ' +
            "pin: add that CA's --discovery-token-ca-cert-hash); never trust it by adding a pin you did not check",
          code: 'DISCOVERY_TLS_UNTRUSTED',
        }),
      );
    });
    req.end();
  });
}

/** https.request's createConnection for a TLS connection through the proxy's tunnel. */
function tunnelled(
  proxy: URL,
  url: URL,
  tls: { ca?: string; servername?: string; rejectUnauthorized: boolean },
  timeoutMs: number,
) {
  return (_options: unknown, done: (err: Error | null, socket: Duplex) => void): undefined => {
    const host = hostOf(url);
    const name = tls.servername ?? host;
    tunnelThrough(proxy, host, portOf(url), AbortSignal.timeout(timeoutMs)).then(
      (socket) =>
        done(
          null,
          tlsConnect({
            socket,
            ...(isIP(name) ? {} : { servername: name }),
            checkServerIdentity: verifyIdentityAs(name),
            ...(tls.ca ? { ca: tls.ca } : {}),
            rejectUnauthorized: tls.rejectUnauthorized,
          }),
        ),
      (err: Error) => done(err, undefined as unknown as Duplex),
    );
    return undefined; // the socket comes through `done`
  };
}

interface DiscoveryInput {
  apiServer: string;
  token: string;
  caCertHashes: string[];
  tlsServerName?: string;
  timeoutMs?: number;
}

/** Runs discovery and returns a connection authenticated with the same bootstrap token. */
export async function discover(input: DiscoveryInput): Promise<ApiConnection> {
  const { tokenId, tokenSecret } = parseDiscoveryToken(input.token, '--discovery-token');
  const timeoutMs = input.timeoutMs ?? 15_000;
  const first = await fetchClusterInfo(
    input.apiServer,
    input.tlsServerName ? { servername: input.tlsServerName } : {},
    timeoutMs,
  );
  const kubeconfigText = first.data?.kubeconfig;
  if (!kubeconfigText) {
    throw new UserError('kube-public/cluster-info has no data.kubeconfig', {
      where: input.apiServer,
      fix: 'recreate it with scripts/setup-cluster-info',
      code: 'DISCOVERY_BAD_RESPONSE',
    });
  }
  verifyClusterInfoJws({ kubeconfigText, jwsDetached: first.data?.[clusterInfoJwsKey(tokenId)], tokenId, tokenSecret });
  const info = extractClusterCa(kubeconfigText);
  // From here on only the pinned certificates are trusted: for the pinned re-fetch and in the node's
  // kubeconfig. Any other CA in the bundle is dropped, whoever put it there.
  const { pinned } = pinnedCaCertificates(
    splitPemCertificates(info.caPem),
    input.caCertHashes,
    (pem) => caPinHash(pem),
    '--discovery-token-ca-cert-hash',
  );
  const caPem = `${pinned.join('\n')}\n`;

  const second = await fetchClusterInfo(
    input.apiServer,
    { ca: caPem, ...(input.tlsServerName ? { servername: input.tlsServerName } : {}) },
    timeoutMs,
  );
  if (second.data?.kubeconfig !== kubeconfigText) {
    throw new UserError('cluster-info changed between the unverified and the pinned fetch', {
      where: input.apiServer,
      fix: 'retry; if it persists, something between this node and the API server is rewriting responses',
      code: 'DISCOVERY_MISMATCH',
    });
  }
  return {
    // The API server to talk to from now on is the one we discovered through, which is the address this
    // node can reach (cluster-info's server may be an internal name).
    endpoint: {
      server: input.apiServer,
      caPem,
      ...(input.tlsServerName ? { tlsServerName: input.tlsServerName } : {}),
    },
    credential: { kind: 'token', token: `${tokenId}.${tokenSecret}` },
    description: `bootstrap token ${tokenId} (token discovery via ${input.apiServer})`,
  };
}
