// Migrating a node whose certificates the kubelet's own TLS bootstrap wrote (kubeadm and EKS nodes) to
// nodecred, and back, with a real kubelet: nodecred adopts the kubelet's pairs while the kubelet runs, no
// new CSR; the kubelet then moves to the documented configuration; and going back to kubelet-managed
// certificates is a configuration change, again without a CSR. docs/kubelet.md walks through the same steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  testCluster,
  createBootstrapToken,
  ensureBootstrapRbac,
  approveCsr,
  waitFor,
  type TestCluster,
} from '../helpers/cluster.ts';
import { newNodeDir, writeKubeconfig, writeConfig, startDaemon, type NodeDir } from '../helpers/node.ts';
import { startTestKubelet, waitNodeReady, leaseRenewed, serialOf, type TestKubelet } from '../helpers/kubelet.ts';
import { freePort, httpGet } from '../../scripts/lib/local-cluster.ts';

/** Every CSR this node (or its bootstrap token) ever submitted. */
async function csrsOf(c: TestCluster, node: string, tokenId: string): Promise<string[]> {
  const list = await c.certificates.listCertificateSigningRequest();
  return list.items
    .filter((x) => x.spec.username === `system:node:${node}` || x.spec.username === `system:bootstrap:${tokenId}`)
    .map((x) => x.metadata!.name!)
    .sort();
}

/** A restarted kubelet is back when its Lease is renewed after the restart. */
async function restartedAndRenewing(c: TestCluster, node: NodeDir, since: number): Promise<void> {
  await waitFor('a Lease renewal by the restarted kubelet', async () =>
    (await leaseRenewed(c, node.name)) > since ? true : undefined,
  );
  await waitNodeReady(c, node.name);
}

test('takeover of kubelet-bootstrapped certificates while the kubelet runs, no new CSR; and back again', async (t) => {
  const c = testCluster();
  const node = await newNodeDir('takeover');
  let kubelet: TestKubelet | undefined;
  let daemon: ReturnType<typeof startDaemon> | undefined;
  try {
    await ensureBootstrapRbac(c);
    const token = await createBootstrapToken(c);
    const bootstrap = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });

    // 1. A kubeadm-style node: the kubelet bootstraps its client certificate and requests its serving
    //    certificate itself (serverTLSBootstrap), which an administrator approves.
    kubelet = await startTestKubelet(c, node, { owner: 'kubelet', bootstrapKubeconfig: bootstrap });
    await waitNodeReady(c, node.name);
    const servingCsr = await waitFor('the kubelet-serving CSR of the kubelet', async () => {
      const list = await c.certificates.listCertificateSigningRequest();
      return list.items.find(
        (x) => x.spec.username === `system:node:${node.name}` && x.spec.signerName === 'kubernetes.io/kubelet-serving',
      )?.metadata?.name;
    });
    await approveCsr(c, servingCsr);
    const serverCurrent = join(node.certDir, 'kubelet-server-current.pem');
    const serving = await waitFor('the kubelet to serve its own serving certificate', async () => {
      const onDisk = serialOf(await readFile(serverCurrent, 'utf8'));
      return (await kubelet!.served({ verify: true })).serialNumber === onDisk ? onDisk : undefined;
    });
    assert.ok((await readlink(serverCurrent)).startsWith('/'), 'the kubelet wrote the layout (absolute links)');
    const clientSerial = serialOf(await readFile(join(node.certDir, 'kubelet-client-current.pem'), 'utf8'));
    const csrsBefore = await csrsOf(c, node.name, token.id);
    assert.equal(csrsBefore.length, 2, `one client and one serving CSR: ${csrsBefore.join(', ')}`);

    // 2. nodecred starts on the same files while that kubelet keeps running: it verifies and adopts both
    //    pairs and the kubeconfig, and requests nothing.
    const healthPort = await freePort();
    const config = await writeConfig(join(node.dir, 'nodecred.yaml'), {
      bootstrapKubeconfig: bootstrap,
      rotateServerCertificates: true,
      healthListen: `127.0.0.1:${healthPort}`,
    });
    daemon = startDaemon(['--config', config, ...node.flags]);
    await daemon.waitForLog(/credentials in place; ready/);
    const [ready, body] = await httpGet({ url: `http://127.0.0.1:${healthPort}/readyz?verbose` });
    assert.equal(ready, 200, body);
    assert.deepEqual(await csrsOf(c, node.name, token.id), csrsBefore, 'no new CSR');
    assert.doesNotMatch(daemon.output(), /submitted CSR|bootstrapping/);
    assert.ok(kubelet.alive(), 'the kubelet ran throughout');
    assert.equal((await kubelet.served({ verify: true })).serialNumber, serving);
    assert.equal(serialOf(await readFile(join(node.certDir, 'kubelet-client-current.pem'), 'utf8')), clientSerial);

    // 3. The kubelet moves to the documented configuration (rotateCertificates: false, tlsCertFile): a
    //    restart, and it serves the same certificate from nodecred's files.
    await kubelet.stop();
    let restarted = Date.now();
    kubelet = await startTestKubelet(c, node, { owner: 'nodecred' });
    await restartedAndRenewing(c, node, restarted);
    assert.equal((await kubelet.served({ verify: true })).serialNumber, serving);
    assert.deepEqual(await csrsOf(c, node.name, token.id), csrsBefore, 'still no new CSR');

    // 4. Back to kubelet-managed certificates: stop nodecred, restore the kubelet's own rotation. Its
    //    certificate managers load the pairs nodecred kept in the kubelet's layout; nothing is requested.
    assert.equal(await daemon.stop(), 0);
    daemon = undefined;
    await kubelet.stop();
    restarted = Date.now();
    kubelet = await startTestKubelet(c, node, { owner: 'kubelet' });
    await restartedAndRenewing(c, node, restarted);
    assert.equal((await kubelet.served({ verify: true })).serialNumber, serving);
    assert.deepEqual(await csrsOf(c, node.name, token.id), csrsBefore, 'no CSR on the way back either');
    t.diagnostic(`CSRs of this node over the whole migration: ${csrsBefore.length}`);
  } finally {
    await kubelet?.stop();
    if (daemon) await daemon.stop();
    await c.core.deleteNode({ name: node.name }).catch(() => {});
    await node.cleanup();
  }
});
