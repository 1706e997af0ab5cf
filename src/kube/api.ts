// API connections: where the API server is, how to trust it, and who we are to it. Built from a kubeconfig
// file (bootstrap or node), from token discovery, or from an installed client certificate. Also the one
// classification of failed requests every API client shares (see the contract in node-api.ts): what the
// user must fix (UserError), what may pass (TransientApiError), and the rest (ApiStatusError). Nothing
// here depends on a particular HTTP client; src/kube/client-node.ts is the @kubernetes/client-node side.
import { readFile } from 'node:fs/promises';
import { UserError, errnoError } from '../errors.ts';
import { loadCertificates } from '../pki/cert.ts';
import { parseKubeconfig, type ExecCredentialSpec, type KubeconfigConnection } from './kubeconfig.ts';
import { ExecCredentialCache, runExecPlugin } from './exec-credential.ts';

export interface ApiEndpoint {
  server: string;
  /** PEM bundle the API server's certificate must chain to; undefined means the system roots. */
  caPem: string | undefined;
  tlsServerName?: string;
  /** The kubeconfig's proxy-url: every request goes through it (else HTTPS_PROXY / NO_PROXY apply). */
  proxyUrl?: string;
}

type ApiCredential =
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

/**
 * The kubeconfig's certificate-authority file. It must hold PEM certificates: an empty (or truncated, or
 * DER) file would otherwise mean "no CA", and the connection would trust the system roots instead.
 */
async function readCaFile(path: string, kubeconfigFile: string): Promise<string> {
  const where = `${kubeconfigFile}: certificate-authority`;
  const pem = await readText(path, where);
  try {
    loadCertificates(pem, 'CA file', path);
  } catch (err) {
    const why = pem.trim() === '' ? 'is empty' : `is not a PEM CA bundle (${(err as Error).message})`;
    throw new UserError(`CA file ${path} ${why}`, {
      where,
      fix: "point certificate-authority at the cluster CA's PEM file (or inline it as certificate-authority-data)",
      code: 'BAD_CA_FILE',
    });
  }
  return pem;
}

/** The cluster half of a kubeconfig: server, CA (read from its file if need be), TLS server name. */
export async function endpointOf(kc: KubeconfigConnection): Promise<ApiEndpoint> {
  return {
    server: kc.cluster.server,
    caPem: kc.cluster.caData ?? (kc.cluster.caPath ? await readCaFile(kc.cluster.caPath, kc.file) : undefined),
    ...(kc.cluster.tlsServerName ? { tlsServerName: kc.cluster.tlsServerName } : {}),
    ...(kc.cluster.proxyUrl ? { proxyUrl: kc.cluster.proxyUrl } : {}),
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
      // An empty token would send every request anonymously, and the 403 for system:anonymous points at RBAC.
      if (token === '')
        throw new UserError(`token file ${c.tokenPath} is empty`, {
          where: `${where}.tokenFile`,
          fix: 'write the bootstrap token (ID.SECRET) into it',
          code: 'FILE_UNREADABLE',
        });
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
        ...(endpoint.proxyUrl ? { proxyUrl: endpoint.proxyUrl } : {}),
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

/**
 * HTTP status of a failed request, or undefined for transport errors (connection refused, TLS, timeout).
 * Read from the shapes clients throw: `code` (client-node's ApiException), `statusCode` (its Watch), `status`.
 */
export function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; status?: unknown } | null;
  for (const value of [e?.code, e?.statusCode, e?.status]) if (typeof value === 'number') return value;
  return undefined;
}

/** The Status message the API server sent, if any, without echoing request bodies. */
export function apiMessage(err: unknown): string {
  const status = statusOf(err);
  if (status !== undefined) {
    try {
      const raw = (err as { body?: unknown }).body;
      const body = typeof raw === 'string' ? JSON.parse(raw) : raw;
      if (body && typeof body.message === 'string') return body.message;
    } catch {
      /* not JSON */
    }
    return `HTTP ${status}`;
  }
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  return e.cause?.code ?? e.code ?? e.message ?? String(err);
}

const UNAUTHORIZED_FIX: Record<ApiCredential['kind'], string> = {
  token:
    'the token is unknown, expired or deleted: create a new bootstrap token (scripts/create-bootstrap-token) ' +
    'and update the bootstrap kubeconfig',
  clientCert:
    'the client certificate is not trusted by the API server or has expired (its client CA changed?): nodecred ' +
    'bootstraps again once the refusal has lasted 5 minutes, if it has bootstrap credentials; at once: ' +
    'remove the certificate and restart nodecred',
  exec:
    'the exec credential plugin returned a credential the API server rejects: check the plugin and its ' +
    'IAM/identity mapping',
};

/** What a request was, for the messages explainApiError writes. */
export interface ApiAction {
  /** "create CSR nodecred-client-…", "read Node worker-1". */
  what: string;
  /** The fix for a 403 on this action: which permission is missing and how to grant it. */
  forbiddenFix?: string;
}

/**
 * Turns a failed request into the error the contract (node-api.ts) promises: a UserError naming the
 * credential and the fix (401, 403, untrusted TLS), a TransientApiError (network, timeout, 5xx, 429), or an
 * ApiStatusError (any other status).
 */
export function explainApiError(err: unknown, conn: ApiConnection, action: ApiAction): Error {
  if (err instanceof UserError || err instanceof TransientApiError || err instanceof ApiStatusError) return err;
  const { what } = action;
  const status = statusOf(err);
  if (status === 401) {
    return new UserError(`${what}: 401 Unauthorized with the ${conn.description}`, {
      where: conn.endpoint.server,
      fix: UNAUTHORIZED_FIX[conn.credential.kind],
      code: 'UNAUTHORIZED',
      cause: err,
    });
  }
  if (status === 403) {
    return new UserError(`${what}: 403 Forbidden: ${apiMessage(err)}`, {
      where: conn.endpoint.server,
      fix: action.forbiddenFix ?? 'grant the missing permission named above',
      code: 'FORBIDDEN',
      cause: err,
    });
  }
  const code = transportCode(err);
  if (code === 'CERT_NOT_YET_VALID' || code === 'CERT_HAS_EXPIRED') {
    const state = code === 'CERT_NOT_YET_VALID' ? 'not yet valid' : 'expired';
    return new UserError(
      `${what}: the API server's certificate is ${state} by this node's clock (${new Date().toISOString()}); ` +
        'refusing to talk to it',
      {
        where: conn.endpoint.server,
        fix: 'check the node clock (NTP/chrony); if the clock is right, the API server certificate needs renewal',
        code: 'TLS_UNTRUSTED',
        cause: err,
      },
    );
  }
  if (code && TLS_TRUST_CODES.has(code)) {
    return new UserError(`${what}: the API server's certificate is not trusted (${code}); refusing to talk to it`, {
      where: conn.endpoint.server,
      fix:
        `check the CA in the ${conn.description.replace(/^.*? from /, '')} (certificate-authority) ` +
        'and the server address / tls-server-name',
      code: 'TLS_UNTRUSTED',
      cause: err,
    });
  }
  if (status === 429) {
    return new TransientApiError(
      `${what}: the API server at ${conn.endpoint.server} is throttling requests ` +
        '(HTTP 429, API priority and fairness); backing off',
      err,
    );
  }
  if (status === undefined || status >= 500) {
    return new TransientApiError(
      `${what}: cannot reach the API server at ${conn.endpoint.server}: ` +
        (status ? `HTTP ${status}` : (code ?? apiMessage(err))),
      err,
    );
  }
  return new ApiStatusError(`${what}: HTTP ${status}: ${apiMessage(err)}`, status, err);
}

/** A request the API server refused with a status that is neither transient nor one the user can fix here. */
export class ApiStatusError extends Error {
  override name = 'ApiStatusError';
  readonly status: number;
  constructor(message: string, status: number, cause: unknown) {
    super(message, { cause });
    this.status = status;
  }
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
  // HTTP/2 REFUSED_STREAM twice in a row (src/kube/http/pool.ts): not processed; the server is draining.
  'REFUSED_STREAM',
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
