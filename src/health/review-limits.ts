// What stands between an unauthenticated client of --secure-listen and the API server: every bearer token
// or path the listener has not judged yet costs a TokenReview or SubjectAccessReview made with the node's
// identity. So answers are cached (successes for minutes, failures briefly), identical questions asked at
// once share one review (single-flight, as the API server's own token cache does), and new reviews are
// rate-limited per client address and overall. Pure: time is injected.

/** A token bucket: `burst` requests at once, refilled at `perSecond`. */
export class TokenBucket {
  readonly #perSecond: number;
  readonly #burst: number;
  #tokens: number;
  #at: number;

  constructor(perSecond: number, burst: number, now: number) {
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#tokens = burst;
    this.#at = now;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    // A clock that went back (a wall clock stepped by NTP) refills nothing, and leaves no debt either.
    const elapsed = Math.max(0, now - this.#at);
    this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed / 1000) * this.#perSecond);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

export interface ReviewLimits {
  /** New reviews per second and burst, for all clients together. */
  globalPerSecond: number;
  globalBurst: number;
  /** The same for one client address. */
  perClientPerSecond: number;
  perClientBurst: number;
}

export const DEFAULT_REVIEW_LIMITS: ReviewLimits = {
  globalPerSecond: 10,
  globalBurst: 20,
  perClientPerSecond: 2,
  perClientBurst: 5,
};

/** Bounded: the number of client addresses tracked at once. */
const MAX_CLIENTS = 1024;

/** Per-client and global buckets: one client cannot use up what the others need. */
export class ReviewRateLimiter {
  readonly #limits: ReviewLimits;
  readonly #global: TokenBucket;
  readonly #clients = new Map<string, TokenBucket>();

  constructor(limits: ReviewLimits, now: number) {
    this.#limits = limits;
    this.#global = new TokenBucket(limits.globalPerSecond, limits.globalBurst, now);
  }

  allow(client: string, now: number): boolean {
    let bucket = this.#clients.get(client);
    if (!bucket) {
      if (this.#clients.size >= MAX_CLIENTS) this.#clients.delete(this.#clients.keys().next().value!);
      bucket = new TokenBucket(this.#limits.perClientPerSecond, this.#limits.perClientBurst, now);
      this.#clients.set(client, bucket);
    }
    // The client's bucket first: a client over its own limit does not drain the shared one.
    return bucket.take(now) && this.#global.take(now);
  }
}

export class RateLimited extends Error {
  override name = 'RateLimited';
}

interface Entry<T> {
  value: T;
  /** When it was stored: an entry from "the future" (the clock went back since) has an unknown age. */
  stored: number;
  expires: number;
}

/**
 * A bounded cache of review answers with single-flight: concurrent lookups of the same key share one
 * review; a key neither cached nor in flight starts a review only when `admit` says so (else RateLimited).
 * Failures (the review could not be made) are not cached.
 */
export class ReviewCache<T> {
  readonly #ttl: (value: T) => number;
  readonly #max: number;
  readonly #entries = new Map<string, Entry<T>>();
  readonly #inflight = new Map<string, Promise<T>>();

  constructor(ttlMs: (value: T) => number, max = 1000) {
    this.#ttl = ttlMs;
    this.#max = max;
  }

  async get(key: string, now: () => number, admit: () => boolean, review: () => Promise<T>): Promise<T> {
    const hit = this.#entries.get(key);
    const at = now();
    if (hit && hit.stored <= at && at < hit.expires) return hit.value;
    const pending = this.#inflight.get(key);
    if (pending) return pending;
    if (!admit()) throw new RateLimited('too many new credentials or paths to review');
    const p = review().then(
      (value) => {
        this.#inflight.delete(key);
        const stored = now();
        this.#remember(key, { value, stored, expires: stored + this.#ttl(value) }, stored);
        return value;
      },
      (err: unknown) => {
        this.#inflight.delete(key);
        throw err;
      },
    );
    this.#inflight.set(key, p);
    return p;
  }

  clear(): void {
    this.#entries.clear();
  }

  #remember(key: string, entry: Entry<T>, now: number): void {
    if (this.#entries.size >= this.#max) {
      for (const [k, v] of this.#entries) if (v.expires <= now) this.#entries.delete(k);
      // Still full of live entries: drop the oldest (a Map keeps insertion order).
      while (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!);
    }
    this.#entries.set(key, entry);
  }
}
