import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimited, ReviewCache, ReviewRateLimiter, TokenBucket } from '../../../src/health/review-limits.ts';

test('TokenBucket: a burst, then the refill rate', () => {
  const b = new TokenBucket(2, 3, 0);
  assert.deepEqual([b.take(0), b.take(0), b.take(0), b.take(0)], [true, true, true, false]);
  assert.equal(b.take(499), false, 'less than one token after 0.499 s at 2/s');
  assert.equal(b.take(500), true);
  assert.equal(b.take(10_000), true);
  assert.deepEqual([b.take(10_000), b.take(10_000), b.take(10_000)], [true, true, false], 'never more than the burst');
});

test('ReviewRateLimiter: one client cannot use up the global budget', () => {
  const l = new ReviewRateLimiter({ globalPerSecond: 1, globalBurst: 6, perClientPerSecond: 1, perClientBurst: 2 }, 0);
  const a = Array.from({ length: 10 }, () => l.allow('10.0.0.1', 0));
  assert.equal(a.filter(Boolean).length, 2, 'a flood from one address gets its own burst only');
  assert.equal(Array.from({ length: 10 }, () => l.allow('10.0.0.2', 0)).filter(Boolean).length, 2);
  assert.equal(Array.from({ length: 10 }, () => l.allow('10.0.0.3', 0)).filter(Boolean).length, 2);
  assert.equal(l.allow('10.0.0.4', 0), false, 'the global burst (6) is spent');
});

test('ReviewCache: single-flight, per-answer TTLs, failures not cached, misses rate-limited', async () => {
  let now = 0;
  let reviews = 0;
  let release: (v: boolean) => void = () => {};
  const cache = new ReviewCache<boolean>((ok) => (ok ? 1000 : 100));
  const review = () => {
    reviews++;
    return new Promise<boolean>((r) => (release = r));
  };
  const clock = () => now;
  const waiting = Array.from({ length: 5 }, () => cache.get('k', clock, () => true, review));
  release(false);
  assert.deepEqual(await Promise.all(waiting), [false, false, false, false, false]);
  assert.equal(reviews, 1, 'concurrent lookups share one review');
  assert.equal(await cache.get('k', clock, () => false, review), false, 'cached: no admission needed');
  now = 100;
  await assert.rejects(
    cache.get('k', clock, () => false, review),
    RateLimited,
    'the negative answer expired',
  );
  const p = cache.get('k', clock, () => true, review);
  release(true);
  assert.equal(await p, true);
  now = 1099;
  assert.equal(await cache.get('k', clock, () => false, review), true, 'a positive answer lives longer');
  const failing = () => Promise.reject(new Error('API down'));
  await assert.rejects(
    cache.get('x', clock, () => true, failing),
    /API down/,
  );
  await assert.rejects(
    cache.get('x', clock, () => false, failing),
    RateLimited,
    'a failure is not cached',
  );
  assert.equal(reviews, 2);
});

// The secure listener measured these with Date.now: a wall clock stepped back 8 hours (NTP after an RTC kept in
// local time) left the buckets 8 hours of refill in debt (every new token refused with 429 meanwhile), and kept
// every cached TokenReview/SubjectAccessReview answer 8 hours past its TTL (a deleted ServiceAccount's token, a
// revoked RBAC rule, still accepted).
test('TokenBucket: a clock that goes back neither empties the bucket nor refills it', () => {
  const HOURS_8 = 8 * 3_600_000;
  const b = new TokenBucket(2, 3, HOURS_8);
  assert.deepEqual([b.take(HOURS_8), b.take(HOURS_8), b.take(HOURS_8)], [true, true, true]);
  assert.equal(b.take(0), false, 'the step itself refills nothing');
  assert.equal(b.take(500), true, 'one token after 0.5 s at 2/s, counted from the step');
});

test('ReviewCache: an answer cached before the clock went back is not kept past its TTL', async () => {
  let now = 8 * 3_600_000;
  const cache = new ReviewCache<boolean>(() => 300_000);
  let reviews = 0;
  const review = async () => {
    reviews++;
    return true;
  };
  assert.equal(
    await cache.get(
      'k',
      () => now,
      () => true,
      review,
    ),
    true,
  );
  now = 0;
  assert.equal(
    await cache.get(
      'k',
      () => now,
      () => true,
      review,
    ),
    true,
  );
  assert.equal(reviews, 2, 'reviewed again: the cached answer is not trusted across the step');
});
