// `nodecred bootstrap` against the real control plane: token, client-certificate and exec bootstrap
// credentials, restart while pending, denial, and token discovery with right and wrong pins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { lstat, readlink, readFile, readdir, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import {
  testCluster,
  createBootstrapToken,
  ensureBootstrapRbac,
  approveCsr,
  denyCsr,
  whoAmI,
  kubectlWhoAmI,
  waitFor,
  uniqueName,
  type TestCluster,
} from '../helpers/cluster.ts';
import { newNodeDir, runNodecred, writeKubeconfig, ensureClusterInfo } from '../helpers/node.ts';
import { issueLeaf, newEcKey, CLIENT_AUTH } from '../unit/pki/helpers.ts';
import { encodePrivateKeyPem } from '../../src/pki/keys.ts';
import { caPinHash } from '../../src/pki/cert.ts';
import { renderExecKubeconfig } from '../../src/kube/kubeconfig-render.ts';

const run = promisify(execFile);

async function clusterCa(c: TestCluster) {
  return {
    name: 'nodecred-local-ca',
    certificatePem: c.ca,
    privateKey: createPrivateKey(await readFile(c.state.caKeyFile)),
  };
}

/** A client-certificate identity in `group`, signed by the cluster CA; returns the cert and key paths. */
async function clientCertIdentity(c: TestCluster, dir: string, cn: string, group: string) {
  const keys = newEcKey();
  const cert = await issueLeaf(await clusterCa(c), {
    publicKey: keys.publicKey,
    commonName: cn,
    organizations: [group],
    extendedKeyUsages: [CLIENT_AUTH],
  });
  const certPath = join(dir, `${cn}.crt`);
  const keyPath = join(dir, `${cn}.key`);
  await writeFile(certPath, cert);
  await writeFile(keyPath, encodePrivateKeyPem(keys.privateKey), { mode: 0o600 });
  return { certPath, keyPath };
}

/**
 * A bootstrap identity whose client CSRs are NOT auto-approved: it may create CSRs (system:node-bootstrapper)
 * but has no nodeclient binding, unlike the bootstrap-token group in this shared cluster.
 */
async function manualApprovalBootstrapper(c: TestCluster, dir: string) {
  const group = 'nodecred-test:manual-approval';
  await ensureBootstrapRbac(c, { group, autoApprove: false, selfRenewal: false });
  const user = uniqueName('bootstrapper');
  const id = await clientCertIdentity(c, dir, user, group);
  const kubeconfig = await writeKubeconfig(join(dir, 'bootstrap.conf'), c, {
    clientCertificate: id.certPath,
    clientKey: id.keyPath,
  });
  return { user, kubeconfig };
}

async function csrsBy(c: TestCluster, username: string) {
  const list = await c.certificates.listCertificateSigningRequest();
  return list.items.filter((x) => x.spec.username === username);
}

async function assertInstalledClient(node: Awaited<ReturnType<typeof newNodeDir>>, c: TestCluster) {
  const current = join(node.certDir, 'kubelet-client-current.pem');
  const link = await readlink(current);
  assert.match(link, /^kubelet-client-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}\.pem$/);
  assert.equal((await stat(join(node.certDir, link))).mode & 0o777, 0o600, 'pair file 0600');
  assert.equal((await stat(node.certDir)).mode & 0o777, 0o700, 'cert dir 0700');
  assert.equal((await stat(node.kubeconfig)).mode & 0o777, 0o600, 'kubeconfig 0600');
  const subject = await run('openssl', [
    'x509',
    '-in',
    current,
    '-noout',
    '-subject',
    '-ext',
    'extendedKeyUsage,subjectAltName',
  ]);
  assert.match(subject.stdout, new RegExp(`O\\s*=\\s*system:nodes, CN\\s*=\\s*system:node:${node.name}`));
  assert.match(subject.stdout, /TLS Web Client Authentication/);
  assert.doesNotMatch(subject.stdout, /Subject Alternative Name/, 'client certificates carry no SANs');
  const verify = await run('openssl', ['verify', '-CAfile', c.state.caFile, current]);
  assert.match(verify.stdout, /: OK/);
  // certificate chain first, then the key, in one file: openssl reads each part from the same file.
  const keyText = await run('openssl', ['pkey', '-in', current, '-pubout']);
  const certKey = await run('openssl', ['x509', '-in', current, '-noout', '-pubkey']);
  assert.equal(keyText.stdout, certKey.stdout, 'the key in the file belongs to the certificate');
  const pending = (await readdir(node.certDir)).filter((n) => n.includes('pending'));
  assert.deepEqual(pending, [], 'no pending key left after install');

  const kc = new KubeConfig();
  kc.loadFromFile(node.kubeconfig);
  assert.equal(kc.getCurrentUser()?.certFile, current);
  assert.equal(kc.getCurrentUser()?.keyFile, current);
  const me = await whoAmI(kc);
  assert.equal(me.username, `system:node:${node.name}`);
  assert.ok(me.groups.includes('system:nodes'));
  // Go's reader too (client-go's clientcmd, as the kubelet loads it): nodecred writes this YAML itself.
  assert.equal(await kubectlWhoAmI(c, node.kubeconfig), `system:node:${node.name}`);
}

// The kubeconfig it writes authenticates; files, modes and the -current.pem symlink are laid out as the kubelet does.
test("token bootstrap: authenticates as system:node:<name>; files, modes and symlink match the kubelet's", async () => {
  const c = testCluster();
  await ensureBootstrapRbac(c);
  const token = await createBootstrapToken(c);
  const node = await newNodeDir();
  try {
    const bootstrap = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
    const r = await runNodecred(['bootstrap', '--bootstrap-kubeconfig', bootstrap, ...node.flags]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stderr, /client certificate installed/);
    await assertInstalledClient(node, c);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(token.secret), 'the token never reaches a log line');
    assert.doesNotMatch(r.stdout + r.stderr, /BEGIN|PRIVATE KEY/);

    // A second run finds the valid certificate and changes nothing.
    const before = await readlink(join(node.certDir, 'kubelet-client-current.pem'));
    const again = await runNodecred(['bootstrap', '--bootstrap-kubeconfig', bootstrap, ...node.flags]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /client certificate valid/);
    assert.equal(await readlink(join(node.certDir, 'kubelet-client-current.pem')), before);
  } finally {
    await node.cleanup();
  }
});

test('restart with the CSR pending re-attaches: still one CSR, and an admin approval completes the run', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  try {
    const { user, kubeconfig } = await manualApprovalBootstrapper(c, node.dir);
    const flags = ['bootstrap', '--bootstrap-kubeconfig', kubeconfig, ...node.flags, '--timeout', '3s'];
    const first = await runNodecred(flags);
    assert.equal(first.code, 1);
    assert.match(first.stderr, /timed out after 3s waiting for CSR nodecred-client-[0-9a-f]+/);
    const second = await runNodecred(flags);
    assert.equal(second.code, 1);
    assert.match(second.stdout, /re-attached to the pending CSR/);
    const csrs = await csrsBy(c, user);
    assert.equal(csrs.length, 1, `one CSR for the node, found ${csrs.map((x) => x.metadata?.name).join(', ')}`);
    assert.match(first.stderr, new RegExp(csrs[0]!.metadata!.name!));

    await approveCsr(c, csrs[0]!.metadata!.name!);
    const third = await runNodecred([
      'bootstrap',
      '--bootstrap-kubeconfig',
      kubeconfig,
      ...node.flags,
      '--timeout',
      '60s',
    ]);
    assert.equal(third.code, 0, third.stderr + third.stdout);
    assert.equal((await csrsBy(c, user)).length, 1, 'still one CSR');
    await assertInstalledClient(node, c);
  } finally {
    await node.cleanup();
  }
});

test('a denied CSR: non-zero exit, the reason and a hint; status shows it, a rerun is held back', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  try {
    const { user, kubeconfig } = await manualApprovalBootstrapper(c, node.dir);
    const child = runNodecred(['bootstrap', '--bootstrap-kubeconfig', kubeconfig, ...node.flags, '--timeout', '60s']);
    const name = await waitFor('the node CSR', async () => (await csrsBy(c, user))[0]?.metadata?.name);
    await denyCsr(c, name, 'node not in inventory');
    const r = await child;
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`CSR ${name} was denied: TestDenied: node not in inventory`));
    assert.match(r.stderr, /nodeclient/, 'the hint names the auto-approval binding');
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    await assert.rejects(lstat(join(node.certDir, 'kubelet-client-current.pem')), 'nothing installed');

    // The denial is recorded (0600) and `nodecred status` says which CSR and why, as the API server gave it.
    const record = join(node.certDir, 'nodecred-client-denied.json');
    assert.equal((await stat(record)).mode & 0o777, 0o600);
    const status = await runNodecred(['status', '--json', ...node.flags]);
    assert.equal(status.code, 0, status.stderr);
    const { deniedRequests } = JSON.parse(status.stdout) as {
      deniedRequests: { client: Record<string, unknown> | null; serving: unknown };
    };
    assert.equal(deniedRequests.serving, null);
    assert.deepEqual(
      [deniedRequests.client?.csr, deniedRequests.client?.condition, deniedRequests.client?.reason],
      [name, 'Denied', 'TestDenied'],
    );
    assert.equal(deniedRequests.client?.message, 'node not in inventory');
    // Run again (a cloud-init retry, a crash loop): the same request is held back, in one line naming the record.
    const again = await runNodecred(['bootstrap', '--bootstrap-kubeconfig', kubeconfig, ...node.flags]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /the same request is not submitted again before \d{4}-/);
    assert.ok(again.stderr.includes(record), again.stderr);
    assert.equal(again.stderr.trim().split('\n').length, 1, 'one line');
    assert.equal((await csrsBy(c, user)).length, 1, 'no second CSR');
    // The operator fixed the policy and removes the record: the next run submits a new request.
    await rm(record);
    const released = await runNodecred([
      'bootstrap',
      '--bootstrap-kubeconfig',
      kubeconfig,
      ...node.flags,
      '--timeout',
      '2s',
    ]);
    assert.equal(released.code, 1, 'times out waiting: nobody approves');
    assert.equal((await csrsBy(c, user)).length, 2, 'a new CSR');
  } finally {
    await node.cleanup();
  }
});

test('exec credential plugin bootstrap (aws-iam-authenticator style)', async () => {
  const c = testCluster();
  await ensureBootstrapRbac(c);
  const token = await createBootstrapToken(c);
  const node = await newNodeDir();
  try {
    const plugin = join(node.dir, 'token-plugin.sh');
    await writeFile(
      plugin,
      '#!/bin/sh\n# prints an ExecCredential, as aws-iam-authenticator token does\n' +
        `printf '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential",` +
        `"status":{"token":"%s"}}' "$BOOTSTRAP_TOKEN"\n`,
    );
    await chmod(plugin, 0o755);
    const bootstrap = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, {
      exec: { command: plugin, env: [{ name: 'BOOTSTRAP_TOKEN', value: token.token }] },
    });
    const r = await runNodecred(['bootstrap', '--bootstrap-kubeconfig', bootstrap, ...node.flags]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /exec plugin/);
    await assertInstalledClient(node, c);
  } finally {
    await node.cleanup();
  }
});

test("Go's kubeconfig reader (kubectl) reads the exec kubeconfigs nodecred writes as nodecred meant them", async () => {
  const c = testCluster();
  const node = await newNodeDir();
  try {
    // Strings YAML would misread unquoted: booleans, numbers, nulls, comments, indicators, quotes, escapes.
    const tricky = [
      'true',
      '0x1F',
      '1e3',
      'null',
      '~',
      'a #b',
      '- x',
      '&x',
      "it's",
      'say "hi"',
      'tab\tend',
      '日本',
      '',
      // YAML 1.1 booleans to Go, strings to YAML 1.2; and whitespace YAML does not take for whitespace.
      'yes',
      'on',
      'n',
      'OFF',
      'no-break\u00a0#space',
    ];
    const file = join(node.dir, 'exec.conf');
    const text = renderExecKubeconfig({
      server: 'https://127.0.0.1:6443',
      caData: c.ca,
      command: '/usr/local/bin/get token',
      clusterName: 'on',
      args: tricky,
      env: tricky.map((value, i) => ({ name: `V${i}`, value })),
      provideClusterInfo: true,
    });
    await writeFile(file, text, { mode: 0o600 });
    const view = JSON.parse(
      (await run(c.state.kubectl, ['config', 'view', '--raw', '-o', 'json', '--kubeconfig', file])).stdout,
    ) as { users: Array<{ user: { exec: { command: string; args: string[]; env: unknown[] } } }> };
    const exec = view.users[0]!.user.exec;
    assert.equal(exec.command, '/usr/local/bin/get token');
    assert.deepEqual(exec.args, tricky);
    assert.deepEqual(
      exec.env,
      tricky.map((value, i) => ({ name: `V${i}`, value })),
    );
  } finally {
    await node.cleanup();
  }
});

test('token discovery: the right pin bootstraps; a wrong pin fails closed and says which', async () => {
  const c = testCluster();
  await ensureBootstrapRbac(c);
  await ensureClusterInfo(c);
  const token = await createBootstrapToken(c);
  await waitFor('bootstrapsigner to sign cluster-info for the token', async () => {
    const cm = await c.core.readNamespacedConfigMap({ namespace: 'kube-public', name: 'cluster-info' });
    return cm.data?.[`jws-kubeconfig-${token.id}`] ? true : undefined;
  });
  const pin = caPinHash(c.ca);
  const wrongPin = `sha256:${'0'.repeat(64)}`;
  const node = await newNodeDir();
  try {
    const discovery = ['--api-server', c.state.apiserver, '--discovery-token', token.token];
    const bad = await runNodecred([
      'bootstrap',
      ...discovery,
      '--discovery-token-ca-cert-hash',
      wrongPin,
      ...node.flags,
    ]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, new RegExp(pin.slice(0, 20)), 'names the hash it found');
    assert.match(bad.stderr, /pin|hash/i);
    await assert.rejects(lstat(node.kubeconfig), 'nothing written after a pin mismatch');

    const badSecret = await runNodecred([
      'bootstrap',
      '--api-server',
      c.state.apiserver,
      '--discovery-token',
      `${token.id}.${'x'.repeat(16)}`,
      '--discovery-token-ca-cert-hash',
      pin,
      ...node.flags,
    ]);
    assert.equal(badSecret.code, 1);
    assert.match(badSecret.stderr, /signature/i, 'a wrong token secret is reported as a signature mismatch');

    const good = await runNodecred(['bootstrap', ...discovery, '--discovery-token-ca-cert-hash', pin, ...node.flags]);
    assert.equal(good.code, 0, good.stderr + good.stdout);
    await assertInstalledClient(node, c);
    const kc = new KubeConfig();
    kc.loadFromFile(node.kubeconfig);
    const ca = Buffer.from(kc.getCurrentCluster()!.caData!, 'base64').toString();
    assert.equal(
      new X509Certificate(ca).fingerprint256,
      new X509Certificate(c.ca).fingerprint256,
      'kubeconfig carries the pinned CA',
    );
  } finally {
    await node.cleanup();
  }
});

test('P-384 and RSA keys bootstrap too; RSA requests add key encipherment as kubelet does', async () => {
  const c = testCluster();
  await ensureBootstrapRbac(c);
  for (const [algorithm, expectKey] of [
    ['ecdsa-p384', /ASN1 OID: secp384r1/],
    ['rsa-3072', /Public-Key: \(3072 bit\)/],
  ] as const) {
    const token = await createBootstrapToken(c);
    const node = await newNodeDir();
    try {
      const bootstrap = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
      const r = await runNodecred([
        'bootstrap',
        '--bootstrap-kubeconfig',
        bootstrap,
        '--key-algorithm',
        algorithm,
        ...node.flags,
      ]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      await assertInstalledClient(node, c);
      const text = await run('openssl', [
        'x509',
        '-in',
        join(node.certDir, 'kubelet-client-current.pem'),
        '-noout',
        '-text',
      ]);
      assert.match(text.stdout, expectKey);
      const csrName = /"csr":"(nodecred-client-[0-9a-f]+)"/.exec(r.stdout)?.[1];
      assert.ok(csrName);
      const csr = await c.certificates.readCertificateSigningRequest({ name: csrName });
      assert.deepEqual(
        csr.spec.usages,
        algorithm.startsWith('rsa')
          ? ['digital signature', 'key encipherment', 'client auth']
          : ['digital signature', 'client auth'],
      );
    } finally {
      await node.cleanup();
    }
  }
});

test('a CSR deleted while pending is submitted again under the same name', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  try {
    const { user, kubeconfig } = await manualApprovalBootstrapper(c, node.dir);
    const child = runNodecred(['bootstrap', '--bootstrap-kubeconfig', kubeconfig, ...node.flags, '--timeout', '90s']);
    const first = await waitFor('the node CSR', async () => (await csrsBy(c, user))[0]);
    const name = first.metadata!.name!;
    await c.certificates.deleteCertificateSigningRequest({ name });
    const again = await waitFor('the CSR to be submitted again', async () => {
      const found = (await csrsBy(c, user))[0];
      return found && found.metadata!.uid !== first.metadata!.uid ? found : undefined;
    });
    assert.equal(again.metadata!.name, name, 'same key, same request, same name');
    await approveCsr(c, name);
    const r = await child;
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /CSR was deleted while pending; submitting it again/);
    await assertInstalledClient(node, c);
  } finally {
    await node.cleanup();
  }
});

test('a foreign CSR under our derived name is reported clearly and nothing is installed', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  try {
    const { user, kubeconfig } = await manualApprovalBootstrapper(c, node.dir);
    const pending = await runNodecred([
      'bootstrap',
      '--bootstrap-kubeconfig',
      kubeconfig,
      ...node.flags,
      '--timeout',
      '2s',
    ]);
    assert.equal(pending.code, 1);
    const name = (await csrsBy(c, user))[0]!.metadata!.name!;
    // Someone replaces it with a request for another key under the same name.
    await c.certificates.deleteCertificateSigningRequest({ name });
    await run('openssl', [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      join(node.dir, 'other.key'),
      '-subj',
      `/O=system:nodes/CN=system:node:${node.name}`,
      '-out',
      join(node.dir, 'other.csr'),
    ]);
    await c.certificates.createCertificateSigningRequest({
      body: {
        metadata: { name },
        spec: {
          request: (await readFile(join(node.dir, 'other.csr'))).toString('base64'),
          signerName: 'kubernetes.io/kube-apiserver-client-kubelet',
          usages: ['digital signature', 'client auth'],
        },
      },
    });
    const r = await runNodecred(['bootstrap', '--bootstrap-kubeconfig', kubeconfig, ...node.flags, '--timeout', '5s']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`a CSR named ${name} exists but is not ours: its public key is not our pending key`),
    );
    assert.match(r.stderr, /kubectl delete csr/);
    await assert.rejects(lstat(join(node.certDir, 'kubelet-client-current.pem')));
  } finally {
    await node.cleanup();
  }
});
