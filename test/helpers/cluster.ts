// Integration tests share one real control plane per test run: scripts/test.ts starts it and passes its
// directory in NODECRED_TEST_CLUSTER. To run one test file by hand against a cluster you started yourself:
//   scripts/local-cluster up --dir /tmp/c && NODECRED_TEST_CLUSTER=/tmp/c node --test test/integration/x.test.ts
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import {
  KubeConfig,
  CoreV1Api,
  CertificatesV1Api,
  RbacAuthorizationV1Api,
  AuthenticationV1Api,
  ApiException,
  type V1CertificateSigningRequest,
  type V1NodeAddress,
} from '@kubernetes/client-node';
import { readState, kubectl, type ClusterState } from '../../scripts/lib/local-cluster.ts';
import { createBootstrapTokenSecret, type BootstrapToken } from '../../scripts/lib/bootstrap-token.ts';

export interface TestCluster {
  state: ClusterState;
  ca: string;
  admin: KubeConfig;
  core: CoreV1Api;
  certificates: CertificatesV1Api;
  rbac: RbacAuthorizationV1Api;
  kubectl(args: string[], input?: string): Promise<string>;
}

let cached: TestCluster | undefined;

export function testCluster(): TestCluster {
  if (cached) return cached;
  const dir = process.env.NODECRED_TEST_CLUSTER;
  if (!dir) {
    throw new Error(
      'NODECRED_TEST_CLUSTER is not set: run integration tests with `npm test` (it starts the control plane), ' +
        'or point it at a `scripts/local-cluster up --dir DIR` directory',
    );
  }
  const state = readState(dir);
  if (!state) throw new Error(`NODECRED_TEST_CLUSTER=${dir} holds no running control plane (no cluster.json)`);
  const admin = new KubeConfig();
  admin.loadFromFile(state.kubeconfig);
  cached = {
    state,
    ca: readFileSync(state.caFile, 'utf8'),
    admin,
    core: admin.makeApiClient(CoreV1Api),
    certificates: admin.makeApiClient(CertificatesV1Api),
    rbac: admin.makeApiClient(RbacAuthorizationV1Api),
    kubectl: (args, input) => kubectl(state, args, input),
  };
  return cached;
}

/** A unique, DNS-safe suffix so tests sharing one cluster never collide. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** A KubeConfig for the test cluster authenticating with a bearer token. */
export function tokenKubeConfig(c: TestCluster, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      { name: 'local', server: c.state.apiserver, caData: Buffer.from(c.ca).toString('base64'), skipTLSVerify: false },
    ],
    users: [{ name: 'token', token }],
    contexts: [{ name: 'token@local', cluster: 'local', user: 'token' }],
    currentContext: 'token@local',
  });
  return kc;
}

export type { BootstrapToken };

/** Creates a kube-system/bootstrap-token-<id> Secret as kubeadm does. */
export function createBootstrapToken(
  c: TestCluster,
  opts: { expiration?: Date; extraGroups?: string[] } = {},
): Promise<BootstrapToken> {
  return createBootstrapTokenSecret(c.core, opts);
}

export async function deleteBootstrapToken(c: TestCluster, id: string): Promise<void> {
  await c.core.deleteNamespacedSecret({ namespace: 'kube-system', name: `bootstrap-token-${id}` });
}

async function ensureClusterRoleBinding(c: TestCluster, name: string, role: string, group: string): Promise<void> {
  try {
    await c.rbac.createClusterRoleBinding({
      body: {
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: group }],
      },
    });
  } catch (err) {
    if (!(err instanceof ApiException && err.code === 409)) throw err;
  }
}

/**
 * The RBAC kubeadm sets up for TLS bootstrap: bootstrappers may create CSRs, and their client CSRs (and
 * nodes' renewals, when `selfRenewal`) are auto-approved by the csrapproving controller.
 */
export async function ensureBootstrapRbac(
  c: TestCluster,
  opts: { group?: string; autoApprove?: boolean; selfRenewal?: boolean } = {},
): Promise<void> {
  const group = opts.group ?? 'system:bootstrappers';
  const suffix = group.replaceAll(':', '-');
  await ensureClusterRoleBinding(c, `nodecred-test:node-bootstrapper:${suffix}`, 'system:node-bootstrapper', group);
  if (opts.autoApprove ?? true) {
    await ensureClusterRoleBinding(
      c,
      `nodecred-test:node-autoapprove-bootstrap:${suffix}`,
      'system:certificates.k8s.io:certificatesigningrequests:nodeclient',
      group,
    );
  }
  if (opts.selfRenewal ?? true) {
    await ensureClusterRoleBinding(
      c,
      'nodecred-test:node-autoapprove-certificate-rotation',
      'system:certificates.k8s.io:certificatesigningrequests:selfnodeclient',
      'system:nodes',
    );
  }
}

export async function createNode(c: TestCluster, name: string, addresses: V1NodeAddress[]): Promise<void> {
  await c.core.createNode({ body: { metadata: { name } } });
  // status is a subresource: addresses can only be set through it.
  await setNodeAddresses(c, name, addresses);
}

export async function setNodeAddresses(c: TestCluster, name: string, addresses: V1NodeAddress[]): Promise<void> {
  // Controllers (node lifecycle, taints) update a new Node too: on a conflict, re-read and try again.
  for (let attempt = 0; ; attempt++) {
    const node = await c.core.readNodeStatus({ name });
    node.status = { ...(node.status ?? {}), addresses };
    try {
      await c.core.replaceNodeStatus({ name, body: node });
      return;
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 409) || attempt >= 10) throw err;
    }
  }
}

async function setCondition(
  c: TestCluster,
  name: string,
  type: 'Approved' | 'Denied',
  reason: string,
  message: string,
): Promise<void> {
  const csr = await c.certificates.readCertificateSigningRequest({ name });
  csr.status = {
    ...(csr.status ?? {}),
    conditions: [
      ...(csr.status?.conditions ?? []),
      { type, status: 'True', reason, message, lastUpdateTime: new Date() },
    ],
  };
  await c.certificates.replaceCertificateSigningRequestApproval({ name, body: csr });
}

export const approveCsr = (c: TestCluster, name: string, message = 'approved by test') =>
  setCondition(c, name, 'Approved', 'TestApproved', message);
export const denyCsr = (c: TestCluster, name: string, message = 'denied by test') =>
  setCondition(c, name, 'Denied', 'TestDenied', message);

/** Thrown from a waitFor check to stop waiting at once (the condition can no longer become true). */
export class StopWaiting extends Error {}

/** Polls `check` until it returns a value, or fails with `what` after the deadline. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      if (err instanceof StopWaiting) throw err;
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}` +
      `${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`,
  );
}

export async function waitForCertificate(c: TestCluster, name: string, timeoutMs = 60_000): Promise<string> {
  return waitFor(
    `certificate of CSR ${name}`,
    async () => {
      const csr: V1CertificateSigningRequest = await c.certificates.readCertificateSigningRequest({ name });
      const failed = csr.status?.conditions?.find(
        (x) => (x.type === 'Denied' || x.type === 'Failed') && x.status === 'True',
      );
      if (failed) throw new StopWaiting(`CSR ${name} ${failed.type}: ${failed.reason} ${failed.message}`);
      const cert = csr.status?.certificate;
      return cert ? Buffer.from(cert as unknown as string, 'base64').toString('utf8') : undefined;
    },
    timeoutMs,
  );
}

/**
 * The username the API server gives a kubeconfig, read by Go's client (kubectl: client-go's clientcmd, as the
 * kubelet loads it) rather than by client-node: an outside reader of the files nodecred writes.
 */
export async function kubectlWhoAmI(c: TestCluster, kubeconfig: string): Promise<string> {
  const args = ['--kubeconfig', kubeconfig, 'auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'];
  return (await promisify(execFile)(c.state.kubectl, args)).stdout;
}

export async function whoAmI(kc: KubeConfig): Promise<{ username: string; groups: string[] }> {
  const review = await kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  });
  return { username: review.status?.userInfo?.username ?? '', groups: review.status?.userInfo?.groups ?? [] };
}
