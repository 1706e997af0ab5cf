// `nodecred approve` against the real control plane: the approver runs as a child process with a service
// account token bound by deploy/approver-rbac.yaml (so these tests also prove that file is sufficient);
// nodes are real `nodecred bootstrap` runs whose client certificates submit the CSRs; kube-controller-manager
// signs what the approver approves. The attacks of issue 11 are submitted the way an attacker holding one
// node's identity would: with that node's own client certificate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  AuthorizationV1Api,
  CertificatesV1Api,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  type V1CertificateSigningRequest,
  type V1CertificateSigningRequestCondition,
} from '@kubernetes/client-node';
import {
  testCluster,
  waitForCertificate,
  createBootstrapToken,
  ensureBootstrapRbac,
  createNode,
  setNodeAddresses,
  uniqueName,
  waitFor,
  whoAmI,
  tokenKubeConfig,
  StopWaiting,
  type TestCluster,
} from '../helpers/cluster.ts';
import { newNodeDir, runNodecred, writeKubeconfig, NODECRED, REPO, type NodeDir } from '../helpers/node.ts';
import { startApiEndpoint } from '../helpers/api-endpoint.ts';
import { API_SERVER_EXTERNAL_NAME } from '../../scripts/lib/pki.ts';
import { CONTROL_PLANE_LABEL } from '../../src/approver/names.ts';
import { parseCertificatePem } from '../../src/pki/cert.ts';
import { X509Certificate } from 'node:crypto';
import { buildCsrPem, nodeSubject, type CsrRequest } from '../../src/pki/csr.ts';
import { generateKey } from '../../src/pki/keys.ts';
import {
  extensionRequest,
  nodeName,
  requestInfo,
  sanExtension,
  signRequest,
  smuggledSanRequest,
  toPem,
  type San,
} from '../helpers/der-builder.ts';

const SERVING = 'kubernetes.io/kubelet-serving';
const LEASE = { namespace: 'kube-system', name: 'nodecred-approver' };
/** Node names of this file: the approvers under test decide only these, whatever else shares the cluster. */
const NODE_PREFIX = 'apprv';
/**
 * The policy every approver here runs with: the node network, each node's own single-label name ("*", as a
 * kubelet asks for its host name) and "<node>.apprv.example" names.
 */
const NODE_CIDR = '10.20.0.0/16';
const DNS_SUFFIX = 'apprv.example';
/** An address in NODE_CIDR no other Node of this run (or of an earlier run on the same cluster) has. */
const freshIp = () => `10.20.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

let workDir: string;
let approverKubeconfig: string;
let approverToken: string;

before(async () => {
  const c = testCluster();
  workDir = await mkdtemp(join(tmpdir(), 'nodecred-approver-test-'));
  await c.kubectl(['apply', '-f', join(REPO, 'deploy/approver-rbac.yaml')]);
  const tr = await c.core.createNamespacedServiceAccountToken({
    name: 'nodecred-approver',
    namespace: 'kube-system',
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  assert.ok(tr.status?.token, 'TokenRequest returned a token');
  approverToken = tr.status.token;
  approverKubeconfig = await writeKubeconfig(join(workDir, 'approver.kubeconfig'), c, { token: approverToken });
  assert.equal(
    (await whoAmI(tokenKubeConfig(c, approverToken))).username,
    'system:serviceaccount:kube-system:nodecred-approver',
  );
  await ensureBootstrapRbac(c);
});

// ── the approver as a child process ────────────────────────────────────────────────────────────────

interface Approver {
  child: ChildProcess;
  identity: string;
  metricsAddress: string;
  output(): string;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  metrics(): Promise<string>;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

async function approverConfig(fields: Record<string, unknown> = {}): Promise<string> {
  const path = join(workDir, `${uniqueName('config')}.yaml`);
  await writeFile(
    path,
    stringify({
      apiVersion: 'nodecred.io/v1alpha1',
      kind: 'ApproverConfiguration',
      nodeNamePattern: `${NODE_PREFIX}-[0-9a-f]{8}`,
      resyncInterval: '3s',
      allowedCidrs: [NODE_CIDR],
      dnsPatterns: ['*', `*.${DNS_SUFFIX}`],
      ...fields,
    }),
  );
  return path;
}

const running = new Set<Approver>();

async function startApprover(config: string, kubeconfig = approverKubeconfig): Promise<Approver> {
  const child = spawn(
    NODECRED,
    ['approve', '--kubeconfig', kubeconfig, '--config', config, '--metrics-listen', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const waitForLog = (pattern: RegExp, timeoutMs = 30_000) =>
    waitFor(
      `approver log matching ${pattern}`,
      async () => {
        const m = pattern.exec(out);
        if (m) return m[0];
        if (child.exitCode !== null)
          throw new StopWaiting(`approver exited (${child.exitCode}); output:\n${out.slice(-2000)}`);
        return undefined;
      },
      timeoutMs,
    );
  const a: Approver = {
    child,
    identity: '',
    metricsAddress: '',
    output: () => out,
    waitForLog,
    metrics: async () => (await fetch(`http://${a.metricsAddress}/metrics`)).text(),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await exited;
      running.delete(a);
      return code;
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
      running.delete(a);
    },
  };
  running.add(a);
  const line = await waitForLog(/\{[^\n]*"msg":"nodecred approver running"\}/);
  const parsed = JSON.parse(line) as { identity: string; metrics: string };
  a.identity = parsed.identity;
  a.metricsAddress = parsed.metrics;
  return a;
}

/** Stops what a failed test left running, and checks no log line carried a certificate, key or token. */
async function stopAll(): Promise<void> {
  for (const a of [...running]) await a.kill();
}

function assertNoSecrets(a: Approver): void {
  const out = a.output();
  assert.doesNotMatch(out, /BEGIN|PRIVATE KEY|LS0tLS1CRUdJTi/, 'no certificate, key or CSR body in the logs');
  assert.ok(!out.includes(approverToken), 'the token never reaches the logs');
}

// ── nodes and CSRs ─────────────────────────────────────────────────────────────────────────────────

interface TestNode extends NodeDir {
  /** The node's own identity (its client certificate), for submitting CSRs as the node. */
  certificates: CertificatesV1Api;
  core: CoreV1Api;
}

type Addresses = Array<{ type: string; address: string }>;

/** createNode, retrying the status write when a controller touched the new Node first (409). */
async function createNodeWithAddresses(
  c: TestCluster,
  name: string,
  addresses: Array<{ type: string; address: string }>,
): Promise<void> {
  try {
    await createNode(c, name, addresses);
  } catch (err) {
    if ((err as { code?: number }).code !== 409) throw err;
    await waitFor(
      `addresses on Node ${name}`,
      async () => {
        await setNodeAddresses(c, name, addresses);
        return true;
      },
      10_000,
    );
  }
}

/** A node with a client certificate from `nodecred bootstrap`, and (unless addresses is null) a Node object. */
async function bootstrappedNode(
  c: TestCluster,
  addresses: Addresses | ((name: string) => Addresses) | null,
  extraFlags: string[] = [],
  name?: string,
): Promise<TestNode> {
  const dir = await newNodeDir(NODE_PREFIX);
  // A bootstrap-token holder names its node as it likes: kube-controller-manager signs any system:node:<name>.
  const node = name ? { ...dir, name, flags: dir.flags.map((f) => (f === dir.name ? name : f)) } : dir;
  if (addresses)
    await createNodeWithAddresses(c, node.name, typeof addresses === 'function' ? addresses(node.name) : addresses);
  const token = await createBootstrapToken(c);
  const bootstrap = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
  const r = await runNodecred(['bootstrap', '--bootstrap-kubeconfig', bootstrap, ...extraFlags, ...node.flags]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const kc = new KubeConfig();
  kc.loadFromFile(node.kubeconfig);
  return { ...node, certificates: kc.makeApiClient(CertificatesV1Api), core: kc.makeApiClient(CoreV1Api) };
}

/** Submits a serving CSR with the node's own client certificate; returns its name. */
async function submitServingCsr(
  node: TestNode,
  request: Partial<CsrRequest>,
  opts: { usages?: string[]; expirationSeconds?: number } = {},
): Promise<string> {
  const { privateKey } = await generateKey('ecdsa-p256');
  return submitPem(node, await buildCsrPem(privateKey, { ...nodeSubject(node.name), ...request }), opts);
}

async function submitPem(
  node: TestNode,
  pem: string,
  opts: { usages?: string[]; expirationSeconds?: number } = {},
): Promise<string> {
  const name = uniqueName(`${node.name}-serving`);
  await node.certificates.createCertificateSigningRequest({
    body: {
      metadata: { name },
      spec: {
        request: Buffer.from(pem).toString('base64'),
        signerName: SERVING,
        usages: opts.usages ?? ['digital signature', 'server auth'],
        ...(opts.expirationSeconds ? { expirationSeconds: opts.expirationSeconds } : {}),
      },
    },
  });
  return name;
}

/** A serving CSR for SANs nodecred's own CSR builder refuses to write (wildcards), encoded by hand. */
async function submitRawSans(node: TestNode, sans: San[]): Promise<string> {
  const { privateKey } = await generateKey('ecdsa-p256');
  const info = requestInfo(privateKey, nodeName(node.name), [extensionRequest(sanExtension(sans))]);
  return submitPem(node, toPem(signRequest(info, privateKey)));
}

function decisionOf(csr: V1CertificateSigningRequest): V1CertificateSigningRequestCondition | undefined {
  return csr.status?.conditions?.find((x) => (x.type === 'Approved' || x.type === 'Denied') && x.status === 'True');
}

async function waitForDecision(
  c: TestCluster,
  name: string,
  timeoutMs = 30_000,
): Promise<V1CertificateSigningRequestCondition> {
  return waitFor(
    `a decision on CSR ${name}`,
    async () => decisionOf(await c.certificates.readCertificateSigningRequest({ name })),
    timeoutMs,
  );
}

/** The Events on a CSR; the approver records them after its decision, so wait until there is one. */
async function eventsFor(c: TestCluster, csr: string) {
  return waitFor(
    `an Event on CSR ${csr}`,
    async () => {
      const list = await c.core.listNamespacedEvent({
        namespace: 'default',
        fieldSelector: `involvedObject.name=${csr}`,
      });
      return list.items.length ? list.items : undefined;
    },
    30_000,
  );
}

async function leaseHolder(c: TestCluster): Promise<string> {
  const lease = await c.admin.makeApiClient(CoordinationV1Api).readNamespacedLease(LEASE);
  return lease.spec?.holderIdentity ?? '';
}

function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

// ── tests ────────────────────────────────────────────────────────────────────────────────────────────

test('approve: `bootstrap --rotate-server-certificates` gets its serving certificate via the approver', async () => {
  const c = testCluster();
  const approver = await startApprover(await approverConfig());
  let node: TestNode | undefined;
  const ip = freshIp();
  try {
    await approver.waitForLog(/"msg":"became leader"/);
    assert.equal(await leaseHolder(c), approver.identity);
    // As a kubelet's Node: its name as Hostname, a DNS name of its own under the allowed suffix, its IP.
    node = await bootstrappedNode(
      c,
      (name) => [
        { type: 'InternalIP', address: ip },
        { type: 'Hostname', address: name },
        { type: 'InternalDNS', address: `${name}.${DNS_SUFFIX}` },
      ],
      ['--rotate-server-certificates'],
    );

    const csrs = (await c.certificates.listCertificateSigningRequest()).items.filter(
      (x) => x.spec.signerName === SERVING && x.spec.username === `system:node:${node!.name}`,
    );
    assert.equal(csrs.length, 1, 'one serving CSR');
    const csr = csrs[0]!;
    const approved = decisionOf(csr)!;
    assert.equal(approved.type, 'Approved');
    assert.equal(approved.reason, 'AutoApproved');
    assert.equal(
      approved.message,
      `kubelet serving certificate for node ${node.name}; SANs ${node.name}, ${node.name}.${DNS_SUFFIX}, ${ip} ` +
        "are within policy and no other Node's",
    );
    assert.ok(csr.status?.certificate, 'issued by kube-controller-manager');

    const events = await eventsFor(c, csr.metadata!.name!);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.reason, 'AutoApproved');
    assert.equal(events[0]!.type, 'Normal');
    assert.equal(events[0]!.involvedObject.kind, 'CertificateSigningRequest');
    assert.equal(events[0]!.reportingInstance, approver.identity);

    const metrics = await approver.metrics();
    assert.equal(
      metricValue(metrics, 'nodecred_approver_decisions_total{decision="approve",reason="AutoApproved"}'),
      1,
    );
    assert.equal(metricValue(metrics, 'nodecred_approver_leader'), 1);
    assert.equal(metricValue(metrics, 'nodecred_approver_decision_duration_seconds_count{decision="approve"}'), 1);
    assert.equal((await fetch(`http://${approver.metricsAddress}/healthz`)).status, 200);
    assert.match(approver.output(), new RegExp(`"csr":"${csr.metadata!.name}".*"msg":"approved CSR"`));
  } finally {
    assert.equal(await approver.stop(), 0, 'graceful exit on SIGTERM');
    await stopAll();
    await node?.cleanup();
  }
  assertNoSecrets(approver);
  assert.equal(await leaseHolder(c), '', 'the lease is released on SIGTERM');
});

test('deny: an IP outside allowedCidrs, and a CN naming another node, each with its reason', async () => {
  const c = testCluster();
  const approver = await startApprover(await approverConfig());
  let node: TestNode | undefined;
  try {
    const ip = freshIp();
    node = await bootstrappedNode(c, [{ type: 'InternalIP', address: ip }]);
    const foreignSan = await submitServingCsr(node, { ipAddresses: [ip, '10.99.99.99'] });

    // NodeRestriction (enabled here) already stops a node identity from asking for another node's CN...
    await assert.rejects(
      submitServingCsr(node, { commonName: 'system:node:apprv-00000000', ipAddresses: [ip] }),
      /can only create a node CSR with CN=system:node:/,
    );
    // ...so reach the approver as a cluster without it would: a requester named like the node but not in
    // system:nodes (impersonated by the admin; system:bootstrappers may create CSRs).
    const foreignCn = uniqueName(`${node.name}-cn`);
    const { privateKey } = await generateKey('ecdsa-p256');
    const pem = await buildCsrPem(privateKey, { ...nodeSubject('apprv-00000000'), ipAddresses: [ip] });
    await c.kubectl(
      ['create', '-f', '-', `--as=system:node:${node.name}`, '--as-group=system:bootstrappers'],
      JSON.stringify({
        apiVersion: 'certificates.k8s.io/v1',
        kind: 'CertificateSigningRequest',
        metadata: { name: foreignCn },
        spec: {
          request: Buffer.from(pem).toString('base64'),
          signerName: SERVING,
          usages: ['digital signature', 'server auth'],
        },
      }),
    );

    const san = await waitForDecision(c, foreignSan);
    assert.equal(san.type, 'Denied');
    assert.equal(san.reason, 'IPNotInAllowedCIDRs');
    assert.equal(san.message, `IP:10.99.99.99 is outside allowedCidrs ${NODE_CIDR}`);

    const cn = await waitForDecision(c, foreignCn);
    assert.equal(cn.type, 'Denied');
    assert.equal(cn.reason, 'CommonNameMismatch');
    assert.equal(cn.message, `subject CN system:node:apprv-00000000 is not the requester system:node:${node.name}`);

    const [event] = await eventsFor(c, foreignSan);
    assert.equal(event!.type, 'Warning');
    assert.equal(event!.reason, 'IPNotInAllowedCIDRs');
    const metrics = await approver.metrics();
    assert.equal(
      metricValue(metrics, 'nodecred_approver_decisions_total{decision="deny",reason="IPNotInAllowedCIDRs"}'),
      1,
    );
    assert.equal(
      metricValue(metrics, 'nodecred_approver_decisions_total{decision="deny",reason="CommonNameMismatch"}'),
      1,
    );
    assert.match(approver.output(), /"reason":"IPNotInAllowedCIDRs".*"msg":"denied CSR"/);
  } finally {
    assert.equal(await approver.stop(), 0);
    await stopAll();
    await node?.cleanup();
  }
  assertNoSecrets(approver);
});

test('leader election: of two approvers only the leader decides; when it is killed the other takes over', async () => {
  const c = testCluster();
  const config = await approverConfig();
  const [a, b] = await Promise.all([startApprover(config), startApprover(config)]);
  let node: TestNode | undefined;
  try {
    const holder = await waitFor('a lease holder among the two', async () => {
      const h = await leaseHolder(c);
      return h === a.identity || h === b.identity ? h : undefined;
    });
    const [leader, follower] = holder === a.identity ? [a, b] : [b, a];
    await follower.waitForLog(/"msg":"waiting for the lease"/);
    assert.equal(metricValue(await leader.metrics(), 'nodecred_approver_leader'), 1);
    assert.equal(metricValue(await follower.metrics(), 'nodecred_approver_leader'), 0);

    const ip = freshIp();
    node = await bootstrappedNode(c, [{ type: 'InternalIP', address: ip }]);
    const submittedAt = Date.now();
    const first = await submitServingCsr(node, { ipAddresses: [ip] });
    assert.equal((await waitForDecision(c, first)).type, 'Approved');
    process.stderr.write(`# submit → Approved seen by a poller: ${Date.now() - submittedAt} ms\n`);
    assert.deepEqual(
      (await eventsFor(c, first)).map((e) => e.reportingInstance),
      [leader.identity],
    );
    assert.match(leader.output(), new RegExp(`"csr":"${first}".*"msg":"approved CSR"`));
    assert.ok(!follower.output().includes(first), 'the follower never touched the CSR');

    // A crash: no release, so the follower waits out the lease duration (15 s) before it takes over.
    const killedAt = Date.now();
    await leader.kill();
    await waitFor(
      'the follower to hold the lease',
      async () => ((await leaseHolder(c)) === follower.identity ? true : undefined),
      40_000,
    );
    const takeoverMs = Date.now() - killedAt;
    assert.ok(takeoverMs >= 10_000, `took over after ${takeoverMs} ms: not before the lease could have expired`);
    await follower.waitForLog(/"msg":"became leader"/);

    const second = await submitServingCsr(node, { ipAddresses: [ip] });
    assert.equal((await waitForDecision(c, second)).type, 'Approved');
    assert.deepEqual(
      (await eventsFor(c, second)).map((e) => e.reportingInstance),
      [follower.identity],
    );
    assert.equal(metricValue(await follower.metrics(), 'nodecred_approver_leader'), 1);
    process.stderr.write(`# leader takeover after SIGKILL: ${takeoverMs} ms\n`);
  } finally {
    for (const x of [a, b])
      if (x.child.exitCode === null && x.child.signalCode === null) assert.equal(await x.stop(), 0);
    await stopAll();
    await node?.cleanup();
  }
  assertNoSecrets(a);
  assertNoSecrets(b);
  assert.equal(await leaseHolder(c), '');
});

test('CSRs submitted while no approver runs are decided once one starts', async () => {
  const c = testCluster();
  const ip = freshIp();
  const node = await bootstrappedNode(c, (name) => [
    { type: 'InternalIP', address: ip },
    { type: 'InternalDNS', address: `${name}.${DNS_SUFFIX}` },
  ]);
  let approver: Approver | undefined;
  try {
    const good = await submitServingCsr(node, { ipAddresses: [ip], dnsNames: [`${node.name}.${DNS_SUFFIX}`] });
    const clientAuth = await submitServingCsr(
      node,
      { ipAddresses: [ip] },
      { usages: ['digital signature', 'server auth', 'client auth'] },
    );
    const pending = await c.certificates.readCertificateSigningRequest({ name: good });
    assert.equal(decisionOf(pending), undefined, 'nobody decided it yet');

    approver = await startApprover(await approverConfig());
    // The start-up line says when deciding starts and counts what was waiting (benchmarks start from it).
    const synced = JSON.parse(await approver.waitForLog(/\{[^\n]*"msg":"caches synced; deciding CSRs"\}/)) as {
      csrs: number;
      pending: number;
      nodes: number;
      ms: number;
    };
    assert.ok(synced.pending >= 2 && synced.csrs >= synced.pending && synced.nodes >= 1, JSON.stringify(synced));
    assert.equal((await waitForDecision(c, good)).type, 'Approved');
    // The decision's line says where its time went: the SubjectAccessReview, the approval write.
    const approved = JSON.parse(
      await approver.waitForLog(new RegExp(`\\{[^\\n]*"csr":"${good}"[^\\n]*"msg":"approved CSR"\\}`)),
    ) as { ms: number; reviewMs: number; writeMs: number };
    assert.ok(approved.reviewMs > 0 && approved.writeMs > 0, JSON.stringify(approved));
    // Each is rounded to a tenth of a millisecond.
    assert.ok(approved.reviewMs + approved.writeMs <= approved.ms + 0.2, JSON.stringify(approved));
    const out = approver.output();
    assert.ok(out.indexOf('caches synced') < out.indexOf(`"csr":"${good}"`), 'no decision before the caches synced');
    const denied = await waitForDecision(c, clientAuth);
    assert.equal(denied.type, 'Denied');
    assert.equal(denied.reason, 'DisallowedUsages');
    assert.match(denied.message!, /not allowed: client auth/);
    await waitFor('the certificate', async () =>
      (await c.certificates.readCertificateSigningRequest({ name: good })).status?.certificate ? true : undefined,
    );
  } finally {
    if (approver) assert.equal(await approver.stop(), 0);
    await stopAll();
    await node.cleanup();
  }
  assertNoSecrets(approver!);
});

// While it waits, the approver records an Event.
test('onUnknownNode leave-pending: a CSR from a node with no Node object waits; approved once it exists', async () => {
  const c = testCluster();
  const node = await bootstrappedNode(c, null);
  const approver = await startApprover(await approverConfig({ onUnknownNode: 'leave-pending' }));
  try {
    const ip = freshIp();
    const name = await submitServingCsr(node, { ipAddresses: [ip] });
    await approver.waitForLog(new RegExp(`"csr":"${name}","reason":"NodeNotFound".*"msg":"left CSR pending"`));
    const [event] = await waitFor('the left-pending Event', async () => {
      const events = await eventsFor(c, name);
      return events.length ? events : undefined;
    });
    assert.equal(event!.reason, 'NodeNotFound');
    assert.match(event!.message!, /^left pending: Node apprv-[0-9a-f]{8} does not exist/);
    assert.equal(decisionOf(await c.certificates.readCertificateSigningRequest({ name })), undefined);

    await createNodeWithAddresses(c, node.name, [{ type: 'InternalIP', address: ip }]);
    assert.equal((await waitForDecision(c, name, 20_000)).type, 'Approved', 'approved at the next resync');
    assert.equal(
      approver.output().match(/"msg":"left CSR pending"/g)?.length,
      1,
      'announced once, not at every resync',
    );
  } finally {
    assert.equal(await approver.stop(), 0);
    await stopAll();
    await node.cleanup();
  }
  assertNoSecrets(approver);
});

// ── issue 11: names a node does not own ──────────────────────────────────────────────────────────────

/**
 * A Denied decision with `reason`, its Event, and no certificate: the signer never signs a denied CSR. The
 * condition (which the node reads) says `message`; the Event (which nodes cannot read) `eventMessage`.
 */
async function assertDenied(
  c: TestCluster,
  name: string,
  reason: string,
  message: RegExp,
  eventMessage?: RegExp,
): Promise<void> {
  const decision = await waitForDecision(c, name);
  assert.equal(decision.type, 'Denied', `${name}: ${decision.reason} ${decision.message}`);
  assert.equal(decision.reason, reason, decision.message);
  assert.match(decision.message!, message);
  const csr = await c.certificates.readCertificateSigningRequest({ name });
  assert.equal(csr.status?.certificate, undefined, 'no certificate issued');
  assert.deepEqual(
    (csr.status?.conditions ?? []).map((x) => x.type),
    ['Denied'],
  );
  const [event] = await eventsFor(c, name);
  assert.equal(event!.reason, reason);
  if (eventMessage) assert.match(event!.message!, eventMessage);
}

// Submitted with a node's own client certificate, as in issue 11.
test('issue 11: crafted and over-reaching serving CSRs a node submits are denied, each naming its cause', async (t) => {
  const c = testCluster();
  // Another API server of an HA control plane, as its EndpointSlice reconciler would publish it, with a
  // name of its own in its certificate.
  const otherApiName = `${uniqueName('k8s-api-2')}.${DNS_SUFFIX}`;
  const otherApi = await startApiEndpoint(c, [otherApiName]);
  t.after(() => otherApi.close());
  const approver = await startApprover(await approverConfig({ dnsPatterns: ['*', `*.${DNS_SUFFIX}`, otherApiName] }));
  let node: TestNode | undefined;
  try {
    const ip = freshIp();
    const neighbourIp = freshIp();
    const neighbour = uniqueName(NODE_PREFIX);
    await createNodeWithAddresses(c, neighbour, [{ type: 'InternalIP', address: neighbourIp }]);
    node = await bootstrappedNode(c, [{ type: 'InternalIP', address: ip }]);

    // The request that got DNS:kubernetes.default.svc signed: @peculiar/x509 read only IP:<own>.
    const { privateKey } = await generateKey('ecdsa-p256');
    const smuggled = await submitPem(
      node,
      toPem(smuggledSanRequest(privateKey, node.name, ip, 'kubernetes.default.svc')),
    );
    const neighbours = await submitServingCsr(node, { ipAddresses: [ip, neighbourIp] });
    const wildcard = await submitRawSans(node, [{ dns: `*.${DNS_SUFFIX}` }, { ip }]);
    const clusterName = await submitServingCsr(node, { dnsNames: ['kubernetes.default.svc'], ipAddresses: [ip] });
    const serviceIp = await submitServingCsr(node, { ipAddresses: [ip, '10.96.0.1'] });
    const apiServerIp = await submitServingCsr(node, { ipAddresses: [otherApi.address] });
    const apiServerName = await submitServingCsr(node, { dnsNames: [otherApiName] });

    await assertDenied(
      c,
      smuggled,
      'NonCanonicalDER',
      /^not canonical DER at attributes\[0\]\.type: OBJECT IDENTIFIER not minimally encoded$/,
    );
    // The node learns that the address is taken, not by whom; the Event (nodes cannot read Events) says who.
    await assertDenied(
      c,
      neighbours,
      'SANClaimedByAnotherNode',
      new RegExp(`^IP:${neighbourIp} is claimed by another Node$`),
      new RegExp(`^IP:${neighbourIp} is claimed by Node ${neighbour}$`),
    );
    await assertDenied(c, wildcard, 'InvalidDNSName', /^DNS:\*\.apprv\.example has a "\*"/);
    await assertDenied(c, clusterName, 'SANReservedForCluster', /^DNS:kubernetes\.default\.svc is a Service name/);
    await assertDenied(
      c,
      serviceIp,
      'SANReservedForCluster',
      /^IP:10\.96\.0\.1 is reserved for the cluster$/,
      /^IP:10\.96\.0\.1 is an address of the API server$/,
    );
    await assertDenied(
      c,
      apiServerIp,
      'SANReservedForCluster',
      new RegExp(`^IP:${otherApi.address} is reserved for the cluster$`),
      new RegExp(`^IP:${otherApi.address} is an API server's advertise address$`),
    );
    // Read from that API server's certificate (a TLS handshake to the EndpointSlice address).
    await assertDenied(
      c,
      apiServerName,
      'SANReservedForCluster',
      new RegExp(`^DNS:${otherApiName} is reserved for the cluster$`),
      /is a name of the API server \(its serving certificate/,
    );
    assert.match(approver.output(), /"reason":"NonCanonicalDER","detail":"not canonical DER at attributes\[0\]\.type/);

    // status.addresses is not proof: the node writes its neighbour's IP into its own status (NodeRestriction
    // allows that) and asks again; the neighbour's claim still stands.
    const own = await node.core.readNode({ name: node.name });
    own.status!.addresses = [...(own.status?.addresses ?? []), { type: 'InternalIP', address: neighbourIp }];
    await node.core.replaceNodeStatus({ name: node.name, body: own });
    const again = await submitServingCsr(node, { ipAddresses: [neighbourIp] });
    await assertDenied(
      c,
      again,
      'SANClaimedByAnotherNode',
      /claimed by another Node$/,
      new RegExp(`Node ${neighbour}$`),
    );

    // What the node does own still gets signed.
    const legitimate = await submitServingCsr(node, { dnsNames: [node.name], ipAddresses: [ip] });
    assert.equal((await waitForDecision(c, legitimate)).type, 'Approved');
    await waitForCertificate(c, legitimate);
  } finally {
    assert.equal(await approver.stop(), 0);
    await stopAll();
    await node?.cleanup();
  }
  assertNoSecrets(approver);
});

test('a node cannot read the Events that name other Nodes (Node authorization and the default RBAC)', async () => {
  const c = testCluster();
  const authorization = c.admin.makeApiClient(AuthorizationV1Api);
  for (const verb of ['get', 'list', 'watch']) {
    const review = await authorization.createSubjectAccessReview({
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: `system:node:${NODE_PREFIX}-00000000`,
          groups: ['system:nodes', 'system:authenticated'],
          resourceAttributes: { verb, resource: 'events', namespace: 'default' },
        },
      },
    });
    assert.equal(review.status?.allowed, false, `${verb} events: ${review.status?.reason}`);
  }
});

// Whoever holds a bootstrap token picks its node's name.
test("review: a node named after the API server's external name gets nothing for it", async (t) => {
  const c = testCluster();
  // The reviewer's reproduction, against the real control plane: a node name chosen by the token holder
  // (kube-controller-manager's nodeclient approval signs any system:node:<name>), a Node of that name, and
  // a policy of the node network and *.compute.internal. Plus the operator's reserved VIP and name, and the
  // test API server's own external name, which only its certificate tells.
  const vip = freshIp();
  const approver = await startApprover(
    await approverConfig({
      nodeNamePattern: `(${NODE_PREFIX}|k8s-api)-[0-9a-f]{8}(\\.example\\.com)?`,
      dnsPatterns: ['*.compute.internal', API_SERVER_EXTERNAL_NAME, `vip.${DNS_SUFFIX}`],
      reservedNames: [`vip.${DNS_SUFFIX}`],
      reservedCidrs: [`${vip}/32`],
    }),
  );
  t.after(stopAll);
  const ip = freshIp();
  const name = `${uniqueName('k8s-api')}.example.com`;
  t.after(() => c.core.deleteNode({ name }).catch(() => undefined));
  const node = await bootstrappedNode(c, [{ type: 'InternalIP', address: ip }], [], name);
  try {
    const ownName = await submitServingCsr(node, { dnsNames: [name] });
    await assertDenied(
      c,
      ownName,
      'DNSNameNotAllowed',
      new RegExp(`^DNS:${name.replaceAll('.', '\\.')} is the node's own name, but not allowed by dnsPatterns`),
    );
    const external = await submitServingCsr(node, { dnsNames: [API_SERVER_EXTERNAL_NAME] });
    await assertDenied(
      c,
      external,
      'SANReservedForCluster',
      /^DNS:api\.nodecred\.test is reserved for the cluster$/,
      /^DNS:api\.nodecred\.test is a name of the API server \(its serving certificate/,
    );
    const vipName = await submitServingCsr(node, { dnsNames: [`vip.${DNS_SUFFIX}`] });
    await assertDenied(c, vipName, 'SANReservedForCluster', /reserved for the cluster$/, /in reservedNames/);
    const vipIp = await submitServingCsr(node, { ipAddresses: [vip] });
    await assertDenied(c, vipIp, 'SANReservedForCluster', /reserved for the cluster$/, /in reservedCidrs/);
    // Its own address inside allowedCidrs is still its to have.
    const address = await submitServingCsr(node, { ipAddresses: [ip] });
    assert.equal((await waitForDecision(c, address)).type, 'Approved');
  } finally {
    assert.equal(await approver.stop(), 0);
    await node.cleanup();
  }
  assertNoSecrets(approver);
});

test('review: a control-plane kubelet gets its name and advertise address once an admin labels its Node', async (t) => {
  const c = testCluster();
  // A kubeadm control-plane host: its API server advertises the host's address (EndpointSlice) and holds
  // the host's name and address in its certificate; the kubelet asks for exactly those.
  const cpName = uniqueName(NODE_PREFIX);
  const api = await startApiEndpoint(c, [cpName, `k8s-api-${cpName}.${DNS_SUFFIX}`]);
  t.after(() => api.close());
  t.after(stopAll);
  const hostCidr = `${api.address}/${api.address.includes(':') ? 128 : 32}`;
  const approver = await startApprover(await approverConfig({ allowedCidrs: [NODE_CIDR, hostCidr] }));
  const cp = await bootstrappedNode(
    c,
    [
      { type: 'InternalIP', address: api.address },
      { type: 'Hostname', address: cpName },
    ],
    [],
    cpName,
  );
  const worker = await bootstrappedNode(c, [{ type: 'InternalIP', address: freshIp() }]);
  try {
    const before = await submitServingCsr(cp, { dnsNames: [cpName], ipAddresses: [api.address] });
    await assertDenied(c, before, 'SANReservedForCluster', /reserved for the cluster/, /advertise address|API server/);

    // NodeRestriction: the kubelet cannot label itself (verified here, not assumed).
    const self = await cp.core.readNode({ name: cpName });
    self.metadata!.labels = { ...(self.metadata?.labels ?? {}), [CONTROL_PLANE_LABEL]: '' };
    await assert.rejects(
      cp.core.replaceNode({ name: cpName, body: self }),
      (err: unknown) =>
        (err as { code?: number }).code === 403 &&
        /not allowed to modify labels/.test(String((err as { body?: unknown }).body)),
    );
    await c.kubectl(['label', 'node', cpName, `${CONTROL_PLANE_LABEL}=`]);

    const labelled = await waitFor('the approval once the label is seen', async () => {
      const name = await submitServingCsr(cp, { dnsNames: [cpName], ipAddresses: [api.address] });
      const d = await waitForDecision(c, name);
      return d.type === 'Approved' ? name : undefined;
    });
    const cert = parseCertificatePem(await waitForCertificate(c, labelled));
    assert.deepEqual([cert.dnsNames, cert.ipAddresses], [[cpName], [api.address]], 'signed by the real signer');

    // Nothing more: the API server's other name, and the same address for a worker, stay reserved.
    const otherName = await submitServingCsr(cp, { dnsNames: [`k8s-api-${cpName}.${DNS_SUFFIX}`] });
    await assertDenied(c, otherName, 'SANReservedForCluster', /reserved for the cluster/);
    const workerAsks = await submitServingCsr(worker, { ipAddresses: [api.address] });
    await assertDenied(c, workerAsks, 'SANReservedForCluster', /reserved for the cluster/);
  } finally {
    assert.equal(await approver.stop(), 0);
    await cp.cleanup();
    await worker.cleanup();
  }
  assertNoSecrets(approver);
});

test('maxLifetime: a CSR without spec.expirationSeconds is denied; one within it is signed for that long', async () => {
  const c = testCluster();
  const approver = await startApprover(await approverConfig({ maxLifetime: '24h' }));
  const ip = freshIp();
  const node = await bootstrappedNode(c, [{ type: 'InternalIP', address: ip }]);
  try {
    const unlimited = await submitServingCsr(node, { ipAddresses: [ip] });
    await assertDenied(c, unlimited, 'ExpirationSecondsRequired', /maxLifetime is 86400 s/);
    const tooLong = await submitServingCsr(node, { ipAddresses: [ip] }, { expirationSeconds: 86_401 });
    await assertDenied(c, tooLong, 'LifetimeTooLong', /86401 exceeds the maximum 86400/);
    const hour = await submitServingCsr(node, { ipAddresses: [ip] }, { expirationSeconds: 3600 });
    assert.equal((await waitForDecision(c, hour)).type, 'Approved');
    const cert = new X509Certificate(await waitForCertificate(c, hour));
    const lifetimeS = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 1000;
    // The signer backdates NotBefore by 5 minutes; NotAfter is now + 1 h for short lifetimes.
    assert.ok(lifetimeS <= 3600 + 300, `issued for ${lifetimeS} s`);
  } finally {
    assert.equal(await approver.stop(), 0);
    await stopAll();
    await node.cleanup();
  }
  assertNoSecrets(approver);
});

test('without allowedCidrs or dnsPatterns the approver refuses to start, in one line naming the fix', async () => {
  const config = join(workDir, 'unbounded.yaml');
  await writeFile(config, stringify({ apiVersion: 'nodecred.io/v1alpha1', kind: 'ApproverConfiguration' }));
  const r = await runNodecred(
    ['approve', '--kubeconfig', approverKubeconfig, '--config', config, '--metrics-listen', 'off'],
    { timeoutMs: 30_000 },
  );
  assert.equal(r.code, 1, r.stderr + r.stdout);
  const line = r.stderr.trim();
  assert.equal(line.split('\n').length, 1, line);
  assert.match(line, /refusing to start: no name-bounding policy: allowedCidrs and dnsPatterns are both empty/);
  assert.match(line, /set allowedCidrs to the node network/);
});

test("an identity without the approver's RBAC fails at start with one line naming the missing rules", async () => {
  const c = testCluster();
  const token = await createBootstrapToken(c);
  const kubeconfig = await writeKubeconfig(join(workDir, 'bootstrap-identity.kubeconfig'), c, { token: token.token });
  const r = await runNodecred(
    ['approve', '--kubeconfig', kubeconfig, '--config', await approverConfig(), '--metrics-listen', 'off'],
    { timeoutMs: 30_000 },
  );
  assert.equal(r.code, 1, r.stderr + r.stdout);
  const line = r.stderr.trim();
  assert.equal(line.split('\n').length, 1, line);
  assert.match(
    line,
    new RegExp(
      /lacks permissions: .*update certificatesigningrequests\/approval\.certificates\.k8s\.io; /.source +
        /approve signers\.certificates\.k8s\.io "kubernetes\.io\/kubelet-serving"; get nodes/.source,
    ),
  );
  assert.match(line, /fix: apply deploy\/approver-rbac\.yaml/);
  assert.ok(!r.stderr.includes(token.secret));
});

after(async () => {
  await stopAll();
  await rm(workDir, { recursive: true, force: true });
});
