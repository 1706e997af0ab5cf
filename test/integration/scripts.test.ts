// The cluster-side scripts on the real control plane, with the cluster's own kubectl: create-bootstrap-token
// (its kubeconfig and its discovery flags both bootstrap a node with bin/nodecred), setup-cluster-info
// (signed by the real bootstrapsigner), idempotency, one-line errors, and create-monitoring-token --verify
// (SelfSubjectAccessReview with the token itself; a removed rule is named).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig, CoreV1Api, ApiException } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { testCluster, tokenKubeConfig, whoAmI, waitFor, uniqueName, type TestCluster } from '../helpers/cluster.ts';
import { REPO, newNodeDir, runNodecred, type NodeDir } from '../helpers/node.ts';
import { caPinHash } from '../../src/pki/cert.ts';

const run = promisify(execFile);

interface ScriptResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs scripts/<name> as an admin would: the cluster's kubectl, the admin kubeconfig in KUBECONFIG. */
function runScript(
  c: TestCluster,
  name: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(REPO, 'scripts', name), args, {
      env: { ...process.env, KUBECTL: c.state.kubectl, KUBECONFIG: c.state.kubeconfig, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not exit within 120 s; stderr: ${stderr.slice(-500)}`));
    }, 120_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function lines(text: string): string[] {
  return text.trim().split('\n').filter(Boolean);
}

/** "--api-server URL --discovery-token ID.SECRET --discovery-token-ca-cert-hash sha256:…" → parts. */
function parseFlags(line: string) {
  const m = new RegExp(
    /^--api-server (\S+) --discovery-token ([a-z0-9]{6})\.([a-z0-9]{16})/.source +
      /((?: --discovery-token-ca-cert-hash sha256:[0-9a-f]{64})+)$/.source,
  ).exec(line.trim());
  assert.ok(m, `discovery flags line: ${line}`);
  return {
    server: m[1]!,
    id: m[2]!,
    secret: m[3]!,
    pins: m[4]!
      .trim()
      .split(/\s+/)
      .filter((x) => x.startsWith('sha256:')),
    args: line.trim().split(/\s+/),
  };
}

async function secretData(c: TestCluster, id: string): Promise<Record<string, string>> {
  const s = await c.core.readNamespacedSecret({ namespace: 'kube-system', name: `bootstrap-token-${id}` });
  assert.equal(s.type, 'bootstrap.kubernetes.io/token');
  return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
}

async function bindingSubjects(c: TestCluster, name: string): Promise<{ role: string; groups: string[]; rv: string }> {
  const b = await c.rbac.readClusterRoleBinding({ name });
  return {
    role: `${b.roleRef.kind}/${b.roleRef.name}`,
    groups: (b.subjects ?? []).filter((s) => s.kind === 'Group').map((s) => s.name),
    rv: b.metadata!.resourceVersion!,
  };
}

const BINDINGS = {
  'kubeadm:kubelet-bootstrap': ['ClusterRole/system:node-bootstrapper', 'system:bootstrappers'],
  'kubeadm:node-autoapprove-bootstrap': [
    'ClusterRole/system:certificates.k8s.io:certificatesigningrequests:nodeclient',
    'system:bootstrappers',
  ],
  'kubeadm:node-autoapprove-certificate-rotation': [
    'ClusterRole/system:certificates.k8s.io:certificatesigningrequests:selfnodeclient',
    'system:nodes',
  ],
} as const;

async function assertNodeIdentity(c: TestCluster, node: NodeDir): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(node.kubeconfig);
  const me = await whoAmI(kc);
  assert.equal(me.username, `system:node:${node.name}`);
  assert.ok(me.groups.includes('system:nodes'));
  const verify = await run('openssl', [
    'verify',
    '-CAfile',
    c.state.caFile,
    join(node.certDir, 'kubelet-client-current.pem'),
  ]);
  assert.match(verify.stdout, /: OK/);
}

// The kubeconfig bootstraps a node.
test("create-bootstrap-token: valid token Secret, kubeadm's bootstrap RBAC, a 0600 kubeconfig for a node", async () => {
  const c = testCluster();
  const node = await newNodeDir('scripts');
  try {
    const out = join(node.dir, 'bootstrap-kubelet.conf');
    const before = Date.now();
    const r = await runScript(c, 'create-bootstrap-token', [
      '--ttl',
      '2h',
      '--groups',
      'system:bootstrappers:nodecred-test,system:bootstrappers:workers',
      '--description',
      'scripts test',
      '--kubeconfig-out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    // stdout: the discovery flags (the kubeconfig went to the file); stderr: progress, never the secret.
    const flags = parseFlags(lines(r.stdout)[0]!);
    assert.equal(lines(r.stdout).length, 1);
    assert.doesNotMatch(r.stderr, new RegExp(flags.secret), 'the token secret is not in the logs');
    assert.equal(flags.server, c.state.apiserver);
    assert.deepEqual(flags.pins, [caPinHash(c.ca)], "the openssl pin equals nodecred's own");

    const data = await secretData(c, flags.id);
    assert.equal(data['token-id'], flags.id);
    assert.equal(data['token-secret'], flags.secret);
    assert.equal(data['usage-bootstrap-authentication'], 'true');
    assert.equal(data['usage-bootstrap-signing'], 'true');
    assert.equal(data['auth-extra-groups'], 'system:bootstrappers:nodecred-test,system:bootstrappers:workers');
    assert.equal(data.description, 'scripts test');
    assert.match(data.expiration!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'RFC 3339');
    const expires = Date.parse(data.expiration!);
    assert.ok(
      expires >= before + 2 * 3600_000 - 2000 && expires <= Date.now() + 2 * 3600_000 + 2000,
      `expiration ${data.expiration} is 2h from now`,
    );
    for (const [name, [role, group]] of Object.entries(BINDINGS)) {
      const b = await bindingSubjects(c, name);
      assert.equal(b.role, role, name);
      assert.ok(b.groups.includes(group), `${name} binds ${group}`);
    }

    assert.equal((await stat(out)).mode & 0o777, 0o600);
    const kc = new KubeConfig();
    kc.loadFromFile(out);
    assert.equal(kc.getCurrentUser()?.token, `${flags.id}.${flags.secret}`);
    assert.equal(kc.getCurrentCluster()?.server, c.state.apiserver);
    assert.equal(Buffer.from(kc.getCurrentCluster()!.caData!, 'base64').toString().trim(), c.ca.trim());
    // The API server accepts it, with the extra groups.
    const me = await whoAmI(kc);
    assert.equal(me.username, `system:bootstrap:${flags.id}`);
    assert.deepEqual([...me.groups].sort(), [
      'system:authenticated',
      'system:bootstrappers',
      'system:bootstrappers:nodecred-test',
      'system:bootstrappers:workers',
    ]);

    const b = await runNodecred(['bootstrap', '--bootstrap-kubeconfig', out, ...node.flags]);
    assert.equal(b.code, 0, b.stderr + b.stdout);
    await assertNodeIdentity(c, node);
  } finally {
    await node.cleanup();
  }
});

// cluster-info is signed by the bootstrapsigner controller.
test('token discovery: the flags setup-cluster-info prints bootstrap a node once cluster-info is signed', async () => {
  const c = testCluster();
  const node = await newNodeDir('scripts');
  try {
    const setup = await runScript(c, 'setup-cluster-info', []);
    assert.equal(setup.code, 0, setup.stderr);
    const r = await runScript(c, 'create-bootstrap-token', ['--output', 'flags', '--ttl', '30m']);
    assert.equal(r.code, 0, r.stderr);
    const flags = parseFlags(r.stdout);
    await waitFor(`bootstrapsigner to add jws-kubeconfig-${flags.id}`, async () => {
      const cm = await c.core.readNamespacedConfigMap({ namespace: 'kube-public', name: 'cluster-info' });
      return cm.data?.[`jws-kubeconfig-${flags.id}`];
    });

    // cluster-info is readable without credentials, and nothing else in kube-public is.
    const anon = async (name: string) =>
      (
        await run('curl', [
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--cacert',
          c.state.caFile,
          `${c.state.apiserver}/api/v1/namespaces/kube-public/configmaps/${name}`,
        ])
      ).stdout;
    assert.equal(await anon('cluster-info'), '200');
    assert.equal(await anon('kube-root-ca.crt'), '403');
    const cm = await c.core.readNamespacedConfigMap({ namespace: 'kube-public', name: 'cluster-info' });
    const info = parseYaml(cm.data!.kubeconfig!) as {
      clusters: Array<{ cluster: Record<string, string> }>;
      users: unknown;
    };
    assert.equal(info.clusters.length, 1);
    assert.equal(info.clusters[0]!.cluster.server, c.state.apiserver);
    assert.equal(
      Buffer.from(info.clusters[0]!.cluster['certificate-authority-data']!, 'base64').toString().trim(),
      c.ca.trim(),
    );
    assert.ok(!info.users, 'no users in cluster-info');

    const b = await runNodecred(['bootstrap', ...flags.args, ...node.flags]);
    assert.equal(b.code, 0, b.stderr + b.stdout);
    await assertNodeIdentity(c, node);
  } finally {
    await node.cleanup();
  }
});

// setup-cluster-info twice changes nothing; create-bootstrap-token with the same token twice updates in place;
// kubeadm's binding subjects are kept.
test("idempotent: setup-cluster-info and create-bootstrap-token run twice; kubeadm's subjects are kept", async () => {
  const c = testCluster();
  const versions = async () => {
    const cm = await c.core.readNamespacedConfigMap({ namespace: 'kube-public', name: 'cluster-info' });
    const role = await c.rbac.readNamespacedRole({
      namespace: 'kube-public',
      name: 'kubeadm:bootstrap-signer-clusterinfo',
    });
    const rb = await c.rbac.readNamespacedRoleBinding({
      namespace: 'kube-public',
      name: 'kubeadm:bootstrap-signer-clusterinfo',
    });
    return [cm.data?.kubeconfig, role.metadata!.resourceVersion, rb.metadata!.resourceVersion];
  };
  const first = await runScript(c, 'setup-cluster-info', []);
  assert.equal(first.code, 0, first.stderr);
  const v1 = await versions();
  const second = await runScript(c, 'setup-cluster-info', []);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /ConfigMap kube-public\/cluster-info unchanged/);
  assert.deepEqual(await versions(), v1, 'no object changed');
  // An admin kubeconfig naming the API server differently does not silently change what nodes discover.
  const elsewhere = join(await mkdtemp(join(tmpdir(), 'nodecred-scripts-')), 'admin.kubeconfig');
  await writeFile(
    elsewhere,
    (await readFile(c.state.kubeconfig, 'utf8')).replace(
      c.state.apiserver,
      c.state.apiserver.replace('127.0.0.1', 'localhost'),
    ),
    { mode: 0o600 },
  );
  const moved = await runScript(c, 'setup-cluster-info', ['--kubeconfig', elsewhere]);
  assert.equal(moved.code, 1);
  assert.match(
    moved.stderr,
    new RegExp(
      `cluster-info names server ${c.state.apiserver}, your kubeconfig https://localhost:\\d+: ` +
        `pass --api-server ${c.state.apiserver} to keep it`,
    ),
  );
  assert.deepEqual(await versions(), v1, 'still unchanged');
  await rm(dirname(elsewhere), { recursive: true, force: true });
  const role = await c.rbac.readNamespacedRole({
    namespace: 'kube-public',
    name: 'kubeadm:bootstrap-signer-clusterinfo',
  });
  assert.deepEqual(JSON.parse(JSON.stringify(role.rules)), [
    { apiGroups: [''], resources: ['configmaps'], resourceNames: ['cluster-info'], verbs: ['get'] },
  ]);

  // A kubeadm cluster binds kubeadm:kubelet-bootstrap to its own token group: the script adds its group,
  // keeps kubeadm's.
  await c.rbac.patchClusterRoleBinding({
    name: 'kubeadm:kubelet-bootstrap',
    body: [
      {
        op: 'replace',
        path: '/subjects',
        value: [
          {
            apiGroup: 'rbac.authorization.k8s.io',
            kind: 'Group',
            name: 'system:bootstrappers:kubeadm:default-node-token',
          },
        ],
      },
    ],
  });
  const id = randomBytes(3).toString('hex');
  const token = `${id}.${'0123456789abcdef'}`;
  const a = await runScript(c, 'create-bootstrap-token', ['--token-file', '-', '--ttl', '1h'], { input: token });
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stderr, new RegExp(`bootstrap token ${id} created`));
  assert.match(
    a.stderr,
    /ClusterRoleBinding kubeadm:kubelet-bootstrap: added group system:bootstrappers \(kept the other subjects\)/,
  );
  const kept = await bindingSubjects(c, 'kubeadm:kubelet-bootstrap');
  assert.deepEqual(kept.groups, ['system:bootstrappers:kubeadm:default-node-token', 'system:bootstrappers']);
  // Default --output both: a kubeconfig on stdout, the discovery flags in a comment at its top.
  assert.match(a.stdout, /^# Bootstrap kubeconfig for token/);
  parseFlags(/^# {3}nodecred bootstrap (.*)$/m.exec(a.stdout)![1]!);
  const kc = new KubeConfig();
  kc.loadFromString(a.stdout);
  assert.equal(kc.getCurrentUser()?.token, token);

  const bindingVersions = await Promise.all(Object.keys(BINDINGS).map(async (n) => (await bindingSubjects(c, n)).rv));
  const again = await runScript(c, 'create-bootstrap-token', ['--ttl', '3h', '--output', 'flags'], {
    env: { NODECRED_BOOTSTRAP_TOKEN: token },
  });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, new RegExp(`bootstrap token ${id} updated`));
  assert.equal(lines(again.stderr).filter((l) => l.includes('unchanged')).length, 3, again.stderr);
  assert.deepEqual(
    await Promise.all(Object.keys(BINDINGS).map(async (n) => (await bindingSubjects(c, n)).rv)),
    bindingVersions,
    'RBAC untouched',
  );
  const data = await secretData(c, id);
  assert.ok(Date.parse(data.expiration!) > Date.now() + 2.9 * 3600_000, 'the expiration follows the new --ttl');

  // Same id, another secret: refused, and neither secret is printed.
  const clash = await runScript(c, 'create-bootstrap-token', ['--token-file', '-'], {
    input: `${id}.ffffffffffffffff\n`,
  });
  assert.equal(clash.code, 1);
  assert.match(
    clash.stderr,
    new RegExp(
      `Secret kube-system/bootstrap-token-${id} exists with a different token secret: ` +
        'pick another --token, or delete it first',
    ),
  );
  assert.doesNotMatch(clash.stderr + clash.stdout, /0123456789abcdef|ffffffffffffffff/);
  assert.equal(lines(clash.stderr).length, 1);
  await c.core.deleteNamespacedSecret({ namespace: 'kube-system', name: `bootstrap-token-${id}` });
});

test('script errors are one line naming the flag or object and the fix', async () => {
  const c = testCluster();
  const cases: Array<[string, string[], number, RegExp, NodeJS.ProcessEnv?]> = [
    [
      'create-bootstrap-token',
      ['--groups', 'system:workers'],
      2,
      /--groups: "system:workers" must match system:bootstrappers:/,
    ],
    [
      'create-bootstrap-token',
      ['--token', 'ABCDEF.SECRETSECRETSECR'],
      2,
      /--token is not of the form <6 chars \[a-z0-9\]>\.<16 chars \[a-z0-9\]>/,
    ],
    ['create-bootstrap-token', ['--ttl', '1d'], 2, /--ttl "1d" is not a duration: use e\.g\. 24h/],
    ['create-bootstrap-token', ['--output', 'json'], 2, /--output "json" is not one of kubeconfig, flags, both/],
    ['create-bootstrap-token', ['--ttl'], 2, /--ttl needs a value/],
    ['setup-cluster-info', ['--frobnicate'], 2, /unknown argument "--frobnicate"/],
    [
      'setup-cluster-info',
      ['--kubeconfig', '/nonexistent/admin.conf'],
      2,
      /--kubeconfig \/nonexistent\/admin\.conf: file does not exist/,
    ],
    ['create-monitoring-token', ['--duration', '5m'], 2, /--duration 5m: a token must live at least 10m/],
    [
      'create-monitoring-token',
      ['--namespace', 'Monitoring'],
      2,
      /--namespace "Monitoring" is not a valid namespace name/,
    ],
    [
      'create-monitoring-token',
      [],
      1,
      /kubectl not found \(looked for "\/nonexistent\/kubectl"\): install kubectl or set KUBECTL/,
      { KUBECTL: '/nonexistent/kubectl' },
    ],
  ];
  for (const [script, args, code, message, env] of cases) {
    const r = await runScript(c, script, args, env ? { env } : {});
    assert.equal(r.code, code, `${script} ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(lines(r.stderr).length, 1, `one line: ${r.stderr}`);
    assert.equal(r.stdout, '');
  }
  assert.doesNotMatch(
    (await runScript(c, 'create-bootstrap-token', ['--token', 'ABCDEF.SECRETSECRETSECR'])).stderr,
    /SECRETSECRET/,
    'a bad token is not echoed',
  );

  // A kubeconfig without admin rights (a bootstrap token's) is named as the problem, with the fix.
  const node = await newNodeDir('scripts');
  try {
    const made = await runScript(c, 'create-bootstrap-token', ['--output', 'kubeconfig', '--ttl', '10m']);
    assert.equal(made.code, 0, made.stderr);
    const weak = join(node.dir, 'bootstrap.conf');
    await writeFile(weak, made.stdout, { mode: 0o600 });
    for (const script of ['create-bootstrap-token', 'setup-cluster-info', 'create-monitoring-token']) {
      const r = await runScript(c, script, ['--kubeconfig', weak]);
      assert.equal(r.code, 1, `${script}: ${r.stderr}`);
      assert.match(r.stderr, /the kubeconfig's user may not .+: run with a cluster-admin kubeconfig/);
      assert.equal(lines(r.stderr).length, 1, r.stderr);
    }
  } finally {
    await node.cleanup();
  }
});

function jwtClaims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

async function forbidden(p: Promise<unknown>): Promise<boolean> {
  try {
    await p;
    return false;
  } catch (err) {
    if (err instanceof ApiException && err.code === 403) return true;
    throw err;
  }
}

// --verify checks the least-privilege role the script creates.
test('create-monitoring-token: token time-bounded, read-only; --verify passes, and names a removed rule', async () => {
  const c = testCluster();
  const ns = uniqueName('monitoring');
  const role = `nodecred-test:monitoring-read:${ns}`;
  const args = ['--namespace', ns, '--name', 'prometheus', '--cluster-role', role, '--duration', '1h'];
  const user = `system:serviceaccount:${ns}:prometheus`;
  try {
    const r = await runScript(c, 'create-monitoring-token', [...args, '--verify']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`verified: ${user} has all 34 permissions`));
    assert.doesNotMatch(r.stderr, /WARNING/, 'the default role needs no warning');
    const token = r.stdout.trim();
    assert.equal(lines(r.stdout).length, 1, 'stdout is the token alone');
    assert.ok(!r.stderr.includes(token), 'the token is not in the logs');

    const claims = jwtClaims(token);
    assert.equal(claims.sub, user);
    assert.equal(Number(claims.exp) - Number(claims.iat), 3600, 'exp is --duration after iat');
    assert.ok(Number(claims.exp) * 1000 > Date.now() && Number(claims.exp) * 1000 <= Date.now() + 3600_000 + 5000);

    // Reads what monitoring reads; writes and Secrets are forbidden.
    const core = tokenKubeConfig(c, token).makeApiClient(CoreV1Api);
    await core.listNode();
    await core.listPodForAllNamespaces();
    assert.ok(
      await forbidden(core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'x' } } })),
      'no writes',
    );
    assert.ok(await forbidden(core.listSecretForAllNamespaces()), 'no Secrets');

    // Running it again changes no object (a new token is its product).
    const versions = async () => [
      (await c.core.readNamespace({ name: ns })).metadata!.resourceVersion,
      (await c.core.readNamespacedServiceAccount({ namespace: ns, name: 'prometheus' })).metadata!.resourceVersion,
      (await c.rbac.readClusterRole({ name: role })).metadata!.resourceVersion,
      (await c.rbac.readClusterRoleBinding({ name: `nodecred:monitoring:${ns}:prometheus` })).metadata!.resourceVersion,
    ];
    const v1 = await versions();
    const again = await runScript(c, 'create-monitoring-token', args);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await versions(), v1);
    assert.notEqual(again.stdout.trim(), token);

    // Remove the nodes/metrics rule: checking the token now fails, naming exactly that rule.
    const cr = await c.rbac.readClusterRole({ name: role });
    cr.rules = (cr.rules ?? []).filter((rule) => !rule.resources?.includes('nodes/metrics'));
    await c.rbac.replaceClusterRole({ name: role, body: cr });
    const failed = await waitFor('the authorizer to see the removed rule', async () => {
      const check = await runScript(c, 'create-monitoring-token', ['--cluster-role', role, '--check-token', '-'], {
        input: token,
      });
      return check.code === 1 ? check : undefined;
    });
    assert.match(
      failed.stderr,
      new RegExp(`FAIL: ${user} is denied 1 of 34 permissions \\(each would be a 403\\): get nodes/metrics\n`),
    );
    assert.match(
      failed.stderr,
      /missing rule: - apiGroups: \[""\] {2}resources: \["nodes\/metrics"\] {2}verbs: \["get"\] {3}# kubelet \/metrics/,
    );
    assert.equal(lines(failed.stderr).filter((l) => l.includes('missing rule:')).length, 1);
    assert.match(failed.stderr, new RegExp(`fix: add the missing rule\\(s\\) to ClusterRole ${role}`));
    assert.equal(failed.stdout, '');

    // Running the script again restores the role; the same token passes again.
    const restore = await runScript(c, 'create-monitoring-token', args);
    assert.equal(restore.code, 0, restore.stderr);
    await waitFor('the restored rule to be authorized', async () => {
      const check = await runScript(c, 'create-monitoring-token', ['--cluster-role', role, '--check-token', '-'], {
        input: token,
      });
      return check.code === 0 ? true : undefined;
    });
  } finally {
    await c.rbac.deleteClusterRoleBinding({ name: `nodecred:monitoring:${ns}:prometheus` }).catch(() => undefined);
    await c.rbac.deleteClusterRole({ name: role }).catch(() => undefined);
    await c.core.deleteNamespace({ name: ns }).catch(() => undefined);
  }
});

/** `kubectl auth can-i` as the token (a SelfSubjectAccessReview sent with the token itself): "yes" or "no". */
async function canI(c: TestCluster, kubeconfig: string, ...args: string[]): Promise<string> {
  const r = await run(c.state.kubectl, ['--kubeconfig', kubeconfig, 'auth', 'can-i', ...args]).catch(
    (e: { stdout: string; code: number }) => e,
  );
  return r.stdout.trim();
}

/** The HTTP status the API server answers `kubectl get --raw PATH` with, as this kubeconfig's user. */
async function rawStatus(c: TestCluster, kubeconfig: string, path: string): Promise<string> {
  const r = await run(c.state.kubectl, ['--kubeconfig', kubeconfig, 'get', '--raw', path, '-v=6']).catch(
    (e: { stderr: string }) => e,
  );
  return /status="(\d{3})|(\d{3}) \w+ in \d+ milliseconds/.exec(r.stderr)?.slice(1).find(Boolean) ?? '?';
}

// By default nodes/metrics and nodes/stats, no nodes/proxy (checked with kubectl auth can-i as the token).
test('create-monitoring-token: least privilege by default; --nodes-proxy opts in, saying it grants exec', async () => {
  const c = testCluster();
  const ns = uniqueName('monitoring');
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-monitoring-'));
  const roles = [`nodecred-test:monitoring-direct:${ns}`, `nodecred-test:monitoring-proxy:${ns}`];
  const node = uniqueName('scrape-target');
  try {
    // The default: enough to scrape kubelets directly on :10250, and nothing that reaches exec.
    const r = await runScript(c, 'create-monitoring-token', [
      '--namespace',
      ns,
      '--name',
      'agent',
      '--cluster-role',
      roles[0]!,
      '--verify',
      '--print-kubeconfig',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /has all 34 permissions/);
    const direct = join(dir, 'direct.kubeconfig');
    await writeFile(direct, r.stdout, { mode: 0o600 });
    assert.equal(await canI(c, direct, 'get', 'nodes', '--subresource=metrics'), 'yes');
    assert.equal(await canI(c, direct, 'get', 'nodes', '--subresource=stats'), 'yes');
    assert.equal(await canI(c, direct, 'get', 'nodes', '--subresource=proxy'), 'no', 'no nodes/proxy by default');
    assert.equal(await canI(c, direct, 'create', 'nodes', '--subresource=proxy'), 'no');
    assert.equal(await canI(c, direct, 'create', 'pods', '--subresource=exec'), 'no');
    const cr = await c.rbac.readClusterRole({ name: roles[0]! });
    assert.ok(!(cr.rules ?? []).some((rule) => rule.resources?.includes('nodes/proxy')));
    assert.ok(
      (cr.rules ?? []).every((rule) => rule.verbs.every((v) => ['get', 'list', 'watch'].includes(v))),
      'read-only verbs',
    );
    const kc = new KubeConfig();
    kc.loadFromString(r.stdout);
    assert.equal((await whoAmI(kc)).username, `system:serviceaccount:${ns}:agent`);
    // Seed 002's scrape through the API server's node proxy is refused by the API server itself.
    assert.equal(await rawStatus(c, direct, `/api/v1/nodes/${node}/proxy/metrics`), '403');

    // Opt-in: the role gains get nodes/proxy, and the script says what that grants before doing it.
    const p = await runScript(c, 'create-monitoring-token', [
      '--namespace',
      ns,
      '--name',
      'proxy-agent',
      '--cluster-role',
      roles[1]!,
      '--nodes-proxy',
      '--verify',
      '--print-kubeconfig',
    ]);
    assert.equal(p.code, 0, p.stderr);
    assert.match(
      p.stderr,
      /WARNING: --nodes-proxy grants get nodes\/proxy: .*exec, attach, run and port-forward into every pod/,
    );
    assert.match(p.stderr, /has all 35 permissions/);
    const proxied = join(dir, 'proxied.kubeconfig');
    await writeFile(proxied, p.stdout, { mode: 0o600 });
    assert.equal(await canI(c, proxied, 'get', 'nodes', '--subresource=proxy'), 'yes');
    // Past the authorizer: the API server now looks the Node up (404), where the default token met a 403.
    assert.equal(await rawStatus(c, proxied, `/api/v1/nodes/${node}/proxy/metrics`), '404');

    const bad = await runScript(c, 'create-monitoring-token', ['--check-token', '-'], { input: 'not-a-token\n' });
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      new RegExp(
        /the API server does not accept the token .*: /.source +
          /it expired, or its ServiceAccount was deleted or recreated; create a new one/.source,
      ),
    );
    assert.equal(lines(bad.stderr).length, 1);
    assert.doesNotMatch(bad.stderr, /not-a-token/);
  } finally {
    for (const sa of ['agent', 'proxy-agent'])
      await c.rbac.deleteClusterRoleBinding({ name: `nodecred:monitoring:${ns}:${sa}` }).catch(() => undefined);
    for (const role of roles) await c.rbac.deleteClusterRole({ name: role }).catch(() => undefined);
    await c.core.deleteNamespace({ name: ns }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
});

test('--help of every script exits 0 and documents its flags', async () => {
  const c = testCluster();
  const expect: Record<string, string[]> = {
    'create-bootstrap-token': [
      '--ttl',
      '--groups',
      '--description',
      '--token',
      '--token-file',
      'NODECRED_BOOTSTRAP_TOKEN',
      '--api-server',
      '--output',
      '--kubeconfig-out',
      '--kubeconfig',
    ],
    'setup-cluster-info': ['--kubeconfig', '--api-server', 'system:anonymous', 'kubeadm:bootstrap-signer-clusterinfo'],
    'create-monitoring-token': [
      '--namespace',
      '--name',
      '--duration',
      '--verify',
      '--check-token',
      '--print-kubeconfig',
      'nodes/metrics',
      'nodes/proxy',
      '--nodes-proxy',
    ],
  };
  for (const [script, words] of Object.entries(expect)) {
    const r = await runScript(c, script, ['--help']);
    assert.equal(r.code, 0);
    for (const w of words) assert.ok(r.stdout.includes(w), `${script} --help mentions ${w}`);
  }
});
