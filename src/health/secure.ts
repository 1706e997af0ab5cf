// The authenticated listener, the way kubelet's 10250 does it (webhook mode): served with the node's own
// serving certificate (swapped in after every rotation, no restart); a client certificate is checked
// against --client-ca-file, a bearer token with a TokenReview; then a SubjectAccessReview asks whether that
// identity may `get` the non-resource URL. 401 and 403 bodies say who we think you are and exactly which
// RBAC rule is missing: the confusion seeds 000–002 record.
import { createServer as createHttpsServer, type Server } from 'node:https';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Registry } from 'prom-client';
import { apiMessage } from '../kube/api.ts';
import { encodePrivateKeyPem } from '../pki/keys.ts';
import type { CertificateManager } from '../manager/manager.ts';
import type { Logger } from '../log.ts';
import { createHandler, type HealthSource } from './server.ts';

export interface Identity {
  user: string;
  groups: string[];
  uid?: string;
  extra?: Record<string, string[]>;
  via: 'x509' | 'token';
}

interface Cached<T> {
  value: T;
  expires: number;
}

const TOKEN_TTL_MS = 2 * 60_000;
/** Bounded: anyone who can reach the port can send garbage tokens. */
const CACHE_MAX = 1000;

function remember<T>(cache: Map<string, Cached<T>>, key: string, value: Cached<T>): void {
  if (cache.size >= CACHE_MAX) {
    const now = Date.now();
    for (const [k, v] of cache) if (v.expires <= now) cache.delete(k);
    // Still full of live entries: drop the oldest (Map keeps insertion order).
    while (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
  }
  cache.set(key, value);
}
const SAR_TTL_MS = 5 * 60_000;
const SAR_DENY_TTL_MS = 30_000;

function reply(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(body);
}

/** The RBAC rule that grants `get` on a non-resource path, as the 403 body prints it. */
export function missingRule(path: string): string {
  return `- nonResourceURLs: ["${path}"]\n  verbs: ["get"]`;
}

export function createSecureServer(opts: {
  manager: CertificateManager;
  health: HealthSource;
  registry: Registry;
  log: Logger;
}) {
  const { manager, log } = opts;
  const handler = createHandler(opts.health, opts.registry);
  const tokens = new Map<string, Cached<Identity | null>>();
  const decisions = new Map<string, Cached<{ allowed: boolean; reason: string }>>();
  const clientCa = manager.deps.config.clientCAFile
    ? readFileSync(manager.deps.config.clientCAFile, 'utf8')
    : undefined;

  const server: Server = createHttpsServer(
    { requestCert: true, rejectUnauthorized: false, ...(clientCa ? { ca: clientCa } : {}) },
    (req, res) => {
      serve(req, res).catch((err: unknown) => {
        log.warn({ err: (err as Error).message, path: req.url }, 'secure request failed');
        reply(res, 500, `internal error: ${(err as Error).message}\n`);
      });
    },
  );

  async function api() {
    return manager.deps.connect(await manager.nodeConnection());
  }

  async function authenticate(req: IncomingMessage): Promise<Identity | null | 'invalid'> {
    const socket = req.socket as TLSSocket;
    const peer = socket.getPeerX509Certificate?.();
    if (peer && clientCa) {
      if (!socket.authorized) return 'invalid';
      const subject = new X509Certificate(peer.raw).subject;
      const cn = /^CN=(.*)$/m.exec(subject)?.[1] ?? '';
      const groups = [...subject.matchAll(/^O=(.*)$/gm)].map((m) => m[1]!);
      return { user: cn, groups: [...groups, 'system:authenticated'], via: 'x509' };
    }
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) return null;
    const token = m[1]!;
    const key = createHash('sha256').update(token).digest('hex');
    const hit = tokens.get(key);
    if (hit && hit.expires > Date.now()) return hit.value ?? 'invalid';
    const u = await (await api()).reviewToken(token);
    const identity: Identity | null = u
      ? {
          user: u.username,
          groups: u.groups,
          via: 'token',
          ...(u.uid ? { uid: u.uid } : {}),
          ...(u.extra ? { extra: u.extra } : {}),
        }
      : null;
    remember(tokens, key, { value: identity, expires: Date.now() + TOKEN_TTL_MS });
    return identity ?? 'invalid';
  }

  async function authorize(who: Identity, path: string): Promise<{ allowed: boolean; reason: string }> {
    const key = JSON.stringify([who.user, who.groups, who.uid ?? '', who.extra ?? {}, path]);
    const hit = decisions.get(key);
    if (hit && hit.expires > Date.now()) return hit.value;
    const user = {
      username: who.user,
      groups: who.groups,
      ...(who.uid ? { uid: who.uid } : {}),
      ...(who.extra ? { extra: who.extra } : {}),
    };
    const value = await (await api()).reviewAccess({ user, path, verb: 'get' });
    remember(decisions, key, { value, expires: Date.now() + (value.allowed ? SAR_TTL_MS : SAR_DENY_TTL_MS) });
    return value;
  }

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'https://localhost').pathname;
    let who: Identity | null | 'invalid';
    try {
      who = await authenticate(req);
    } catch (err) {
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
        'Unauthorized: no credentials. Send a bearer token (Prometheus: authorization.credentials_file or bearer_token_file with a ServiceAccount token)' +
          `${clientCa ? ' or a client certificate signed by the configured client CA' : ''}.\n`,
      );
    }
    if (who === 'invalid') {
      return reply(
        res,
        401,
        'Unauthorized: the bearer token or client certificate was rejected (TokenReview: not authenticated — expired, deleted ServiceAccount, or wrong audience; or a certificate not signed by the client CA).\n',
      );
    }
    let decision: { allowed: boolean; reason: string };
    try {
      decision = await authorize(who, path);
    } catch (err) {
      return reply(res, 503, `cannot authorize the request: SubjectAccessReview failed (${apiMessage(err)})\n`);
    }
    if (!decision.allowed) {
      log.info({ user: who.user, path, via: who.via }, 'secure request forbidden');
      return reply(
        res,
        403,
        `Forbidden: user "${who.user}" (groups ${JSON.stringify(who.groups)}) may not get non-resource URL ${path}.\n` +
          `Grant it with a ClusterRole rule bound to that user or a group:\n${missingRule(path)}\n${decision.reason ? `(authorizer: ${decision.reason})\n` : ''}`,
      );
    }
    return handler(req, res);
  }

  /** Loads the current serving pair into the listener; called at start and after every install. */
  function reload(): void {
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
  return { server, reload };
}
