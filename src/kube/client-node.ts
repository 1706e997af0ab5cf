// The one adapter over @kubernetes/client-node's plumbing, for the cluster side (the approver): KubeConfig
// construction for an ApiConnection, a deadline on every request, shared connections, and a Watch with an
// inactivity guard. The node side never loads this (src/kube/http-node-api.ts; test/unit/node-side-imports).
// Two of these reach into client-node internals its typings keep private (createDispatcher,
// requestTimeoutMs); they live here and nowhere else, so a client-node upgrade has one file to check.
import { createHash } from 'node:crypto';
import type * as https from 'node:https';
import { KubeConfig, Watch, type Cluster } from '@kubernetes/client-node';
import { Agent, type Dispatcher } from 'undici';
import { UserError } from '../errors.ts';
import { REQUEST_TIMEOUT_MS, type ApiConnection } from './api.ts';

type CreateDispatcher = (cluster: Cluster | null, agentOptions: https.AgentOptions) => Dispatcher | undefined;

/**
 * How long a shared connection may keep a request waiting for response headers before undici gives up
 * on that request and PINGs the HTTP/2 session: no answer within as long again and the session is
 * dropped, so requests move to a fresh connection (client-go's HTTP/2 health check does the same). Below
 * REQUEST_TIMEOUT_MS, so the probe starts before our own deadline fails the request; above what a
 * SubjectAccessReview through a slow authorization webhook takes.
 */
export const SHARED_HEADERS_TIMEOUT_MS = 20_000;

interface KubeConfigOptions {
  /**
   * Share connections between this instance's requests. client-node 2.x builds a new undici Agent, so a new
   * TCP connection and TLS handshake, for every request; the approver makes four requests per CSR and spent
   * most of its time in handshakes. Off for the approver's Lease: a few requests a
   * minute, and a fresh connection each is what makes it immune to a silently dropped one.
   */
  shareConnections?: boolean;
  /** Test hook: SHARED_HEADERS_TIMEOUT_MS otherwise. */
  headersTimeoutMs?: number;
}

/**
 * A KubeConfig whose requests have a deadline and, optionally, share connections. One instance holds one
 * identity (cluster and user are fixed when it is loaded) and callers build a new instance when credentials
 * change; the key check makes "same identity, same connections" explicit rather than assumed. After
 * retire() the instance goes back to a connection per request, so nothing it still does holds a pool open.
 */
export class TimedKubeConfig extends KubeConfig {
  private shared: { key: string; agent: Agent } | undefined;
  private retired = false;

  constructor(options: KubeConfigOptions = {}) {
    super();
    if (!options.shareConnections) return;
    const headersTimeout = options.headersTimeoutMs ?? SHARED_HEADERS_TIMEOUT_MS;
    // createDispatcher is private in client-node's typings; it is the one place an Agent is made.
    const self = this as unknown as { createDispatcher: CreateDispatcher };
    const perRequest = self.createDispatcher.bind(this);
    self.createDispatcher = (cluster, agentOptions) => {
      const opts = this.createDispatcherOptions(cluster, agentOptions);
      // Proxies, and servers needing no TLS options (undici's global pool serves those), stay as client-node has them.
      if (this.retired || opts.type !== 'agent') return perRequest(cluster, agentOptions);
      const key = dispatcherKey(cluster, agentOptions);
      if (this.shared?.key !== key) {
        void this.shared?.agent.close().catch(() => {});
        this.shared = { key, agent: new Agent({ connect: opts.connect, headersTimeout }) };
      }
      return this.shared.agent;
    };
  }

  override async applySecurityAuthentication(
    context: Parameters<KubeConfig['applySecurityAuthentication']>[0],
  ): Promise<void> {
    await super.applySecurityAuthentication(context);
    // client-node's Watch passes its own AbortController's signal to fetch, so this only bounds plain calls.
    context.setSignal(AbortSignal.timeout(REQUEST_TIMEOUT_MS));
  }

  /** Open connections in the shared pool (0 without one). */
  openConnections(): number {
    return Object.values(this.shared?.agent.stats ?? {}).reduce(
      (n, s) => n + ((s as { connected?: number }).connected ?? 0),
      0,
    );
  }

  /** No new requests on the shared connections; they close once in-flight requests (and watches) end. */
  retire(): void {
    this.retired = true;
    const old = this.shared;
    this.shared = undefined;
    void old?.agent.close().catch(() => {});
  }
}

/** Everything that decides which server a connection reaches and as whom, hashed (it includes a key). */
function dispatcherKey(cluster: Cluster | null, agentOptions: https.AgentOptions): string {
  const c: Partial<Cluster> = cluster ?? {};
  const o = agentOptions as Record<string, unknown>;
  const text = (v: unknown) =>
    v === undefined || v === null ? '' : Buffer.isBuffer(v) ? v.toString('base64') : String(v);
  const parts = [
    c.server,
    c.proxyUrl,
    c.skipTLSVerify,
    ...['ca', 'cert', 'key', 'pfx', 'passphrase', 'servername', 'rejectUnauthorized'].map((k) => o[k]),
  ];
  return createHash('sha256').update(parts.map(text).join('\0')).digest('hex');
}

/** A @kubernetes/client-node KubeConfig for one request burst (exec tokens are fetched here, cached). */
export async function kubeConfigFor(conn: ApiConnection, options: KubeConfigOptions = {}): Promise<TimedKubeConfig> {
  const { endpoint, credential } = conn;
  let user: Record<string, string>;
  switch (credential.kind) {
    case 'token':
      user = { token: credential.token };
      break;
    case 'clientCert':
      user = {
        certData: Buffer.from(credential.certPem).toString('base64'),
        keyData: Buffer.from(credential.keyPem).toString('base64'),
      };
      break;
    case 'exec': {
      const cred = await credential.cache.get();
      if (cred.token) user = { token: cred.token };
      else if (cred.clientCertificateData && cred.clientKeyData) {
        user = {
          certData: Buffer.from(cred.clientCertificateData).toString('base64'),
          keyData: Buffer.from(cred.clientKeyData).toString('base64'),
        };
      } else {
        throw new UserError('exec plugin returned neither a token nor a client certificate', {
          where: credential.spec.where,
          fix: 'fix the credential plugin',
          code: 'EXEC_EMPTY',
        });
      }
      break;
    }
  }
  const kc = new TimedKubeConfig(options);
  kc.loadFromOptions({
    clusters: [
      {
        name: 'cluster',
        server: endpoint.server,
        skipTLSVerify: false,
        ...(endpoint.caPem ? { caData: Buffer.from(endpoint.caPem).toString('base64') } : {}),
        ...(endpoint.tlsServerName ? { tlsServerName: endpoint.tlsServerName } : {}),
      },
    ],
    users: [{ name: 'user', ...user }],
    contexts: [{ name: 'context', cluster: 'cluster', user: 'user' }],
    currentContext: 'context',
  });
  return kc;
}

/**
 * A Watch whose stream is aborted after `idleTimeoutMs` without a byte: our guard against half-open
 * connections. client-node keeps that inactivity timer in a field its typings do not expose.
 */
export function idleGuardedWatch(kubeConfig: KubeConfig, idleTimeoutMs: number): Watch {
  const watch = new Watch(kubeConfig);
  (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = idleTimeoutMs;
  return watch;
}
