// The foundation: the local control plane is real and behaves as nodecred needs it to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, writeFile, readFile, rm, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ApiException } from '@kubernetes/client-node';
import {
  testCluster,
  createBootstrapToken,
  deleteBootstrapToken,
  ensureBootstrapRbac,
  tokenKubeConfig,
  uniqueName,
  waitForCertificate,
  whoAmI,
  waitFor,
} from '../helpers/cluster.ts';
import { readState, isAlive, COMPONENTS } from '../../scripts/lib/local-cluster.ts';
import { processesMentioning } from '../helpers/processes.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');

test('/version reports the real Kubernetes version the binary was built from', async () => {
  const c = testCluster();
  const versions = await readFile(join(repo, 'test/cluster/versions.env'), 'utf8');
  const expected = /KUBERNETES_VERSION=(\S+)/.exec(versions)?.[1];
  const out = JSON.parse(await c.kubectl(['get', '--raw', '/version'])) as { gitVersion: string };
  assert.equal(out.gitVersion, expected);
});

test('a bootstrap-token client CSR is auto-approved and signed, and the certificate chains to ca.crt', async () => {
  const c = testCluster();
  await ensureBootstrapRbac(c);
  const token = await createBootstrapToken(c);
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-csr-'));
  try {
    const node = uniqueName('node');
    await run('openssl', [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      join(dir, 'key.pem'),
      '-subj',
      `/O=system:nodes/CN=system:node:${node}`,
      '-out',
      join(dir, 'csr.pem'),
    ]);
    const csrPem = await readFile(join(dir, 'csr.pem'));
    const asBootstrapper = tokenKubeConfig(c, token.token);
    const { CertificatesV1Api } = await import('@kubernetes/client-node');
    const name = uniqueName('csr');
    await asBootstrapper.makeApiClient(CertificatesV1Api).createCertificateSigningRequest({
      body: {
        metadata: { name },
        spec: {
          request: csrPem.toString('base64'),
          signerName: 'kubernetes.io/kube-apiserver-client-kubelet',
          usages: ['digital signature', 'client auth'],
        },
      },
    });
    const csr = await c.certificates.readCertificateSigningRequest({ name });
    assert.equal(csr.spec.username, `system:bootstrap:${token.id}`);

    const certPem = await waitForCertificate(c, name);
    const approved = await c.certificates.readCertificateSigningRequest({ name });
    const approval = approved.status?.conditions?.find((x) => x.type === 'Approved');
    assert.equal(approval?.reason, 'AutoApproved', 'approved by the csrapproving controller, not by the test');

    await writeFile(join(dir, 'cert.pem'), certPem);
    const verify = await run('openssl', ['verify', '-CAfile', c.state.caFile, join(dir, 'cert.pem')]);
    assert.match(verify.stdout, /: OK/);
    const subject = await run('openssl', [
      'x509',
      '-in',
      join(dir, 'cert.pem'),
      '-noout',
      '-subject',
      '-ext',
      'extendedKeyUsage',
    ]);
    assert.match(subject.stdout, new RegExp(`O\\s*=\\s*system:nodes, CN\\s*=\\s*system:node:${node}`));
    assert.match(subject.stdout, /TLS Web Client Authentication/);
    const cert = new X509Certificate(certPem);
    assert.ok(
      cert.checkPrivateKey(createPrivateKey(await readFile(join(dir, 'key.pem')))),
      'the issued certificate carries our public key',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
    await deleteBootstrapToken(c, token.id).catch(() => {});
  }
});

async function expect401(kc: ReturnType<typeof tokenKubeConfig>): Promise<void> {
  await assert.rejects(whoAmI(kc), (err: unknown) => err instanceof ApiException && err.code === 401);
}

test('a bootstrap token authenticates as system:bootstrap:<id>; deleted or expired it gets 401', async () => {
  const c = testCluster();
  const token = await createBootstrapToken(c, { extraGroups: ['system:bootstrappers:nodecred-test'] });
  const kc = tokenKubeConfig(c, token.token);
  const me = await whoAmI(kc);
  assert.equal(me.username, `system:bootstrap:${token.id}`);
  assert.ok(me.groups.includes('system:bootstrappers'), `groups ${me.groups.join(',')}`);
  assert.ok(me.groups.includes('system:bootstrappers:nodecred-test'));

  await deleteBootstrapToken(c, token.id);
  // The authenticator reads Secrets through an informer: wait for it to see the deletion.
  await waitFor('deleted token to be rejected', async () => {
    try {
      await whoAmI(kc);
      return undefined;
    } catch (err) {
      return err instanceof ApiException && err.code === 401 ? true : undefined;
    }
  });
  await expect401(kc);

  const expired = await createBootstrapToken(c, { expiration: new Date(Date.now() - 60_000) });
  await expect401(tokenKubeConfig(c, expired.token));
  const wrongSecret = `${expired.id}.${'0'.repeat(16)}`;
  await expect401(tokenKubeConfig(c, wrongSecret));
});

test('scripts/local-cluster up/status/down: a second control plane starts, is healthy, leaves no process', async () => {
  const c = testCluster();
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-lc-'));
  const script = join(repo, 'scripts/local-cluster');
  try {
    const upOut = await run(script, ['up', '--dir', dir, '--signing-duration', '1h'], {
      env: { ...process.env, NODECRED_CLUSTER_BINARY: c.state.binary },
    });
    assert.match(upOut.stdout, /^APISERVER=https:\/\/127\.0\.0\.1:\d+$/m);
    const env = await readFile(join(dir, 'env'), 'utf8');
    assert.match(env, /^KUBECONFIG=.*admin\.kubeconfig$/m);
    assert.match(env, /^KUBECTL=/m);
    assert.ok((await readdir(join(dir, 'logs'))).includes('kube-apiserver.log'));

    const again = await run(script, ['up', '--dir', dir]).then(
      () => null,
      (err: { stderr: string }) => err.stderr,
    );
    assert.match(again ?? '', /already running/);

    const st = await run(script, ['status', '--dir', dir]);
    assert.equal(st.stdout.match(/healthy/g)?.length, 3, st.stdout);

    const state = readState(dir);
    assert.ok(state);
    const pids = COMPONENTS.map((x) => state.pids[x]);
    assert.ok(pids.every(isAlive));

    await run(script, ['down', '--dir', dir]);
    assert.deepEqual(pids.filter(isAlive), [], 'every component process is gone');
    const leftovers = await processesMentioning(dir);
    assert.deepEqual(leftovers, [], `no process still refers to ${dir}`);
  } finally {
    await run(script, ['down', '--dir', dir]).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
});
