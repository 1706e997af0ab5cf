// The fault suite: each scenario checks that no valid credential is lost or half-written, that the
// message is clear, and that nodecred recovers or exits exactly as documented. Scenarios covered in other
// files are listed in README "Fault suite"; this file holds the ones that need a fault injected.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, readdir, mkdir, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';
import {
  testCluster,
  createBootstrapToken,
  deleteBootstrapToken,
  ensureBootstrapRbac,
  approveCsr,
  waitFor,
  uniqueName,
  whoAmI,
  type TestCluster,
} from '../helpers/cluster.ts';
import {
  newNodeDir,
  runNodecred,
  writeKubeconfig,
  writeConfig,
  startDaemon,
  REPO,
  NODECRED,
  type NodeDir,
} from '../helpers/node.ts';
import { startProxy } from '../helpers/proxy.ts';
import { up, down, freePort, type ClusterState } from '../../scripts/lib/local-cluster.ts';
import { issueLeaf, newEcKey, makeCa, CLIENT_AUTH } from '../unit/pki/helpers.ts';
import { CertStore, parsePairFile } from '../../src/store/cert-store.ts';
import { encodePrivateKeyPem } from '../../src/pki/keys.ts';
import { parseKubeconfig } from '../../src/kube/kubeconfig.ts';
import { CertificatesV1Api, CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';

const run = promisify(execFile);

async function clusterCa(c: { ca: string; state: ClusterState }) {
  return {
    name: 'nodecred-local-ca',
    certificatePem: c.ca,
    privateKey: createPrivateKey(await readFile(c.state.caKeyFile)),
  };
}

/** A bootstrap identity whose client CSRs nobody approves automatically (see bootstrap.test.ts). */
async function manualApprovalKubeconfig(
  c: TestCluster,
  node: NodeDir,
  server?: string,
): Promise<{ user: string; kubeconfig: string }> {
  const group = 'nodecred-test:manual-approval';
  await ensureBootstrapRbac(c, { group, autoApprove: false, selfRenewal: false });
  const user = uniqueName('bootstrapper');
  const keys = newEcKey();
  const cert = await issueLeaf(await clusterCa(c), {
    publicKey: keys.publicKey,
    commonName: user,
    organizations: [group],
    extendedKeyUsages: [CLIENT_AUTH],
  });
  await writeFile(join(node.dir, 'id.crt'), cert);
  await writeFile(join(node.dir, 'id.key'), encodePrivateKeyPem(keys.privateKey), { mode: 0o600 });
  const kubeconfig = await writeKubeconfig(
    join(node.dir, 'bootstrap.conf'),
    c,
    { clientCertificate: join(node.dir, 'id.crt'), clientKey: join(node.dir, 'id.key') },
    server,
  );
  return { user, kubeconfig };
}

async function csrsBy(c: TestCluster, username: string) {
  return (await c.certificates.listCertificateSigningRequest()).items.filter((x) => x.spec.username === username);
}

const httpStatus = async (port: number, path: string) => {
  const { request } = await import('node:http');
  return new Promise<number>((resolve) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
};

describe('fault suite', () => {
  test('API server down at start: the daemon waits, is not ready, and recovers when it comes back', async () => {
    const c = testCluster();
    const node = await newNodeDir();
    const proxy = await startProxy(c.state.apiserver);
    const port = await freePort();
    try {
      await ensureBootstrapRbac(c);
      const token = await createBootstrapToken(c);
      const kubeconfig = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token }, proxy.url);
      await proxy.refuse();
      const daemon = startDaemon([
        '--bootstrap-kubeconfig',
        kubeconfig,
        '--health-listen',
        `127.0.0.1:${port}`,
        ...node.flags,
      ]);
      try {
        await daemon.waitForLog(/API server unreachable; will retry/);
        assert.match(daemon.output(), /cannot reach the API server at https:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
        assert.equal(await httpStatus(port, '/readyz'), 500, 'not ready while the API server is down');
        assert.equal(await httpStatus(port, '/livez'), 200, 'but alive');
        await proxy.forward();
        await daemon.waitForLog(/credentials in place; ready/, 60_000);
        await waitFor('ready', async () => ((await httpStatus(port, '/readyz')) === 200 ? true : undefined));
      } finally {
        await daemon.stop();
      }
    } finally {
      await proxy.close();
      await node.cleanup();
    }
  });

  test('bootstrap with the API server down at start retries until it is back, then succeeds', async () => {
    const c = testCluster();
    const node = await newNodeDir();
    const proxy = await startProxy(c.state.apiserver);
    try {
      await ensureBootstrapRbac(c);
      const token = await createBootstrapToken(c);
      const kubeconfig = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token }, proxy.url);
      await proxy.refuse();
      const child = spawn(
        NODECRED,
        ['bootstrap', '--bootstrap-kubeconfig', kubeconfig, ...node.flags, '--timeout', '2m'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((r) => child.on('exit', r));
      await waitFor('a retry', async () => (/API server unreachable; retrying/.test(out) ? true : undefined));
      await proxy.forward();
      assert.equal(await exited, 0, out.slice(-800));
    } finally {
      await proxy.close();
      await node.cleanup();
    }
  });

  test('API server connections dropped while waiting: reconnects, still one CSR, completes on approval', async () => {
    const c = testCluster();
    const node = await newNodeDir();
    const proxy = await startProxy(c.state.apiserver);
    try {
      const { user, kubeconfig } = await manualApprovalKubeconfig(c, node, proxy.url);
      const daemon = startDaemon(['--bootstrap-kubeconfig', kubeconfig, '--health-listen', '', ...node.flags]);
      try {
        await daemon.waitForLog(/submitted CSR/);
        for (let i = 0; i < 3; i++) {
          await waitFor('an open watch', async () => (proxy.connections() > 0 ? true : undefined));
          proxy.reset();
          await waitFor('reconnect', async () =>
            (daemon.output().match(/waiting for CSR: (error|reconnect)/g)?.length ?? 0) > i ? true : undefined,
          );
        }
        const csrs = await csrsBy(c, user);
        assert.equal(csrs.length, 1, 'no second CSR after reconnects');
        await approveCsr(c, csrs[0]!.metadata!.name!);
        await daemon.waitForLog(/installed client certificate/);
        assert.equal((await csrsBy(c, user)).length, 1);
      } finally {
        await daemon.stop();
      }
    } finally {
      await proxy.close();
      await node.cleanup();
    }
  });

  // Half-open: the watch stream goes silent.
  test('half-open watch: caught by the idle guard, re-read, and the issued certificate installed', async () => {
    const c = testCluster();
    const node = await newNodeDir();
    const proxy = await startProxy(c.state.apiserver);
    try {
      const { user, kubeconfig } = await manualApprovalKubeconfig(c, node, proxy.url);
      const config = await writeConfig(join(node.dir, 'config.yaml'), { watchTimeout: '2s' });
      const daemon = startDaemon([
        '--config',
        config,
        '--bootstrap-kubeconfig',
        kubeconfig,
        '--health-listen',
        '',
        ...node.flags,
      ]);
      try {
        await daemon.waitForLog(/submitted CSR/);
        await waitFor('an open watch', async () => (proxy.connections() > 0 ? true : undefined));
        // Silence every open connection: the server's close at timeoutSeconds is swallowed too, so only
        // nodecred's own idle guard can notice.
        proxy.stallOpenConnections();
        const name = (await csrsBy(c, user))[0]!.metadata!.name!;
        await approveCsr(c, name);
        // A deadline, not a timing claim: a stall that lands between sending a request and its response
        // headers is caught by the 30 s request deadline instead, and the CSR wait then backs off before the
        // next read; 90 s leaves room for both.
        await daemon.waitForLog(/installed client certificate/, 90_000);
        // The contract (node-api.ts): a stream silent for idleTimeoutMs ends as closed/idle, and the wait re-reads.
        assert.match(
          daemon.output(),
          /"detail":"watch idle; re-reading","msg":"waiting for CSR: reconnect"/,
          'the idle guard fired',
        );
        assert.equal((await csrsBy(c, user)).length, 1);
      } finally {
        await daemon.stop();
      }
    } finally {
      await proxy.close();
      await node.cleanup();
    }
  });

  test('bootstrap token deleted or expired: one clear 401 line naming the fix', async () => {
    const c = testCluster();
    await ensureBootstrapRbac(c);
    for (const how of ['deleted', 'expired'] as const) {
      const node = await newNodeDir();
      try {
        const token =
          how === 'expired'
            ? await createBootstrapToken(c, { expiration: new Date(Date.now() - 60_000) })
            : await createBootstrapToken(c);
        if (how === 'deleted') await deleteBootstrapToken(c, token.id);
        const kubeconfig = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
        // The authenticator caches for a few seconds after deletion; the run retries nothing on 401, so
        // wait until the API server says 401 to the token itself.
        const r = await waitFor(
          `401 for the ${how} token`,
          async () => {
            const res = await runNodecred([
              'bootstrap',
              '--bootstrap-kubeconfig',
              kubeconfig,
              ...node.flags,
              '--timeout',
              '30s',
            ]);
            return res.code === 1 ? res : undefined;
          },
          60_000,
        );
        assert.match(r.stderr, /401 Unauthorized with the bootstrap token from .*bootstrap\.conf/);
        assert.match(r.stderr, /create a new bootstrap token/);
        assert.equal(r.stderr.trim().split('\n').length, 1);
        assert.ok(!r.stderr.includes(token.secret) && !r.stdout.includes(token.secret), 'the token never appears');
      } finally {
        await node.cleanup();
      }
    }
  });

  // The CA in the bootstrap kubeconfig is the wrong one.
  test('wrong bootstrap CA: fails closed, says the API server is not trusted, writes nothing', async () => {
    const c = testCluster();
    const node = await newNodeDir();
    try {
      await ensureBootstrapRbac(c);
      const token = await createBootstrapToken(c);
      const wrongCa = await makeCa('not-the-cluster-ca');
      await writeFile(join(node.dir, 'wrong-ca.crt'), wrongCa.certificatePem);
      const kubeconfig = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
      await writeFile(
        kubeconfig,
        (await readFile(kubeconfig, 'utf8')).replace(c.state.caFile, join(node.dir, 'wrong-ca.crt')),
      );
      const r = await runNodecred([
        'bootstrap',
        '--bootstrap-kubeconfig',
        kubeconfig,
        ...node.flags,
        '--timeout',
        '20s',
      ]);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        new RegExp(
          /the API server's certificate is not trusted /.source +
            /\((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\); /
              .source +
            /refusing to talk to it/.source,
        ),
      );
      assert.deepEqual(
        (await readdir(node.dir)).sort(),
        ['bootstrap.conf', 'pki', 'wrong-ca.crt'].sort(),
        'no kubeconfig',
      );
      // Only the pending key (0600), kept so a corrected retry makes the same request.
      assert.deepEqual(await readdir(node.certDir), ['nodecred-client-pending.key'], 'no certificate');
    } finally {
      await node.cleanup();
    }
  });

  // The node clock is 20 min behind.
  test('clock skew: a node clock behind rejects the issued certificate (not yet valid), installs nothing', async () => {
    const c = testCluster();
    const node = await newNodeDir();
    try {
      await ensureBootstrapRbac(c);
      const token = await createBootstrapToken(c);
      const kubeconfig = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        // libfaketime shifts this process's clock only. The signer backdates NotBefore by 5 minutes and
        // nodecred allows 5 minutes of skew, so 20 minutes behind is outside both; the test cluster's own
        // certificates start a day back (scripts/lib/pki.ts), so TLS to the API server still verifies.
        const child = spawn(
          'faketime',
          [
            '-f',
            '-20m',
            NODECRED,
            'bootstrap',
            '--bootstrap-kubeconfig',
            kubeconfig,
            ...node.flags,
            '--timeout',
            '60s',
          ],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        );
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('exit', (code) => resolve({ code, stderr }));
      });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /is not valid yet by this node's clock, nothing installed: .*not yet valid/i);
      assert.match(r.stderr, /check the node clock/);
      assert.deepEqual(
        (await readdir(node.certDir)).filter((f) => f.startsWith('kubelet-')),
        [],
      );
    } finally {
      await node.cleanup();
    }
  });

  // Its clock is 20 min behind.
  test('a daemon whose issued certificate is not valid yet by its clock keeps one CSR and backs off', async () => {
    const c = testCluster();
    const node = await newNodeDir();
    try {
      await ensureBootstrapRbac(c);
      const token = await createBootstrapToken(c);
      const kubeconfig = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
      const child = spawn(
        'faketime',
        ['-f', '-20m', NODECRED, 'run', '--bootstrap-kubeconfig', kubeconfig, '--health-listen', '', ...node.flags],
        { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise((r) => child.on('exit', r));
      const started = Date.now();
      try {
        await waitFor(
          'three refusals of the not-yet-valid certificate',
          async () => ((out.match(/not valid yet by this node's clock/g)?.length ?? 0) >= 3 ? true : undefined),
          60_000,
        );
        // Each failed pass is followed, after the backoff (≥ 0.5 s, then ≥ 1 s, …), by a pass that re-attaches
        // to the same CSR: a wrong clock must not become a CSR per attempt. The log's clock is faked but runs
        // at normal speed, so the gaps are real.
        const lines = out
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { time: string; msg: string });
        const gaps: number[] = [];
        lines.forEach((l, i) => {
          if (l.msg !== 'certificate pass failed') return;
          const next = lines.slice(i + 1).find((x) => x.msg === 're-attached to the pending CSR submitted earlier');
          if (next) gaps.push(Date.parse(next.time) - Date.parse(l.time));
        });
        assert.ok(gaps.length >= 2, `failed passes followed by re-attaching ones: ${gaps.length}`);
        assert.ok(
          gaps.every((g) => g >= 450),
          `backoff gaps ${gaps.join(', ')} ms: a wake-up cut the backoff short`,
        );
        assert.equal(lines.filter((l) => l.msg === 'generated a new private key for the request').length, 1);
        const csrs = (await c.certificates.listCertificateSigningRequest()).items.filter(
          (x) => x.spec.username === `system:bootstrap:${token.id}`,
        );
        assert.equal(csrs.length, 1, `${csrs.length} CSRs for ${gaps.length + 1} attempts`);
        assert.ok(Date.now() - started > 0);
      } finally {
        process.kill(-child.pid!, 'SIGTERM');
        await exited;
        await waitFor(
          'the daemon under faketime to exit',
          async () =>
            (await run('pgrep', ['-f', node.certDir]).catch(() => ({ stdout: '' }))).stdout.trim() === ''
              ? true
              : undefined,
          30_000,
        );
      }
    } finally {
      await node.cleanup();
    }
  });

  test('no approver for 10 simulated minutes: one pending CSR, no flood', async () => {
    const c = testCluster();
    const node = await newNodeDir();
    try {
      const { user, kubeconfig } = await manualApprovalKubeconfig(c, node);
      const config = await writeConfig(join(node.dir, 'config.yaml'), { recheckInterval: '1m', watchTimeout: '30s' });
      // libfaketime at 40× speed: 15 s of real time is 10 minutes for nodecred's timers (ten recheck passes,
      // twenty watch timeouts), the span over which kubelet would have created a new CSR per attempt.
      // faketime forks the command: run it as its own process group and stop the whole group, or the
      // daemon outlives the test (and keeps this file's pipes open).
      const child = spawn(
        'faketime',
        [
          '-f',
          '+0 x40',
          NODECRED,
          'run',
          '--config',
          config,
          '--bootstrap-kubeconfig',
          kubeconfig,
          '--health-listen',
          '',
          ...node.flags,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise((r) => child.on('exit', r));
      try {
        await waitFor(
          'ten re-checks of the pending CSR',
          async () => ((out.match(/CSR still pending; will check again/g)?.length ?? 0) >= 10 ? true : undefined),
          90_000,
        );
        const csrs = await csrsBy(c, user);
        assert.equal(csrs.length, 1, `one CSR, found ${csrs.length}`);
        assert.ok(
          (out.match(/re-attached to the pending CSR/g)?.length ?? 0) >= 9,
          'each pass re-attached instead of creating',
        );
        assert.equal(out.match(/submitted CSR/g)?.length, 1);
      } finally {
        process.kill(-child.pid!, 'SIGTERM');
        await exited;
        await waitFor(
          'the daemon under faketime to exit',
          async () =>
            (await run('pgrep', ['-f', node.certDir]).catch(() => ({ stdout: '' }))).stdout.trim() === ''
              ? true
              : undefined,
          30_000,
        );
      }
    } finally {
      await node.cleanup();
    }
  });

  // 200 times, each at a random point.
  test('kill -9 at random points during install: the current certificate and kubeconfig never break', async () => {
    const c = testCluster();
    const node = await newNodeDir();
    try {
      const ca = await clusterCa(c);
      const pairFiles: string[] = [];
      for (const name of ['a', 'b']) {
        const keys = newEcKey();
        const cert = await issueLeaf(ca, {
          publicKey: keys.publicKey,
          commonName: `system:node:${node.name}`,
          organizations: ['system:nodes'],
          extendedKeyUsages: [CLIENT_AUTH],
        });
        pairFiles.push(join(node.dir, `${name}.pem`));
        await writeFile(pairFiles.at(-1)!, cert + encodePrivateKeyPem(keys.privateKey));
      }
      const store = new CertStore(node.certDir, 3);
      const first = await readFile(pairFiles[0]!, 'utf8');
      await store.install(
        'client',
        first.slice(0, first.indexOf('-----BEGIN EC')),
        parsePairFile(first, pairFiles[0]!).key,
        new Date(Date.UTC(2029, 0, 1)),
      );
      await writeFile(
        node.kubeconfig,
        'apiVersion: v1\nkind: Config\nclusters:\n- name: c\n' +
          `  cluster: {server: "${c.state.apiserver}", certificate-authority: "${c.state.caFile}"}\n` +
          'users:\n- name: u\n' +
          `  user: {client-certificate: "${store.currentPath('client')}", ` +
          `client-key: "${store.currentPath('client')}"}\n` +
          'contexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n',
        { mode: 0o600 },
      );

      let killedMidInstall = 0;
      for (let i = 0; i < 200; i++) {
        const child = spawn(
          process.execPath,
          [join(REPO, 'test/helpers/install-loop.ts'), node.certDir, node.kubeconfig, ...pairFiles],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        );
        const exited = new Promise((r) => child.on('exit', r));
        await Promise.race([
          new Promise<void>((resolve) => createInterface(child.stdout!).once('line', () => resolve())),
          exited.then((code) => assert.fail(`install-loop exited (${code}) before it was ready`)),
        ]);
        await new Promise((r) => setTimeout(r, Math.random() * 25));
        child.kill('SIGKILL');
        await exited;
        const leftovers = (await readdir(node.certDir)).filter((f) => f.startsWith('.nodecred-tmp-'));
        if (leftovers.length) killedMidInstall++;
        // Without any repair: the link resolves to a complete pair whose key matches, and the kubeconfig parses.
        const current = await store.readCurrent('client');
        assert.ok(current, `iteration ${i}: current certificate present`);
        parseKubeconfig(await readFile(node.kubeconfig, 'utf8'), node.kubeconfig);
        // The next start repairs: leftovers go, nothing valid is touched.
        await store.prepare();
        assert.deepEqual(
          (await readdir(node.certDir)).filter((f) => f.startsWith('.nodecred-tmp-')),
          [],
        );
      }
      const kc = new KubeConfig();
      kc.loadFromFile(node.kubeconfig);
      assert.equal(
        (await whoAmI(kc)).username,
        `system:node:${node.name}`,
        'the surviving credentials still authenticate',
      );
      process.stdout.write(
        `# kill -9 during install: 200 kills, ${killedMidInstall} left a temporary file mid-write, 0 broken\n`,
      );
    } finally {
      await node.cleanup();
    }
  });

  // Rotation resumes once space is back.
  test('disk full in rotation: the old certificate stays, the error names path and fix, rotation resumes', async () => {
    const c = testCluster();
    const node = await newNodeDir();
    const mount = join(node.dir, 'small');
    await mkdir(mount);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', mount]);
    try {
      await ensureBootstrapRbac(c);
      const token = await createBootstrapToken(c);
      const kubeconfig = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
      const certDir = join(mount, 'pki');
      const flags = ['--node-name', node.name, '--cert-dir', certDir, '--kubeconfig', node.kubeconfig];
      // Rotation due immediately after each install: 10-minute certificates backdated 5 minutes, rotated
      // from 1 % of their life.
      const config = await writeConfig(join(node.dir, 'config.yaml'), {
        requestedLifetime: '10m',
        rotation: { from: 0.01, to: 0.02 },
        recheckInterval: '2s',
      });
      const daemon = startDaemon([
        '--config',
        config,
        '--bootstrap-kubeconfig',
        kubeconfig,
        '--health-listen',
        '',
        ...flags,
      ]);
      try {
        await daemon.waitForLog(/installed client certificate/);
        // Fill the filesystem, then wait for a rotation to fail on it.
        await run('dd', ['if=/dev/zero', `of=${join(mount, 'filler')}`, 'bs=4k', 'count=1000']).catch(() => undefined);
        const before = await readFile(join(certDir, 'kubelet-client-current.pem'), 'utf8');
        await daemon.waitForLog(
          /cannot write .*ENOSPC; the installed certificate was left in place.*free space on the filesystem/,
          60_000,
        );
        const during = await readFile(join(certDir, 'kubelet-client-current.pem'), 'utf8');
        parsePairFile(during, 'current');
        assert.ok(during === before || new X509Certificate(during).validTo, 'the current pair is intact');
        const kc = new KubeConfig();
        kc.loadFromFile(node.kubeconfig);
        assert.equal(
          (await whoAmI(kc)).username,
          `system:node:${node.name}`,
          'still authenticates while the disk is full',
        );
        await rm(join(mount, 'filler'));
        const installs = daemon.output().match(/installed client certificate/g)?.length ?? 0;
        await waitFor(
          'a rotation after space is freed',
          async () =>
            (daemon.output().match(/installed client certificate/g)?.length ?? 0) > installs ? true : undefined,
          60_000,
        );
      } finally {
        await daemon.stop();
      }
    } finally {
      await run('umount', [mount]).catch(() => undefined);
      await node.cleanup();
    }
  });
});

describe('fault suite: a control plane without the csrsigning controller (the test plays a broken signer)', () => {
  let dir: string;
  let state: ClusterState;
  let admin: KubeConfig;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nodecred-nosigner-'));
    state = await up({
      dir,
      binary: testCluster().state.binary,
      controllers: '*,bootstrapsigner,tokencleaner,-csrsigning',
    });
    admin = new KubeConfig();
    admin.loadFromFile(state.kubeconfig);
  });
  after(async () => {
    await down(dir);
    await rm(dir, { recursive: true, force: true });
  });

  // The pending key is replaced for the next attempt.
  test('a certificate issued for another key is rejected, nothing installed, the pending key replaced', async () => {
    const ca = await readFile(state.caFile, 'utf8');
    const c = {
      state,
      ca,
      admin,
      core: admin.makeApiClient(CoreV1Api),
      certificates: admin.makeApiClient(CertificatesV1Api),
      rbac: admin.makeApiClient(RbacAuthorizationV1Api),
      kubectl: async () => '',
    } as TestCluster;
    const node = await newNodeDir();
    try {
      await ensureBootstrapRbac(c);
      const token = await createBootstrapToken(c);
      const kubeconfig = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
      const child = runNodecred(['bootstrap', '--bootstrap-kubeconfig', kubeconfig, ...node.flags, '--timeout', '60s']);
      const name = await waitFor('the CSR, approved (auto-approval still runs)', async () => {
        const csr = (await c.certificates.listCertificateSigningRequest()).items.find(
          (x) => x.spec.username === `system:bootstrap:${token.id}`,
        );
        return csr?.status?.conditions?.some((x) => x.type === 'Approved') ? csr.metadata!.name! : undefined;
      });
      const pendingBefore = await readFile(join(node.certDir, 'nodecred-client-pending.key'), 'utf8');
      // The admin-side helper: a well-formed certificate for the right node, from the right CA, for another key.
      const other = newEcKey();
      const wrong = await issueLeaf(await clusterCa(c), {
        publicKey: other.publicKey,
        commonName: `system:node:${node.name}`,
        organizations: ['system:nodes'],
        extendedKeyUsages: [CLIENT_AUTH],
      });
      const csr = await c.certificates.readCertificateSigningRequest({ name });
      csr.status = { ...csr.status, certificate: Buffer.from(wrong).toString('base64') as never };
      await c.certificates.replaceCertificateSigningRequestStatus({ name, body: csr });
      const r = await child;
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        new RegExp(`the certificate issued for CSR ${name} was rejected, nothing installed: .*public key`),
      );
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.deepEqual(
        (await readdir(node.certDir)).filter((f) => f.startsWith('kubelet-')),
        [],
        'nothing installed',
      );
      const pendingAfter = await readFile(join(node.certDir, 'nodecred-client-pending.key'), 'utf8').catch(() => null);
      assert.notEqual(pendingAfter, pendingBefore, 'the next attempt uses a fresh key, so it is a fresh request');
      await utimes(node.dir, new Date(), new Date());
    } finally {
      await node.cleanup();
    }
  });
});
