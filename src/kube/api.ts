// API connections: where the API server is, how to trust it, and who we are to it. Built from a kubeconfig
// file (bootstrap or node), from token discovery, or from an installed client certificate; turned into
// @kubernetes/client-node clients on demand so file-based and exec credentials are always fresh.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type * as https from 'node:https';
import {
  KubeConfig,
  ApiException,
  CertificatesV1Api,
  CoreV1Api,
  AuthenticationV1Api,
  type Cluster,
} from '@kubernetes/client-node';
import { Agent, type Dispatcher } from 'undici';
import { UserError, errnoError, isUserError } from '../errors.ts';
import { parseKubeconfig, type ExecCredentialSpec, type KubeconfigConnection } from './kubeconfig.ts';
import { ExecCredentialCache, runExecPlugin } from './exec-credential.ts';

export interface ApiEndpoint {
  server: string;
  /** PEM bundle the API server's certificate must chain to; undefined means the system roots. */
  caPem: string | undefined;
  tlsServerName?: string;
}

export type ApiCredential =
  | { kind: 'token'; token: string }
  | { kind: 'clientCert'; certPem: string; keyPem: string }
  | { kind: 'exec'; spec: ExecCredentialSpec; cache: ExecCredentialCache };

export interface ApiConnection {
  endpoint: ApiEndpoint;
  credential: ApiCredential;
  /** For messages: "bootstrap token from /etc/kubernetes/bootstrap-kubelet.conf". */
  description: string;
}

async function readText(path: string, where: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const known = errnoError(err, { action: 'read', path });
    throw new UserError(known?.message ?? `cannot read ${path}: ${(err as Error).message}`, {
      where,
      fix: known?.fix ?? 'check the path and its permissions',
      code: 'FILE_UNREADABLE',
    });
  }
}

export async function readKubeconfigFile(path: string): Promise<KubeconfigConnection> {
  return parseKubeconfig(await readText(path, path), path);
}

/** The cluster half of a kubeconfig: server, CA (read from its file if need be), TLS server name. */
export async function endpointOf(kc: KubeconfigConnection): Promise<ApiEndpoint> {
  return {
    server: kc.cluster.server,
    caPem:
      kc.cluster.caData ??
      (kc.cluster.caPath ? await readText(kc.cluster.caPath, `${kc.file}: certificate-authority`) : undefined),
    ...(kc.cluster.tlsServerName ? { tlsServerName: kc.cluster.tlsServerName } : {}),
  };
}

/** Reads every file a parsed kubeconfig refers to and returns a connection. */
export async function connectionFromKubeconfig(kc: KubeconfigConnection, role: string): Promise<ApiConnection> {
  const endpoint = await endpointOf(kc);
  const c = kc.credential;
  const where = `${kc.file}: users[${kc.userName}]`;
  switch (c.kind) {
    case 'token': {
      const token = c.token ?? (await readText(c.tokenPath!, `${where}.tokenFile`)).trim();
      return { endpoint, credential: { kind: 'token', token }, description: `${role} token from ${kc.file}` };
    }
    case 'clientCert': {
      const certPem = c.certData ?? (await readText(c.certPath!, `${where}.client-certificate`));
      const keyPem = c.keyData ?? (await readText(c.keyPath!, `${where}.client-key`));
      return {
        endpoint,
        credential: { kind: 'clientCert', certPem, keyPem },
        description: `${role} client certificate from ${kc.file}`,
      };
    }
    case 'exec': {
      const clusterInfo = {
        server: endpoint.server,
        ...(endpoint.caPem ? { caData: endpoint.caPem } : {}),
        ...(endpoint.tlsServerName ? { tlsServerName: endpoint.tlsServerName } : {}),
      };
      const cache = new ExecCredentialCache(() => runExecPlugin(c, { timeoutMs: 60_000, clusterInfo }));
      return {
        endpoint,
        credential: { kind: 'exec', spec: c, cache },
        description: `${role} exec plugin ${c.command} from ${kc.file}`,
      };
    }
  }
}

export async function connectionFromKubeconfigFile(path: string, role: string): Promise<ApiConnection> {
  return connectionFromKubeconfig(await readKubeconfigFile(path), role);
}

/** Every API request gets a deadline: a black-holed connection must fail, not hang the manager forever. */
export const REQUEST_TIMEOUT_MS = 30_000;

type CreateDispatcher = (cluster: Cluster | null, agentOptions: https.AgentOptions) => Dispatcher | undefined;

/**
 * How long a shared connection may keep a request waiting for response headers before undici gives up
 * on that request and PINGs the HTTP/2 session: no answer within as long again and the session is
 * dropped, so requests move to a fresh connection (client-go's HTTP/2 health check does the same). Below
 * REQUEST_TIMEOUT_MS, so the probe starts before our own deadline fails the request; above what a
 * SubjectAccessReview through a slow authorization webhook takes.
 */
export const SHARED_HEADERS_TIMEOUT_MS = 20_000;

export interface KubeConfigOptions {
  /**
   * Share connections between this instance's requests. client-node 2.x builds a new undici Agent, so a new
   * TCP connection and TLS handshake, for every request; the approver makes four requests per CSR and spent
   * most of its time in handshakes. Off for the node daemon and the approver's Lease: a few requests a
   * minute, and a fresh connection each is what makes them immune to a silently dropped one.
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

export interface ApiClients {
  kubeConfig: KubeConfig;
  certificates: CertificatesV1Api;
  core: CoreV1Api;
  authentication: AuthenticationV1Api;
}

export async function clientsFor(conn: ApiConnection): Promise<ApiClients> {
  const kubeConfig = await kubeConfigFor(conn);
  return {
    kubeConfig,
    certificates: kubeConfig.makeApiClient(CertificatesV1Api),
    core: kubeConfig.makeApiClient(CoreV1Api),
    authentication: kubeConfig.makeApiClient(AuthenticationV1Api),
  };
}

/** HTTP status of an API error, or undefined for transport errors (connection refused, TLS, timeout). */
export function statusOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  // client-node's Watch reports HTTP failures as plain Errors carrying statusCode.
  const statusCode = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof statusCode === 'number' ? statusCode : undefined;
}

/** The Status message the API server sent, if any, without echoing request bodies. */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    try {
      const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
      if (body && typeof body.message === 'string') return body.message;
    } catch {
      /* not JSON */
    }
    return `HTTP ${err.code}`;
  }
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  return e.cause?.code ?? e.code ?? e.message ?? String(err);
}

/**
 * Turns the API errors a user can fix into UserErrors naming the credential and the fix; everything else
 * (network, 5xx) is returned unchanged for the caller to retry.
 */
export function explainApiError(err: unknown, conn: ApiConnection, action: string): unknown {
  // Already explained (an exec plugin that failed, a file that cannot be read): its code is not a transport
  // error code, and reporting it as "cannot reach the API server" would hide what the user must fix.
  if (isUserError(err)) return err;
  const status = statusOf(err);
  if (status === 401) {
    const fix =
      conn.credential.kind === 'token'
        ? 'the token is unknown, expired or deleted: create a new bootstrap token (scripts/create-bootstrap-token) and update the bootstrap kubeconfig'
        : conn.credential.kind === 'clientCert'
          ? 'the client certificate is not trusted by the API server or has expired: remove it so nodecred bootstraps again'
          : 'the exec credential plugin returned a credential the API server rejects: check the plugin and its IAM/identity mapping';
    return new UserError(`${action}: 401 Unauthorized with the ${conn.description}`, {
      where: conn.endpoint.server,
      fix,
      code: 'UNAUTHORIZED',
      cause: err,
    });
  }
  if (status === 403) {
    return new UserError(`${action}: 403 Forbidden: ${apiMessage(err)}`, {
      where: conn.endpoint.server,
      fix: rbacHintFor(action),
      code: 'FORBIDDEN',
      cause: err,
    });
  }
  const code = transportCode(err);
  if (code === 'CERT_NOT_YET_VALID' || code === 'CERT_HAS_EXPIRED') {
    return new UserError(
      `${action}: the API server's certificate is ${code === 'CERT_NOT_YET_VALID' ? 'not yet valid' : 'expired'} by this node's clock (${new Date().toISOString()}); refusing to talk to it`,
      {
        where: conn.endpoint.server,
        fix: 'check the node clock (NTP/chrony); if the clock is right, the API server certificate needs renewal',
        code: 'TLS_UNTRUSTED',
        cause: err,
      },
    );
  }
  if (code && TLS_TRUST_CODES.has(code)) {
    return new UserError(`${action}: the API server's certificate is not trusted (${code}); refusing to talk to it`, {
      where: conn.endpoint.server,
      fix: `check the CA in the ${conn.description.replace(/^.*? from /, '')} (certificate-authority) and the server address / tls-server-name`,
      code: 'TLS_UNTRUSTED',
      cause: err,
    });
  }
  if (status === 429) {
    return new TransientApiError(
      `${action}: the API server at ${conn.endpoint.server} is throttling requests (HTTP 429, API priority and fairness); backing off`,
      err,
    );
  }
  if (status === undefined || status >= 500) {
    return new TransientApiError(
      `${action}: cannot reach the API server at ${conn.endpoint.server}: ${status ? `HTTP ${status}` : (code ?? apiMessage(err))}`,
      err,
    );
  }
  return err;
}

/** A failure worth retrying (network, timeout, 5xx, 429); its message is one clean line. */
export class TransientApiError extends Error {
  override name = 'TransientApiError';
  constructor(message: string, cause: unknown) {
    super(message, { cause });
  }
}

const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
]);

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EPIPE',
  'TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** True for failures that may go away by themselves: worth retrying, not worth a stack trace. */
export function isTransient(err: unknown): boolean {
  if (err instanceof TransientApiError) return true;
  const code = transportCode(err);
  return code !== undefined && NETWORK_CODES.has(code);
}

/** The TLS verification code of an error that says the peer's certificate is not trusted, if it is one. */
export function tlsTrustCode(err: unknown): string | undefined {
  const code = transportCode(err);
  return code && TLS_TRUST_CODES.has(code) ? code : undefined;
}

/** The errno/TLS code of a transport error, digging through fetch's `cause` chain. */
function transportCode(err: unknown): string | undefined {
  let e = err as { code?: unknown; cause?: unknown; name?: unknown } | undefined;
  for (let depth = 0; e && depth < 5; depth++) {
    if (typeof e.code === 'string') return e.code;
    if (e.name === 'TimeoutError') return 'TIMEOUT';
    e = e.cause as typeof e;
  }
  return undefined;
}

function rbacHintFor(action: string): string {
  if (action.startsWith('create CSR')) {
    return 'bind the ClusterRole system:node-bootstrapper to the bootstrap group (e.g. system:bootstrappers), as scripts/create-bootstrap-token does';
  }
  if (action.startsWith('read Node'))
    return 'the Node authorizer only lets system:node:<name> read its own Node; check --node-name matches the certificate';
  return 'grant the missing permission named above';
}
