// A real kubelet (v1.37.2, built with the control plane) on nodecred's credentials: first boot without a
// deadlock, every serving rotation reaching the running kubelet, client rotation under its Lease, the cert
// dir deleted under it, and Prometheus scraping it. The tests share one node (one nodecred, one kubelet,
// one approver) and run in order; each asserts through the API server and through the kubelet's own port.
//
// The kubelet runs with --cloud-provider=external so the test can change the Node's addresses the way a
// cloud controller manager does on cloud nodes (the kubelet sets them only while the Node has none).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  testCluster,
  createBootstrapToken,
  ensureBootstrapRbac,
  setNodeAddresses,
  waitFor,
  uniqueName,
  type TestCluster,
} from '../helpers/cluster.ts';
import {
  newNodeDir,
  writeKubeconfig,
  writeConfig,
  startDaemon,
  REPO,
  type NodeDir,
  type Daemon,
} from '../helpers/node.ts';
import {
  startTestKubelet,
  nodeReady,
  waitNodeReady,
  leaseRenewed,
  viaNodeProxy,
  serialOf,
  type TestKubelet,
} from '../helpers/kubelet.ts';
import { startApprover, type RunningApprover } from '../helpers/approver.ts';
import { startPrometheus, type RunningPrometheus } from '../helpers/prometheus.ts';
import { freePort, httpGet } from '../../scripts/lib/local-cluster.ts';
import { nodeIp } from '../../scripts/lib/kubelet.ts';
import { PLACEHOLDER_ORGANIZATION } from '../../src/pki/self-signed.ts';

const run = promisify(execFile);
/** An address the test moves the node to (TEST-NET-2: documentation only, never dialled). */
const MOVED_TO = '198.51.100.7';
/** How often client-go re-reads the kubeconfig's client certificate in this kubelet (upstream: 5 min). */
const CLIENT_CERT_RELOAD = '15s';

let c: TestCluster;
let node: NodeDir;
let ip: string;
let configFile: string;
let baseConfig: Record<string, unknown>;
let daemon: Daemon;
let kubelet: TestKubelet | undefined;
let approver: RunningApprover | undefined;
let securePort: number;
let healthPort: number;
/** Install → served latencies, reported as diagnostics (the goal is ≤ 5 s; tests only wait on conditions). */
const servingReloadMs: number[] = [];

interface LogLine {
  time: number;
  msg: string;
  kind?: string;
  csr?: string;
}

function daemonLines(): LogLine[] {
  return daemon
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      const j = JSON.parse(l) as { time: string; msg: string; kind?: string; csr?: string };
      return { ...j, time: Date.parse(j.time) };
    });
}

/** Serving installs (time, serial of what went on disk) seen in nodecred's log since `since`. */
function servingInstalls(since: number): LogLine[] {
  return daemonLines().filter((l) => l.msg === 'installed serving certificate' && l.time >= since);
}

async function currentSerial(kind: 'client' | 'server'): Promise<string> {
  return serialOf(await readFile(join(node.certDir, `kubelet-${kind}-current.pem`), 'utf8'));
}

/**
 * Waits until the kubelet presents (verified against the cluster CA) the serving certificate installed now
 * (re-read on each look: a newer rotation may replace it meanwhile); returns when it first did.
 */
async function waitServed(what: string, timeoutMs = 30_000): Promise<number> {
  return waitFor(
    `the kubelet to serve ${what}`,
    async () => {
      const served = (await kubelet!.served({ verify: true })).serialNumber;
      return served === (await currentSerial('server')) ? Date.now() : undefined;
    },
    timeoutMs,
  );
}

async function reconfigure(fields: Record<string, unknown>): Promise<void> {
  await writeConfig(configFile, { ...baseConfig, ...fields });
  const before = daemonLines().filter((l) => l.msg === 'configuration reloaded').length;
  daemon.child.kill('SIGHUP');
  await waitFor('nodecred to reload its configuration', async () =>
    daemonLines().filter((l) => l.msg === 'configuration reloaded').length > before ? true : undefined,
  );
}

before(async () => {
  c = testCluster();
  node = await newNodeDir('kubelet');
  ip = nodeIp();
  await ensureBootstrapRbac(c);
  const token = await createBootstrapToken(c);
  const bootstrap = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
  [securePort, healthPort] = [await freePort(), await freePort()];
  baseConfig = {
    bootstrapKubeconfig: bootstrap,
    rotateServerCertificates: true,
    // 10-minute certificates, rotated at kubelet's 70–90 % (5.5–8.5 minutes in, after the 5-minute backdate):
    // nothing rotates on its own while this file runs, until a test narrows the window.
    requestedLifetime: '10m',
    recheckInterval: '2s',
    healthListen: `127.0.0.1:${healthPort}`,
    // On the node's address, where Prometheus finds it: the serving certificate names that address.
    secureListen: `${ip}:${securePort}`,
    clientCAFile: c.state.caFile,
  };
  configFile = await writeConfig(join(node.dir, 'config.yaml'), baseConfig);
});

after(async () => {
  await kubelet?.stop();
  await approver?.stop();
  if (daemon) assert.equal(await daemon.stop(), 0, 'nodecred exits 0 on SIGTERM');
  if (daemon) assert.doesNotMatch(daemon.output(), /BEGIN|PRIVATE KEY/, 'no certificate or key in the logs');
  await c.core.deleteNode({ name: node.name }).catch(() => {});
  await node.cleanup();
});

test('first boot from nothing: placeholder, kubelet registers, nodecred approve, kubelet serves it', async (t) => {
  daemon = startDaemon(['--config', configFile, ...node.flags]);
  await daemon.waitForLog(/the kubelet can start/);
  // No serving certificate can be requested yet: the Node does not exist. The kubelet gets a placeholder.
  await daemon.waitForLog(/waiting for the kubelet to register the Node/);
  const placeholder = new X509Certificate(await readFile(join(node.certDir, 'kubelet-server-current.pem')));
  assert.match(placeholder.subject, new RegExp(`O=${PLACEHOLDER_ORGANIZATION}`));
  assert.ok(placeholder.issuer === placeholder.subject && placeholder.verify(placeholder.publicKey), 'self-signed');

  kubelet = await startTestKubelet(c, node, {
    cloudProvider: 'external',
    env: { NODECRED_TEST_CLIENT_CERT_RELOAD: CLIENT_CERT_RELOAD },
  });
  await waitNodeReady(c, node.name);
  assert.equal(
    (await kubelet.served()).serialNumber,
    placeholder.serialNumber,
    'the kubelet started on the placeholder',
  );
  // The API server verifies kubelet serving certificates (--kubelet-certificate-authority): it refuses the
  // placeholder, so nothing talks to this kubelet insecurely while the real certificate is pending.
  await assert.rejects(viaNodeProxy(c, node.name, '/healthz'), /x509|certificate/);

  // nodecred now requests the serving certificate for the addresses the kubelet registered.
  const csr = await waitFor(
    'the serving CSR',
    async () => daemonLines().find((l) => l.msg === 'submitted CSR' && l.kind === 'server')?.csr,
  );
  const requester = (await c.kubectl(['get', 'csr', csr, '-o', 'jsonpath={.spec.username}'])).trim();
  assert.equal(requester, `system:node:${node.name}`);
  assert.ok(daemonLines().some((l) => l.msg.startsWith('the Node is registered: requesting the serving certificate')));
  approver = await startApprover(c, {
    dir: node.dir,
    nodeNames: [node.name],
    allowedCidrs: [`${ip}/32`, '198.51.100.0/24'],
    leaseName: uniqueName('nodecred-approver-kubelet'),
  });
  const [install] = await waitFor('the serving certificate installed', async () => {
    const installs = servingInstalls(0);
    return installs.length ? installs : undefined;
  });
  const servedAt = await waitServed('the approved serving certificate');
  servingReloadMs.push(servedAt - install!.time);
  const served = await kubelet.served({ verify: true });
  assert.ok(served.checkIP(ip), `served certificate names ${ip}: ${served.subjectAltName}`);
  assert.match(served.subjectAltName ?? '', new RegExp(`DNS:${node.name}`));
  assert.equal(await viaNodeProxy(c, node.name, '/healthz'), 'ok', 'API server → kubelet with verification');
  assert.ok(kubelet.alive(), 'the kubelet was never restarted');
  assert.ok(
    approver
      .output()
      .split('\n')
      .some((l) => l.includes(`"csr":"${csr}"`) && l.includes('"msg":"approved CSR"')),
    'nodecred approve approved it',
  );
  t.diagnostic(`placeholder → real serving certificate served ${servingReloadMs[0]} ms after install`);
});

test('serving rotation reaches the running kubelet: an address change, then short lifetimes, 4 in a row', async (t) => {
  const pid = kubelet!.pids.kubelet;
  const readyBefore = await nodeReady(c, node.name);
  const since = Date.now();
  // kube-controller-manager backdates NotBefore by 5 minutes: a 10-minute certificate spans 15, and 0.34–0.35
  // of that falls 6–15 s after issuance, so each new certificate is due again within seconds.
  await reconfigure({ rotation: { from: 0.34, to: 0.35 } });
  await setNodeAddresses(c, node.name, [
    { type: 'InternalIP', address: ip },
    { type: 'Hostname', address: node.name },
    { type: 'ExternalIP', address: MOVED_TO },
  ]);
  const seen = new Set<string>();
  while (seen.size < 4) {
    const next = await waitFor(
      `serving rotation ${seen.size + 1}`,
      async () => servingInstalls(since).find((l) => !seen.has(`${l.time}:${l.csr}`)),
      90_000,
    );
    seen.add(`${next.time}:${next.csr}`);
    const servedAt = await waitServed(`rotation ${seen.size}`);
    servingReloadMs.push(servedAt - next.time);
    const served = await kubelet!.served({ verify: true });
    assert.ok(served.checkIP(MOVED_TO), `rotation ${seen.size} carries the new address: ${served.subjectAltName}`);
    assert.equal(await viaNodeProxy(c, node.name, '/healthz'), 'ok');
  }
  assert.ok(
    daemonLines().some(
      (l) => l.msg === 'node addresses changed; requesting a new serving certificate' && l.time >= since,
    ),
  );
  assert.ok(kubelet!.alive() && kubelet!.pids.kubelet === pid, 'the same kubelet process served every certificate');
  assert.deepEqual(await nodeReady(c, node.name), readyBefore, 'the Node stayed Ready throughout');
  t.diagnostic(`install → kubelet serves the new serial, ms: ${servingReloadMs.join(', ')}`);
});

test('client rotation: the kubelet re-reads the new certificate; its Lease keeps renewing', async (t) => {
  // Still on 10-minute certificates from the previous test: the client certificate rotates every few seconds.
  const detected = () =>
    kubelet!.log().then((l) => l.split('\n').filter((x) => x.includes('Certificate rotation detected')).length);
  const before = await detected();
  const installsBefore = daemonLines().filter((l) => l.msg === 'installed client certificate').length;
  const installedAt = await waitFor('a client rotation', async () => {
    const installs = daemonLines().filter((l) => l.msg === 'installed client certificate');
    return installs.length > installsBefore ? installs.at(-1)!.time : undefined;
  });
  // client-go re-reads the kubeconfig's certificate files on a fixed period (here CLIENT_CERT_RELOAD) and
  // on every new connection; when they changed it closes its connections and reconnects with the new pair.
  const pickedUpAt = await waitFor(
    'the kubelet to pick up the rotated client certificate',
    async () => ((await detected()) > before ? Date.now() : undefined),
    60_000,
  );
  const renewedAfter = await waitFor(
    'a Lease renewal after the switch',
    async () => {
      const renewed = await leaseRenewed(c, node.name);
      return renewed > pickedUpAt ? renewed : undefined;
    },
    60_000,
  );
  assert.ok((await nodeReady(c, node.name))?.ready, 'the Node is still Ready');
  t.diagnostic(
    `client certificate picked up ${pickedUpAt - installedAt} ms after install ` +
      `(re-read period ${CLIENT_CERT_RELOAD}); Lease renewed ${renewedAfter - pickedUpAt} ms later`,
  );
  // Longer certificates again: the 10-minute ones just issued are due only 5.5–8.5 minutes from now.
  await reconfigure({ requestedLifetime: '24h' });
});

test('rm -rf of the cert dir under the kubelet (seed 003): restored, Node stays Ready, rotations go on', async (t) => {
  const readyBefore = await nodeReady(c, node.name);
  const servedBefore = (await kubelet!.served({ verify: true })).serialNumber;
  const restored = daemonLines().filter((l) => /reinstalled the verified one from memory/.test(l.msg)).length;
  await rm(node.certDir, { recursive: true, force: true });
  const removedAt = Date.now();
  await waitFor('both certificates restored', async () => {
    const lines = daemonLines().filter((l) => /reinstalled the verified one from memory/.test(l.msg));
    return lines.length >= restored + 2 ? true : undefined;
  });
  await run('openssl', ['verify', '-CAfile', c.state.caFile, join(node.certDir, 'kubelet-server-current.pem')]);
  await run('openssl', ['verify', '-CAfile', c.state.caFile, join(node.certDir, 'kubelet-client-current.pem')]);
  assert.equal(await currentSerial('server'), servedBefore, 'the verified serving pair came back from memory');
  assert.equal((await kubelet!.served({ verify: true })).serialNumber, servedBefore);
  assert.equal(await viaNodeProxy(c, node.name, '/healthz'), 'ok');
  await waitFor('a Lease renewal after the restore', async () =>
    (await leaseRenewed(c, node.name)) > removedAt ? true : undefined,
  );
  assert.deepEqual(await nodeReady(c, node.name), readyBefore, 'the Node never left Ready');

  // The kubelet watched a file that is gone; it watches again after its one-minute retry, so the next
  // rotation still reaches it, at the latest about a minute after the restore.
  const since = Date.now();
  await setNodeAddresses(c, node.name, [
    { type: 'InternalIP', address: ip },
    { type: 'Hostname', address: node.name },
  ]);
  const install = await waitFor('a serving rotation after the restore', async () => servingInstalls(since)[0], 60_000);
  const servedAt = await waitServed('the rotation after the restore', 120_000);
  assert.equal(await viaNodeProxy(c, node.name, '/healthz'), 'ok');
  t.diagnostic(`after rm -rf: rotation served ${servedAt - install.time} ms after install (kubelet re-watch ≤ 60 s)`);
});

test('Prometheus scrapes kubelet and nodecred with the least-privilege token; without, 403 names it', async () => {
  const ns = uniqueName('monitoring');
  let prometheus: RunningPrometheus | undefined;
  try {
    const env = { ...process.env, KUBECONFIG: c.state.kubeconfig, KUBECTL: c.state.kubectl };
    const script = join(REPO, 'scripts/create-monitoring-token');
    const { stdout: token } = await run(
      script,
      ['--namespace', ns, '--name', 'prometheus', '--duration', '1h', '--verify'],
      { env },
    );
    const can = (subresource: string) =>
      c
        .kubectl([
          'auth',
          'can-i',
          'get',
          'nodes',
          `--subresource=${subresource}`,
          `--as=system:serviceaccount:${ns}:prometheus`,
        ])
        .catch((e: { stdout: string }) => e.stdout);
    assert.equal((await can('metrics')).trim(), 'yes');
    assert.equal((await can('proxy')).trim(), 'no', 'least privilege: no nodes/proxy');
    await c.kubectl(['-n', ns, 'create', 'serviceaccount', 'nobody']);
    const denied = (await c.kubectl(['-n', ns, 'create', 'token', 'nobody', '--duration=1h'])).trim();

    // The kubelet's own answer to a token without nodes/metrics names the missing rule.
    const kubeletUrl = `https://${ip}:${kubelet!.port}/metrics`;
    const [code, body] = await httpGet({ url: kubeletUrl, ca: c.ca, headers: { authorization: `Bearer ${denied}` } });
    assert.equal(code, 403);
    assert.match(
      body,
      new RegExp(`user=system:serviceaccount:${ns}:nobody, verb=get, resource=nodes, subresource\\(s\\)=\\[metrics\\]`),
    );
    const [ncode, nbody] = await httpGet({
      url: `https://${ip}:${securePort}/metrics`,
      ca: c.ca,
      headers: { authorization: `Bearer ${denied}` },
    });
    assert.equal(ncode, 403);
    assert.match(nbody, /nonResourceURLs: \["\/metrics"\]\n\s+verbs: \["get"\]/);

    prometheus = await startPrometheus({
      caFile: c.state.caFile,
      jobs: [
        { job: 'kubelet-allowed', token: token.trim(), target: `${ip}:${kubelet!.port}` },
        { job: 'kubelet-denied', token: denied, target: `${ip}:${kubelet!.port}` },
        { job: 'nodecred-allowed', token: token.trim(), target: `${ip}:${securePort}` },
        { job: 'nodecred-denied', token: denied, target: `${ip}:${securePort}` },
      ],
    });
    const { targets: byJob, query } = prometheus;
    for (const job of ['kubelet-allowed', 'nodecred-allowed'])
      assert.equal(byJob[job]!.health, 'up', byJob[job]!.lastError);
    for (const job of ['kubelet-denied', 'nodecred-denied']) {
      assert.equal(byJob[job]!.health, 'down');
      assert.match(byJob[job]!.lastError, /403/);
    }
    const kubeletSeries = await waitFor('kubelet_node_name of this node in Prometheus', async () => {
      const r = await query(`kubelet_node_name{job="kubelet-allowed",node="${node.name}"}`);
      return r.length ? r : undefined;
    });
    assert.equal(kubeletSeries[0]!.value[1], '1');
    const ttl = await waitFor("nodecred's serving TTL in Prometheus", async () => {
      const r = await query('kubelet_certificate_manager_server_ttl_seconds{job="nodecred-allowed"}');
      return r.length ? Number(r[0]!.value[1]) : undefined;
    });
    assert.ok(ttl > 0 && Number.isFinite(ttl), `serving TTL ${ttl}`);
    assert.ok(!daemon.output().includes(token.trim()) && !daemon.output().includes(denied), 'no token in the logs');
  } finally {
    await prometheus?.stop();
  }
});
