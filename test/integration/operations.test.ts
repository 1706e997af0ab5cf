// The daemon as an SRE runs it: health endpoints, metrics scraped by a real Prometheus through the secure
// listener, systemd notifications on a real NOTIFY_SOCKET, recovery from `rm -rf` of the cert dir, the
// cert-dir lock, SIGHUP with a broken config and during start-up, status/check exit codes, and no secret in any
// log line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { open, readFile, rename, rm, writeFile, readlink, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';
import {
  testCluster,
  kubectlWhoAmI,
  createBootstrapToken,
  ensureBootstrapRbac,
  approveCsr,
  createNode,
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
import { startPrometheus, type RunningPrometheus } from '../helpers/prometheus.ts';
import { freePort, httpGet } from '../../scripts/lib/local-cluster.ts';
import { makeCa, issueLeaf, newEcKey, CLIENT_AUTH } from '../unit/pki/helpers.ts';
import { CertStore } from '../../src/store/cert-store.ts';

const run = promisify(execFile);

async function tokenBootstrap(c: TestCluster, node: NodeDir) {
  await ensureBootstrapRbac(c);
  const token = await createBootstrapToken(c);
  return { token, kubeconfig: await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token }) };
}

const get = (port: number, path: string, headers: Record<string, string> = {}) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    import('node:http').then(({ request }) => {
      const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    }, reject);
  });

/** Waits until `path` answers `status` (a health endpoint turning ready, or red) and returns that answer. */
const waitForStatus = (port: number, path: string, status: number, timeoutMs?: number) =>
  waitFor(
    `${path} ${status}`,
    async () => {
      const r = await get(port, path).catch(() => undefined);
      return r?.status === status ? r : undefined;
    },
    timeoutMs,
  );

// /livez and the JSON form are checked too.
test('/readyz lists every check, is ready after bootstrap; a rejected identity turns apiserver-auth red', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  const port = await freePort();
  try {
    const { kubeconfig } = await tokenBootstrap(c, node);
    const daemon = startDaemon([
      '--bootstrap-kubeconfig',
      kubeconfig,
      '--health-listen',
      `127.0.0.1:${port}`,
      ...node.flags,
    ]);
    try {
      const ready = await waitForStatus(port, '/readyz?verbose', 200);
      assert.equal(ready.body, '[+]client-cert ok\n[+]apiserver-auth ok\nreadyz check passed\n');
      assert.equal((await get(port, '/livez')).body, 'ok');
      assert.equal((await get(port, '/readyz/client-cert')).status, 200);
      const json = JSON.parse((await get(port, '/healthz', { accept: 'application/json' })).body) as {
        status: string;
        certificates: { client: { subject: string; secondsLeft: number; rotationDeadline: string } };
      };
      assert.equal(json.status, 'ok');
      assert.equal(json.certificates.client.subject, `CN=system:node:${node.name}, O=system:nodes`);
      assert.ok(json.certificates.client.secondsLeft > 0);
      assert.ok(Date.parse(json.certificates.client.rotationDeadline) > Date.now());
      const excluded = await get(port, '/readyz?verbose&exclude=apiserver-auth');
      assert.match(excluded.body, /\[\+\]apiserver-auth excluded: ok/);
    } finally {
      await daemon.stop();
    }

    // A certificate nodecred trusts (its CA is in clusterCAFile) but the API server does not: the local
    // checks pass, the apiserver-auth check must not.
    const rogueCa = await makeCa('nodecred-test-rogue-ca');
    const keys = newEcKey();
    const cert = await issueLeaf(rogueCa, {
      publicKey: keys.publicKey,
      commonName: `system:node:${node.name}`,
      organizations: ['system:nodes'],
      extendedKeyUsages: [CLIENT_AUTH],
    });
    await new CertStore(node.certDir).install('client', cert, keys.privateKey, new Date());
    const bundle = join(node.dir, 'trusted-cas.pem');
    await writeFile(bundle, c.ca + rogueCa.certificatePem);
    const rejected = startDaemon([
      '--bootstrap-kubeconfig',
      kubeconfig,
      '--health-listen',
      `127.0.0.1:${port}`,
      '--cluster-ca-file',
      bundle,
      '--rotate-certificates=false',
      ...node.flags,
    ]);
    try {
      const red = await waitForStatus(port, '/readyz?verbose', 500);
      assert.match(red.body, /\[\+\]client-cert ok/);
      assert.match(
        red.body,
        /\[-\]apiserver-auth failed: the API server rejects the node credential \(401 Unauthorized\)/,
      );
    } finally {
      await rejected.stop();
    }
  } finally {
    await node.cleanup();
  }
});

interface NotifyMessage {
  pid: number;
  message: string;
}

/** A real NOTIFY_SOCKET (test/helpers/notify-listener.py) in `dir`, listening, and the messages it has received. */
async function notifyListener(dir: string) {
  const socketPath = join(dir, 'notify.sock');
  const listener = spawn('python3', [join(REPO, 'test/helpers/notify-listener.py'), socketPath], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const messages: NotifyMessage[] = [];
  const lines = createInterface(listener.stdout!);
  const listening = new Promise<void>((resolve) => lines.once('line', () => resolve()));
  lines.on('line', (l) => {
    const m = JSON.parse(l) as Partial<NotifyMessage>;
    if (m.message !== undefined) messages.push(m as NotifyMessage);
  });
  await listening;
  return { socketPath, listener, messages };
}

test('systemd: READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 arrive on a real NOTIFY_SOCKET in order', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  const { socketPath, listener, messages } = await notifyListener(node.dir);
  try {
    const { kubeconfig } = await tokenBootstrap(c, node);
    const child = spawn(NODECRED, ['run', '--bootstrap-kubeconfig', kubeconfig, '--health-listen', '', ...node.flags], {
      env: { ...process.env, NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '1000000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await waitFor(
      'two WATCHDOG=1 pings',
      async () => (messages.filter((m) => m.message === 'WATCHDOG=1').length >= 2 ? true : undefined),
      30_000,
    );
    child.kill('SIGTERM');
    assert.equal(await exited, 0, out.slice(-1000));
    await waitFor(
      'STOPPING=1',
      async () => (messages.some((m) => m.message === 'STOPPING=1') ? true : undefined),
      10_000,
    );

    const kinds = messages.map((m) => m.message.split('=')[0]);
    const firstReady = kinds.indexOf('READY');
    assert.ok(firstReady >= 0, `READY=1 sent: ${kinds.join(',')}`);
    assert.ok(kinds.indexOf('STATUS') >= 0 && kinds.indexOf('STATUS') < firstReady, 'STATUS before READY');
    assert.ok(kinds.indexOf('WATCHDOG') > firstReady, 'the watchdog is fed only after READY=1 (systemd arms it then)');
    assert.equal(kinds.at(-1), 'STOPPING', 'STOPPING=1 is the last message');
    assert.match(messages.find((m) => m.message.startsWith('STATUS='))!.message, /^STATUS=client: valid \d+d/);
    assert.ok(
      messages.every((m) => typeof m.pid === 'number' && m.pid > 0),
      'every message carries sender credentials',
    );
  } finally {
    listener.kill();
    await node.cleanup();
  }
});

test('rm -rf of the cert dir while running: valid credentials back on disk, /readyz ready again in 10 s', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  const port = await freePort();
  try {
    const { kubeconfig } = await tokenBootstrap(c, node);
    const daemon = startDaemon([
      '--bootstrap-kubeconfig',
      kubeconfig,
      '--health-listen',
      `127.0.0.1:${port}`,
      ...node.flags,
    ]);
    try {
      await waitForStatus(port, '/readyz', 200);
      const before = await readFile(join(node.certDir, 'kubelet-client-current.pem'), 'utf8');
      await rm(node.certDir, { recursive: true, force: true });
      const started = Date.now();
      await waitFor(
        'credentials back on disk',
        async () => {
          const text = await readFile(join(node.certDir, 'kubelet-client-current.pem'), 'utf8').catch(() => undefined);
          return text ? true : undefined;
        },
        10_000,
      );
      await waitForStatus(port, '/readyz', 200, 10_000 - (Date.now() - started));
      const after = await readFile(join(node.certDir, 'kubelet-client-current.pem'), 'utf8');
      assert.equal(
        after.split('-----BEGIN')[1],
        before.split('-----BEGIN')[1],
        'the same certificate, reinstalled from memory (no new CSR)',
      );
      assert.match(daemon.output(), /reinstalled the verified one from memory/);
      assert.equal(await kubectlWhoAmI(c, node.kubeconfig), `system:node:${node.name}`);

      // A truncated certificate is noticed too and put back.
      const target = join(node.certDir, await readlink(join(node.certDir, 'kubelet-client-current.pem')));
      await writeFile(target, before.slice(0, 100));
      await waitFor(
        'truncated certificate repaired',
        async () => {
          const text = await readFile(join(node.certDir, 'kubelet-client-current.pem'), 'utf8').catch(() => '');
          return text.includes('PRIVATE KEY') ? true : undefined;
        },
        10_000,
      );
    } finally {
      await daemon.stop();
    }
  } finally {
    await node.cleanup();
  }
});

test('two daemons on one cert dir: the second refuses to start', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  try {
    const { kubeconfig } = await tokenBootstrap(c, node);
    const first = startDaemon(['--bootstrap-kubeconfig', kubeconfig, '--health-listen', '', ...node.flags]);
    try {
      await first.waitForLog(/credentials in place; ready/);
      const second = await runNodecred(
        ['run', '--bootstrap-kubeconfig', kubeconfig, '--health-listen', '', ...node.flags],
        { timeoutMs: 30_000 },
      );
      assert.equal(second.code, 1);
      assert.match(
        second.stderr,
        new RegExp(`another nodecred \\(pid ${first.child.pid}\\) already manages ${node.certDir}`),
      );
    } finally {
      await first.stop();
    }
    // Released on exit: a new daemon starts.
    const third = startDaemon(['--bootstrap-kubeconfig', kubeconfig, '--health-listen', '', ...node.flags]);
    await third.waitForLog(/credentials in place; ready/);
    assert.equal(await third.stop(), 0);
  } finally {
    await node.cleanup();
  }
});

test('SIGHUP reloads the config; a broken config is rejected and the old one kept', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  try {
    const { kubeconfig } = await tokenBootstrap(c, node);
    const config = await writeConfig(join(node.dir, 'config.yaml'), {
      bootstrapKubeconfig: kubeconfig,
      logLevel: 'info',
    });
    const daemon = startDaemon(['--config', config, '--health-listen', '', ...node.flags]);
    try {
      await daemon.waitForLog(/credentials in place; ready/);
      await writeFile(
        config,
        'apiVersion: nodecred.io/v1alpha1\nkind: NodeCredConfiguration\nrotation: {from: 0.9, to: 0.2}\n',
      );
      daemon.child.kill('SIGHUP');
      await daemon.waitForLog(/new configuration rejected; keeping the old one/);
      assert.match(daemon.output(), /rotation\.to: must not be below rotation\.from/);
      await writeConfig(config, { bootstrapKubeconfig: kubeconfig, logLevel: 'debug' });
      daemon.child.kill('SIGHUP');
      await daemon.waitForLog(/configuration reloaded/);
      assert.equal(daemon.child.exitCode, null, 'still running');
    } finally {
      assert.equal(await daemon.stop(), 0);
    }
  } finally {
    await node.cleanup();
  }
});

// systemd's ExecReload (or a config-management run) right after start: SIGHUP's default action would end the
// daemon. To land the signal inside start-up for certain, the config is a FIFO the daemon is blocked reading.
test('a SIGHUP during start-up neither kills the daemon nor reports it started; the reload waits', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  const { socketPath, listener, messages } = await notifyListener(node.dir);
  try {
    const { kubeconfig } = await tokenBootstrap(c, node);
    const config = join(node.dir, 'config.yaml');
    await run('mkfifo', [config]);
    const first = await readFile(await writeConfig(join(node.dir, 'first.yaml'), { bootstrapKubeconfig: kubeconfig }));
    const next = await writeConfig(join(node.dir, 'next.yaml'), { bootstrapKubeconfig: kubeconfig, logLevel: 'info' });
    const daemon = startDaemon(['--config', config, '--health-listen', '', ...node.flags], {
      env: { ...process.env, NOTIFY_SOCKET: socketPath },
    });
    try {
      // A non-blocking open for writing succeeds only once the daemon has the FIFO open for reading.
      const fifo = await waitFor('the daemon reading its config', () =>
        open(config, constants.O_WRONLY | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENXIO') return undefined;
          throw err;
        }),
      );
      daemon.child.kill('SIGHUP');
      // The daemon starts from the FIFO's config; the reload it owes reads the file that replaced it (the FIFO,
      // with no writer left, would block it for good: "configuration reloaded" proves the new file was read).
      await rename(next, config);
      await fifo.write(first);
      await fifo.close();
      await daemon.waitForLog(/configuration reloaded/);
      await daemon.waitForLog(/credentials in place; ready/);
      await waitFor('READY=1', async () => (messages.some((m) => m.message.includes('READY=1')) ? true : undefined));
      const kinds = messages.map((m) => m.message.split('=')[0]);
      assert.equal(kinds.indexOf('RELOADING'), -1, `no RELOADING=1 … READY=1 before start-up ends: ${kinds.join(',')}`);
      assert.equal(messages.filter((m) => m.message.includes('READY=1')).length, 1, 'one READY=1: start-up');
    } finally {
      // The daemon's output says why, when it died of the signal: the assertion that noticed stays the one reported.
      process.stderr.write(daemon.child.signalCode ? `daemon output:\n${daemon.output().slice(-2000)}\n` : '');
      await daemon.stop();
    }
    assert.equal(daemon.child.exitCode, 0, 'stopped cleanly');
  } finally {
    listener.kill();
    await node.cleanup();
  }
});

test('status --json and check exit codes on healthy, expiring and missing certificates', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  try {
    const missing = await runNodecred(['check', ...node.flags, '--json']);
    assert.equal(missing.code, 1);
    assert.equal(
      (JSON.parse(missing.stdout) as { certificates: Array<{ state: string }> }).certificates[0]!.state,
      'missing',
    );

    const { kubeconfig } = await tokenBootstrap(c, node);
    assert.equal((await runNodecred(['bootstrap', '--bootstrap-kubeconfig', kubeconfig, ...node.flags])).code, 0);
    const healthy = await runNodecred(['check', ...node.flags, '--min-valid', '24h']);
    assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
    const expiring = await runNodecred(['check', ...node.flags, '--min-valid', '87600h', '--json']);
    assert.equal(expiring.code, 1);
    const report = JSON.parse(expiring.stdout) as {
      healthy: boolean;
      certificates: Array<{ name: string; state: string; problems: string[] }>;
    };
    assert.equal(report.healthy, false);
    assert.equal(report.certificates[0]!.state, 'expiring');

    const status = await runNodecred(['status', ...node.flags, '--json']);
    assert.equal(status.code, 0);
    const s = JSON.parse(status.stdout) as {
      certificates: Array<{
        name: string;
        state: string;
        issuer: string;
        secondsLeft: number;
        rotationWindow: { from: string };
      }>;
    };
    assert.equal(s.certificates[0]!.name, 'client');
    assert.equal(s.certificates[0]!.state, 'ok');
    assert.equal(s.certificates[0]!.issuer, 'nodecred-local-ca');
    assert.ok(Date.parse(s.certificates[0]!.rotationWindow.from) > Date.now());
    const table = await runNodecred(['status', ...node.flags]);
    assert.match(table.stdout, /^CERTIFICATE\s+EXPIRES\s+RESIDUAL TIME\s+ISSUER\s+ROTATION WINDOW\s+STATE$/m);
    assert.match(table.stdout, /^client\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC\s+\d+d\d+h\s+nodecred-local-ca .* ok$/m);

    const usage = await runNodecred(['check', '--min-valid', 'soon']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--min-valid: invalid duration "soon"/);
  } finally {
    await node.cleanup();
  }
});

// A real Prometheus scrapes /metrics on --secure-listen with a ServiceAccount token allowed to get /metrics.
test('a real Prometheus scrapes --secure-listen; without the permission 403 names it; no token 401', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  const securePort = await freePort();
  let prometheus: RunningPrometheus | undefined;
  try {
    await createNode(c, node.name, [{ type: 'InternalIP', address: '127.0.0.1' }]);
    const { kubeconfig } = await tokenBootstrap(c, node);
    const ns = 'default';
    const allowed = uniqueName('scraper');
    const denied = uniqueName('nobody');
    await c.kubectl(['-n', ns, 'create', 'serviceaccount', allowed]);
    await c.kubectl(['-n', ns, 'create', 'serviceaccount', denied]);
    await c.kubectl(['create', 'clusterrole', `${allowed}-metrics`, '--verb=get', '--non-resource-url=/metrics']);
    await c.kubectl([
      'create',
      'clusterrolebinding',
      `${allowed}-metrics`,
      `--clusterrole=${allowed}-metrics`,
      `--serviceaccount=${ns}:${allowed}`,
    ]);
    const allowedToken = (await c.kubectl(['-n', ns, 'create', 'token', allowed, '--duration=1h'])).trim();
    const deniedToken = (await c.kubectl(['-n', ns, 'create', 'token', denied, '--duration=1h'])).trim();

    const approving = (async () => {
      const csr = await waitFor(
        'serving CSR',
        async () =>
          (await c.certificates.listCertificateSigningRequest()).items.find(
            (x) =>
              x.spec.username === `system:node:${node.name}` && x.spec.signerName === 'kubernetes.io/kubelet-serving',
          )?.metadata?.name,
      );
      await approveCsr(c, csr);
    })();
    const daemon = startDaemon([
      '--bootstrap-kubeconfig',
      kubeconfig,
      '--rotate-server-certificates',
      '--health-listen',
      '',
      '--secure-listen',
      `127.0.0.1:${securePort}`,
      '--client-ca-file',
      c.state.caFile,
      ...node.flags,
    ]);
    try {
      await approving;
      await daemon.waitForLog(/secure listener now serves the current serving certificate/);
      const url = `https://127.0.0.1:${securePort}/metrics`;
      const noToken = await httpGet({ url, ca: c.ca });
      assert.equal(noToken[0], 401);
      assert.match(noToken[1], /bearer token/);
      const forbidden = await new Promise<[number, string]>((resolve, reject) => {
        import('node:https').then(({ request }) => {
          const req = request(url, { ca: c.ca, headers: { authorization: `Bearer ${deniedToken}` } }, (res) => {
            let b = '';
            res.on('data', (d: Buffer) => (b += d.toString()));
            res.on('end', () => resolve([res.statusCode ?? 0, b]));
          });
          req.on('error', reject);
          req.end();
        }, reject);
      });
      assert.equal(forbidden[0], 403);
      assert.match(forbidden[1], new RegExp(`user "system:serviceaccount:${ns}:${denied}"`));
      assert.match(forbidden[1], /nonResourceURLs: \["\/metrics"\]\n\s+verbs: \["get"\]/);

      prometheus = await startPrometheus({
        caFile: c.state.caFile,
        jobs: [
          { job: 'allowed', token: allowedToken, target: `127.0.0.1:${securePort}` },
          { job: 'denied', token: deniedToken, target: `127.0.0.1:${securePort}` },
        ],
      });
      const { targets: byJob, query } = prometheus;
      assert.equal(byJob.allowed!.health, 'up', byJob.allowed!.lastError);
      assert.equal(byJob.denied!.health, 'down');
      assert.match(byJob.denied!.lastError, /403/);
      const ttl = await waitFor('kubelet_certificate_manager_server_ttl_seconds in Prometheus', async () => {
        const r = await query('kubelet_certificate_manager_server_ttl_seconds');
        return r.length ? Number(r[0]!.value[1]) : undefined;
      });
      assert.ok(ttl > 0 && Number.isFinite(ttl), `serving TTL ${ttl}`);
    } finally {
      await daemon.stop();
    }
    const logs = daemon.output();
    assert.ok(!logs.includes(allowedToken) && !logs.includes(deniedToken), 'no bearer token in the daemon log');
    assert.doesNotMatch(logs, /BEGIN (CERTIFICATE|EC PRIVATE KEY|PRIVATE KEY)/);
  } finally {
    await prometheus?.stop();
    await node.cleanup();
  }
});

test('the bundle from npm run build runs bootstrap without node_modules, and the unit verifies', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  try {
    await run(process.execPath, [join(REPO, 'scripts/build.ts')]);
    const image = join(node.dir, 'image');
    await cp(join(REPO, 'dist/nodecred.mjs'), join(image, 'usr/local/bin/nodecred'));
    const { kubeconfig } = await tokenBootstrap(c, node);
    const { stderr } = await run(
      process.execPath,
      [join(image, 'usr/local/bin/nodecred'), 'bootstrap', '--bootstrap-kubeconfig', kubeconfig, ...node.flags],
      { cwd: image },
    );
    assert.match(stderr, /client certificate installed/);

    // systemd-analyze verify needs ExecStart to exist: point a copy of the unit at the bundle.
    const unit = (await readFile(join(REPO, 'systemd/nodecred.service'), 'utf8')).replaceAll(
      '/usr/local/bin/nodecred',
      join(image, 'usr/local/bin/nodecred'),
    );
    await writeFile(join(node.dir, 'nodecred.service'), unit);
    const verify = await run('systemd-analyze', ['verify', join(node.dir, 'nodecred.service')]).catch(
      (e: { stderr: string }) => ({ stderr: e.stderr, failed: true }),
    );
    assert.ok(!('failed' in verify), verify.stderr);
    assert.equal(verify.stderr.trim(), '', 'no warnings');
  } finally {
    await node.cleanup();
  }
});

// The single executable is the one `npm run build:sea` makes.
test('the single executable reports its version, and runs the daemon to ready and a clean stop', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  const port = await freePort();
  try {
    await run(process.execPath, [join(REPO, 'scripts/build.ts'), '--sea']);
    const image = join(node.dir, 'image');
    const exe = join(image, 'usr/local/bin/nodecred');
    await cp(join(REPO, 'dist/nodecred'), exe);
    // No node on PATH and no node_modules anywhere near: the executable carries both.
    const env = {
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin'
        .split(':')
        .filter((d) => !d.includes('node'))
        .join(':'),
    };
    const { stdout } = await run(exe, ['--version'], { cwd: image, env });
    assert.match(stdout, /^nodecred \d+\.\d+\.\d+ \(node v24\./);

    const { kubeconfig } = await tokenBootstrap(c, node);
    const daemon = startDaemon(
      ['--bootstrap-kubeconfig', kubeconfig, '--health-listen', `127.0.0.1:${port}`, ...node.flags],
      { binary: exe, cwd: image },
    );
    try {
      const ready = await waitForStatus(port, '/readyz?verbose', 200);
      assert.equal(ready.body, '[+]client-cert ok\n[+]apiserver-auth ok\nreadyz check passed\n');
      const kc = new KubeConfig();
      kc.loadFromFile(node.kubeconfig);
      assert.equal((await whoAmI(kc)).username, `system:node:${node.name}`, 'the kubeconfig it wrote works');
    } finally {
      assert.equal(await daemon.stop(), 0, daemon.output().slice(-2000));
    }
  } finally {
    await node.cleanup();
  }
});

// The hook command gets the kind and the paths.
test('post-install hooks: get kind and paths, never block the install when failing, pid file signalled', async () => {
  const c = testCluster();
  const node = await newNodeDir();
  const sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
  const sleeperExit = new Promise<NodeJS.Signals | null>((r) => sleeper.on('exit', (_code, signal) => r(signal)));
  try {
    const { kubeconfig } = await tokenBootstrap(c, node);
    const record = join(node.dir, 'hook.out');
    const pidFile = join(node.dir, 'consumer.pid');
    await writeFile(pidFile, `${sleeper.pid}\n`);
    const config = await writeConfig(join(node.dir, 'config.yaml'), {
      hooks: {
        command: ['sh', '-c', `echo "$NODECRED_KIND $NODECRED_CERT_FILE $NODECRED_KUBECONFIG" >> ${record}; exit 3`],
        timeout: '10s',
        pidFile,
        signal: 'SIGUSR1',
      },
    });
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
      await daemon.waitForLog(/post-install hook failed \(the certificate is installed regardless\)/);
      await daemon.waitForLog(/signalled process after install/);
      assert.equal(
        (await readFile(record, 'utf8')).trim(),
        `client ${join(node.certDir, 'kubelet-client-current.pem')} ${node.kubeconfig}`,
      );
      assert.equal(await sleeperExit, 'SIGUSR1', 'the consumer got the configured signal');
      assert.match(daemon.output(), /"why":"exit 3"/);
      await daemon.waitForLog(/credentials in place; ready/);
    } finally {
      assert.equal(await daemon.stop(), 0);
    }
  } finally {
    sleeper.kill();
    await node.cleanup();
  }
});
