// The `run` loop: keep the client (and serving) certificate valid until stopped. Everything it decides is
// delegated to the manager; this file only schedules: wake at the earliest rotation deadline or recheck
// interval, back off after failures, stop promptly on abort.
import { isUserError } from './errors.ts';
import { retryDelayMs, DEFAULT_BACKOFF } from './manager/policy.ts';
import { WaitTimeout } from './kube/csr-api.ts';
import type { CertificateManager } from './manager/manager.ts';
import type { Logger } from './log.ts';

export interface DaemonHooks {
  /** After each pass: true when every managed certificate is valid and installed. */
  onPass?: (healthy: boolean) => void;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export async function runDaemon(manager: CertificateManager, log: Logger, signal: AbortSignal, hooks: DaemonHooks = {}): Promise<void> {
  const { config } = manager.deps;
  let failures = 0;
  while (!signal.aborted) {
    // A pass never waits on a CSR longer than the recheck interval: then it re-reads the CSR (same name,
    // no new request) and re-evaluates, so changed Node addresses are noticed while a request is pending.
    const passDeadline = Date.now() + config.recheckIntervalMs;
    let healthy = false;
    try {
      if (config.clientCredentials === 'managed') await manager.ensureClient({ deadline: passDeadline, rotate: config.rotateCertificates });
      if (config.rotateServerCertificates) await manager.ensureServing({ deadline: passDeadline, rotate: true });
      healthy = true;
      failures = 0;
    } catch (err) {
      if (signal.aborted) break;
      if (err instanceof WaitTimeout) {
        log.info({ detail: err.message }, 'CSR still pending; will check again');
      } else {
        failures++;
        log.error({ err: isUserError(err) ? err.oneLine() : (err as Error).stack ?? String(err), failures }, 'certificate pass failed');
      }
    }
    hooks.onPass?.(healthy);
    const now = Date.now();
    const deadlines = [manager.states.client.rotationDeadline, config.rotateServerCertificates ? manager.states.server.rotationDeadline : undefined]
      .filter((d): d is Date => d !== undefined)
      .map((d) => d.getTime());
    const next = failures > 0
      ? now + retryDelayMs(failures - 1, DEFAULT_BACKOFF, manager.deps.random)
      : Math.min(now + config.recheckIntervalMs, ...deadlines.filter((d) => d > now));
    log.debug({ nextCheck: new Date(next).toISOString() }, 'sleeping');
    await sleep(next - now, signal);
  }
}
