// The authenticated listener, the way kubelet's 10250 does it (webhook mode): served with the node's own
// serving certificate (swapped in after every rotation, no restart); a client certificate is checked
// against --client-ca-file, a bearer token with a TokenReview; then a SubjectAccessReview asks whether that
// identity may `get` the non-resource URL. 401 and 403 bodies say who we think you are and exactly which
// RBAC rule is missing: the confusion seeds 000–002 record.
import { createServer as createHttpsServer, type Server } from 'node:https';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { MetricsSource } from './exposition.ts';
import { isUserError } from '../errors.ts';
import { apiMessage } from '../kube/api.ts';
import type { NodeApi } from '../kube/node-api.ts';
import { encodePrivateKeyPem } from '../pki/keys.ts';
import type { CertificateManager } from '../manager/manager.ts';
import type { Logger } from '../log.ts';
import { createHandler, type HealthSource } from './server.ts';
import {
  DEFAULT_REVIEW_LIMITS,
  RateLimited,
  ReviewCache,
  ReviewRateLimiter,
  type ReviewLimits,
} from './review-limits.ts';
import { userFromCertificate } from './x509-identity.ts';

export interface Identity {
  user: string;
  groups: string[];
  uid?: string;
  extra?: Record<string, string[]>;
  via: 'x509' | 'token';
}

const TOKEN_TTL_MS = 2 * 60_000;
/** Brief: a token that was just created (or a ServiceAccount just bound) must not stay rejected for long. */
const TOKEN_DENY_TTL_MS = 10_000;
const SAR_TTL_MS = 5 * 60_000;
const SAR_DENY_TTL_MS = 30_000;
const AUTHENTICATED = 'system:authenticated';

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(body);
}

/** The RBAC rule that grants `get` on a non-resource path, as the 403 body prints it. */
function missingRule(path: string): string {
  return `- nonResourceURLs: ["${path}"]\n  verbs: ["get"]`;
}

export function createSecureServer(opts: {
  manager: CertificateManager;
  health: HealthSource;
  registry: MetricsSource;
  log: Logger;
  limits?: ReviewLimits;
  now?: () => number;
}) {
  const { manager, log } = opts;
  // Monotonic: every use is an interval (TTLs, rate limits); a wall clock stepped back by hours would keep cached
  // answers (a deleted token's, a revoked rule's) for those hours, and put the rate limits hours in debt.
  const now = opts.now ?? (() => performance.now());
  const handler = createHandler(opts.health, opts.registry);
  const tokens = new ReviewCache<Identity | null>((id) => (id ? TOKEN_TTL_MS : TOKEN_DENY_TTL_MS));
  const decisions = new ReviewCache<{ allowed: boolean; reason: string }>((d) =>
    d.allowed ? SAR_TTL_MS : SAR_DENY_TTL_MS,
  );
  const limiter = new ReviewRateLimiter(opts.limits ?? DEFAULT_REVIEW_LIMITS, now());
  let refused = { count: 0, since: now() };
  const clientCa = manager.deps.config.clientCAFile
    ? readFileSync(manager.deps.config.clientCAFile, 'utf8')
    : undefined;

  const server: Server = createHttpsServer(
    { requestCert: true, rejectUnauthorized: false, ...(clientCa ? { ca: clientCa } : {}) },
    (req, res) => {
      serve(req, res).catch((err: unknown) => {
        log.warn({ err: (err as Error).message, path: req.url }, 'secure request failed');
        reply(res, 500, 'internal error\n');
      });
    },
  );

  // One NodeApi for every review: the node kubeconfig is read once, not per request, and its connection is
  // shared and kept (src/kube/http/pool.ts); an exec credential is renewed through its cache. Dropped after a
  // credential install (reload) or a 401, so the next review reads the kubeconfig again.
  let session: Promise<NodeApi> | undefined;
  function dropSession(): void {
    session = undefined;
  }
  function api(): Promise<NodeApi> {
    if (session) return session;
    const created = manager.nodeConnection().then((conn) => manager.deps.connect(conn));
    session = created;
    created.catch(() => {
      if (session === created) session = undefined;
    });
    return created;
  }
  /** Our own credential was rejected: the next review starts from a fresh read of the kubeconfig. */
  function onApiError(err: unknown): never {
    if (isUserError(err) && err.code === 'UNAUTHORIZED') dropSession();
    throw err;
  }

  function admit(req: IncomingMessage): () => boolean {
    return () => {
      if (limiter.allow(req.socket.remoteAddress ?? '', now())) return true;
      refused.count++;
      // One line a minute at most: a flood of bogus tokens must not become a flood of log lines.
      if (now() - refused.since >= 60_000) {
        log.warn(
          { refused: refused.count, seconds: Math.round((now() - refused.since) / 1000) },
          'secure listener: requests refused by the review rate limit (unknown tokens or paths)',
        );
        refused = { count: 0, since: now() };
      }
      return false;
    };
  }

  async function authenticate(req: IncomingMessage): Promise<Identity | null | 'invalid'> {
    const socket = req.socket as TLSSocket;
    const peer = clientCa ? socket.getPeerX509Certificate?.() : undefined;
    // As Kubernetes' union authenticator: a verified certificate with a CN decides; otherwise the token does.
    if (peer && socket.authorized) {
      const fromCert = userFromCertificate(peer.raw);
      if (fromCert === 'unreadable') return 'invalid';
      if (fromCert) {
        const groups = fromCert.groups.includes(AUTHENTICATED) ? fromCert.groups : [...fromCert.groups, AUTHENTICATED];
        return { user: fromCert.user, groups, extra: fromCert.extra, via: 'x509' };
      }
    }
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!m) return peer ? 'invalid' : null;
    const token = m[1]!;
    const key = createHash('sha256').update(token).digest('hex');
    const identity = await tokens.get(key, now, admit(req), async () => {
      const u = await (await api()).reviewToken(token).catch(onApiError);
      return u
        ? {
            user: u.username,
            groups: u.groups,
            via: 'token' as const,
            ...(u.uid ? { uid: u.uid } : {}),
            ...(u.extra ? { extra: u.extra } : {}),
          }
        : null;
    });
    return identity ?? 'invalid';
  }

  async function authorize(req: IncomingMessage, who: Identity, path: string) {
    const key = JSON.stringify([who.user, who.groups, who.uid ?? '', who.extra ?? {}, path]);
    return decisions.get(key, now, admit(req), async () => {
      const user = {
        username: who.user,
        groups: who.groups,
        ...(who.uid ? { uid: who.uid } : {}),
        ...(who.extra ? { extra: who.extra } : {}),
      };
      return (await api()).reviewAccess({ user, path, verb: 'get' }).catch(onApiError);
    });
  }

  function tooMany(res: ServerResponse): void {
    reply(
      res,
      429,
      'Too Many Requests: too many new bearer tokens or paths to review from this address; retry in a second.\n',
      { 'retry-after': '1' },
    );
  }

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'https://localhost').pathname;
    let who: Identity | null | 'invalid';
    try {
      who = await authenticate(req);
    } catch (err) {
      if (err instanceof RateLimited) return tooMany(res);
      return reply(
        res,
        503,
        `cannot authenticate the request: the API server is unreachable for TokenReview (${apiMessage(err)})\n`,
      );
    }
    if (who === null) {
      return reply(
        res,
        401,
        'Unauthorized: no credentials. Send a bearer token (Prometheus: authorization.credentials_file or ' +
          'bearer_token_file with a ServiceAccount token)' +
          `${clientCa ? ' or a client certificate signed by the configured client CA' : ''}.\n`,
      );
    }
    if (who === 'invalid') {
      return reply(
        res,
        401,
        'Unauthorized: the bearer token or client certificate was rejected (TokenReview: not authenticated — ' +
          'expired, deleted ServiceAccount, or wrong audience; or a certificate not signed by the client CA).\n',
      );
    }
    let decision: { allowed: boolean; reason: string };
    try {
      decision = await authorize(req, who, path);
    } catch (err) {
      if (err instanceof RateLimited) return tooMany(res);
      return reply(res, 503, `cannot authorize the request: SubjectAccessReview failed (${apiMessage(err)})\n`);
    }
    if (!decision.allowed) {
      log.info({ user: who.user, path, via: who.via }, 'secure request forbidden');
      return reply(
        res,
        403,
        `Forbidden: user "${who.user}" (groups ${JSON.stringify(who.groups)}) may not get non-resource URL ${path}.\n` +
          `Grant it with a ClusterRole rule bound to that user or a group:\n${missingRule(path)}\n` +
          (decision.reason ? `(authorizer: ${decision.reason})\n` : ''),
      );
    }
    return handler(req, res);
  }

  /** Loads the current serving pair into the listener; called at start and after every install. */
  function reload(): void {
    // A new client certificate may have been installed: the next review reads the kubeconfig again.
    dropSession();
    void manager.deps.store.readCurrent('server').then(
      (pair) => {
        if (!pair) return;
        server.setSecureContext({
          cert: pair.chainPem,
          key: encodePrivateKeyPem(pair.key),
          requestCert: true,
          rejectUnauthorized: false,
          ...(clientCa ? { ca: clientCa } : {}),
        } as never);
        log.info(
          { fingerprint: pair.certificates[0]!.summary.sha256Fingerprint },
          'secure listener now serves the current serving certificate',
        );
      },
      (err: unknown) => log.warn({ err: (err as Error).message }, 'secure listener: serving certificate unreadable'),
    );
  }
  reload();
  return { server, reload, close: dropSession };
}
