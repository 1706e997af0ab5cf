// Leader election against an in-memory Lease store with the API server's optimistic concurrency
// (resourceVersion, 409 on a stale write), with short timings so the tests take a fraction of a second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/log.ts';
import {
  LeaderElector,
  LeaseConflict,
  microTime,
  type LeaseRecord,
  type LeaseStore,
  type LeaderTimings,
  type StoredLease,
} from '../../../src/approver/leader.ts';

const T: LeaderTimings = { leaseDurationMs: 600, renewDeadlineMs: 400, retryPeriodMs: 50 };
/** Production-like timings: the renew loop never runs during a test that steps the clocks itself. */
const SLOW: LeaderTimings = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 60_000 };
const silent = silentLogger();

class MemoryLeaseStore implements LeaseStore {
  readonly description = 'test/lease';
  stored: StoredLease | null = null;
  private version = 0;
  /** Set to make every request fail, as an unreachable API server would. */
  down = false;
  writes: LeaseRecord[] = [];

  async get() {
    await tick();
    if (this.down) throw new Error('connection refused');
    return this.stored && structuredClone(this.stored);
  }
  async create(record: LeaseRecord) {
    await tick();
    if (this.down) throw new Error('connection refused');
    if (this.stored) throw new LeaseConflict('exists');
    return this.put(record);
  }
  async update(record: LeaseRecord, resourceVersion: string) {
    await tick();
    if (this.down) throw new Error('connection refused');
    if (!this.stored || this.stored.resourceVersion !== resourceVersion) throw new LeaseConflict('stale');
    return this.put(record);
  }
  private put(record: LeaseRecord): StoredLease {
    this.writes.push(record);
    this.stored = { record: structuredClone(record), resourceVersion: String(++this.version) };
    return structuredClone(this.stored);
  }
}

const tick = () => new Promise((r) => setImmediate(r));

async function until(what: string, check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Candidate {
  elector: LeaderElector;
  stop: AbortController;
  done: Promise<void>;
  terms: number;
  leading: boolean;
  termEndedAt: number | undefined;
}

/** A candidate running for the Lease; `now`/`monotonic`: the elector's clocks, for a test that steps them. */
function candidate(
  store: LeaseStore,
  identity: string,
  o: { timings?: LeaderTimings; now?: () => number; monotonic?: () => number } = {},
): Candidate {
  const stop = new AbortController();
  const c = { stop, terms: 0, leading: false, termEndedAt: undefined } as Candidate;
  c.elector = new LeaderElector({
    store,
    identity,
    log: silent,
    timings: o.timings ?? T,
    ...(o.now ? { now: o.now } : {}),
    ...(o.monotonic ? { monotonic: o.monotonic } : {}),
    lead: async (signal) => {
      c.terms++;
      c.leading = true;
      await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
      c.leading = false;
      c.termEndedAt = Date.now();
    },
  });
  c.done = c.elector.run(stop.signal);
  return c;
}

test('microTime has the six fractional digits the API server requires', () => {
  assert.equal(microTime(Date.UTC(2025, 0, 2, 3, 4, 5, 678)), '2025-01-02T03:04:05.678000Z');
});

test('of two candidates exactly one leads; stopping it frees the Lease and the other takes over at once', async () => {
  const store = new MemoryLeaseStore();
  const a = candidate(store, 'a');
  const b = candidate(store, 'b');
  await until('a leader', () => a.leading || b.leading);
  await new Promise((r) => setTimeout(r, 3 * T.retryPeriodMs));
  assert.equal([a, b].filter((c) => c.leading).length, 1);
  const [leader, follower] = a.leading ? [a, b] : [b, a];
  assert.equal(leader.elector.isLeader(), true);
  assert.equal(follower.elector.isLeader(), false);
  assert.equal(store.stored!.record.holderIdentity, leader.elector.identity);

  const stoppedAt = Date.now();
  leader.stop.abort();
  await leader.done;
  assert.equal(leader.leading, false);
  assert.equal(
    store.stored!.record.holderIdentity === follower.elector.identity || store.stored!.record.holderIdentity === '',
    true,
  );
  await until('the follower to lead', () => follower.leading);
  // Released, not expired: the takeover does not wait for the lease duration.
  assert.ok(Date.now() - stoppedAt < T.leaseDurationMs, `took over after ${Date.now() - stoppedAt} ms`);
  assert.equal(store.stored!.record.leaseTransitions, 1);
  follower.stop.abort();
  await follower.done;
  assert.equal(store.stored!.record.holderIdentity, '');
});

test('a Lease held by a crashed holder is taken only after its duration, counted as a transition', async () => {
  const store = new MemoryLeaseStore();
  const now = Date.now();
  await store.create({
    holderIdentity: 'crashed',
    leaseDurationSeconds: 1,
    acquireTime: microTime(now),
    renewTime: microTime(now),
    leaseTransitions: 4,
  });
  const started = Date.now();
  const c = candidate(store, 'new');
  await until('takeover', () => c.leading, 3000);
  assert.ok(Date.now() - started >= 1000, `waited ${Date.now() - started} ms for a 1 s lease`);
  assert.equal(store.stored!.record.holderIdentity, 'new');
  assert.equal(store.stored!.record.leaseTransitions, 5);
  c.stop.abort();
  await c.done;
});

test('a leader that cannot renew stops leading within the renew deadline, and leads again when it can', async () => {
  const store = new MemoryLeaseStore();
  const c = candidate(store, 'a');
  await until('leading', () => c.leading);
  const downAt = Date.now();
  store.down = true;
  await until('stepped down', () => !c.leading, 2000);
  const after = c.termEndedAt! - downAt;
  assert.ok(after <= T.renewDeadlineMs + 2 * T.retryPeriodMs + 50, `stepped down after ${after} ms`);
  assert.equal(c.elector.isLeader(), false);
  store.down = false;
  await until('leading again', () => c.leading, 3000);
  assert.equal(c.terms, 2);
  c.stop.abort();
  await c.done;
});

test('isLeader turns false as soon as the last renewal is older than the renew deadline', async () => {
  let clock = 1_000_000;
  const c = candidate(new MemoryLeaseStore(), 'a', { timings: SLOW, monotonic: () => clock });
  await until('leading', () => c.leading);
  assert.equal(c.elector.isLeader(), true);
  clock += 9_999;
  assert.equal(c.elector.isLeader(), true);
  clock += 1;
  assert.equal(c.elector.isLeader(), false, 'no writes once renewals are overdue, even before the renew loop notices');
  c.stop.abort();
  await c.done;
});

// The wall clock is stepped back an hour.
test('intervals run on the monotonic clock: a wall clock stepped back does not stretch leadership', async () => {
  let monotonic = 5_000;
  let wall = Date.parse('2030-01-01T00:00:00Z');
  const store = new MemoryLeaseStore();
  const c = candidate(store, 'a', { timings: SLOW, now: () => wall, monotonic: () => monotonic });
  try {
    await until('leading', () => c.leading);
    // The Lease carries wall-clock times (what other candidates and kubectl read).
    assert.equal(store.stored!.record.renewTime, '2030-01-01T00:00:00.000000Z');
    // NTP steps the wall clock back an hour while 10 s pass: the renewal is overdue all the same.
    wall -= 3_600_000;
    monotonic += 9_999;
    assert.equal(c.elector.isLeader(), true);
    monotonic += 1;
    assert.equal(c.elector.isLeader(), false, 'a backward wall-clock jump must not keep a stalled leader writing');
  } finally {
    c.stop.abort();
    await c.done;
  }
});

test('a renewal that finds another holder ends leadership at once', async () => {
  const store = new MemoryLeaseStore();
  const c = candidate(store, 'a');
  await until('leading', () => c.leading);
  const rv = store.stored!.resourceVersion;
  const now = Date.now();
  await store.update(
    {
      holderIdentity: 'usurper',
      leaseDurationSeconds: 15,
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 1,
    },
    rv,
  );
  await until('stepped down', () => !c.leading, T.retryPeriodMs * 4);
  c.stop.abort();
  await c.done;
  assert.equal(store.stored!.record.holderIdentity, 'usurper', "a follower never releases someone else's Lease");
});
