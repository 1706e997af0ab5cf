// Serving certificates from the Node's addresses, a new request when they change, rotation of both
// certificates with short lifetimes, and the fall back to bootstrap when the client certificate expired.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { readFile, readlink, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  testCluster,
  createBootstrapToken,
  ensureBootstrapRbac,
  approveCsr,
  createNode,
  setNodeAddresses,
  waitFor,
  whoAmI,
  type TestCluster,
} from '../helpers/cluster.ts';
import { newNodeDir, runNodecred, writeKubeconfig, writeConfig, startDaemon, type NodeDir } from '../helpers/node.ts';
import { issueLeaf, makeCa, newEcKey, CLIENT_AUTH } from '../unit/pki/helpers.ts';
import { CertStore } from '../../src/store/cert-store.ts';
import { KubeConfig } from '@kubernetes/client-node';

const run = promisify(execFile);

async function sans(path: string): Promise<string> {
  const out = await run('openssl', ['x509', '-in', path, '-noout', '-ext', 'subjectAltName']);
  return out.stdout.split('\n').slice(1).join(' ').replace(/\s+/g, ' ').trim();
}

/** Approves every pending serving CSR of this node until stopped; returns the names it approved. */
function servingApprover(c: TestCluster, node: string) {
  const approved: string[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const list = await c.certificates.listCertificateSigningRequest();
      for (const csr of list.items) {
        const name = csr.metadata!.name!;
        if (csr.spec.signerName !== 'kubernetes.io/kubelet-serving' || csr.spec.username !== `system:node:${node}`)
          continue;
        if (csr.status?.conditions?.length || approved.includes(name)) continue;
        await approveCsr(c, name);
        approved.push(name);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    approved,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

async function bootstrapKubeconfig(c: TestCluster, node: NodeDir): Promise<string> {
  await ensureBootstrapRbac(c);
  const token = await createBootstrapToken(c);
  return writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
}

test("serving certificate: SANs from the Node's status.addresses, approved by an admin, installed", async () => {
  const c = testCluster();
  const node = await newNodeDir();
  const approver = servingApprover(c, node.name);
  try {
    await createNode(c, node.name, [
      { type: 'InternalIP', address: '10.1.2.3' },
      { type: 'Hostname', address: `${node.name}.example.internal` },
      { type: 'ExternalIP', address: '2001:db8::7' },
    ]);
    const bootstrap = await bootstrapKubeconfig(c, node);
    const r = await runNodecred([
      'bootstrap',
      '--bootstrap-kubeconfig',
      bootstrap,
      '--rotate-server-certificates',
      ...node.flags,
    ]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const current = join(node.certDir, 'kubelet-server-current.pem');
    assert.match(await readlink(current), /^kubelet-server-\d{4}(-\d{2}){5}\.pem$/);
    assert.equal(
      await sans(current),
      `DNS:${node.name}.example.internal, IP Address:10.1.2.3, IP Address:2001:DB8:0:0:0:0:0:7`,
    );
    const eku = await run('openssl', ['x509', '-in', current, '-noout', '-ext', 'extendedKeyUsage']);
    assert.match(eku.stdout, /TLS Web Server Authentication/);
    assert.match((await run('openssl', ['verify', '-CAfile', c.state.caFile, current])).stdout, /: OK/);
    assert.equal(approver.approved.length, 1);
  } finally {
    await approver.stop();
    await node.cleanup();
  }
});

test('serving certificate before the Node exists uses --node-ip', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  const approver = servingApprover(c, node.name);
  try {
    const bootstrap = await bootstrapKubeconfig(c, node);
    const r = await runNodecred([
      'bootstrap',
      '--bootstrap-kubeconfig',
      bootstrap,
      '--rotate-server-certificates',
      '--node-ip',
      '10.9.8.7',
      ...node.flags,
    ]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(await sans(join(node.certDir, 'kubelet-server-current.pem')), 'IP Address:10.9.8.7');
  } finally {
    await approver.stop();
    await node.cleanup();
  }
});

test('daemon: changed Node addresses lead to a new serving certificate; both rotate with short lifetimes', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  const approver = servingApprover(c, node.name);
  try {
    await createNode(c, node.name, [{ type: 'InternalIP', address: '10.0.0.1' }]);
    const bootstrap = await bootstrapKubeconfig(c, node);
    // kube-controller-manager backdates NotBefore by 5 minutes, so with a 10-minute lifetime the certificate
    // spans 15 minutes and 0.34–0.35 of it falls 6–15 s after issuance: rotation without waiting minutes.
    const config = await writeConfig(join(node.dir, 'config.yaml'), {
      bootstrapKubeconfig: bootstrap,
      rotateServerCertificates: true,
      requestedLifetime: '10m',
      rotation: { from: 0.34, to: 0.35 },
      recheckInterval: '1s',
      // Not the default 127.0.0.1:10271: another daemon on this machine (a parallel test run) may hold it.
      healthListen: '127.0.0.1:0',
    });
    const daemon = startDaemon(['--config', config, ...node.flags]);
    try {
      await daemon.waitForLog(/installed serving certificate/);
      const serverCurrent = join(node.certDir, 'kubelet-server-current.pem');
      const clientCurrent = join(node.certDir, 'kubelet-client-current.pem');
      assert.equal(await sans(serverCurrent), 'IP Address:10.0.0.1');
      const firstClient = await readFile(clientCurrent, 'utf8');

      await setNodeAddresses(c, node.name, [
        { type: 'InternalIP', address: '10.0.0.2' },
        { type: 'InternalDNS', address: `${node.name}.internal` },
      ]);
      await waitFor(
        'serving certificate for the new addresses',
        async () =>
          (await sans(serverCurrent)) === `DNS:${node.name}.internal, IP Address:10.0.0.2` ? true : undefined,
        60_000,
      );
      assert.match(daemon.output(), /node addresses changed; requesting a new serving certificate/);

      // Rotation: the client certificate is renewed with itself (selfnodeclient auto-approval).
      await waitFor(
        'client certificate rotation',
        async () => ((await readFile(clientCurrent, 'utf8')) !== firstClient ? true : undefined),
        60_000,
      );
      assert.match(daemon.output(), /client certificate due for rotation; renewing with it/);
      await waitFor(
        'serving certificate rotation',
        async () => (approver.approved.length >= 3 ? true : undefined),
        60_000,
      );
      const kc = new KubeConfig();
      kc.loadFromFile(node.kubeconfig);
      assert.equal(
        (await whoAmI(kc)).username,
        `system:node:${node.name}`,
        'the kubeconfig still works after rotation',
      );
      const files = await readdir(node.certDir);
      assert.ok(
        files.filter((f) => /^kubelet-client-\d/.test(f)).length >= 2,
        `old and new client pairs kept: ${files.join(' ')}`,
      );
    } finally {
      assert.equal(await daemon.stop(), 0, 'graceful exit on SIGTERM');
    }
    assert.doesNotMatch(daemon.output(), /BEGIN|PRIVATE KEY/);
  } finally {
    await approver.stop();
    await node.cleanup();
  }
});

test('an expired client certificate at start falls back to the bootstrap credentials, and says so', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  try {
    const bootstrap = await bootstrapKubeconfig(c, node);
    const first = await runNodecred(['bootstrap', '--bootstrap-kubeconfig', bootstrap, ...node.flags]);
    assert.equal(first.code, 0, first.stderr);

    // The node was off for longer than the certificate lived: install an expired one in its place.
    const keys = newEcKey();
    const ca = {
      name: 'nodecred-local-ca',
      certificatePem: c.ca,
      privateKey: createPrivateKey(await readFile(c.state.caKeyFile)),
    };
    const expired = await issueLeaf(ca, {
      publicKey: keys.publicKey,
      commonName: `system:node:${node.name}`,
      organizations: ['system:nodes'],
      extendedKeyUsages: [CLIENT_AUTH],
      notBefore: new Date(Date.now() - 48 * 3600_000),
      notAfter: new Date(Date.now() - 24 * 3600_000),
    });
    await new CertStore(node.certDir).install('client', expired, keys.privateKey, new Date(Date.now() - 48 * 3600_000));

    const r = await runNodecred(['bootstrap', '--bootstrap-kubeconfig', bootstrap, ...node.flags]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /client certificate unusable; falling back to bootstrap credentials/);
    assert.match(r.stdout, /expired/);
    const kc = new KubeConfig();
    kc.loadFromFile(node.kubeconfig);
    assert.equal((await whoAmI(kc)).username, `system:node:${node.name}`);
  } finally {
    await node.cleanup();
  }
});

test('a client certificate the API server refuses though it verifies locally is replaced by bootstrap', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  try {
    const bootstrap = await bootstrapKubeconfig(c, node);
    const first = await runNodecred(['bootstrap', '--bootstrap-kubeconfig', bootstrap, ...node.flags]);
    assert.equal(first.code, 0, first.stderr);

    // A certificate from a CA the node trusts (clusterCAFile lists it) but the API server does not: its
    // --client-ca-file is the cluster CA only, as after a client-CA rotation.
    const other = await makeCa('rotated-away-client-ca');
    const keys = newEcKey();
    const refused = await issueLeaf(other, {
      publicKey: keys.publicKey,
      commonName: `system:node:${node.name}`,
      organizations: ['system:nodes'],
      extendedKeyUsages: [CLIENT_AUTH],
    });
    await new CertStore(node.certDir).install('client', refused, keys.privateKey, new Date());
    const bundle = join(node.dir, 'ca-bundle.crt');
    await writeFile(bundle, `${c.ca.trim()}\n${other.certificatePem}`);
    const config = await writeConfig(join(node.dir, 'config.yaml'), {
      clusterCAFile: bundle,
      rotateServerCertificates: true,
      serving: { addresses: [{ type: 'InternalIP', address: '10.1.2.9' }] },
      unauthorizedGrace: '3s',
    });
    const daemon = startDaemon([
      '--config',
      config,
      '--bootstrap-kubeconfig',
      bootstrap,
      '--health-listen',
      '',
      ...node.flags,
    ]);
    try {
      // The serving pass speaks as the node: each pass meets the real API server's 401.
      await daemon.waitForLog(/client certificate unusable; falling back to bootstrap credentials/, 90_000);
      assert.match(daemon.output(), /the API server refused it \(401\) \d+ times since/);
      await daemon.waitForLog(/installed client certificate/, 60_000);
    } finally {
      await daemon.stop();
    }
    const kc = new KubeConfig();
    kc.loadFromFile(node.kubeconfig);
    assert.equal((await whoAmI(kc)).username, `system:node:${node.name}`, 'the new certificate authenticates');
  } finally {
    await node.cleanup();
  }
});
