// The `run` loop: keep the client (and serving) certificate valid until stopped. Everything it decides is
// delegated to the manager and to policy.ts (nextPass); this file only runs passes and waits between them:
// until the next pass is due, cut short by a wake-up (a watched file changed, SIGHUP) except during a
// backoff, and every few seconds a cheap local check that the files on disk are still the ones verified.
import { errorLine, isUserError } from './errors.ts';
import { DEFAULT_BACKOFF, nextPass } from './manager/policy.ts';
import { ensureServingPlaceholder } from './manager/placeholder.ts';
import { PKI_CRYPTO } from './manager/request.ts';
import { WaitTimeout } from './manager/csr-wait.ts';
import { ApiStatusError, isTransient } from './kube/api.ts';
import type { CertificateManager } from './manager/manager.ts';
import type { Logger } from './log.ts';

interface DaemonOptions {
  /** Between passes, how often to compare disk with memory (no API calls; default 5 s; Infinity: never). */
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

interface PassResult {
  /** Every managed certificate is valid and installed. */
  healthy: boolean;
  /** The pass failed (not merely still waiting on a CSR): the next one comes after a backoff. */
  failed: boolean;
  /** The pass ended with a CSR still pending: the next one re-attaches at once. */
  pending: boolean;
  /** The serving certificate waits for the kubelet to register the Node (not a failure: first boot). */
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

  private get clock() {
    return this.manager.deps.clock;
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
    const limit = this.inPass ? staleMs + this.manager.config.recheckIntervalMs : staleMs;
    return now.getTime() - this.heartbeat.getTime() <= limit;
  }

  async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    this.beat();
    while (!signal.aborted) {
      if (this.wokenFor) this.log.info({ reason: this.wokenFor }, 'checking certificates now');
      this.wokenFor = undefined;
      const result = await this.pass();
      if (signal.aborted) break;
      failures = result.failed ? failures + 1 : 0;
      this.opts.onPass?.(result.healthy);
      const schedule = nextPass({
        now: this.clock.now(),
        consecutiveFailures: failures,
        pending: result.pending,
        nodeWaits: this.nodeWaits,
        deadlines: this.rotationDeadlines(),
        recheckIntervalMs: this.manager.config.recheckIntervalMs,
        backoff: DEFAULT_BACKOFF,
        random: () => this.clock.random(),
      });
      await this.waitUntil(schedule, signal, result.healthy);
    }
  }

  private beat(): void {
    this.heartbeat = new Date(this.clock.now());
  }

  private rotationDeadlines(): number[] {
    return this.manager
      .managedKinds()
      .map((kind) => this.manager.states[kind].rotationDeadline?.getTime())
      .filter((d): d is number => d !== undefined);
  }

  private async pass(): Promise<PassResult> {
    const { config } = this.manager;
    // A pass never waits on a CSR longer than the recheck interval: then it re-reads the CSR (same name,
    // no new request) and re-evaluates, so changed Node addresses are noticed while a request is pending.
    const deadline = this.clock.now() + config.recheckIntervalMs;
    this.inPass = true;
    try {
      if (config.clientCredentials === 'managed')
        await this.manager.ensureClient({ deadline, rotate: config.rotateCertificates });
      if (config.rotateServerCertificates) await this.servingPlaceholder();
      this.opts.onKubeletStartable?.();
      if (config.rotateServerCertificates) await this.manager.ensureServing({ deadline, rotate: true });
      this.nodeWaits = 0;
      return { healthy: true, failed: false, pending: false };
    } catch (err) {
      return this.failedPass(err);
    } finally {
      this.inPass = false;
      this.beat();
    }
  }

  /** First boot: a self-signed serving pair so the kubelet can start before the Node exists (placeholder.ts). */
  private async servingPlaceholder(): Promise<void> {
    const { config, store, clock, crypto = PKI_CRYPTO } = this.manager.deps;
    const now = new Date(clock.now());
    // After the serving file vanished under a running daemon (rm -rf of the cert dir), the verified pair comes
    // back from memory in ensureServing. A placeholder installed first would be announced to the kubelet,
    // which could load it and serve a self-signed certificate until its next re-read (up to a minute).
    if (this.manager.remembersValid('server', now)) return;
    const placeholder = await ensureServingPlaceholder(store, config.nodeName, now, crypto.selfSignedServing);
    if (placeholder)
      this.log.info(
        { path: placeholder, replacedBy: 'the serving certificate, once its CSR is approved' },
        'no serving certificate yet: installed a self-signed placeholder so the kubelet can start',
      );
  }

  private failedPass(err: unknown): PassResult {
    if ((err as Error).name === 'AbortError') return { healthy: false, failed: false, pending: false };
    if (isUserError(err) && err.code === 'NO_SERVING_ADDRESSES') {
      if (this.nodeWaits++ === 0)
        this.log.info(
          { node: this.manager.config.nodeName },
          'waiting for the kubelet to register the Node: its addresses are the names of the serving certificate',
        );
      return { healthy: false, failed: false, pending: false, waitingForNode: true };
    }
    this.nodeWaits = 0;
    if (err instanceof WaitTimeout) {
      this.log.info({ detail: err.message }, 'CSR still pending; will check again');
      return { healthy: false, failed: false, pending: true };
    }
    if (isTransient(err)) {
      this.log.warn({ err: (err as Error).message }, 'API server unreachable; will retry');
    } else {
      // A known failure is its one line; anything else is a programming error and keeps its stack.
      const message = errorLine(err, (e) =>
        e instanceof ApiStatusError ? e.message : ((e as Error).stack ?? String(e)),
      );
      this.log.error({ err: message }, 'certificate pass failed');
    }
    return { healthy: false, failed: true, pending: false };
  }

  /**
   * Waits until the next pass is due. A wake-up ends the wait early, except before `backoffUntil`: a failing
   * pass must not become a tight loop. Every localCheckMs a healthy daemon checks the files it installed are
   * still there (a file that vanished without a watcher event is still noticed).
   */
  private async waitUntil(next: { at: number; backoffUntil: number }, signal: AbortSignal, checkDisk: boolean) {
    const localCheckMs = this.opts.localCheckMs ?? 5_000;
    let { at, backoffUntil } = next;
    let last = this.clock.now();
    while (!signal.aborted) {
      const now = this.clock.now();
      // The wall clock was stepped back (NTP correcting an RTC that was hours ahead at boot): what was left to
      // wait is still left. Waiting for the old wall time instead would skip every pass, and ignore every
      // wake-up (a removed cert dir, SIGHUP), for as many hours as the step.
      if (now < last) {
        at -= last - now;
        backoffUntil -= last - now;
      }
      last = now;
      if (now >= at || (this.wokenFor && now >= backoffUntil)) return;
      await this.sleep(Math.min(localCheckMs, at - now), signal, now >= backoffUntil);
      this.beat();
      if (!checkDisk || signal.aborted || this.wokenFor || this.clock.now() >= at) continue;
      if (!(await this.manager.diskMatchesMemory())) this.wokenFor = 'files on disk differ from the verified ones';
    }
  }

  /** Sleeps on the manager's clock; a wake-up ends an interruptible sleep at once. */
  private async sleep(ms: number, signal: AbortSignal, interruptible: boolean): Promise<void> {
    if (!interruptible) return this.clock.sleep(ms, signal);
    if (this.wokenFor || signal.aborted) return;
    // One controller for both reasons to stop (AbortSignal.any would do, at a cost paid on every pass).
    const stop = new AbortController();
    const abort = () => stop.abort();
    signal.addEventListener('abort', abort, { once: true });
    this.wakeUp = abort;
    try {
      await this.clock.sleep(ms, stop.signal);
    } finally {
      this.wakeUp = undefined;
      signal.removeEventListener('abort', abort);
    }
  }
}
