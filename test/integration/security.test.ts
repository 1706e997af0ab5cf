// The controls of docs/security.md that involve the API server, each against the real control plane:
// token discovery trusts only the pinned CA certificates (against a holder of the bootstrap token who sits
// between the node and the API server), ...
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmod, lstat, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import {
  createBootstrapToken,
  ensureBootstrapRbac,
  testCluster,
  waitFor,
  whoAmI,
  type TestCluster,
} from '../helpers/cluster.ts';
import { newNodeDir, runNodecred, startDaemon, writeConfig, writeKubeconfig } from '../helpers/node.ts';
import { freePort } from '../../scripts/lib/local-cluster.ts';
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

/** GET on the plain health listener, as any local user can. */
function getJson(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { accept: 'application/json' } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('exec plugin stderr: what it says reaches /healthz JSON and the log only redacted (a token it prints does not)', async () => {
  const c = testCluster();
  const node = await newNodeDir('exec-stderr');
  const port = await freePort();
  const jwt = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(`{"sub":"${node.name}"}`).toString('base64url')}.c2lnbmF0dXJl`;
  const session = 'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD';
  try {
    const plugin = join(node.dir, 'credential-plugin');
    await writeFile(
      plugin,
      `#!/bin/sh\necho "error: refreshing the node credential failed; cached token ${jwt} rejected" >&2\n` +
        `echo "retry with AWS_SESSION_TOKEN=${session}" >&2\nexit 1\n`,
    );
    await chmod(plugin, 0o755);
    const kubeconfig = await writeKubeconfig(join(node.dir, 'exec.kubeconfig'), c, { exec: { command: plugin } });
    const config = await writeConfig(join(node.dir, 'config.yaml'), {
      nodeName: node.name,
      kubeconfig,
      certDir: node.certDir,
      clientCredentials: 'external',
      rotateCertificates: false,
      rotateServerCertificates: true,
      healthListen: `127.0.0.1:${port}`,
    });
    const daemon = startDaemon(['--config', config]);
    try {
      const health = await waitFor('the plugin failure in /healthz JSON', async () => {
        const r = await getJson(port, '/healthz').catch(() => undefined);
        return r?.body.includes('exited with code 1') ? r.body : undefined;
      });
      await daemon.waitForLog(/exited with code 1/);
      for (const [where, text] of [
        ['/healthz JSON', health],
        ['log', daemon.output()],
      ] as const) {
        assert.ok(!text.includes(jwt) && !text.includes(jwt.split('.')[1]!), `${where}: no JWT`);
        assert.ok(!text.includes(session.slice(0, 12)), `${where}: no session token`);
        assert.match(text, /refreshing the node credential failed; cached token \[redacted\] rejected/, where);
        assert.match(text, /AWS_SESSION_TOKEN=\[redacted\]/, where);
      }
    } finally {
      await daemon.stop();
    }
  } finally {
    await node.cleanup();
  }
});
