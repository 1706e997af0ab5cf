// The approver's reflector (src/approver/reflector.ts) on a simulated clock and a fake watch source: a server
// that ends every watch at once, without an error or with 410 Gone, must not turn the list + watch loop into a
// tight one (a local experiment measured 1,349 lists + 1,349 watches in 2 s against a real API server).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { ApiSource, ApproverClients } from '../../../src/approver/api.ts';
import { createApproverMetrics } from '../../../src/approver/metrics.ts';
import { Reflector, type WatchStream } from '../../../src/approver/reflector.ts';
import { createLogger } from '../../../src/log.ts';
import { Scheduler, SimClock } from '../../../bench/sim/scheduler.ts';
import { Rng } from '../../../bench/sim/rng.ts';

const T0 = Date.UTC(2030, 0, 1);
const MINUTE = 60_000;
const RESYNC_MS = 5 * MINUTE;

type Ending = { kind: 'timeout' } | { kind: 'gone' } | { kind: 'error' };

/** A watch source whose every stream ends as `ending` says after `lastsMs` of simulated time; counts requests. */
function fakeServer(clock: SimClock, lastsMs: (timeoutSeconds: number) => number, ending: Ending) {
  const requests: { list: number[]; watch: number[] } = { list: [], watch: [] };
  const openWatch = (): WatchStream => ({
    async watch(_path, query, onEvent, onDone) {
      requests.watch.push(clock.now());
      const cancel = clock.timer(lastsMs(Number(query.timeoutSeconds)), () => {
        if (ending.kind === 'gone') onEvent('ERROR', { code: 410, message: 'too old resource version' });
        else if (ending.kind === 'error') onDone(new Error('stream reset'));
        else onDone();
      });
      return { abort: cancel };
    },
  });
  const list = async () => {
    requests.list.push(clock.now());
    return { items: [], metadata: { resourceVersion: '7' } };
  };
  return { requests, openWatch, list };
}

async function reflectFor(durationMs: number, options: { relistOnTimeout: boolean; lastsMs: number; ending: Ending }) {
  const scheduler = new Scheduler(T0);
  const clock = new SimClock(scheduler, new Rng(11));
  const server = fakeServer(clock, (s) => Math.min(options.lastsMs, s * 1000), options.ending);
  const source = { clients: async () => ({}) as ApproverClients, noteFailure: () => {} } as unknown as ApiSource;
  const reflector = new Reflector<unknown>({
    resource: 'csr',
    source,
    log: createLogger('error', new Writable({ write: (_c, _e, done) => done() }) as never),
    metrics: createApproverMetrics(),
    resyncIntervalMs: RESYNC_MS,
    random: () => clock.random(),
    clock,
    openWatch: server.openWatch,
    list: server.list,
    watchPath: '/apis/certificates.k8s.io/v1/certificatesigningrequests',
    replace: () => {},
    upsert: () => {},
    remove: () => {},
    relistOnTimeout: options.relistOnTimeout,
  });
  const stop = new AbortController();
  const running = reflector.run(stop.signal);
  await scheduler.runUntil(T0 + durationMs);
  stop.abort();
  await running;
  return server.requests;
}

/** Requests in each simulated minute. */
function perMinute(times: number[], minutes: number): number[] {
  const counts = new Array<number>(minutes).fill(0);
  for (const t of times) counts[Math.min(minutes - 1, Math.floor((t - T0) / MINUTE))]!++;
  return counts;
}

// The backoff (0.5 s doubling to 60 s, jittered to [cap/2, cap]) allows ≈ 8 rounds in the first minute, then at
// most 2 a minute. Without pacing, a watch the server ends after 50 ms means 1,200 rounds a minute.
const PACED = (counts: number[]) => counts[0]! <= 12 && counts.slice(1).every((c) => c <= 2);

for (const relistOnTimeout of [true, false]) {
  test(`a watch the server ends at once without an error is paced (relistOnTimeout: ${relistOnTimeout})`, async () => {
    const requests = await reflectFor(10 * MINUTE, { relistOnTimeout, lastsMs: 50, ending: { kind: 'timeout' } });
    const watches = perMinute(requests.watch, 10);
    assert.ok(PACED(watches), `watches per simulated minute: ${watches.join(', ')}`);
    const lists = perMinute(requests.list, 10);
    assert.ok(PACED(lists), `lists per simulated minute: ${lists.join(', ')}`);
  });
}

test('a watch that ends in 410 Gone every time is paced, and lists again each round', async () => {
  const requests = await reflectFor(10 * MINUTE, { relistOnTimeout: false, lastsMs: 50, ending: { kind: 'gone' } });
  const watches = perMinute(requests.watch, 10);
  assert.ok(PACED(watches), `watches per simulated minute: ${watches.join(', ')}`);
  assert.equal(requests.list.length, requests.watch.length, 'each 410 Gone is followed by a list');
});

test('a watch that fails right after a successful list backs off: the list does not reset the backoff', async () => {
  const requests = await reflectFor(10 * MINUTE, { relistOnTimeout: true, lastsMs: 0, ending: { kind: 'error' } });
  const watches = perMinute(requests.watch, 10);
  assert.ok(PACED(watches), `watches per simulated minute: ${watches.join(', ')}`);
});

test('healthy watches, open for their whole server timeout, are re-opened with no pause', async () => {
  const requests = await reflectFor(60 * MINUTE, {
    relistOnTimeout: true,
    lastsMs: Number.POSITIVE_INFINITY,
    ending: { kind: 'timeout' },
  });
  // Each watch asks for the resync interval ±10 % and the next one opens when it ends: 11 or 12 in an hour.
  assert.ok(requests.watch.length >= 11 && requests.watch.length <= 13, `${requests.watch.length} watches`);
  for (let i = 1; i < requests.watch.length; i++) {
    const gap = requests.watch[i]! - requests.watch[i - 1]!;
    assert.ok(gap >= 0.9 * RESYNC_MS - 1000 && gap <= 1.1 * RESYNC_MS + 1000, `gap ${gap} ms`);
  }
});

test('an event the handler fails on is not skipped: the reflector lists again, as its log line says', async () => {
  // Without relistOnTimeout (the Node and EndpointSlice reflectors), a watch resumed after the failed event
  // would leave that object out of the cache until some later error or 410 forced a list.
  const scheduler = new Scheduler(T0);
  const clock = new SimClock(scheduler, new Rng(11));
  const node = { metadata: { name: 'worker-1', resourceVersion: '8' } };
  const cache = new Map<string, unknown>();
  let lists = 0;
  let watches = 0;
  let failNext = true;
  const openWatch = (): WatchStream => ({
    async watch(_path, query, onEvent, onDone) {
      const first = watches++ === 0;
      const cancel = first
        ? clock.timer(1000, () => onEvent('ADDED', node))
        : clock.timer(Number(query.timeoutSeconds) * 1000, () => onDone());
      return { abort: cancel };
    },
  });
  const reflector = new Reflector<typeof node>({
    resource: 'node',
    source: { clients: async () => ({}) as ApproverClients, noteFailure: () => {} } as unknown as ApiSource,
    log: createLogger('error', new Writable({ write: (_c, _e, done) => done() }) as never),
    metrics: createApproverMetrics(),
    resyncIntervalMs: RESYNC_MS,
    random: () => clock.random(),
    clock,
    openWatch,
    list: async () => ({ items: lists++ === 0 ? [] : [node], metadata: { resourceVersion: lists === 1 ? '7' : '8' } }),
    watchPath: '/api/v1/nodes',
    replace: (items) => {
      cache.clear();
      for (const n of items) cache.set(n.metadata.name, n);
    },
    upsert: (n) => {
      if (failNext) {
        failNext = false;
        throw new Error('handler bug');
      }
      cache.set(n.metadata.name, n);
    },
    remove: () => {},
  });
  const stop = new AbortController();
  const running = reflector.run(stop.signal);
  await scheduler.runUntil(T0 + MINUTE);
  stop.abort();
  await running;
  assert.equal(lists, 2, 'listed again after the failed event');
  assert.ok(cache.has('worker-1'), 'the object the failed event carried is in the cache');
});
