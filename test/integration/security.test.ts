// The controls of docs/security.md that involve the API server, each against the real control plane:
// token discovery trusts only the pinned CA certificates (against a holder of the bootstrap token who sits
// between the node and the API server), ...
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { spawn } from 'node:child_process';
import { chmod, lstat, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { AuthenticationV1Api, KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import {
  createBootstrapToken,
  ensureBootstrapRbac,
  approveCsr,
  testCluster,
  uniqueName,
  waitFor,
  whoAmI,
  type TestCluster,
} from '../helpers/cluster.ts';
import { NODECRED, REPO, newNodeDir, runNodecred, startDaemon, writeConfig, writeKubeconfig } from '../helpers/node.ts';
import { freePort } from '../../scripts/lib/local-cluster.ts';
import { startTlsFront } from '../helpers/tls-front.ts';
import { resignCertificate } from '../helpers/der-builder.ts';
import { CLIENT_AUTH, issueLeaf, makeCa, newEcKey, SERVER_AUTH } from '../unit/pki/helpers.ts';
import { AuditLog } from '../../bench/lib/audit.ts';
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

test('discovery: a token holder in the middle adds its CA beside the pinned one: refused, nothing sent', async () => {
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
    const r = await runNodecred(
      [
        'bootstrap',
        '--api-server',
        front.url,
        '--discovery-token-ca-cert-hash',
        caPinHash(c.ca),
        '--timeout',
        '30s',
        ...node.flags,
      ],
      { env: { NODECRED_DISCOVERY_TOKEN: token.token } },
    );
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

test('discovery: of a pinned and an unpinned CA in cluster-info, only the pinned one is trusted', async () => {
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
    const r = await runNodecred(
      ['bootstrap', '--api-server', front.url, '--discovery-token-ca-cert-hash', caPinHash(c.ca), ...node.flags],
      { env: { NODECRED_DISCOVERY_TOKEN: token.token } },
    );
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

test('exec plugin stderr reaches /healthz JSON and the log only redacted: a token it prints does not', async () => {
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

interface Answer {
  status: number;
  body: string;
}

/** One GET on the secure listener, from `localAddress`, with a bearer token and/or a client certificate. */
function secureGet(
  port: number,
  ca: string,
  opts: { token?: string; cert?: string; key?: string; localAddress?: string; path?: string },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path: opts.path ?? '/metrics',
        ca,
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
        headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
        agent: false,
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A node running `nodecred run --secure-listen` with its serving certificate approved. */
async function secureNode(c: TestCluster) {
  await ensureBootstrapRbac(c);
  const token = await createBootstrapToken(c);
  const node = await newNodeDir('secure');
  const port = await freePort();
  const bootstrap = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
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
    bootstrap,
    '--rotate-server-certificates',
    '--node-ip',
    '127.0.0.1',
    '--health-listen',
    '',
    '--secure-listen',
    `127.0.0.1:${port}`,
    '--client-ca-file',
    c.state.caFile,
    ...node.flags,
  ]);
  await approving;
  await daemon.waitForLog(/secure listener now serves the current serving certificate/);
  return { node, port, daemon };
}

test('secure listener identity: a client certificate names the user and groups the API server does', async () => {
  const c = testCluster();
  const { node, port, daemon } = await secureNode(c);
  try {
    const ca = {
      name: 'nodecred-local-ca',
      certificatePem: c.ca,
      privateKey: createPrivateKey(await readFile(c.state.caKeyFile)),
    };
    const key = newEcKey();
    const keyPem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    // Two CNs: tools disagree on which one counts (openssl and Node's subject string show the first).
    const cert = await issueLeaf(ca, {
      publicKey: key.publicKey,
      extendedKeyUsages: [CLIENT_AUTH],
      subject: [{ CN: ['first-cn'] }, { O: ['team-a'] }, { CN: ['second-cn'] }, { O: ['team-b'] }],
    });
    // The oracle: kube-apiserver's own x509 authenticator.
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: 'c', server: c.state.apiserver, caData: Buffer.from(c.ca).toString('base64'), skipTLSVerify: false },
      ],
      users: [
        { name: 'u', certData: Buffer.from(cert).toString('base64'), keyData: Buffer.from(keyPem).toString('base64') },
      ],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const review = await kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    });
    const apiUser = review.status!.userInfo!;
    assert.equal(apiUser.username, 'second-cn', 'Go keeps the last CN');
    // nodecred's 403 names who it thinks the client is.
    const r = await secureGet(port, c.ca, { cert, key: keyPem });
    assert.equal(r.status, 403, r.body);
    const m = /Forbidden: user "([^"]*)" \(groups (\[.*?\])\)/.exec(r.body);
    assert.ok(m, r.body);
    assert.equal(m[1], apiUser.username);
    assert.deepEqual((JSON.parse(m[2]!) as string[]).sort(), [...apiUser.groups!].sort());

    // A certificate without a CN authenticates nobody (Kubernetes then tries the token): no token, 401.
    const noCn = await issueLeaf(ca, {
      publicKey: key.publicKey,
      extendedKeyUsages: [CLIENT_AUTH],
      subject: [{ O: ['team-a'] }],
    });
    assert.equal((await secureGet(port, c.ca, { cert: noCn, key: keyPem })).status, 401);

    // A certificate OpenSSL lets through the handshake but that is not DER (a non-minimal length; Go's TLS
    // refuses it outright) is a rejected credential, 401 — not "API server unreachable" (it was a 503).
    const issued = await issueLeaf(ca, { publicKey: key.publicKey, extendedKeyUsages: [CLIENT_AUTH] });
    const notDer = resignCertificate(issued, ca.privateKey, (tbs) => {
      tbs.children[5]!.lengthBytes = 2;
    });
    const answer = await secureGet(port, c.ca, { cert: notDer, key: keyPem });
    assert.equal(answer.status, 401, answer.body);
  } finally {
    await daemon.stop();
    await node.cleanup();
  }
});

test('secure listener: one TokenReview for 50 identical tokens; a flood of unknown ones is rate-limited', async () => {
  const c = testCluster();
  assert.ok(c.state.auditLog, 'the test control plane writes an audit log (scripts/test.ts)');
  const audit = new AuditLog(c.state.auditLog);
  const { node, port, daemon } = await secureNode(c);
  const user = `system:node:${node.name}`;
  const sa = uniqueName('scraper');
  try {
    const reviews = () => audit.by([user]).filter((q) => q.resource === 'tokenreviews').length;
    // The node's own SelfSubjectReview marks a point in the log: everything it caused before is in by then.
    const nodeKc = new KubeConfig();
    nodeKc.loadFromFile(node.kubeconfig);
    const settle = async () => {
      await nodeKc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
      });
      const marks = audit.by([user]).filter((q) => q.resource === 'selfsubjectreviews').length;
      await audit.waitFor(
        'the marker SelfSubjectReview',
        () => (audit.by([user]).filter((q) => q.resource === 'selfsubjectreviews').length > marks ? true : undefined),
        30_000,
      );
    };
    await settle();
    const before = reviews();

    // The same unknown token, 50 requests at once: one review answers them all, and its "no" is cached.
    const same = randomBytes(24).toString('base64url');
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => secureGet(port, c.ca, { token: same, localAddress: '127.0.0.3' })),
    );
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [401]);
    await settle();
    assert.equal(reviews() - before, 1, 'single-flight and the negative cache: one TokenReview');

    // 200 different unknown tokens from one address: a few reviews, then 429 without asking the API server.
    const started = Date.now();
    const flood: Answer[] = [];
    for (let i = 0; i < 20; i++) {
      flood.push(
        ...(await Promise.all(
          Array.from({ length: 10 }, () =>
            secureGet(port, c.ca, { token: randomBytes(24).toString('base64url'), localAddress: '127.0.0.4' }),
          ),
        )),
      );
    }
    const seconds = (Date.now() - started) / 1000;
    const rejected = flood.filter((a) => a.status === 401).length;
    const limited = flood.filter((a) => a.status === 429).length;
    assert.equal(rejected + limited, 200);
    assert.ok(limited > 0, 'the limit applied');
    assert.match(flood.find((a) => a.status === 429)!.body, /Too Many Requests/);
    await settle();
    assert.equal(reviews() - before - 1, rejected, 'every 401 cost exactly one TokenReview, every 429 none');
    // Per address: a burst of 5, then 2 a second.
    assert.ok(rejected <= 5 + 2 * seconds + 1, `${rejected} reviews in ${seconds} s`);

    // A real scraper from another address is unaffected.
    await c.kubectl(['-n', 'default', 'create', 'serviceaccount', sa]);
    await c.kubectl(['create', 'clusterrole', sa, '--verb=get', '--non-resource-url=/metrics']);
    await c.kubectl(['create', 'clusterrolebinding', sa, `--clusterrole=${sa}`, `--serviceaccount=default:${sa}`]);
    const good = (await c.kubectl(['-n', 'default', 'create', 'token', sa, '--duration=10m'])).trim();
    const ok = await waitFor('the scraper allowed', async () => {
      const a = await secureGet(port, c.ca, { token: good, localAddress: '127.0.0.5' });
      return a.status === 200 ? a : undefined;
    });
    assert.match(ok.body, /kubelet_certificate_manager_client_ttl_seconds/);
  } finally {
    await daemon.stop();
    await c.kubectl(['delete', 'clusterrolebinding,clusterrole', sa, '--ignore-not-found']).catch(() => undefined);
    await c.kubectl(['-n', 'default', 'delete', 'serviceaccount', sa, '--ignore-not-found']).catch(() => undefined);
    await node.cleanup();
  }
});

interface Traced {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Every argv that any process in the tree was started with (strace -f, execve). */
  argvs: string;
  execs: number;
}

/** Runs a command under strace, recording the argv of every execve in the process tree. */
async function traced(command: string, args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<Traced> {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-strace-'));
  const log = join(dir, 'execve.log');
  try {
    const result = await new Promise<Omit<Traced, 'argvs' | 'execs'>>((resolve, reject) => {
      const child = spawn(
        'strace',
        ['-f', '-qq', '-s', '65536', '-e', 'trace=execve,execveat', '-o', log, command, ...args],
        { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdin.end(input);
      child.on('error', reject);
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
    const argvs = await readFile(log, 'utf8');
    return { ...result, argvs, execs: (argvs.match(/ execve(at)?\(/g) ?? []).length };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('tokens on argv: file and environment forms keep the token out of every argv (strace)', async () => {
  const c = testCluster();
  await ensureBootstrapRbac(c);
  await new Promise<void>((resolve, reject) => {
    const p = spawn(join(REPO, 'scripts/setup-cluster-info'), ['--kubeconfig', c.state.kubeconfig], {
      env: { ...process.env, KUBECTL: c.state.kubectl },
      stdio: 'ignore',
    });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`setup-cluster-info exited ${code}`))));
  });
  const id = randomBytes(3).toString('hex');
  const secret = randomBytes(8).toString('hex');
  const token = `${id}.${secret}`;
  const nodes = [await newNodeDir('argv'), await newNodeDir('argv'), await newNodeDir('argv')];
  const tokenFile = join(nodes[0]!.dir, 'bootstrap-token');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const scriptEnv = { KUBECTL: c.state.kubectl, KUBECONFIG: c.state.kubeconfig };
  try {
    // The script creates the token from a file; kubectl gets the Secret on stdin.
    const created = await traced(
      join(REPO, 'scripts/create-bootstrap-token'),
      ['--token-file', tokenFile, '--ttl', '30m', '--output', 'flags'],
      scriptEnv,
    );
    assert.equal(created.code, 0, created.stderr);
    assert.ok(created.execs >= 5, `the script ran kubectl and friends (${created.execs} execs)`);
    assert.ok(!created.argvs.includes(secret), 'no argv of the script or its children holds the token secret');
    assert.doesNotMatch(created.stderr, /warning/);
    await waitFor('bootstrapsigner to sign cluster-info for the token', async () => {
      const cm = await c.core.readNamespacedConfigMap({ namespace: 'kube-public', name: 'cluster-info' });
      return cm.data?.[`jws-kubeconfig-${id}`] ? true : undefined;
    });

    const discovery = ['--api-server', c.state.apiserver, '--discovery-token-ca-cert-hash', caPinHash(c.ca)];
    const fromFile = await traced(
      NODECRED,
      ['bootstrap', ...discovery, '--discovery-token-file', tokenFile, ...nodes[0]!.flags],
      {},
    );
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.ok(fromFile.execs >= 2, 'bin/nodecred and node were traced');
    assert.ok(!fromFile.argvs.includes(secret), 'the file form: not in any argv');
    assert.doesNotMatch(fromFile.stderr, /warning/);

    const fromEnv = await traced(NODECRED, ['bootstrap', ...discovery, ...nodes[1]!.flags], {
      NODECRED_DISCOVERY_TOKEN: token,
    });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.ok(!fromEnv.argvs.includes(secret), 'the environment form: not in any argv');

    // The argv form still works, is visible to the tracer (so the checks above could fail), and says so.
    const onArgv = await traced(
      NODECRED,
      ['bootstrap', ...discovery, '--discovery-token', token, ...nodes[2]!.flags],
      {},
    );
    assert.equal(onArgv.code, 0, onArgv.stderr);
    assert.ok(onArgv.argvs.includes(secret), 'strace sees a token on the command line');
    const warnings = onArgv.stderr.split('\n').filter((l) => l.includes('warning'));
    assert.deepEqual(warnings, [
      'nodecred: warning: --discovery-token puts the bootstrap token on the command line, readable by every ' +
        'local user (ps, /proc/PID/cmdline); use --discovery-token-file FILE or NODECRED_DISCOVERY_TOKEN',
    ]);
    const scriptArgv = await traced(
      join(REPO, 'scripts/create-bootstrap-token'),
      ['--token', token, '--ttl', '30m', '--output', 'flags'],
      scriptEnv,
    );
    assert.equal(scriptArgv.code, 0, scriptArgv.stderr);
    assert.match(
      scriptArgv.stderr,
      /warning: --token puts the token on the command line, readable by every local user/,
    );
  } finally {
    for (const n of nodes) await n.cleanup();
    await c.core
      .deleteNamespacedSecret({ namespace: 'kube-system', name: `bootstrap-token-${id}` })
      .catch(() => undefined);
  }
});
