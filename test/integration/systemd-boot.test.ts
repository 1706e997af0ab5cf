// The first boot of a VM image, under a real systemd (PID 1 in systemd-nspawn, test/helpers/nspawn.ts): the
// single executable with systemd/nodecred.service as shipped, and a kubelet unit (the real kubelet from the
// test plane's binary, upstream's fake CRI runtime as its container runtime), nothing else. Starting from no
// credentials at all: nodecred bootstraps the client certificate and reports READY=1; only then does systemd
// start the kubelet, which registers its Node; nodecred requests the serving certificate for the Node's
// addresses, `nodecred approve` (on the control-plane side, here the host) approves it under its policy,
// and the kubelet serves it without a restart. What systemd itself reports is asserted: the ordering,
// READY, STATUS=, the watchdog, `systemctl reload nodecred`, and that `systemctl restart nodecred` leaves the
// running kubelet alone. The host network is shared: the container reaches the test API server on
// 127.0.0.1, and the kubelet serves on this machine's address, where the API server and the test reach it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { testCluster, createBootstrapToken, ensureBootstrapRbac, uniqueName, waitFor } from '../helpers/cluster.ts';
import { inlineTokenKubeconfig, REPO } from '../helpers/node.ts';
import { bootContainer, cachedRootfs, nspawnUnavailable, type Container } from '../helpers/nspawn.ts';
import { servedCertificate, waitNodeReady, viaNodeProxy, serialOf } from '../helpers/kubelet.ts';
import { startApprover } from '../helpers/approver.ts';
import { buildSingleExecutable } from '../../scripts/lib/sea.ts';
import { freePort } from '../../scripts/lib/local-cluster.ts';
import { kubeletConfig, nodeIp } from '../../scripts/lib/kubelet.ts';
import { PLACEHOLDER_ORGANIZATION } from '../../src/pki/self-signed.ts';

const log = (line: string) => process.stderr.write(`${line}\n`);
/** Inside the container: the fake runtime's socket and the pod logs (harness-only paths). */
const HARNESS_DIR = '/run/kubelet-harness';

const FAKE_CRI_UNIT = `[Unit]
Description=upstream's fake CRI runtime (test harness: the kubelet's container runtime)
[Service]
Type=notify
ExecStart=/usr/local/bin/cluster fake-cri --endpoint=unix://${HARNESS_DIR}/cri.sock
RuntimeDirectory=kubelet-harness
RuntimeDirectoryPreserve=yes
[Install]
WantedBy=multi-user.target
`;

const kubeletUnit = (nodeName: string, ip: string) => `[Unit]
Description=kubelet
Wants=fake-cri.service
After=fake-cri.service
[Service]
# A container has no /dev/kmsg, which the kubelet's OOM watcher opens; kind links the console there too.
ExecStartPre=/bin/sh -c '[ -e /dev/kmsg ] || ln -s /dev/console /dev/kmsg'
ExecStart=/usr/local/bin/cluster kubelet --config=/etc/kubernetes/kubelet-config.yaml \\
  --kubeconfig=/var/lib/kubelet/kubeconfig --hostname-override=${nodeName} --node-ip=${ip} --v=2
# The fake runtime reports empty log paths; the kubelet's log cleanup then works in its cwd: keep it empty.
WorkingDirectory=${HARNESS_DIR}
Restart=always
RestartSec=2s
[Install]
WantedBy=multi-user.target
`;

/** `systemctl show` timestamps in µs of CLOCK_MONOTONIC. */
const mono = (v: string | undefined) => Number(v ?? 'NaN');

test('first boot under systemd: READY, then the kubelet; served; restarting nodecred leaves the kubelet', async (t) => {
  const unavailable = nspawnUnavailable();
  assert.equal(unavailable, null, `this test needs a real systemd in systemd-nspawn: ${unavailable}`);
  const c = testCluster();
  const work = await mkdtemp(join(tmpdir(), 'nodecred-boot-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const [rootfs] = await Promise.all([
    cachedRootfs({ log }),
    buildSingleExecutable(join(REPO, 'src/cli/main.ts'), join(work, 'nodecred')),
  ]);
  await ensureBootstrapRbac(c);
  const token = await createBootstrapToken(c);
  const nodeName = uniqueName('boot');
  const ip = nodeIp();
  const [healthPort, port, healthzPort] = [await freePort(), await freePort(), await freePort()];
  const approver = await startApprover(c, {
    dir: work,
    nodeNames: [nodeName],
    allowedCidrs: [`${ip}/32`],
    leaseName: uniqueName('nodecred-approver-boot'),
  });
  t.after(() => approver.stop());

  const box: Container = await bootContainer({ rootfs, log });
  t.after(() => box.stop());
  t.after(() => c.core.deleteNode({ name: nodeName }).catch(() => {}));

  // The image: the executable, the unit as shipped (plus a short watchdog, to see it fed within the test),
  // a bootstrap kubeconfig and a config; the kubelet with the documented KubeletConfiguration.
  await box.copyIn(join(work, 'nodecred'), '/usr/local/bin/nodecred', 0o755);
  await box.copyIn(c.state.binary, '/usr/local/bin/cluster', 0o755);
  await box.copyIn(join(REPO, 'systemd/nodecred.service'), '/etc/systemd/system/nodecred.service');
  await box.writeFile('/etc/systemd/system/nodecred.service.d/50-watchdog.conf', '[Service]\nWatchdogSec=4s\n');
  await box.writeFile('/etc/systemd/system/fake-cri.service', FAKE_CRI_UNIT);
  await box.writeFile('/etc/systemd/system/kubelet.service', kubeletUnit(nodeName, ip));
  await box.writeFile('/etc/kubernetes/pki/ca.crt', c.ca);
  const config = await kubeletConfig({
    certDir: '/var/lib/kubelet/pki',
    clientCAFile: '/etc/kubernetes/pki/ca.crt',
    dir: HARNESS_DIR,
    nodeIp: ip,
    port,
    healthzPort,
  });
  await box.writeFile('/etc/kubernetes/kubelet-config.yaml', stringify(config));
  await box.writeFile('/etc/nodecred/bootstrap-kubelet.conf', inlineTokenKubeconfig(c, token.token), 0o600);
  await box.writeFile(
    '/etc/nodecred/config.yaml',
    stringify({
      apiVersion: 'nodecred.io/v1alpha1',
      kind: 'NodeCredConfiguration',
      nodeName,
      bootstrapKubeconfig: '/etc/nodecred/bootstrap-kubelet.conf',
      rotateServerCertificates: true,
      healthListen: `127.0.0.1:${healthPort}`,
    }),
    0o600,
  );
  const journal = async () => (await box.journal('nodecred.service')).slice(-3000);
  assert.equal((await box.systemctl('daemon-reload')).code, 0);
  const enabled = await box.systemctl('enable', 'nodecred.service', 'kubelet.service', 'fake-cri.service');
  assert.equal(enabled.code, 0, enabled.stderr);

  // systemd's view of the pairing: the kubelet wants nodecred and is ordered after it, nothing stronger.
  const deps = await box.show('kubelet.service', ['Wants', 'After', 'Requires', 'BindsTo']);
  assert.match(deps.Wants!, /\bnodecred\.service\b/);
  assert.match(deps.After!, /\bnodecred\.service\b/);
  assert.doesNotMatch(`${deps.Requires} ${deps.BindsTo}`, /nodecred/);

  // Boot the node's services as multi-user.target would: one transaction, ordered by the units.
  const start = await box.systemctl('start', 'kubelet.service');
  assert.equal(start.code, 0, `${start.stderr}\n${await journal()}`);
  const nc = await box.show('nodecred.service', ['ActiveState', 'SubState', 'ActiveEnterTimestampMonotonic']);
  assert.deepEqual([nc.ActiveState, nc.SubState], ['active', 'running'], 'READY=1 reached systemd');
  const kubeletStarted = await waitFor('the kubelet to be started', async () => {
    const k = await box.show('kubelet.service', ['ActiveState', 'ExecMainStartTimestampMonotonic']);
    return k.ActiveState === 'active' ? mono(k.ExecMainStartTimestampMonotonic) : undefined;
  });
  assert.ok(
    kubeletStarted >= mono(nc.ActiveEnterTimestampMonotonic),
    'the kubelet started only after nodecred was READY',
  );
  await waitNodeReady(c, nodeName).catch(async (err: Error) => {
    const errors = (await box.journal('kubelet.service'))
      .split('\n')
      .filter((l) => /^[EF]\d|command failed|exited/.test(l))
      .slice(-20);
    throw new Error(`${err.message}\nthe kubelet's errors:\n${errors.join('\n')}`);
  });
  const served = await waitFor(
    'the kubelet to serve the approved serving certificate',
    async () => {
      const onDisk = serialOf(await readFile(box.path('/var/lib/kubelet/pki/kubelet-server-current.pem'), 'utf8'));
      const cert = await servedCertificate({ nodeIp: ip, port }, c.ca);
      return cert.serialNumber === onDisk ? cert : undefined;
    },
    120_000,
  );
  assert.ok(served.checkIP(ip));
  assert.doesNotMatch(served.subject, new RegExp(PLACEHOLDER_ORGANIZATION));
  assert.equal(await viaNodeProxy(c, nodeName, '/healthz'), 'ok');
  const status = await waitFor('STATUS= with both certificates valid', async () => {
    const s = (await box.show('nodecred.service', ['StatusText'])).StatusText ?? '';
    return /^client: valid \S+; serving: valid /.test(s) ? s : undefined;
  });
  // READY came before any serving certificate could exist: the kubelet started on the placeholder and
  // reloaded the real certificate in place.
  const text = await box.journal('nodecred.service');
  assert.match(text, /installed a self-signed placeholder/);
  assert.match(text, /waiting for the kubelet to register the Node/);
  const loads = (await box.journal('kubelet.service')).match(/Loaded a new cert\/key pair/g) ?? [];
  assert.ok(loads.length >= 2, `the kubelet loaded the placeholder, then the real pair: ${loads.length} loads`);
  const kubeletRestarts = (await box.show('kubelet.service', ['NRestarts'])).NRestarts;
  assert.equal(kubeletRestarts, '0', 'the kubelet never had to restart: no deadlock, no missing file');

  // The watchdog: systemd records each WATCHDOG=1 (WatchdogSec=4s: one every 2 s).
  const ping = async () =>
    mono((await box.show('nodecred.service', ['WatchdogTimestampMonotonic'])).WatchdogTimestampMonotonic);
  const first = await ping();
  await waitFor('two more watchdog pings', async () => ((await ping()) > first ? true : undefined), 20_000);

  // Reload: in place, the kubelet untouched.
  const before = await box.show('nodecred.service', ['MainPID']);
  const kubeletPid = (await box.show('kubelet.service', ['MainPID'])).MainPID;
  const reloaded = await box.systemctl('reload', 'nodecred.service');
  assert.equal(reloaded.code, 0, `${reloaded.stderr}\n${await journal()}`);
  await waitFor('the reload in the journal', async () =>
    (await box.journal('nodecred.service')).includes('configuration reloaded') ? true : undefined,
  );
  assert.equal((await box.show('nodecred.service', ['MainPID'])).MainPID, before.MainPID);

  // Restart: a new nodecred process; the running kubelet is left alone (Wants, not Requires).
  const restarted = await box.systemctl('restart', 'nodecred.service');
  assert.equal(restarted.code, 0, `${restarted.stderr}\n${await journal()}`);
  const after = await box.show('nodecred.service', ['MainPID', 'ActiveState']);
  assert.notEqual(after.MainPID, before.MainPID);
  assert.equal(after.ActiveState, 'active');
  const k = await box.show('kubelet.service', ['MainPID', 'ActiveState', 'NRestarts']);
  assert.deepEqual(k, { MainPID: kubeletPid, ActiveState: 'active', NRestarts: '0' }, 'the kubelet kept running');
  assert.equal((await servedCertificate({ nodeIp: ip, port }, c.ca)).serialNumber, served.serialNumber);
  t.diagnostic(`STATUS once both certificates are in place: ${status}`);
});
