// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: acquire when
// the Lease is free or its holder has not renewed for leaseDuration (measured on our clock from when we
// last saw the record change, so clock skew between hosts does not matter), renew every retryPeriod, and
// give up leadership when no renewal succeeded for renewDeadline. Every interval is measured on a
// monotonic clock: a wall clock stepped back (NTP, a VM resumed) would otherwise stretch isLeader() past
// the renew deadline, and let a deposed leader keep writing. The wall clock only fills the Lease's
// acquireTime/renewTime, which other candidates never compare with their own clocks. Writes are
// optimistic (resourceVersion): of two candidates racing for a free Lease, one gets 409 Conflict and stays
// a follower.
import { systemClock } from '../clock.ts';
import { errorLine } from '../errors.ts';
import type { Logger } from '../log.ts';

export interface LeaseRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime: string;
  renewTime: string;
  leaseTransitions: number;
}

export interface StoredLease {
  record: LeaseRecord;
  resourceVersion: string;
}

/** The Lease as stored in the API; conflicts are reported as LeaseConflict. */
export interface LeaseStore {
  /** null when the Lease does not exist. */
  get(): Promise<StoredLease | null>;
  create(record: LeaseRecord): Promise<StoredLease>;
  update(record: LeaseRecord, resourceVersion: string): Promise<StoredLease>;
  /** For messages: "kube-system/nodecred-approver". */
  readonly description: string;
}

export class LeaseConflict extends Error {
  override name = 'LeaseConflict';
}

export interface LeaderTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/** client-go's defaults, and kube-controller-manager's. */
export const DEFAULT_LEADER_TIMINGS: LeaderTimings = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
};

interface LeaderElectorOptions {
  store: LeaseStore;
  identity: string;
  log: Logger;
  timings?: LeaderTimings;
  /** Runs while we lead; must return soon after `signal` aborts. */
  lead: (signal: AbortSignal) => Promise<void>;
  onLeadershipChange?: (leading: boolean) => void;
  /** Wall-clock ms, for the Lease's acquireTime and renewTime only. */
  now?: () => number;
  /** Monotonic ms, for every interval (renew deadline, lease expiry). */
  monotonic?: () => number;
  random?: () => number;
}

/** MicroTime as the API server parses it: RFC 3339 with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}

export class LeaderElector {
  readonly identity: string;
  private readonly opts: LeaderElectorOptions;
  private readonly timings: LeaderTimings;
  private readonly now: () => number;
  private readonly monotonic: () => number;
  private readonly random: () => number;
  private observed: StoredLease | null = null;
  private observedAt = 0;
  private lastRenewAt = 0;
  private leading = false;

  constructor(opts: LeaderElectorOptions) {
    this.opts = opts;
    this.identity = opts.identity;
    this.timings = opts.timings ?? DEFAULT_LEADER_TIMINGS;
    this.now = opts.now ?? Date.now;
    this.monotonic = opts.monotonic ?? (() => performance.now());
    this.random = opts.random ?? Math.random;
  }

  /**
   * True only while we hold the Lease and renewed it within renewDeadline: checked right before every
   * write, so a leader whose renewals stalled stops deciding even before its renew loop notices.
   */
  isLeader(): boolean {
    return (
      this.leading &&
      this.observed?.record.holderIdentity === this.identity &&
      this.monotonic() - this.lastRenewAt < this.timings.renewDeadlineMs
    );
  }

  /**
   * Campaigns, leads, and campaigns again after losing the Lease, until `signal` aborts; then releases it.
   * If the controller fails while leading, the Lease is released and the error thrown: crash loudly.
   */
  async run(signal: AbortSignal): Promise<void> {
    const { log, store } = this.opts;
    while (!signal.aborted) {
      if (!(await this.acquire(signal))) break;
      this.setLeading(true);
      log.info({ lease: store.description }, 'became leader');
      const term = new AbortController();
      const onStop = () => term.abort();
      signal.addEventListener('abort', onStop, { once: true });
      let ended: { error: unknown } | undefined;
      const leading = this.opts
        .lead(term.signal)
        .then(
          () => {
            ended = { error: term.signal.aborted ? undefined : new Error('the controller returned while leading') };
          },
          (error: unknown) => {
            ended = { error };
          },
        )
        .finally(() => term.abort());
      const lost = await this.renewUntilLost(term.signal);
      term.abort();
      signal.removeEventListener('abort', onStop);
      this.setLeading(false);
      await leading;
      if (lost && !signal.aborted) {
        log.warn(
          { lease: store.description, renewDeadlineMs: this.timings.renewDeadlineMs },
          'lost the lease: stopped deciding',
        );
        continue;
      }
      await this.release();
      const failure = (ended as { error: unknown } | undefined)?.error;
      if (failure !== undefined && !signal.aborted) throw failure;
    }
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    this.opts.onLeadershipChange?.(leading);
  }

  private async acquire(signal: AbortSignal): Promise<boolean> {
    let announced = false;
    while (!signal.aborted) {
      if (await this.tryAcquireOrRenew()) return true;
      if (!announced && this.observed) {
        this.opts.log.info(
          { lease: this.opts.store.description, holder: this.observed.record.holderIdentity },
          'waiting for the lease',
        );
        announced = true;
      }
      // client-go's JitterUntil(retryPeriod, 1.2): candidates do not retry in lockstep.
      await systemClock.sleep(this.timings.retryPeriodMs * (1 + 1.2 * this.random()), signal);
    }
    return false;
  }

  /**
   * Renews every retryPeriod. Returns true when leadership is lost (no renewal succeeded for renewDeadline,
   * or someone else holds the Lease), false when `term` aborted.
   */
  private async renewUntilLost(term: AbortSignal): Promise<boolean> {
    while (!term.aborted) {
      await systemClock.sleep(this.timings.retryPeriodMs, term);
      if (term.aborted) return false;
      // Retry within the renew deadline; each attempt is bounded so a hung request cannot stretch it.
      for (;;) {
        const left = this.lastRenewAt + this.timings.renewDeadlineMs - this.monotonic();
        if (left <= 0) return true;
        if (await withTimeout(this.tryAcquireOrRenew(), Math.min(left, this.timings.retryPeriodMs * 2), false)) break;
        if (this.observed && this.observed.record.holderIdentity !== this.identity) return true;
        if (term.aborted) return false;
        await systemClock.sleep(Math.min(this.timings.retryPeriodMs, Math.max(0, left)), term);
        if (term.aborted) return false;
      }
    }
    return false;
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { store, log } = this.opts;
    const wall = this.now();
    const now = this.monotonic();
    const durationSeconds = Math.round(this.timings.leaseDurationMs / 1000);
    const fresh: LeaseRecord = {
      holderIdentity: this.identity,
      leaseDurationSeconds: durationSeconds,
      acquireTime: microTime(wall),
      renewTime: microTime(wall),
      leaseTransitions: 0,
    };
    try {
      const current = await store.get();
      if (current === null) {
        this.observe(await store.create(fresh), now);
        this.lastRenewAt = now;
        return true;
      }
      this.observe(current, now);
      const r = current.record;
      const ours = r.holderIdentity === this.identity;
      const expiresAt = this.observedAt + r.leaseDurationSeconds * 1000;
      if (!ours && r.holderIdentity !== '' && expiresAt > now) return false;
      const next: LeaseRecord = ours
        ? { ...r, leaseDurationSeconds: durationSeconds, renewTime: microTime(wall) }
        : { ...fresh, leaseTransitions: r.leaseTransitions + 1 };
      this.observe(await store.update(next, current.resourceVersion), now);
      this.lastRenewAt = now;
      return true;
    } catch (err) {
      if (err instanceof LeaseConflict) return false;
      log.warn({ lease: store.description, err: errorLine(err) }, 'lease request failed');
      return false;
    }
  }

  private observe(lease: StoredLease, now: number): void {
    const changed = this.observed === null || JSON.stringify(this.observed.record) !== JSON.stringify(lease.record);
    this.observed = lease;
    if (changed) this.observedAt = now;
  }

  /** Hands the Lease over at once (holder cleared, 1 s duration), as client-go's ReleaseOnCancel does. */
  private async release(): Promise<void> {
    const { store, log } = this.opts;
    try {
      const current = await withTimeout(store.get(), this.timings.renewDeadlineMs, null);
      if (!current || current.record.holderIdentity !== this.identity) return;
      const now = microTime(this.now());
      await withTimeout(
        store.update(
          { ...current.record, holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now },
          current.resourceVersion,
        ),
        this.timings.renewDeadlineMs,
        null,
      );
      log.info({ lease: store.description }, 'released the lease');
    } catch (err) {
      log.warn({ lease: store.description, err: errorLine(err) }, 'could not release the lease; it expires on its own');
    }
  }
}

/** Resolves with `fallback` if `promise` takes longer than `ms` (the promise itself keeps running). */
function withTimeout<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(fallback), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
