// The `run` loop: keep the client (and serving) certificate valid until stopped. Everything it decides is
// delegated to the manager; this file only schedules: a pass at the earliest rotation deadline or recheck
// interval, at once when a watched file changes, after a capped backoff when a pass failed; and, between
// passes, a cheap local check that the files on disk are still the ones verified.
import { isUserError } from './errors.ts';
import { retryDelayMs, DEFAULT_BACKOFF, type Backoff } from './manager/policy.ts';
import { ensureServingPlaceholder } from './manager/placeholder.ts';
import { WaitTimeout } from './kube/csr-api.ts';
import { isTransient } from './kube/api.ts';
import type { CertificateManager } from './manager/manager.ts';
import type { Logger } from './log.ts';

export interface DaemonOptions {
  /** Between passes, how often to compare disk with memory (no API calls; default 5 s). */
  localCheckMs?: number;
  /** After each pass: true when every managed certificate is valid and installed. */
  onPass?: (healthy: boolean) => void;
  /**
   * In each pass, once the kubelet can start: the client credential is verified and installed and a
   * serving pair exists (the real one, or the first-boot placeholder). The serving certificate may still
   * be on its way: it needs the Node the kubelet is about to register.
   */
  onKubeletStartable?: () => void;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
/**
 * Until the kubelet has registered the Node (whose addresses the serving certificate names), look again
 * soon: 1 s, doubling to 10 s. One GET per look; it stops once the Node is there.
 */
const NODE_WAIT_BACKOFF: Backoff = { initialMs: 1_000, maxMs: 10_000 };

interface PassResult {
  healthy: boolean;
  failed: boolean;
  /** The serving certificate waits for the Node to be registered (not a failure: first boot). */
  waitingForNode?: boolean;
}

export class Daemon {
  readonly manager: CertificateManager;
  readonly log: Logger;
  private readonly opts: DaemonOptions;
  private wakeUp: (() => void) | undefined;
  private wokenFor: string | undefined;
  /** When the loop last started or finished a pass; /livez reads it. */
  heartbeat: Date | undefined;
  /** True while a pass is inside a CSR wait that may legitimately last up to the recheck interval. */
  private inPass = false;
  /** Consecutive passes that found no Node to take serving addresses from. */
  private nodeWaits = 0;

  constructor(manager: CertificateManager, log: Logger, opts: DaemonOptions = {}) {
    this.manager = manager;
    this.log = log;
    this.opts = opts;
  }

  /** True while the serving certificate waits for the kubelet to register the Node. */
  get waitingForNode(): boolean {
    return this.nodeWaits > 0;
  }

  /** Ask for a pass now (file changed, SIGHUP). Coalesces while a pass is running. */
  wake(reason: string): void {
    this.wokenFor = reason;
    this.wakeUp?.();
  }

  /** The loop is alive when it beat recently, or is inside a pass (which is bounded by the recheck interval). */
  alive(now: Date, staleMs: number): boolean {
    if (!this.heartbeat) return false;
    const limit = this.inPass ? staleMs + this.manager.deps.config.recheckIntervalMs : staleMs;
    return now.getTime() - this.heartbeat.getTime() <= limit;
  }

  private sleep(ms: number, signal: AbortSignal, ignoreWake = false): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted || (this.wokenFor && !ignoreWake)) return resolve();
      const timer = setTimeout(done, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
      const self = this;
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        self.wakeUp = undefined;
        resolve();
      }
      if (!ignoreWake) this.wakeUp = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private async pass(): Promise<PassResult> {
    const { config, store } = this.manager.deps;
    const log = this.log;
    // A pass never waits on a CSR longer than the recheck interval: then it re-reads the CSR (same name,
    // no new request) and re-evaluates, so changed Node addresses are noticed while a request is pending.
    const deadline = Date.now() + config.recheckIntervalMs;
    this.inPass = true;
    try {
      if (config.clientCredentials === 'managed')
        await this.manager.ensureClient({ deadline, rotate: config.rotateCertificates });
      if (config.rotateServerCertificates) {
        const placeholder = await ensureServingPlaceholder(store, config.nodeName, this.manager.deps.now());
        if (placeholder)
          log.info(
            { path: placeholder, replacedBy: 'the serving certificate, once its CSR is approved' },
            'no serving certificate yet: installed a self-signed placeholder so the kubelet can start',
          );
      }
      this.opts.onKubeletStartable?.();
      if (config.rotateServerCertificates) await this.manager.ensureServing({ deadline, rotate: true });
      this.nodeWaits = 0;
      return { healthy: true, failed: false };
    } catch (err) {
      if ((err as Error).name === 'AbortError') return { healthy: false, failed: false };
      if (isUserError(err) && err.code === 'NO_SERVING_ADDRESSES') {
        if (this.nodeWaits++ === 0)
          log.info(
            { node: config.nodeName },
            'waiting for the kubelet to register the Node: its addresses are the names of the serving certificate',
          );
        return { healthy: false, failed: false, waitingForNode: true };
      }
      this.nodeWaits = 0;
      if (err instanceof WaitTimeout) {
        this.log.info({ detail: err.message }, 'CSR still pending; will check again');
        return { healthy: false, failed: false };
      }
      const transient = isTransient(err);
      const message = isUserError(err)
        ? err.oneLine()
        : transient
          ? (err as Error).message
          : ((err as Error).stack ?? String(err));
      this.log[transient ? 'warn' : 'error'](
        { err: message },
        transient ? 'API server unreachable; will retry' : 'certificate pass failed',
      );
      return { healthy: false, failed: true };
    } finally {
      this.inPass = false;
      this.heartbeat = new Date();
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    const { config } = this.manager.deps;
    const localCheckMs = this.opts.localCheckMs ?? 5_000;
    let failures = 0;
    this.heartbeat = new Date();
    while (!signal.aborted) {
      if (this.wokenFor) this.log.info({ reason: this.wokenFor }, 'checking certificates now');
      this.wokenFor = undefined;
      const result = await this.pass();
      if (signal.aborted) break;
      failures = result.failed ? failures + 1 : 0;
      this.opts.onPass?.(result.healthy);

      const now = Date.now();
      const deadlines = [
        this.manager.states.client.rotationDeadline,
        config.rotateServerCertificates ? this.manager.states.server.rotationDeadline : undefined,
      ]
        .filter((d): d is Date => d !== undefined)
        .map((d) => d.getTime())
        .filter((d) => d > now);
      const next =
        failures > 0
          ? now + retryDelayMs(failures - 1, DEFAULT_BACKOFF, this.manager.deps.random)
          : result.waitingForNode
            ? now + retryDelayMs(this.nodeWaits - 1, NODE_WAIT_BACKOFF, this.manager.deps.random)
            : Math.min(now + config.recheckIntervalMs, ...deadlines);
      // Sleep in local-check slices: a file that vanished without a watcher event is still noticed. After a
      // failure the backoff is served in full: a wake-up must not turn a failing pass into a tight loop.
      const backoffUntil = failures > 0 ? next : 0;
      while (!signal.aborted && (!this.wokenFor || Date.now() < backoffUntil) && Date.now() < next) {
        await this.sleep(Math.min(localCheckMs, next - Date.now()), signal, Date.now() < backoffUntil);
        this.heartbeat = new Date();
        if (
          !signal.aborted &&
          !this.wokenFor &&
          Date.now() < next &&
          result.healthy &&
          !(await this.manager.diskMatchesMemory())
        ) {
          this.wokenFor = 'files on disk differ from the verified ones';
        }
      }
    }
  }
}
