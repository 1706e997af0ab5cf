// Feeds the health checks from the manager, and proves the node's credential really authenticates: a
// SelfSubjectReview with the node kubeconfig, cached so probes every few seconds cost at most one API
// request per cache period.
import { isUserError } from '../errors.ts';
import type { CertificateManager } from '../manager/manager.ts';
import { nodeSubject } from '../pki/csr.ts';
import type { ApiAuthResult, HealthInput } from './checks.ts';
import type { HealthSource } from './server.ts';

interface SourceOptions {
  expiryThresholdMs: number;
  loopStaleMs: number;
  authCacheMs: number;
  heartbeat: () => Date | undefined;
  now?: () => Date;
}

export function managerHealthSource(
  manager: CertificateManager,
  opts: SourceOptions,
): HealthSource & { invalidate(): void } {
  const now = opts.now ?? (() => new Date());
  let cached: ApiAuthResult | undefined;
  let inflight: Promise<ApiAuthResult> | undefined;

  async function checkAuth(): Promise<ApiAuthResult> {
    const { config } = manager.deps;
    const fingerprint = manager.states.client.fingerprint;
    try {
      const conn = await manager.nodeConnection();
      const { username: user } = await manager.deps.connect(conn).whoAmI();
      manager.noteNodeAuthentication(fingerprint, true);
      const expected = nodeSubject(config.nodeName).commonName;
      if (config.clientCredentials === 'managed' && user !== expected) {
        return {
          ok: false,
          message: `the node kubeconfig authenticates as ${user}, expected ${expected}`,
          checkedAt: now(),
        };
      }
      return { ok: true, message: `authenticates as ${user}`, checkedAt: now() };
    } catch (err) {
      const refused = isUserError(err) && err.code === 'UNAUTHORIZED';
      if (refused) manager.noteNodeAuthentication(fingerprint, false);
      const message = refused
        ? 'the API server rejects the node credential (401 Unauthorized): ' +
          'certificate revoked, expired or not from the cluster CA; nodecred bootstraps again if it persists'
        : `cannot check with the API server: ${(err as Error).message}`;
      return { ok: false, message, checkedAt: now() };
    }
  }

  async function apiAuth(): Promise<ApiAuthResult> {
    // A negative age is a wall clock stepped back: the answer's age is unknown, so it is checked again.
    const age = cached ? now().getTime() - cached.checkedAt.getTime() : -1;
    if (cached && age >= 0 && age < opts.authCacheMs) return cached;
    inflight ??= checkAuth().finally(() => (inflight = undefined));
    cached = await inflight;
    return cached;
  }

  return {
    invalidate: () => (cached = undefined),
    async input(): Promise<HealthInput> {
      const { config } = manager.deps;
      return {
        now: now(),
        client: manager.states.client,
        server: manager.states.server,
        clientManaged: config.clientCredentials === 'managed',
        servingEnabled: config.rotateServerCertificates,
        expiryThresholdMs: opts.expiryThresholdMs,
        loopHeartbeat: opts.heartbeat(),
        loopStaleMs: opts.loopStaleMs,
        apiAuth: await apiAuth(),
      };
    },
  };
}
