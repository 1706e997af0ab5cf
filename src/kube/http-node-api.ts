// NodeApi (node-api.ts) over node:http2 / node:http: the node side's own small client. Every call is one
// HTTP request (a watch is one streamed request) on connections shared per server and TLS identity
// (http/pool.ts), with the contract's deadline, and every failure classified by explainApiError (api.ts).
// What @kubernetes/client-node did for the node side and this keeps: bearer tokens, client certificates, exec
// credentials through their cache, the endpoint's CA and tls-server-name, proxies; plus what it did not: a
// 401 makes the next call run the exec plugin again (client-go does the same).
import { isUserError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { explainApiError, REQUEST_TIMEOUT_MS, TransientApiError, type ApiAction, type ApiConnection } from './api.ts';
import { CSR_PATH, csrBody, decisionOf, toCsr, type CsrObject } from './csr-object.ts';
import { watchStream } from './http/watch-stream.ts';
import { ConnectionPool, type OpenResponse } from './http/pool.ts';
import { HttpStatusError, readJsonResponse } from './http/status.ts';
import { apiUrl, proxyFor, segment, type ProxyEnv, type Query } from './http/url.ts';
import type { TlsTarget } from './http/connect.ts';
import type { NodeApi, UserInfo, WatchEnd } from './node-api.ts';

export interface HttpNodeApiOptions {
  /** The contract's per-request deadline (REQUEST_TIMEOUT_MS); tests shorten it. */
  requestTimeoutMs?: number;
  /** Where HTTPS_PROXY / NO_PROXY are read; process.env by default. */
  env?: ProxyEnv;
  /** Connections; one pool per process by default, so every NodeApi to the same server shares them. */
  pool?: ConnectionPool;
  /** ALPN offer; ['http/1.1'] keeps a connection on HTTP/1.1 (tests: both protocols against one server). */
  alpn?: string[];
  /** Sees the type of every watch event, bookmarks included (tests, debugging). */
  onWatchEvent?: (type: string) => void;
}

const SHARED_POOL = new ConnectionPool();
const USER_AGENT = `nodecred/${VERSION} (node-http)`;
/** A response body larger than this is not a CSR, Node or review: the request fails instead of buffering it. */
const MAX_BODY = 8 * 1024 * 1024;

/** The 403 fixes for the calls a node's identity is expected to be allowed. */
const FORBIDDEN_FIX = {
  createCsr:
    'bind the ClusterRole system:node-bootstrapper to the bootstrap group (e.g. system:bootstrappers), ' +
    'as scripts/create-bootstrap-token does',
  readNode:
    'the Node authorizer only lets system:node:<name> read its own Node; check --node-name matches the certificate',
};

/** The request deadline passed: its own error, so the classification says "timeout", not an HTTP status. */
export class RequestTimeout extends Error {
  override name = 'RequestTimeout';
  readonly code = 'ETIMEDOUT';
}

interface Reply {
  status: number;
  text: string;
  headers: OpenResponse['headers'];
}

export function httpNodeApi(conn: ApiConnection, options: HttpNodeApiOptions = {}): NodeApi {
  const pool = options.pool ?? SHARED_POOL;
  const timeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const { endpoint, credential } = conn;

  /** Where and as whom: the exec credential comes from its cache, so an expired one is renewed here. */
  async function identity(): Promise<{ target: TlsTarget; headers: Record<string, string> }> {
    const server = new URL(endpoint.server);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': USER_AGENT };
    const target: TlsTarget = {
      server,
      ca: endpoint.caPem,
      tlsServerName: endpoint.tlsServerName,
      proxy: proxyFor(server, options.env ?? process.env, endpoint.proxyUrl),
      alpn: options.alpn ?? ['h2', 'http/1.1'],
    };
    const cred = credential.kind === 'exec' ? await credential.cache.get() : undefined;
    const token = credential.kind === 'token' ? credential.token : cred?.token;
    if (token) headers.authorization = `Bearer ${token}`;
    else if (credential.kind === 'clientCert')
      Object.assign(target, { cert: credential.certPem, key: credential.keyPem });
    else if (cred?.clientCertificateData && cred.clientKeyData)
      Object.assign(target, { cert: cred.clientCertificateData, key: cred.clientKeyData });
    return { target, headers };
  }

  /** The contract's failure for `err`; a 401 also makes the next call fetch a new exec credential. */
  function fail(err: unknown, action: ApiAction): Error {
    if (credential.kind === 'exec' && (err as { status?: unknown }).status === 401) credential.cache.invalidate();
    return explainApiError(err, conn, action);
  }

  /** One request with the deadline covering connection, headers and body. */
  async function send(method: string, path: string, query: Query, body?: object): Promise<Reply> {
    const { target, headers } = await identity();
    const text = body === undefined ? undefined : JSON.stringify(body);
    if (text !== undefined) headers['content-type'] = 'application/json';
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new RequestTimeout(`no complete response within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      const url = apiUrl(endpoint.server, path, query);
      const res = await pool.open(target, { method, url, headers, ...(text ? { body: text } : {}) }, deadline.signal);
      return { status: res.status, headers: res.headers, text: await readBody(res, deadline.signal) };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends and parses; `allow` maps statuses the method turns into results. */
  async function json<T>(
    action: ApiAction,
    method: string,
    path: string,
    opts: { query?: Query; body?: object; allow?: Record<number, () => T> } = {},
  ): Promise<T> {
    try {
      const r = await send(method, path, opts.query ?? {}, opts.body);
      const allowed = opts.allow?.[r.status];
      if (allowed) return allowed();
      return readJsonResponse<T>(r.status, r.text, r.headers);
    } catch (err) {
      throw isUserError(err) ? err : fail(err, action);
    }
  }

  const csrPath = (name: string) => `${CSR_PATH}/${segment(name)}`;

  return {
    async createCsr(s) {
      const out = await json<CsrObject | 'exists'>(
        { what: `create CSR ${s.name}`, forbiddenFix: FORBIDDEN_FIX.createCsr },
        'POST',
        CSR_PATH,
        { body: csrBody(s), allow: { 409: () => 'exists' } },
      );
      return out === 'exists' ? out : toCsr(out);
    },

    async getCsr(name) {
      const out = await json<CsrObject | null>({ what: `read CSR ${name}` }, 'GET', csrPath(name), {
        allow: { 404: () => null },
      });
      return out && toCsr(out);
    },

    async deleteCsr(name) {
      const out = await json<unknown>({ what: `delete CSR ${name}` }, 'DELETE', csrPath(name), {
        allow: { 404: () => 'gone', 403: () => 'forbidden' },
      });
      return out !== 'forbidden';
    },

    async nodeAddresses(nodeName) {
      const node = await json<{ status?: { addresses?: Array<{ type: string; address: string }> } } | null>(
        { what: `read Node ${nodeName}`, forbiddenFix: FORBIDDEN_FIX.readNode },
        'GET',
        `/api/v1/nodes/${segment(nodeName)}`,
        { allow: { 404: () => null } },
      );
      return node && (node.status?.addresses ?? []).map((a) => ({ type: a.type, address: a.address }));
    },

    async whoAmI() {
      const review = await json<{ status?: { userInfo?: RawUser } }>(
        { what: 'SelfSubjectReview' },
        'POST',
        '/apis/authentication.k8s.io/v1/selfsubjectreviews',
        { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } },
      );
      return toUserInfo(review.status?.userInfo ?? {});
    },

    async reviewToken(token) {
      const review = await json<{ status?: { authenticated?: boolean; user?: RawUser } }>(
        { what: 'TokenReview' },
        'POST',
        '/apis/authentication.k8s.io/v1/tokenreviews',
        { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } },
      );
      const user = review.status?.user;
      return review.status?.authenticated && user?.username ? toUserInfo(user) : null;
    },

    async reviewAccess({ user, path, verb }) {
      const sar = await json<{ status?: { allowed?: boolean; reason?: string; evaluationError?: string } }>(
        { what: 'SubjectAccessReview' },
        'POST',
        '/apis/authorization.k8s.io/v1/subjectaccessreviews',
        {
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SubjectAccessReview',
            spec: {
              user: user.username,
              groups: user.groups,
              ...(user.uid ? { uid: user.uid } : {}),
              ...(user.extra ? { extra: user.extra } : {}),
              nonResourceAttributes: { path, verb },
            },
          },
        },
      );
      return { allowed: sar.status?.allowed === true, reason: sar.status?.reason ?? sar.status?.evaluationError ?? '' };
    },

    async watchCsr(name, resourceVersion, { timeoutSeconds, idleTimeoutMs, signal }): Promise<WatchEnd> {
      if (signal.aborted) return { kind: 'closed', why: 'aborted' };
      const action = { what: `watch CSR ${name}` };
      try {
        const { target, headers } = await identity();
        const url = apiUrl(endpoint.server, CSR_PATH, {
          watch: 'true',
          fieldSelector: `metadata.name=${name}`,
          resourceVersion,
          timeoutSeconds,
          allowWatchBookmarks: 'true',
        });
        return await watchStream({
          pool,
          target,
          exchange: { method: 'GET', url, headers },
          headersTimeoutMs: timeoutMs,
          idleTimeoutMs,
          signal,
          timeout: (ms) => new RequestTimeout(`no response headers within ${ms} ms`),
          onEvent: (e) => {
            options.onWatchEvent?.(e.type);
            if (e.type === 'DELETED') return { kind: 'deleted' };
            if (e.type === 'ERROR') {
              const status = e.object as { code?: number; message?: string };
              if (status.code === 410) return { kind: 'closed', why: 'expired' };
              throw new TransientApiError(`watch CSR ${name}: ${status.message ?? 'watch error'}`, e.object);
            }
            if (e.type === 'ADDED' || e.type === 'MODIFIED') return decisionOf(e.object as CsrObject);
            return undefined;
          },
        });
      } catch (err) {
        throw isUserError(err) ? err : fail(err, action);
      }
    },
  };
}

type RawUser = { username?: string; groups?: string[]; uid?: string; extra?: Record<string, string[]> };

function toUserInfo(u: RawUser): UserInfo {
  const info: UserInfo = { username: u.username ?? '', groups: u.groups ?? [] };
  if (u.uid) info.uid = u.uid;
  if (u.extra) info.extra = u.extra;
  return info;
}

/** The whole body, bounded in size and by `signal` (the request deadline): past it the connection is suspect. */
function readBody(res: OpenResponse, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onAbort = () => {
      res.suspect();
      res.close();
      done(signal.reason);
    };
    const done = (err?: unknown) => {
      signal.removeEventListener('abort', onAbort);
      res.body.off('data', onData);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onData = (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY) {
        res.close();
        return done(new HttpStatusError(res.status, { message: `response larger than ${MAX_BODY} bytes` }));
      }
      chunks.push(d);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    res.body.on('data', onData);
    res.body.once('end', () => done());
    res.body.once('error', (err) => done(err));
    res.body.once('close', () =>
      done(Object.assign(new Error('connection closed mid-response'), { code: 'ECONNRESET' })),
    );
  });
}
