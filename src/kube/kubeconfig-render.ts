// Writing kubeconfig files in the layout kubectl and kubelet write: the node kubeconfig after TLS bootstrap,
// and exec-plugin kubeconfigs (EKS style). src/kube/kubeconfig.ts parses them back.

import { writeBlockYaml } from '../yaml/block-writer.ts';
import type { ExecApiVersion, ExecEnvVar } from './kubeconfig.ts';

type Obj = Record<string, unknown>;

interface ClusterRenderOptions {
  server: string;
  /** PEM of the cluster CA (one or more certificates). */
  caData: string;
  tlsServerName?: string;
  /** The cluster's proxy-url (client-go and so the kubelet honour it): kept when the file is rewritten. */
  proxyUrl?: string;
  clusterName?: string;
  userName?: string;
  contextName?: string;
}

interface NodeKubeconfigOptions extends ClusterRenderOptions {
  certPath: string;
  keyPath: string;
}

interface ExecKubeconfigOptions extends ClusterRenderOptions {
  command: string;
  args?: string[];
  env?: ExecEnvVar[];
  apiVersion?: ExecApiVersion;
  provideClusterInfo?: boolean;
  installHint?: string;
}

function renderKubeconfig(o: ClusterRenderOptions, user: Obj): string {
  if (!o.caData.includes('-----BEGIN CERTIFICATE-----')) throw new Error('renderKubeconfig: caData must be PEM');
  const clusterName = o.clusterName ?? 'default-cluster';
  const userName = o.userName ?? 'default-auth';
  const contextName = o.contextName ?? 'default-context';
  const cluster: Obj = {
    'certificate-authority-data': Buffer.from(o.caData, 'utf8').toString('base64'),
    server: o.server,
  };
  if (o.tlsServerName) cluster['tls-server-name'] = o.tlsServerName;
  if (o.proxyUrl) cluster['proxy-url'] = o.proxyUrl;
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ cluster, name: clusterName }],
    contexts: [{ context: { cluster: clusterName, namespace: 'default', user: userName }, name: contextName }],
    'current-context': contextName,
    preferences: {},
    users: [{ name: userName, user }],
  };
  return writeBlockYaml(config);
}

/** The node kubeconfig kubelet writes after TLS bootstrap: the client cert and key may be the same file. */
export function renderNodeKubeconfig(o: NodeKubeconfigOptions): string {
  return renderKubeconfig(o, { 'client-certificate': o.certPath, 'client-key': o.keyPath });
}

/** A kubeconfig whose user is an exec credential plugin (EKS style). */
export function renderExecKubeconfig(o: ExecKubeconfigOptions): string {
  const exec: Obj = {
    apiVersion: o.apiVersion ?? 'client.authentication.k8s.io/v1beta1',
    command: o.command,
    args: o.args ?? [],
    env: (o.env ?? []).map((e) => ({ name: e.name, value: e.value })),
    interactiveMode: 'Never',
    provideClusterInfo: o.provideClusterInfo ?? false,
  };
  if (o.installHint) exec.installHint = o.installHint;
  return renderKubeconfig(o, { exec });
}
