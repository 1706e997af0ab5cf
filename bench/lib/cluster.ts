// Cluster-side preparation for the benchmarks, as kubeadm does it: bootstrap tokens (one per measured run, so
// the audit log can attribute every request to exactly one run by its user), the node-bootstrapper and
// auto-approval ClusterRoleBindings, and bootstrap kubeconfigs.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import {
  KubeConfig,
  CoreV1Api,
  RbacAuthorizationV1Api,
  AuthenticationV1Api,
  ApiException,
} from '@kubernetes/client-node';
import type { ClusterState } from '../../scripts/lib/local-cluster.ts';
import { createBootstrapTokenSecret } from '../../scripts/lib/bootstrap-token.ts';

export interface Admin {
  state: ClusterState;
  core: CoreV1Api;
  rbac: RbacAuthorizationV1Api;
}

export function admin(state: ClusterState): Admin {
  const kc = new KubeConfig();
  kc.loadFromFile(state.kubeconfig);
  return { state, core: kc.makeApiClient(CoreV1Api), rbac: kc.makeApiClient(RbacAuthorizationV1Api) };
}

export interface Token {
  id: string;
  secret: string;
  token: string;
  /** The username the apiserver gives it. */
  user: string;
}

export async function createToken(a: Admin): Promise<Token> {
  const t = await createBootstrapTokenSecret(a.core, { expiration: new Date(Date.now() + 6 * 3600_000) });
  return { ...t, user: `system:bootstrap:${t.id}` };
}

/** Creates `n` tokens (a few at a time), then waits until the apiserver's token cache knows them. */
export async function createTokens(a: Admin, n: number): Promise<Token[]> {
  const tokens: Token[] = [];
  for (let i = 0; i < n; i += 10) {
    tokens.push(...(await Promise.all(Array.from({ length: Math.min(10, n - i) }, () => createToken(a)))));
  }
  // The bootstrap-token authenticator reads Secrets through an informer: a fresh token can 401 for a few
  // ms. A separate probe token, created last, is used until it authenticates; tokens created before it
  // are then in the cache too. The probe's request is made by the probe's user, so it is never counted.
  const probe = await createToken(a);
  const auth = tokenKubeConfig(a.state, probe.token).makeApiClient(AuthenticationV1Api);
  const deadline = Date.now() + 30_000;
  let delay = 20;
  for (let i = 0; i < 200; i++) {
    try {
      await auth.createSelfSubjectReview({
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
      });
      return tokens;
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 401) || Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
  throw new Error('bootstrap tokens never became usable');
}

export function tokenKubeConfig(state: ClusterState, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'local', server: state.apiserver, caFile: state.caFile, skipTLSVerify: false }],
    users: [{ name: 'bootstrap', token }],
    contexts: [{ name: 'bootstrap', cluster: 'local', user: 'bootstrap' }],
    currentContext: 'bootstrap',
  });
  return kc;
}

export async function writeBootstrapKubeconfig(path: string, state: ClusterState, token: string): Promise<string> {
  await writeFile(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: local',
      '  cluster:',
      `    server: ${state.apiserver}`,
      `    certificate-authority: ${state.caFile}`,
      'users:',
      '- name: kubelet-bootstrap',
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: bootstrap',
      '  context: {cluster: local, user: kubelet-bootstrap}',
      'current-context: bootstrap',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return path;
}

async function binding(a: Admin, name: string, role: string, group: string): Promise<void> {
  try {
    await a.rbac.createClusterRoleBinding({
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

/** kubeadm's bootstrap RBAC: bootstrappers may create CSRs; their and nodes' client CSRs are auto-approved. */
export async function ensureBootstrapRbac(a: Admin): Promise<void> {
  await binding(a, 'kubeadm:kubelet-bootstrap', 'system:node-bootstrapper', 'system:bootstrappers');
  await binding(
    a,
    'kubeadm:node-autoapprove-bootstrap',
    'system:certificates.k8s.io:certificatesigningrequests:nodeclient',
    'system:bootstrappers',
  );
  await binding(
    a,
    'kubeadm:node-autoapprove-certificate-rotation',
    'system:certificates.k8s.io:certificatesigningrequests:selfnodeclient',
    'system:nodes',
  );
}

export const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString('hex')}`;
