// The controls of docs/security.md that involve the API server, each against the real control plane:
// token discovery trusts only the pinned CA certificates (against a holder of the bootstrap token who sits
// between the node and the API server), ...
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import {
  createBootstrapToken,
  ensureBootstrapRbac,
  testCluster,
  whoAmI,
  type TestCluster,
} from '../helpers/cluster.ts';
import { newNodeDir, runNodecred } from '../helpers/node.ts';
import { startTlsFront } from '../helpers/tls-front.ts';
import { issueLeaf, makeCa, newEcKey, SERVER_AUTH } from '../unit/pki/helpers.ts';
import { caPinHash, splitCertificatePems } from '../../src/pki/cert.ts';
import { clusterInfoJwsKey, signClusterInfo } from '../../src/kube/discovery.ts';

/** cluster-info as a bootstrap-token holder can forge it: any CA bundle, signed with the token's secret. */
function forgedClusterInfo(server: string, caBundle: string, id: string, secret: string): Record<string, string> {
  const kubeconfig = stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: '', cluster: { server, 'certificate-authority-data': Buffer.from(caBundle).toString('base64') } },
    ],
    contexts: [],
    users: [],
  });
  return { kubeconfig, [clusterInfoJwsKey(id)]: signClusterInfo(kubeconfig, id, secret) };
}

async function attackerServing() {
  const ca = await makeCa('attacker-ca');
  const key = newEcKey();
  const certPem = await issueLeaf(ca, {
    publicKey: key.publicKey,
    commonName: 'kube-apiserver',
    organizations: [],
    extendedKeyUsages: [SERVER_AUTH],
    ipAddresses: ['127.0.0.1'],
    dnsNames: ['localhost'],
  });
  return { ca, certPem, keyPem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

async function realServing(c: TestCluster) {
  const pki = join(c.state.dir, 'pki');
  return {
    certPem: await readFile(join(pki, 'apiserver.crt'), 'utf8'),
    keyPem: await readFile(join(pki, 'apiserver.key'), 'utf8'),
  };
}

test('token discovery: a bootstrap-token holder in the middle adds its own CA next to the pinned one: refused before any credential is sent', async () => {
  const c = testCluster();
  const token = await createBootstrapToken(c);
  const attacker = await attackerServing();
  // The bundle holds the real, pinned CA, so "any certificate matches a pin" (kubeadm's check) passes.
  const front = await startTlsFront({
    certPem: attacker.certPem,
    keyPem: attacker.keyPem,
    clusterInfo: forgedClusterInfo(
      c.state.apiserver,
      `${c.ca.trim()}\n${attacker.ca.certificatePem}`,
      token.id,
      token.secret,
    ),
  });
  const node = await newNodeDir('mitm');
  try {
    const r = await runNodecred([
      'bootstrap',
      '--api-server',
      front.url,
      '--discovery-token',
      token.token,
      '--discovery-token-ca-cert-hash',
      caPinHash(c.ca),
      '--timeout',
      '30s',
      ...node.flags,
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /certificate does not chain to a pinned CA \(\w+\); refusing to go on/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    await assert.rejects(lstat(node.kubeconfig), 'no kubeconfig');
    await assert.rejects(lstat(join(node.certDir, 'kubelet-client-current.pem')), 'no certificate');
    // It read cluster-info once, unauthenticated (that fetch cannot verify the server), and then refused
    // the attacker's certificate: no request with the token, no CSR, ever reached it.
    assert.deepEqual(
      front.requests.map((q) => [q.method, q.path.split('?')[0], q.authorization]),
      [['GET', '/api/v1/namespaces/kube-public/configmaps/cluster-info', false]],
    );
  } finally {
    await front.close();
    await node.cleanup();
  }
});

test('token discovery: with a pinned and an unpinned CA in cluster-info, the node trusts and writes only the pinned one', async () => {
  const c = testCluster();
  await ensureBootstrapRbac(c);
  const token = await createBootstrapToken(c);
  const other = await makeCa('unpinned-ca');
  // The real API server's own certificate in front of the real API server: only cluster-info differs.
  const front = await startTlsFront({
    ...(await realServing(c)),
    clusterInfo: forgedClusterInfo(
      c.state.apiserver,
      `${other.certificatePem}${c.ca.trim()}\n`,
      token.id,
      token.secret,
    ),
    upstream: { url: c.state.apiserver, caPem: c.ca },
  });
  const node = await newNodeDir('pinned');
  try {
    const r = await runNodecred([
      'bootstrap',
      '--api-server',
      front.url,
      '--discovery-token',
      token.token,
      '--discovery-token-ca-cert-hash',
      caPinHash(c.ca),
      ...node.flags,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const kc = new KubeConfig();
    kc.loadFromFile(node.kubeconfig);
    const written = splitCertificatePems(Buffer.from(kc.getCurrentCluster()!.caData!, 'base64').toString());
    assert.equal(written.length, 1, 'one CA certificate in the node kubeconfig');
    assert.equal(new X509Certificate(written[0]!).fingerprint256, new X509Certificate(c.ca).fingerprint256);
    // The front forwards without the client certificate; straight to the API server, the identity works.
    const direct = new KubeConfig();
    direct.loadFromString((await readFile(node.kubeconfig, 'utf8')).replace(front.url, c.state.apiserver));
    assert.equal((await whoAmI(direct)).username, `system:node:${node.name}`);
  } finally {
    await front.close();
    await node.cleanup();
  }
});
