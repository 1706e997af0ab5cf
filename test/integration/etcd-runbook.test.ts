// scripts/etcd-replace-member against a real three-member etcd cluster with TLS on loopback (client and
// peer certificate authentication, each member on its own 127.0.0.x address), from the same multicall
// binary as the control plane: the leader is SIGKILLed, the script removes it, refuses bad replacement
// certificates with nodecred check's message, adds the replacement, and the cluster ends with three healthy
// members — checked with etcdctl through the runbook's client certificate. kubeadm's records (ClusterStatus
// in kube-system/kubeadm-config and the etcd Pods' advertise-client-urls annotation) are exercised against
// the shared control plane when NODECRED_TEST_CLUSTER is set.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ensureBinary, isAlive } from '../../scripts/lib/local-cluster.ts';
import { waitFor } from '../helpers/cluster.ts';
import { processesMentioning } from '../helpers/processes.ts';
import {
  createCa,
  issueCert,
  memberCerts,
  planMember,
  memberFlags,
  startEtcd,
  waitHealthy,
  killMember,
  readClientTls,
  type CaFiles,
  type CertFiles,
  type ClientTls,
  type EtcdMember,
} from '../../scripts/lib/etcd-cluster.ts';

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, '../..');
const SCRIPT = join(REPO, 'scripts/etcd-replace-member');
const withCluster = Boolean(process.env.NODECRED_TEST_CLUSTER);
const ANNOTATION = 'kubeadm.kubernetes.io/etcd.advertise-client-urls';

let dir = '';
let binary = '';
let etcdctl = '';
let ca: CaFiles;
let otherCa: CaFiles;
let client: CertFiles;
let tls: ClientTls;
const members: EtcdMember[] = [];
let dead: EtcdMember;
let survivors: EtcdMember[];
let replacement: EtcdMember;
let replacementCerts: { server: CertFiles; peer: CertFiles };
let learner: EtcdMember;
let bystander: EtcdMember;
let badCerts: { server: CertFiles; peer: CertFiles };

// ------------------------------------------------------------------------------------------- helpers
interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Running {
  output(): string;
  done: Promise<Result>;
}

/** Starts the script in its own session (no controlling terminal, as under cron or CI). */
function startScript(args: string[], timeoutMs = 120_000): Running {
  const child = spawn(SCRIPT, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Result>((res, rej) => {
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
      rej(
        new Error(
          `etcd-replace-member did not exit within ${timeoutMs} ms; ` +
            `stdout:\n${stdout.slice(-3000)}\nstderr:\n${stderr.slice(-1000)}`,
        ),
      );
    }, timeoutMs);
    child.on('error', rej);
    child.on('exit', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
  return { output: () => stdout, done };
}

const runScript = (args: string[], timeoutMs?: number) => startScript(args, timeoutMs).done;
const show = (r: Result) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

/**
 * Waits for the flags the new member must start with, as an operator would read them off the screen:
 * the --initial-cluster value and the output so far. Fails at once if the script exits first.
 */
async function startFlags(running: Running): Promise<{ initialCluster: string; out: string }> {
  const deadline = Date.now() + 90_000;
  let exited: Result | undefined;
  void running.done.then(
    (r) => (exited = r),
    () => {},
  );
  for (;;) {
    const initialCluster = /^ {2}--initial-cluster=(\S+)$/m.exec(running.output())?.[1];
    if (initialCluster) return { initialCluster, out: running.output() };
    if (exited) assert.fail(`the script exited before printing the flags: ${show(exited)}`);
    if (Date.now() > deadline)
      assert.fail(`no --initial-cluster line within 90 s; stdout so far:\n${running.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function tlsFlags(): string[] {
  return ['--cacert', ca.crt, '--cert', client.crt, '--key', client.key, '--etcdctl', etcdctl];
}

/** The flags every replacement run shares: survivors' endpoints, the dead member, the replacement. */
function replaceArgs(): string[] {
  return [
    '--endpoints',
    survivors.map((m) => m.clientUrl).join(','),
    ...tlsFlags(),
    '--dead-member',
    dead.name,
    '--new-name',
    replacement.name,
    '--new-peer-url',
    replacement.peerUrl,
    '--new-client-url',
    replacement.clientUrl,
    ...(withCluster ? ['--kubeconfig', kubeconfigPath(), '--kubectl', kubectlPath()] : []),
  ];
}

async function ctl(endpoints: EtcdMember[], args: string[]): Promise<string> {
  const { stdout } = await run(etcdctl, [
    `--endpoints=${endpoints.map((m) => m.clientUrl).join(',')}`,
    `--cacert=${ca.crt}`,
    `--cert=${client.crt}`,
    `--key=${client.key}`,
    '--dial-timeout=3s',
    '--command-timeout=10s',
    ...args,
  ]);
  return stdout;
}

interface MemberRow {
  id: string;
  status: string;
  name: string;
  peers: string;
  clients: string;
  learner: boolean;
}

async function memberList(via: EtcdMember[]): Promise<MemberRow[]> {
  const out = await ctl(via, ['member', 'list', '-w', 'simple']);
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, status, name, peers, clients, isLearner] = line.split(', ');
      return { id: id!, status: status!, name: name!, peers: peers!, clients: clients!, learner: isLearner === 'true' };
    });
}

/** The member that leads, from `endpoint status` (IDs compared as decimal strings: they exceed 2^53). */
async function leader(of: EtcdMember[]): Promise<EtcdMember> {
  const out = await ctl(of, ['endpoint', 'status', '-w', 'json']);
  for (const entry of out.split('{"Endpoint":').slice(1)) {
    const endpoint = /^"([^"]+)"/.exec(entry)?.[1];
    const id = /"member_id":(\d+)/.exec(entry)?.[1];
    const lead = /"leader":(\d+)/.exec(entry)?.[1];
    if (id && id === lead) {
      const m = of.find((x) => x.clientUrl === endpoint);
      if (m) return m;
    }
  }
  throw new Error(`no leader in endpoint status: ${out}`);
}

// ------------------------------------------------------------------------------------------- kubeadm
// Only with a control plane: kubeadm's two records of control-plane nodes, as kubeadm writes them.
type Cluster = Awaited<ReturnType<typeof loadCluster>>;
let cluster: Cluster | undefined;
async function loadCluster() {
  const { testCluster } = await import('../helpers/cluster.ts');
  return testCluster();
}
const kubeconfigPath = () => cluster!.state.kubeconfig;
const kubectlPath = () => cluster!.state.kubectl;

function clusterStatus(names: EtcdMember[]): string {
  return [
    'apiEndpoints:',
    ...names.flatMap((m) => [`  ${m.name}:`, `    advertiseAddress: ${m.ip}`, '    bindPort: 6443']),
    'apiVersion: kubeadm.k8s.io/v1beta2',
    'kind: ClusterStatus',
    '',
  ].join('\n');
}

async function createKubeadmRecords(c: Cluster): Promise<void> {
  await c.core.deleteNamespacedConfigMap({ namespace: 'kube-system', name: 'kubeadm-config' }).catch(() => {});
  await c.core.createNamespacedConfigMap({
    namespace: 'kube-system',
    body: {
      metadata: { name: 'kubeadm-config', namespace: 'kube-system' },
      data: {
        ClusterConfiguration: 'apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration\n',
        ClusterStatus: clusterStatus(members),
      },
    },
  });
  // On a control plane that has just started, the ServiceAccount admission refuses Pods until the controller
  // has created kube-system's default ServiceAccount (the test run with this file alone hit it).
  await waitFor('the default ServiceAccount in kube-system', () =>
    c.core.readNamespacedServiceAccount({ namespace: 'kube-system', name: 'default' }).then(() => true),
  );
  for (const m of members) {
    await c.core
      .deleteNamespacedPod({ namespace: 'kube-system', name: `etcd-${m.name}`, gracePeriodSeconds: 0 })
      .catch(() => {});
    // A Pending Pod with no node: nothing schedules or garbage-collects it, the annotation is what matters.
    await c.core.createNamespacedPod({
      namespace: 'kube-system',
      body: {
        metadata: {
          name: `etcd-${m.name}`,
          namespace: 'kube-system',
          labels: { component: 'etcd', tier: 'control-plane' },
          annotations: { [ANNOTATION]: m.clientUrl },
        },
        spec: { containers: [{ name: 'etcd', image: 'registry.k8s.io/etcd:3.6.0-0' }] },
      },
    });
  }
}

async function deleteKubeadmRecords(c: Cluster): Promise<void> {
  await c.core.deleteNamespacedConfigMap({ namespace: 'kube-system', name: 'kubeadm-config' }).catch(() => {});
  for (const m of [...members, ...(replacement ? [replacement] : [])]) {
    await c.core
      .deleteNamespacedPod({ namespace: 'kube-system', name: `etcd-${m.name}`, gracePeriodSeconds: 0 })
      .catch(() => {});
  }
}

async function kubeadmState(c: Cluster): Promise<{ status: string; annotations: Record<string, string | undefined> }> {
  const cm = await c.core.readNamespacedConfigMap({ namespace: 'kube-system', name: 'kubeadm-config' });
  const annotations: Record<string, string | undefined> = {};
  for (const m of members) {
    const pod = await c.core.readNamespacedPod({ namespace: 'kube-system', name: `etcd-${m.name}` });
    annotations[m.name] = pod.metadata?.annotations?.[ANNOTATION];
  }
  return { status: cm.data?.ClusterStatus ?? '', annotations };
}

// ------------------------------------------------------------------------------------------- the cluster
before(async () => {
  binary = await ensureBinary();
  etcdctl = join(dirname(binary), 'etcdctl');
  dir = await mkdtemp(join(tmpdir(), 'nodecred-etcd-rb-'));
  const pki = join(dir, 'pki');
  [ca, otherCa] = await Promise.all([createCa(pki, 'etcd-ca', 'etcd-ca'), createCa(pki, 'other-ca', 'some-other-ca')]);
  // Everything the test needs, issued at once: the members', the runbook's client certificate, the
  // replacement's (a new machine at a new address) and two bad ones for it.
  const ips = { 'cp-a': '127.0.0.21', 'cp-b': '127.0.0.22', 'cp-c': '127.0.0.23' };
  const [memberPki, clientCert, freshCerts, noSan, rogue, learnerCerts, bystanderCerts] = await Promise.all([
    Promise.all(Object.entries(ips).map(([name, ip]) => memberCerts(ca, pki, name, ip))),
    issueCert(ca, pki, 'runbook-client', { cn: 'etcd-replace-member', usages: ['clientAuth'] }),
    memberCerts(ca, pki, 'cp-d', '127.0.0.24'),
    issueCert(ca, pki, 'cp-d-nosan-server', {
      cn: 'cp-d',
      sans: ['IP:127.0.0.99', 'IP:127.0.0.1'],
      usages: ['serverAuth', 'clientAuth'],
    }),
    memberCerts(otherCa, pki, 'cp-d-rogue', '127.0.0.24'),
    memberCerts(ca, pki, 'cp-e', '127.0.0.25'),
    memberCerts(ca, pki, 'cp-f', '127.0.0.26'),
  ]);
  client = clientCert;
  tls = readClientTls(ca.crt, client);
  for (const [i, [name, ip]] of Object.entries(ips).entries())
    members.push(await planMember(dir, name, ip, memberPki[i]!));
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  for (const m of members) startEtcd(binary, m, memberFlags(m, ca.crt, initialCluster, 'new'));
  await waitHealthy(members, tls);
  replacementCerts = freshCerts;
  replacement = await planMember(dir, 'cp-d', '127.0.0.24', replacementCerts);
  badCerts = { server: noSan, peer: rogue.peer };
  learner = await planMember(dir, 'cp-e', '127.0.0.25', learnerCerts);
  bystander = await planMember(dir, 'cp-f', '127.0.0.26', bystanderCerts);
  if (withCluster) {
    cluster = await loadCluster();
    await createKubeadmRecords(cluster);
  }
});

after(async () => {
  // Safety net: the last test asserts the same; this only makes sure nothing outlives a failed run.
  for (const m of [
    ...members,
    ...(replacement ? [replacement] : []),
    ...(learner ? [learner] : []),
    ...(bystander ? [bystander] : []),
  ])
    await killMember(m).catch(() => {});
  if (cluster) await deleteKubeadmRecords(cluster);
  if (dir && (await processesMentioning(dir)).length === 0) await rm(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------------------- the tests
test("the CA certificate as --cert is refused, with the seed's mistake explained; nothing is touched", async () => {
  const endpoints = members.map((m) => m.clientUrl).join(',');
  const seed = await runScript([
    '--endpoints',
    endpoints,
    '--cacert',
    ca.crt,
    '--cert',
    ca.crt,
    '--key',
    ca.key,
    '--etcdctl',
    etcdctl,
    '--dead-member',
    'cp-b',
    '--dry-run',
  ]);
  assert.equal(seed.code, 2, show(seed));
  assert.match(seed.stderr, /--cert \S+etcd-ca\.crt is the CA certificate given as --cacert, not a client certificate/);
  assert.match(seed.stderr, /CA private key/);
  assert.match(seed.stderr, /healthcheck-client\.crt/);
  assert.equal(seed.stderr.trim().split('\n').length, 1, 'one line');
  // A CA that is not --cacert is caught by its basicConstraints.
  const otherAsCert = await runScript([
    '--endpoints',
    endpoints,
    '--cacert',
    ca.crt,
    '--cert',
    otherCa.crt,
    '--key',
    otherCa.key,
    '--etcdctl',
    etcdctl,
    '--dead-member',
    'cp-b',
    '--dry-run',
  ]);
  assert.equal(otherAsCert.code, 2, show(otherAsCert));
  assert.match(otherAsCert.stderr, /is a CA certificate \(basicConstraints CA:TRUE\), not a client certificate/);
  assert.doesNotMatch(seed.stdout + otherAsCert.stdout, /members and health/, 'refused before talking to etcd');
  assert.equal((await memberList(members)).length, 3);
});

test('SIGKILL the leader; --dry-run prints every step and command and changes nothing', async () => {
  dead = await leader(members);
  survivors = members.filter((m) => m !== dead);
  await killMember(dead);
  await waitHealthy(survivors, tls); // a new leader is elected
  const before = await memberList(survivors);
  const deadId = before.find((r) => r.name === dead.name)!.id;
  const kubeadmBefore = cluster ? await kubeadmState(cluster) : undefined;

  const r = await runScript([
    ...replaceArgs(),
    '--new-member-certs',
    `${replacementCerts.server.crt},${replacementCerts.peer.crt}`,
    '--dry-run',
  ]);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, new RegExp(`${dead.name} +started +yes +unhealthy`), 'the table shows the dead member');
  assert.match(r.stdout, /2 of 3 voting members healthy; quorum is 2/);
  assert.match(r.stdout, new RegExp(`member remove ${deadId}\\n`));
  assert.match(r.stdout, new RegExp(`member add ${replacement.name} --peer-urls=${replacement.peerUrl}\\n`));
  assert.match(
    r.stdout,
    new RegExp(
      /nodecred check --cert \S+cp-d-server\.crt --cert \S+cp-d-peer\.crt --ca-file \S+etcd-ca\.crt /.source +
        /--min-valid 720h --expect-san 127\.0\.0\.24/.source,
    ),
  );
  assert.match(r.stdout, /--initial-cluster-state=existing/);
  assert.match(r.stdout, /dry run: nothing was changed/);
  if (cluster) {
    assert.match(r.stdout, new RegExp(`ClusterStatus: remove apiEndpoints\\.${dead.name}`));
    assert.match(
      r.stdout,
      new RegExp(`Pod kube-system/etcd-${dead.name}: remove annotation ${ANNOTATION}=${dead.clientUrl}`),
    );
    assert.deepEqual(await kubeadmState(cluster), kubeadmBefore, 'kubeadm records unchanged');
  } else {
    assert.match(r.stdout, /skipped: no --kubeconfig/);
  }
  assert.deepEqual(await memberList(survivors), before, 'member list unchanged');
});

test('a healthy member is not removed without --force', async () => {
  const victim = survivors[0]!;
  const r = await runScript([
    '--endpoints',
    survivors.map((m) => m.clientUrl).join(','),
    ...tlsFlags(),
    '--dead-member',
    victim.name,
    '--yes',
  ]);
  assert.equal(r.code, 1, show(r));
  assert.match(
    r.stderr,
    new RegExp(
      `member ${victim.name} \\([0-9a-f]+\\) answers health checks at ${victim.clientUrl}: ` +
        'it is not dead, refusing to remove it.*--force',
    ),
  );
  assert.equal((await memberList(survivors)).length, 3);
});

test('replacement certificates without the new address or from another CA stop the run, changing nothing', async () => {
  const r = await runScript([
    ...replaceArgs(),
    '--new-member-certs',
    `${badCerts.server.crt},${badCerts.peer.crt}`,
    '--yes',
  ]);
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /^etcd-replace-member: refusing member add: the new member's certificates failed the checks/);
  assert.match(r.stderr, /cp-d-nosan-server\.crt \(server\): invalid \(SAN 127\.0\.0\.24 missing\)/);
  assert.match(r.stderr, /cp-d-rogue-peer\.crt \(peer\): invalid \(does not chain to the given CA\)/);
  assert.match(r.stderr, /nothing was changed/);
  assert.match(r.stdout, /SAN 127\.0\.0\.24 missing/, "nodecred check's own table is shown");
  const rows = await memberList(survivors);
  assert.equal(rows.length, 3);
  assert.ok(
    rows.some((x) => x.name === dead.name),
    'the dead member is still listed',
  );
});

// The replacement is added with the flags the run prints.
test("the dead member is removed, kubeadm's records fixed, the replacement added; the cluster ends whole", async () => {
  const running = startScript([
    ...replaceArgs(),
    '--new-member-certs',
    `${replacementCerts.server.crt},${replacementCerts.peer.crt}`,
    '--yes',
    '--wait-timeout',
    '120s',
  ]);
  const { initialCluster, out } = await startFlags(running);
  assert.match(out, new RegExp(`^ {2}--name=${replacement.name}$`, 'm'));
  assert.match(out, /^ {2}--initial-cluster-state=existing$/m);
  assert.match(out, /must be empty or absent/);
  const entries = initialCluster.split(',').sort();
  assert.deepEqual(
    entries,
    [...survivors.map((m) => `${m.name}=${m.peerUrl}`), `${replacement.name}=${replacement.peerUrl}`].sort(),
    'survivors + the replacement, not the dead member',
  );

  startEtcd(binary, replacement, memberFlags(replacement, ca.crt, initialCluster, 'existing'));
  const r = await running.done;
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /certificates ok: signed by \S+etcd-ca\.crt, cover 127\.0\.0\.24, valid for at least 720h/);
  assert.match(r.stdout, /Member +[0-9a-f]+ removed from cluster/);
  assert.match(r.stdout, /done: 3 members, all healthy; cp-d has joined/);

  // Independent verification with etcdctl and the runbook's client certificate.
  const rows = await memberList([...survivors, replacement]);
  assert.deepEqual(rows.map((x) => x.name).sort(), [...survivors.map((m) => m.name), replacement.name].sort());
  assert.ok(
    rows.every((x) => x.status === 'started'),
    JSON.stringify(rows),
  );
  const health = await ctl([replacement], ['endpoint', 'health', '--cluster']);
  assert.equal(health.match(/ is healthy: /g)?.length, 3, health);

  if (cluster) {
    const k = await kubeadmState(cluster);
    assert.doesNotMatch(k.status, new RegExp(`^  ${dead.name}:`, 'm'), k.status);
    for (const m of survivors)
      assert.match(k.status, new RegExp(`^  ${m.name}:\\n    advertiseAddress: ${m.ip.replaceAll('.', '\\.')}$`, 'm'));
    assert.match(k.status, /^kind: ClusterStatus\n$/m);
    assert.equal(k.annotations[dead.name], undefined);
    for (const m of survivors) assert.equal(k.annotations[m.name], m.clientUrl);
    assert.match(
      r.stdout,
      new RegExp(`changed: kube-system/kubeadm-config ClusterStatus no longer lists ${dead.name}`),
    );
    assert.match(r.stdout, new RegExp(`changed: Pod kube-system/etcd-${dead.name} no longer advertises`));
  }
});

test('running the same command again changes nothing and confirms the cluster is whole', async () => {
  const r = await runScript([...replaceArgs(), '--yes', '--wait-timeout', '60s']);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, new RegExp(`remove: nothing — no member matches "${dead.name}" \\(already removed\\?\\)`));
  assert.match(r.stdout, /nothing to add: cp-d .* is already a member/);
  assert.match(r.stdout, /cp-d has already started/);
  assert.doesNotMatch(r.stdout, /Member [0-9a-f]+ (removed|added)/);
  assert.match(r.stdout, /done: 3 members, all healthy/);
  if (cluster) {
    assert.match(r.stdout, new RegExp(`no apiEndpoints entry for ${dead.name} \\(already removed\\)`));
    assert.match(
      r.stdout,
      new RegExp(`Pod kube-system/etcd-${dead.name}: no ${ANNOTATION} annotation \\(already removed\\)`),
    );
    // With neither record present the step is skipped with a note.
    await deleteKubeadmRecords(cluster);
    const none = await runScript([
      '--endpoints',
      replacement.clientUrl,
      ...tlsFlags(),
      '--dead-member',
      dead.name,
      '--kubeconfig',
      kubeconfigPath(),
      '--kubectl',
      kubectlPath(),
      '--dry-run',
    ]);
    assert.equal(none.code, 0, show(none));
    assert.match(
      none.stdout,
      new RegExp(
        /skipped: neither a ClusterStatus in kube-system\/kubeadm-config nor etcd Pods with the /.source +
          /kubeadm\.kubernetes\.io\/etcd\.advertise-client-urls annotation exist/.source,
      ),
    );
  }
});

test('--learner: the replacement joins without a vote, is promoted once in sync, the cluster ends whole', async () => {
  const [keep, victim] = [survivors[0]!, survivors[1]!];
  const live = [keep, replacement];
  await killMember(victim);
  await waitHealthy(live, tls);
  const running = startScript([
    '--endpoints',
    live.map((m) => m.clientUrl).join(','),
    ...tlsFlags(),
    '--dead-member',
    victim.name,
    '--new-name',
    learner.name,
    '--new-peer-url',
    learner.peerUrl,
    '--new-client-url',
    learner.clientUrl,
    '--learner',
    '--new-member-certs',
    `${learner.server.crt},${learner.peer.crt}`,
    '--yes',
    '--wait-timeout',
    '120s',
  ]);
  const { initialCluster, out } = await startFlags(running);
  assert.match(out, new RegExp(`member add ${learner.name} --peer-urls=${learner.peerUrl} --learner\\n`));
  assert.match(
    out,
    /as a learner; the cluster keeps 2 voting members \(quorum 2\) until it is promoted, then 3 \(quorum 2\)/,
  );
  const added = (await memberList(live)).find((x) => x.name === learner.name || x.peers === learner.peerUrl);
  assert.ok(added?.learner, `added as a learner: ${JSON.stringify(added)}`);

  startEtcd(binary, learner, memberFlags(learner, ca.crt, initialCluster, 'existing'));
  const r = await running.done;
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, new RegExp(`member promote ${added!.id}\\n`));
  assert.match(r.stdout, new RegExp(`promoted ${learner.name} \\(${added!.id}\\) from learner to voting member`));
  assert.match(r.stdout, /done: 3 members, all healthy; cp-e has joined/);

  const rows = await memberList([keep, replacement, learner]);
  assert.deepEqual(rows.map((x) => x.name).sort(), [keep.name, replacement.name, learner.name].sort());
  assert.ok(
    rows.every((x) => x.status === 'started' && !x.learner),
    JSON.stringify(rows),
  );
  const health = await ctl([learner], ['endpoint', 'health', '--cluster']);
  assert.equal(health.match(/ is healthy: /g)?.length, 3, health);
  survivors = [keep, replacement, learner];
});

// Someone else added the running learner; both refusals come before anything changes.
test("another's running learner is not removed as dead, a second learner is refused, changing nothing", async () => {
  const live = survivors;
  // A join in progress elsewhere: cp-f added as a learner by hand and started.
  // etcd refuses membership changes for a few seconds after a member became active ("unhealthy cluster").
  const added = await waitFor(
    'etcd to accept the learner add',
    async () =>
      ctl(live, ['member', 'add', bystander.name, `--peer-urls=${bystander.peerUrl}`, '--learner']).catch(
        (err: { stderr?: string }) => {
          if (/unhealthy cluster/.test(err.stderr ?? '')) return undefined;
          throw err;
        },
      ),
    30_000,
  );
  // etcdctl pads the hex ID to 16 columns with spaces ("Member   e94844e8bb9bc7 added").
  const id = /Member +([0-9a-f]+) added/.exec(added)?.[1];
  const initialCluster = /ETCD_INITIAL_CLUSTER="([^"]+)"/.exec(added)?.[1];
  assert.ok(id && initialCluster, added);
  try {
    startEtcd(binary, bystander, memberFlags(bystander, ca.crt, initialCluster, 'existing'));
    await waitFor(
      'the learner to answer endpoint status',
      async () =>
        await ctl([bystander], ['endpoint', 'status']).then(
          () => true,
          () => undefined,
        ),
      60_000,
    );
    const before = await memberList(live);

    const asDead = await runScript([
      '--endpoints',
      live.map((m) => m.clientUrl).join(','),
      ...tlsFlags(),
      '--dead-member',
      bystander.name,
      '--dry-run',
    ]);
    assert.equal(asDead.code, 1, show(asDead));
    assert.match(
      asDead.stderr,
      new RegExp(`member ${bystander.name} \\(${id}\\) is a running learner .*refusing to remove it.*--force`),
    );
    assert.match(asDead.stdout, /answers \(learner: no health check until promoted\)/);

    const second = await runScript([
      '--endpoints',
      live.map((m) => m.clientUrl).join(','),
      ...tlsFlags(),
      '--dead-member',
      'cp-gone',
      '--new-name',
      'cp-g',
      '--new-peer-url',
      'https://127.0.0.27:2380',
      '--learner',
      '--yes',
    ]);
    assert.equal(second.code, 1, show(second));
    assert.match(
      second.stderr,
      new RegExp(
        `member ${bystander.name} \\(${id}\\) is already a learner, ` +
          'and etcd allows one learner by default .*nothing was changed',
      ),
    );
    assert.deepEqual(await memberList(live), before, 'member list unchanged');
  } finally {
    await ctl(live, ['member', 'remove', id!]).catch(() => '');
    await killMember(bystander);
  }
  assert.equal((await memberList(live)).length, 3);
});

test('with a majority down the script refuses: the cluster has lost quorum', async () => {
  const [first, second, third] = survivors;
  await killMember(first!);
  await killMember(second!);
  const r = await runScript(['--endpoints', third!.clientUrl, ...tlsFlags(), '--dead-member', first!.name, '--yes']);
  assert.equal(r.code, 1, show(r));
  assert.match(
    r.stderr,
    /only 0 of 3 voting members are healthy and etcd needs 2 for quorum: the cluster has lost quorum/,
  );
  assert.match(r.stdout, /0 of 3 voting members healthy/, 'the member list still shows (serializable read)');
});

test('every etcd process the test started is gone', async () => {
  for (const m of [...members, replacement, learner, bystander]) await killMember(m);
  assert.deepEqual(
    [...members, replacement, learner, bystander]
      .filter((m) => m.pid !== undefined && isAlive(m.pid))
      .map((m) => m.name),
    [],
  );
  assert.deepEqual(await processesMentioning(dir), [], `no process still refers to ${dir}`);
});
