// The certificate manager's state machine, fast: the real CertificateManager and daemon loop on the fleet
// simulator's fake API, disk and clock (bench/sim/). Certificates are really signed (by the simulated cluster's
// ECDSA CA) and really verified (src/pki/verify.ts); only time, the API server and the disk are simulated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { isUserError } from '../../../src/errors.ts';
import { createLogger } from '../../../src/log.ts';
import { Daemon } from '../../../src/daemon.ts';
import { DEFAULT_BACKOFF } from '../../../src/manager/policy.ts';
import { certificateReport } from '../../../src/health/checks.ts';
import { createMetrics } from '../../../src/health/metrics.ts';
import { WaitTimeout } from '../../../src/manager/csr-wait.ts';
import { isPlaceholder } from '../../../src/manager/placeholder.ts';
import { DEFAULT_CLUSTER, SimCluster, type ClusterParams, type Component } from '../../../bench/sim/cluster.ts';
import { SimNode } from '../../../bench/sim/node.ts';
import { Scheduler } from '../../../bench/sim/scheduler.ts';
import type { Interval } from '../../../bench/sim/timeline.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2030, 0, 1);

function world(
  o: { cluster?: Partial<ClusterParams>; outages?: Partial<Record<Component, Interval[]>>; skewMs?: number } = {},
) {
  const scheduler = new Scheduler(T0);
  const cluster = new SimCluster({
    scheduler,
    seed: 7,
    params: {
      ...DEFAULT_CLUSTER,
      denyProbability: { client: 0, server: 0 },
      badIssueProbability: 0,
      random429Probability: 0,
      signingDurationMs: DAY,
      ...o.cluster,
    },
    outages: { api: [], approver: [], controllerManager: [], ...o.outages },
    nodeNames: ['worker-1'],
    start: T0,
    days: 30,
  });
  cluster.setAddresses(0, [{ type: 'InternalIP', address: '10.0.0.1' }]);
  const lines: string[] = [];
  const log = createLogger(
    'debug',
    new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    }) as never,
  );
  const node = new SimNode({
    index: 0,
    name: 'worker-1',
    scheduler,
    cluster,
    seed: 7,
    skewMs: o.skewMs ?? 0,
    config: { requestedLifetimeMs: DAY, recheckIntervalMs: 5 * MINUTE },
    log,
  });
  const manager = node.newManager();
  /** Runs a manager call while simulated time passes; resolves with its result or its error. */
  async function during<T>(call: Promise<T>, ms: number): Promise<{ value?: T; error?: unknown }> {
    const settled = call.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    await scheduler.runUntil(scheduler.now + ms);
    return settled;
  }
  /** A manager call left running while the test drives the clock itself. */
  function pending<T>(call: Promise<T>): Promise<{ value?: T; error?: unknown }> {
    return call.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
  }
  const advance = (ms: number) => scheduler.runUntil(scheduler.now + ms);
  const deadline = (ms = 10 * MINUTE) => node.clock.now() + ms;
  const logged = (re: RegExp) => lines.filter((l) => re.test(l)).length;
  /** The real daemon loop on a fresh manager; `stop` aborts it and lets the simulated world settle. */
  function startDaemon(opts: ConstructorParameters<typeof Daemon>[2] = {}) {
    const abort = new AbortController();
    const manager = node.newManager(abort.signal);
    const daemon = new Daemon(manager, node.manager!.deps.log, { localCheckMs: Infinity, ...opts });
    const done = daemon.run(abort.signal);
    const stop = async () => {
      abort.abort();
      await scheduler.settle();
      await done;
    };
    return { manager, daemon, stop };
  }
  return { scheduler, cluster, node, manager, during, pending, advance, deadline, logged, lines, startDaemon };
}

const errorCode = (e: unknown) => (isUserError(e) ? e.code : (e as Error)?.name);

test('bootstrap: no certificate → a CSR as the bootstrap token, verified, installed, kubeconfig written', async () => {
  const w = world();
  const r = await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(r.value, 'installed', String(r.error));
  assert.equal(w.cluster.csrsOf(0).length, 1);
  assert.equal(w.cluster.csrsOf(0)[0]!.requester.kind, 'bootstrap');
  assert.equal(w.manager.states.client.subject, 'CN=system:node:worker-1, O=system:nodes');
  assert.equal(w.manager.states.client.verified, true);
  assert.equal(await w.node.credentials.nodeKubeconfigPresent(), true);
  assert.equal(await w.node.store.readPendingKey('client'), null, 'the pending key is gone once installed');
  // Nothing due: the next pass makes no request.
  const before = w.cluster.stats.requests;
  assert.equal((await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), 0)).value, 'valid');
  assert.equal(w.cluster.stats.requests, before);
});

test('renewal: at the rotation deadline the node renews with its own certificate, one CSR, new key', async () => {
  const w = world();
  await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  const first = w.manager.states.client;
  const deadline = first.rotationDeadline!.getTime();
  assert.ok(
    deadline >= first.notBefore!.getTime() + 0.7 * DAY - 1 && deadline < first.notBefore!.getTime() + 0.9 * DAY,
  );
  await w.scheduler.runUntil(deadline - 1);
  assert.equal((await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), 0)).value, 'valid');
  await w.scheduler.runUntil(deadline);
  const firstFingerprint = first.fingerprint;
  const r = await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(r.value, 'installed', String(r.error));
  assert.equal(w.cluster.stats.csrsByNode.client[0], 2, 'one CSR per certificate');
  // The first CSR was decided more than an hour ago: kube-controller-manager's cleaner removed it.
  assert.deepEqual(w.cluster.csrsOf(0).at(-1)!.requester, { kind: 'node', node: 0 }, 'renewed as the node');
  assert.notEqual(w.manager.states.client.fingerprint, firstFingerprint);
  assert.equal(w.logged(/renewing with it/), 1);
});

test('a reloaded rotation window (SIGHUP) applies at once: the deadline is drawn again within it', async () => {
  const w = world();
  await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  const { notBefore, rotationDeadline: before } = w.manager.states.client;
  assert.equal((await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), 0)).value, 'valid');
  assert.equal(w.manager.states.client.rotationDeadline, before, 'drawn once per certificate');
  w.manager.reconfigure({ ...w.manager.config, rotationWindow: { from: 0.2, to: 0.3 } });
  assert.equal((await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), 0)).value, 'valid');
  const after = w.manager.states.client.rotationDeadline!.getTime() - notBefore!.getTime();
  assert.ok(after >= 0.2 * DAY - 1 && after < 0.3 * DAY, `${after / DAY} of the lifetime`);
});

test('expired at start (the node was off): verification fails, the bootstrap credentials are used', async () => {
  const w = world();
  await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  await w.scheduler.runUntil(T0 + 2 * DAY);
  const restarted = w.node.newManager();
  const r = await w.during(restarted.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(r.value, 'installed', String(r.error));
  assert.equal(w.logged(/client certificate unusable; falling back to bootstrap credentials/), 1);
  assert.match(w.lines.find((l) => l.includes('falling back'))!, /has expired/);
  assert.equal(w.cluster.csrsOf(0).at(-1)!.requester.kind, 'bootstrap');
});

test('renewal refused (401: certificate revoked): falls back to the bootstrap credentials in that pass', async () => {
  const w = world();
  await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  await w.scheduler.runUntil(w.manager.states.client.rotationDeadline!.getTime());
  w.cluster.revoke(0);
  const r = await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(r.value, 'installed', String(r.error));
  assert.equal(w.logged(/renewal with the node certificate failed; falling back/), 1);
  assert.equal(w.cluster.csrsOf(0).at(-1)!.requester.kind, 'bootstrap');
});

test('pending re-attach: a restarted manager finds its CSR under the same name, creates no second one', async () => {
  const w = world({ cluster: { manualApproval: true } });
  const first = await w.during(w.manager.ensureClient({ deadline: w.deadline(2 * MINUTE), rotate: true }), 3 * MINUTE);
  assert.ok(first.error instanceof WaitTimeout, String(first.error));
  const pending = w.cluster.csrsOf(0);
  assert.equal(pending.length, 1);
  const restarted = w.node.newManager();
  const second = w.pending(restarted.ensureClient({ deadline: w.deadline(), rotate: true }));
  await w.advance(10_000);
  assert.equal(restarted.states.client.pendingCsr, pending[0]!.name);
  w.cluster.approve(pending[0]!.name);
  await w.advance(1);
  assert.equal((await second).value, 'installed');
  assert.equal(w.cluster.csrsOf(0).length, 1, 'still exactly one CSR');
  assert.equal(w.logged(/re-attached to the pending CSR/), 1);
});

test('denied: one clear error naming the CSR, the key discarded, held back, then a new CSR', async () => {
  const w = world({ cluster: { manualApproval: true } });
  const call = w.pending(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }));
  await w.advance(1000);
  const name = w.cluster.csrsOf(0)[0]!.name;
  w.cluster.deny(name, 'NotOnMyWatch');
  await w.advance(1);
  const r = await call;
  assert.equal(errorCode(r.error), 'CSR_DENIED');
  assert.match((r.error as Error).message, new RegExp(`CSR ${name} was denied: NotOnMyWatch`));
  assert.equal(await w.node.store.readPendingKey('client'), null);
  assert.match(w.manager.states.client.lastError!, /denied/);
  // The same request from the same requester waits for its retry time (policy.ts DENIED_RETRY_BACKOFF).
  const held = await w.during(w.manager.ensureClient({ deadline: w.deadline(1000), rotate: true }), 2000);
  assert.match((held.error as Error).message, /not submitted again before/);
  assert.equal(w.cluster.csrsOf(0).length, 1);
  await w.scheduler.runUntil(w.manager.states.client.denied!.retryAt);
  const again = await w.during(w.manager.ensureClient({ deadline: w.deadline(1000), rotate: true }), 2000);
  assert.ok(again.error instanceof WaitTimeout, String(again.error));
  const csrs = w.cluster.csrsOf(0);
  assert.equal(csrs.length, 2);
  assert.notEqual(csrs[1]!.name, name, 'a new key, so a new name');
});

test('deleted while pending: submitted again under the same name after a pause, then installed', async () => {
  const w = world({ cluster: { manualApproval: true } });
  const call = w.pending(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }));
  await w.advance(1000);
  const name = w.cluster.csrsOf(0)[0]!.name;
  w.cluster.remove(name);
  await w.advance(500);
  assert.equal(w.cluster.csrsOf(0).length, 0, 'not resubmitted at once (no create/delete loop)');
  await w.advance(1000);
  assert.deepEqual(
    w.cluster.csrsOf(0).map((c) => c.name),
    [name],
  );
  w.cluster.approve(name);
  await w.advance(1);
  assert.equal((await call).value, 'installed');
  assert.equal(w.logged(/deleted while pending; submitting it again/), 1);
});

test('verification failure: a wrongly issued certificate is refused, nothing installed, a new key next', async () => {
  const w = world({ cluster: { badIssueProbability: 1 } });
  const r = await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(errorCode(r.error), 'CERT_REJECTED');
  assert.equal(await w.node.store.readCurrent('client'), null);
  assert.equal(await w.node.store.readPendingKey('client'), null, 'the key is discarded');
  assert.equal(await w.node.credentials.nodeKubeconfigPresent(), false);
});

test('clock behind: refused as not valid yet; the same CSR is kept, and its certificate installed later', async () => {
  // 15 minutes behind: the signer backdates NotBefore 5 minutes and nodecred allows 5 more; 5 minutes short.
  const w = world({ skewMs: -15 * MINUTE });
  const first = await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(errorCode(first.error), 'CERT_NOT_YET_VALID');
  assert.match((first.error as Error).message, /not valid yet by this node's clock/);
  assert.equal(await w.node.store.readCurrent('client'), null);
  assert.notEqual(await w.node.store.readPendingKey('client'), null, 'the request is kept');
  await w.advance(5 * MINUTE);
  const later = await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(later.value, 'installed', String(later.error));
  assert.equal(w.cluster.stats.csrsByNode.client[0], 1, 'one CSR: re-attached, not re-requested');
  assert.equal(w.logged(/re-attached to the pending CSR/), 1);
});

test('clock ahead: installed at once, and renewed when this node’s clock reaches the deadline', async () => {
  // 4 minutes ahead: within the 5 minutes the signer backdates NotBefore, so nothing is refused; the node
  // reads its rotation deadline on its own clock, so it renews 4 minutes of true time early.
  const skew = 4 * MINUTE;
  const w = world({ skewMs: skew });
  const first = await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(first.value, 'installed', String(first.error));
  const deadline = w.manager.states.client.rotationDeadline!.getTime();
  await w.scheduler.runUntil(deadline - skew - 1);
  assert.equal(w.node.clock.now(), deadline - 1);
  assert.equal((await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), 0)).value, 'valid');
  await w.scheduler.runUntil(deadline - skew);
  const renewed = await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(renewed.value, 'installed', String(renewed.error));
  assert.equal(w.logged(/renewing with it/), 1);
  assert.equal(w.cluster.stats.csrsByNode.client[0], 2);
});

test('interrupted install (crash before the pending key was removed): the next request uses a new key', async () => {
  const w = world();
  await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  const installed = (await w.node.store.readCurrent('client'))!;
  w.node.store.keepPendingAs('client', installed.key);
  // A restarted manager draws its own deadline within 70–90 % of the lifetime: past the window, it is due.
  await w.scheduler.runUntil(w.manager.states.client.notBefore!.getTime() + 0.9 * DAY);
  const r = await w.during(w.node.newManager().ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(r.value, 'installed', String(r.error));
  assert.equal(w.logged(/pending key is the installed one \(interrupted install\)/), 1);
  assert.equal(w.cluster.stats.csrsByNode.client[0], 2, 'a second CSR (new key), not a re-attach to the first');
  assert.equal(w.logged(/re-attached/), 0);
});

test('disk full: the install fails with the path and the fix, the old certificate stays current', async () => {
  const w = world();
  await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  const old = w.manager.states.client.fingerprint;
  await w.scheduler.runUntil(w.manager.states.client.rotationDeadline!.getTime());
  w.node.disk.full = true;
  const r = await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(errorCode(r.error), 'FILESYSTEM');
  assert.match((r.error as Error).message, /ENOSPC/);
  assert.equal((await w.node.store.readCurrent('client'))!.certificates[0]!.summary.sha256Fingerprint, old);
  w.node.disk.full = false;
  assert.equal(
    (await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE)).value,
    'installed',
  );
});

test('serving: SANs from the Node; an address change leads to a new certificate for the new address', async () => {
  const w = world();
  await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  const r = await w.during(w.manager.ensureServing({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(r.value, 'installed', String(r.error));
  assert.deepEqual(w.manager.states.server.ipAddresses, ['10.0.0.1']);
  assert.equal((await w.during(w.manager.ensureServing({ deadline: w.deadline(), rotate: true }), 0)).value, 'valid');
  w.cluster.setAddresses(0, [{ type: 'InternalIP', address: '10.0.0.2' }]);
  const changed = await w.during(w.manager.ensureServing({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(changed.value, 'installed', String(changed.error));
  assert.deepEqual(w.manager.states.server.ipAddresses, ['10.0.0.2']);
  assert.equal(w.logged(/node addresses changed/), 1);
});

test('daemon: an API outage is retried with the capped backoff and left within one backoff period', async () => {
  const outage = { start: T0 + HOUR, end: T0 + 5 * HOUR };
  const w = world({ outages: { api: [outage] } });
  const { stop } = w.startDaemon();
  const attempts: number[] = [];
  const admit = w.cluster.admit.bind(w.cluster);
  w.cluster.admit = (node) => {
    attempts.push(w.scheduler.now);
    admit(node);
  };
  await w.scheduler.runUntil(outage.end + 10 * MINUTE);
  await stop();
  const during = attempts.filter((t) => t >= outage.start && t < outage.end);
  assert.ok(during.length > 10, `retried during the outage (${during.length})`);
  for (let i = 1; i < during.length; i++) assert.ok(during[i]! - during[i - 1]! <= DEFAULT_BACKOFF.maxMs);
  const back = attempts.find((t) => t >= outage.end)!;
  assert.ok(back - outage.end <= DEFAULT_BACKOFF.maxMs, `back ${(back - outage.end) / 1000} s after the outage`);
  assert.equal(w.manager.states.client.lastError, undefined);
  assert.equal(w.cluster.stats.csrsByNode.client[0], 1, 'one client CSR, no more');
  assert.equal(w.cluster.stats.csrsByNode.server[0], 1, 'one serving CSR, no more');
});

test('daemon: a pass that ends with the CSR still pending is followed at once, so the watch stays open', async () => {
  const w = world({ cluster: { manualApproval: true } });
  const { stop } = w.startDaemon();
  await w.scheduler.runUntil(T0 + 12 * MINUTE);
  const name = w.cluster.csrsOf(0)[0]!.name;
  assert.ok(w.logged(/CSR still pending; will check again/) >= 2, 'two passes have ended waiting');
  w.cluster.approve(name);
  await w.scheduler.runUntil(w.scheduler.now + 1);
  assert.equal(w.logged(/installed client certificate/), 1, 'installed the moment it was approved');
  assert.equal(w.cluster.csrsOf(0).length, 2, 'the client CSR, then the serving one');
  await stop();
});

// CI caught the kubelet serving a self-signed certificate right after an rm -rf of the cert dir: the pass put
// the first-boot placeholder in before ensureServing restored the verified pair, and the kubelet loaded it.
test('daemon: both files lost under a running daemon come back from memory, no placeholder in between', async () => {
  const w = world();
  const { manager, daemon, stop } = w.startDaemon();
  await w.scheduler.runUntil(T0 + HOUR);
  const serving = manager.states.server.fingerprint;
  assert.ok(serving && manager.states.client.fingerprint, 'both certificates installed');
  const installs: Array<{ kind: string; placeholder: boolean }> = [];
  w.node.store.onInstall = (kind, pair) => installs.push({ kind, placeholder: isPlaceholder(pair) });
  w.node.store.lose('client');
  w.node.store.lose('server');
  daemon.wake('the cert dir was removed');
  await w.scheduler.runUntil(w.scheduler.now + MINUTE);
  assert.deepEqual(
    installs,
    [
      { kind: 'client', placeholder: false },
      { kind: 'server', placeholder: false },
    ],
    'each kind reinstalled once, from memory',
  );
  assert.equal((await w.node.store.readCurrent('server'))!.certificates[0]!.summary.sha256Fingerprint, serving);
  await stop();
});

test('daemon: a serving request the approver denies is not resubmitted at every retry (CSRs per day)', async () => {
  const w = world({ cluster: { denyProbability: { client: 0, server: 1 } } });
  const { manager, stop } = w.startDaemon();
  await w.scheduler.runUntil(T0 + DAY);
  const firstDay = w.cluster.stats.csrsByNode.server[0]!;
  // Waits of 1 h doubling to 8 h, each jittered to [half, full]: the shortest are 0.5 + 1 + 2 + 4 + 4 + 4 + 4 + 4 h
  // (23.5 h), so at most 9 CSRs in a day (main at 50ce86c sent 382: one per 5-minute backoff step).
  assert.ok(firstDay >= 4 && firstDay <= 9, `${firstDay} serving CSRs in the first day`);
  const denied = manager.states.server.denied!;
  assert.ok(denied.retryAt > w.scheduler.now);
  const shown = new Date(denied.retryAt).toISOString();
  assert.equal(certificateReport(manager.states.server, new Date(w.scheduler.now)).deniedRetryAt, shown);
  const metrics = await createMetrics(() => manager).registry.metrics();
  assert.ok(
    metrics.includes(`nodecred_csr_denied_retry_timestamp_seconds{certificate="serving"} ${denied.retryAt / 1000}`),
    'the retry time is a metric',
  );
  assert.match(manager.states.server.lastError!, /was denied: SimulatedDenial/);
  // New addresses are a different request: submitted at the next pass, not after the denial's wait.
  w.cluster.setAddresses(0, [{ type: 'InternalIP', address: '10.0.0.9' }]);
  await w.scheduler.runUntil(w.scheduler.now + 6 * MINUTE);
  assert.equal(w.cluster.stats.csrsByNode.server[0], firstDay + 1, 'the new addresses were requested at once');
  // A configuration reload forgets the denial: the approver's configuration may have been fixed.
  manager.reconfigure(manager.config);
  await w.scheduler.runUntil(w.scheduler.now + 6 * MINUTE);
  assert.equal(w.cluster.stats.csrsByNode.server[0], firstDay + 2, 'submitted again after the reload');
  await stop();
});

test('daemon: a restart keeps a denied serving request held back, backoff doubling; install clears it', async () => {
  const w = world({ cluster: { denyProbability: { client: 0, server: 1 } } });
  // Every serving CSR ever created (decided ones are cleaned up after an hour, as kube-controller-manager does).
  const submittedSoFar = () => w.cluster.stats.csrsByNode.server[0]!;
  let daemon = w.startDaemon();
  await w.scheduler.runUntil(T0 + 30 * MINUTE);
  const denied = daemon.manager.states.server.denied!;
  assert.equal(denied.count, 1);
  assert.equal(
    denied.csr,
    w.cluster
      .csrsOf(0)
      .filter((c) => c.kind === 'server')
      .at(-1)!.name,
  );
  assert.deepEqual(denied.condition, { type: 'Denied', reason: 'SimulatedDenial', message: denied.condition.message });
  assert.deepEqual(await w.node.store.readDenial('server'), denied, 'recorded on disk as it stands in memory');
  await daemon.stop();
  const submitted = submittedSoFar();

  // Restarted before retryAt: the same request stays held back (main before this change resubmitted at once).
  daemon = w.startDaemon();
  await w.scheduler.runUntil(w.scheduler.now + 10 * MINUTE);
  assert.equal(submittedSoFar(), submitted, 'no CSR from the restart');
  assert.equal(daemon.manager.states.server.denied?.retryAt, denied.retryAt);
  assert.equal(w.logged(/a serving request was denied before the restart/), 1);
  await w.scheduler.runUntil(denied.retryAt + 10 * MINUTE);
  assert.equal(submittedSoFar(), submitted + 1, 'submitted again once retryAt passed');
  assert.equal(daemon.manager.states.server.denied?.count, 2, 'the backoff went on doubling across the restart');
  await daemon.stop();

  // A damaged record costs one warning and one early request, never the daemon.
  w.node.store.damageDenial('server', '{"kind":');
  daemon = w.startDaemon();
  await w.scheduler.runUntil(w.scheduler.now + 10 * MINUTE);
  assert.equal(w.logged(/ignoring the recorded serving denial/), 1);
  assert.equal(submittedSoFar(), submitted + 2, 'the request went at once');
  assert.equal((await w.node.store.readDenial('server'))?.count, 1, 'a fresh record replaced the damaged one');

  // Once a serving certificate is installed nothing is held back, and status must not say otherwise.
  w.cluster.params.denyProbability.server = 0;
  daemon.manager.reconfigure(daemon.manager.config);
  await w.scheduler.runUntil(w.scheduler.now + 10 * MINUTE);
  assert.ok(daemon.manager.states.server.fingerprint, 'serving certificate installed');
  assert.equal(daemon.manager.states.server.denied, undefined);
  assert.equal(await w.node.store.readDenial('server'), null, 'the record is gone');
  await daemon.stop();
});

test('daemon: a reload while the restarted daemon reads the denial record back still submits at once', async () => {
  // A SIGHUP queued during start-up (run.ts) reloads while the first pass reads the record: the reload's
  // "submit at once" must not be undone by the read that finishes after it (held back, file already gone).
  const w = world({ cluster: { denyProbability: { client: 0, server: 1 } } });
  const submittedSoFar = () => w.cluster.stats.csrsByNode.server[0]!;
  let daemon = w.startDaemon();
  await w.scheduler.runUntil(T0 + 30 * MINUTE);
  assert.equal(daemon.manager.states.server.denied?.count, 1);
  await daemon.stop();
  w.cluster.params.denyProbability.server = 0;
  const submitted = submittedSoFar();
  const store = w.node.store;
  const read = store.readDenial.bind(store);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let reading = false;
  store.readDenial = async (kind) => {
    const record = await read(kind);
    if (kind === 'server' && !reading) {
      reading = true;
      await gate;
    }
    return record;
  };
  daemon = w.startDaemon();
  await w.scheduler.runUntil(w.scheduler.now + MINUTE);
  assert.ok(reading, 'the first pass is reading the serving record back');
  daemon.manager.reconfigure(daemon.manager.config);
  release();
  await w.scheduler.runUntil(w.scheduler.now + 10 * MINUTE);
  assert.equal(submittedSoFar(), submitted + 1, 'the reload submitted the request at once');
  assert.ok(daemon.manager.states.server.fingerprint, 'serving certificate installed');
  await daemon.stop();
});

test('daemon: a client certificate the API server refuses (client CA rotated) is replaced by bootstrap', async () => {
  const w = world();
  const { manager, stop } = w.startDaemon();
  await w.scheduler.runUntil(T0 + HOUR);
  const first = manager.states.client;
  const firstFingerprint = first.fingerprint;
  assert.ok(first.rotationDeadline!.getTime() > T0 + 16 * HOUR);
  const refusedAt = w.scheduler.now;
  // Every client certificate issued so far stops authenticating; it still verifies against the node's CA.
  w.cluster.distrustIssuedClientCertificates();
  await w.scheduler.runUntil(refusedAt + 30 * MINUTE);
  assert.notEqual(manager.states.client.fingerprint, firstFingerprint, 'replaced long before its rotation deadline');
  const replacement = w.cluster
    .csrsOf(0)
    .filter((c) => c.kind === 'client')
    .at(-1)!;
  assert.equal(replacement.requester.kind, 'bootstrap');
  assert.ok(replacement.created - refusedAt >= 5 * MINUTE, 'not on the first 401: it had to persist 5 minutes');
  assert.equal(w.logged(/client certificate unusable; falling back to bootstrap credentials/), 1);
  assert.match(w.lines.find((l) => l.includes('falling back to bootstrap'))!, /refused it \(401\) \d+ times since/);
  assert.equal(manager.states.client.refusedSince, undefined);
  await stop();
});

test('refused client certificate: one 401 is not enough; a removed refused pair is not reinstalled', async () => {
  const w = world();
  await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  const fingerprint = w.manager.states.client.fingerprint;
  const csrs = () => w.cluster.stats.csrsByNode.client[0];
  w.manager.noteNodeAuthentication(fingerprint, false);
  await w.advance(10 * MINUTE);
  assert.equal((await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), 0)).value, 'valid');
  w.manager.noteNodeAuthentication(fingerprint, false);
  w.manager.noteNodeAuthentication(fingerprint, true); // a success in between starts the count again
  w.manager.noteNodeAuthentication(fingerprint, false);
  w.manager.noteNodeAuthentication(fingerprint, false);
  w.manager.noteNodeAuthentication(fingerprint, false);
  assert.equal((await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), 0)).value, 'valid');
  assert.equal(csrs(), 1);
  // The operator removes the refused certificate: nodecred does not put it back from memory, it bootstraps.
  w.node.store.lose('client');
  const r = await w.during(w.manager.ensureClient({ deadline: w.deadline(), rotate: true }), MINUTE);
  assert.equal(r.value, 'installed', String(r.error));
  assert.equal(csrs(), 2);
  assert.equal(w.logged(/the API server refused it, not reinstalling/), 1);
});

// A VM whose RTC runs hours ahead (an RTC kept in local time, UTC+8) boots, nodecred starts, then chronyd steps
// the clock back. The daemon used to wait for the old wall time: no pass, and no wake-up heard, for 8 hours.
test('daemon: a wall clock stepped back keeps the loop on schedule and wake-ups heard', async () => {
  const w = world({ skewMs: 8 * HOUR });
  let passes = 0;
  const { daemon, stop } = w.startDaemon({ onPass: () => passes++ });
  await w.scheduler.runUntil(T0 + HOUR);
  assert.ok(passes > 0, 'the daemon ran');
  (w.node.clock as unknown as { skewMs: number }).skewMs = 0; // NTP steps the clock back 8 hours
  const before = passes;
  await w.scheduler.runUntil(w.scheduler.now + 15 * MINUTE);
  assert.ok(passes > before, `a pass within 15 minutes after the step (${passes - before})`);
  const woken = passes;
  daemon.wake('SIGHUP');
  await w.scheduler.runUntil(w.scheduler.now + 1);
  assert.equal(passes, woken + 1, 'a wake-up after the step runs a pass at once');
  await stop();
});

// The serving side got this in M4; a client CSR that a policy engine denies (a node identity attestation that
// fails, a fleet-wide misconfiguration) still went again at every backoff step: a new CSR every ≤ 5 minutes.
test('daemon: a client request that is denied is not resubmitted at every retry (CSRs per day)', async () => {
  const w = world({ cluster: { denyProbability: { client: 1, server: 0 } } });
  const { manager, stop } = w.startDaemon();
  await w.scheduler.runUntil(T0 + DAY);
  const firstDay = w.cluster.stats.csrsByNode.client[0]!;
  assert.ok(firstDay >= 4 && firstDay <= 9, `${firstDay} client CSRs in the first day`);
  assert.ok(manager.states.client.denied!.retryAt > w.scheduler.now);
  assert.match(manager.states.client.lastError!, /was denied: SimulatedDenial/);
  // A configuration reload forgets the denial: the policy may have been fixed.
  manager.reconfigure(manager.config);
  await w.scheduler.runUntil(w.scheduler.now + 6 * MINUTE);
  assert.equal(w.cluster.stats.csrsByNode.client[0], firstDay + 1, 'submitted again after the reload');
  await stop();
});

// The hold-back above lived only in memory: a crash-looping daemon (or a reboot) submitted the denied client
// request again at every start, and `nodecred status` could not say why the node had no client certificate.
test('daemon: a restart keeps a denied client request held back; a reload submits it, install clears it', async () => {
  const w = world({ cluster: { denyProbability: { client: 1, server: 0 } } });
  const submittedSoFar = () => w.cluster.stats.csrsByNode.client[0]!;
  let daemon = w.startDaemon();
  await w.scheduler.runUntil(T0 + 5 * MINUTE);
  const denied = daemon.manager.states.client.denied!;
  assert.equal(denied.count, 1);
  assert.equal(
    denied.csr,
    w.cluster
      .csrsOf(0)
      .filter((c) => c.kind === 'client')
      .at(-1)!.name,
  );
  assert.deepEqual(await w.node.store.readDenial('client'), denied, 'recorded on disk as it stands in memory');
  assert.equal(await w.node.store.readDenial('server'), null, 'in its own record');
  await daemon.stop();
  const submitted = submittedSoFar();

  // Restarted before retryAt: the same bootstrap request stays held back (before this change it went at once).
  daemon = w.startDaemon();
  assert.ok(denied.retryAt - w.scheduler.now >= 20 * MINUTE, 'the first wait is at least 30 minutes');
  await w.scheduler.runUntil(denied.retryAt - MINUTE);
  assert.equal(submittedSoFar(), submitted, 'no client CSR from the restart');
  assert.equal(daemon.manager.states.client.denied?.retryAt, denied.retryAt);
  assert.equal(w.logged(/a client request was denied before the restart/), 1);
  assert.match(daemon.manager.states.client.lastError!, /not submitted again before .*nodecred-client-denied\.json/);

  // The operator fixed the policy and reloads: the request goes at once, and once issued nothing is recorded.
  w.cluster.params.denyProbability.client = 0;
  daemon.manager.reconfigure(daemon.manager.config);
  await w.scheduler.runUntil(w.scheduler.now + 10 * MINUTE);
  assert.equal(submittedSoFar(), submitted + 1, 'submitted after the reload');
  assert.ok(daemon.manager.states.client.fingerprint, 'client certificate installed');
  assert.equal(daemon.manager.states.client.denied, undefined);
  assert.equal(await w.node.store.readDenial('client'), null, 'the record is gone');
  await daemon.stop();
});
