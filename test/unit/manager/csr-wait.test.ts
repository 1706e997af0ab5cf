// The CSR wait's pacing on a simulated clock (the fleet simulator's Scheduler) and a fake NodeApi: a watch that
// fails, or that the server ends at once, must not turn into a tight GET + watch loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitForCsr, WaitTimeout } from '../../../src/manager/csr-wait.ts';
import type { Csr, NodeApi, WatchEnd } from '../../../src/kube/node-api.ts';
import { Scheduler, SimClock } from '../../../bench/sim/scheduler.ts';
import { Rng } from '../../../bench/sim/rng.ts';

const T0 = Date.UTC(2030, 0, 1);
const HOUR = 3_600_000;
const PENDING: Csr = {
  name: 'x',
  resourceVersion: '1',
  requestPem: '',
  signerName: 'kubernetes.io/kubelet-serving',
  decision: undefined,
};

/** A fake API whose watch behaves as `watch` says (after `lastsMs` of simulated time); counts rounds. */
function fakeApi(scheduler: Scheduler, clock: SimClock, watch: { lastsMs: number; end: () => WatchEnd }) {
  const rounds = { gets: 0, watches: 0 };
  const api = {
    async getCsr() {
      rounds.gets++;
      return PENDING;
    },
    async watchCsr(_name: string, _rv: string, o: { signal: AbortSignal }): Promise<WatchEnd> {
      rounds.watches++;
      await clock.sleep(watch.lastsMs, o.signal);
      if (o.signal.aborted) return { kind: 'closed', why: 'aborted' };
      return watch.end();
    },
  } as unknown as NodeApi;
  return { api, rounds, scheduler };
}

async function waitAnHour(watch: { lastsMs: number; end: () => WatchEnd }) {
  const scheduler = new Scheduler(T0);
  const clock = new SimClock(scheduler, new Rng(7));
  const { api, rounds } = fakeApi(scheduler, clock, watch);
  const waiting = waitForCsr(api, clock, 'x', { deadline: T0 + HOUR, watchTimeoutSeconds: 60 }).catch((e) => e);
  await scheduler.runUntil(T0 + HOUR);
  assert.ok((await waiting) instanceof WaitTimeout);
  return rounds;
}

test('a watch the server ends at once without an error is paced like a failure (backoff to 30 s)', async () => {
  const rounds = await waitAnHour({ lastsMs: 100, end: () => ({ kind: 'closed', why: 'timeout' }) });
  // 30 s cap with jitter in [15, 30] s: at most 240 rounds an hour after the short first steps.
  assert.ok(rounds.watches <= 260, `${rounds.watches} watches in an hour`);
  assert.equal(rounds.gets, rounds.watches);
});

test('a watch that fails every time backs off, although the read before it succeeds', async () => {
  const rounds = await waitAnHour({
    lastsMs: 0,
    end: () => {
      throw new Error('HTTP/2 stream closed');
    },
  });
  assert.ok(rounds.watches <= 260, `${rounds.watches} watches in an hour (main at 50ce86c: one every 250–500 ms)`);
});

test('healthy watches (open for their whole server timeout) are re-opened at once', async () => {
  const rounds = await waitAnHour({ lastsMs: 60_000, end: () => ({ kind: 'closed', why: 'timeout' }) });
  assert.equal(rounds.watches, 60, 'one watch a minute, no pause between them');
});

// The daemon's pass gives the wait a deadline a recheck interval away. A clock stepped back 8 hours (NTP after an
// RTC kept in local time) made that deadline 8 hours away: the pass outlived the systemd watchdog's patience.
test('a wall clock stepped back during the wait does not stretch it by the step', async () => {
  const scheduler = new Scheduler(T0);
  const clock = new SimClock(scheduler, new Rng(7), 8 * HOUR);
  const { api } = fakeApi(scheduler, clock, { lastsMs: 60_000, end: () => ({ kind: 'closed', why: 'timeout' }) });
  let outcome: unknown;
  void waitForCsr(api, clock, 'x', { deadline: clock.now() + 5 * 60_000, watchTimeoutSeconds: 60 }).then(
    (v) => (outcome = v),
    (e: unknown) => (outcome = e),
  );
  await scheduler.runUntil(T0 + 90_000);
  (clock as unknown as { skewMs: number }).skewMs = 0;
  await scheduler.runUntil(T0 + 7 * 60_000);
  assert.ok(outcome instanceof WaitTimeout, 'gave up about 5 minutes after it started, not 8 hours later');
});
