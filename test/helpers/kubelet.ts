// A real kubelet for integration tests (scripts/lib/kubelet.ts), and the kubelet-side oracles: which
// certificate it presents on its port, its Node's Ready condition and Lease, what it logs.
import { connect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { startKubelet, stopKubelet, type KubeletInstance, type KubeletOptions } from '../../scripts/lib/kubelet.ts';
import { isAlive } from '../../scripts/lib/local-cluster.ts';
import { waitFor, type TestCluster } from './cluster.ts';
import type { NodeDir } from './node.ts';

export interface TestKubelet extends KubeletInstance {
  /** The certificate the kubelet presents on its port right now. */
  served(opts?: { verify?: boolean }): Promise<X509Certificate>;
  log(): Promise<string>;
  alive(): boolean;
  stop(): Promise<void>;
}

export async function startTestKubelet(
  c: TestCluster,
  node: NodeDir,
  opts: Partial<Omit<KubeletOptions, 'dir' | 'nodeName'>> = {},
): Promise<TestKubelet> {
  const k = await startKubelet({
    dir: c.state.dir,
    nodeName: node.name,
    kubeconfig: node.kubeconfig,
    certDir: node.certDir,
    ...opts,
  });
  return {
    ...k,
    served: (o = {}) => servedCertificate(k, o.verify ? c.ca : undefined),
    log: () => readFile(k.logFile, 'utf8'),
    alive: () => isAlive(k.pids.kubelet),
    stop: async () => {
      await stopKubelet(c.state.dir, node.name);
    },
  };
}

/**
 * The leaf certificate the kubelet presents. With `ca`, the handshake also verifies it as a client would
 * (chain to the cluster CA, the node IP among its SANs); without, it only reads it (a placeholder).
 */
export function servedCertificate(k: { nodeIp: string; port: number }, ca?: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: k.nodeIp, port: k.port, ...(ca ? { ca } : { rejectUnauthorized: false }) }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      resolve(new X509Certificate(raw));
    });
    socket.setTimeout(5_000, () => socket.destroy(new Error('TLS handshake with the kubelet timed out')));
    socket.on('error', reject);
  });
}

export interface NodeReady {
  ready: boolean;
  lastTransitionTime: string;
}

export async function nodeReady(c: TestCluster, name: string): Promise<NodeReady | undefined> {
  const node = await c.core.readNode({ name });
  const cond = node.status?.conditions?.find((x) => x.type === 'Ready');
  if (!cond) return undefined;
  return { ready: cond.status === 'True', lastTransitionTime: new Date(cond.lastTransitionTime!).toISOString() };
}

export function waitNodeReady(c: TestCluster, name: string, timeoutMs = 90_000): Promise<NodeReady> {
  return waitFor(
    `Node ${name} Ready`,
    async () => {
      const r = await nodeReady(c, name);
      return r?.ready ? r : undefined;
    },
    timeoutMs,
  );
}

/** The renewTime of the node's Lease in kube-node-lease (the kubelet's heartbeat), in ms. */
export async function leaseRenewed(c: TestCluster, name: string): Promise<number> {
  const lease = (
    await c.kubectl(['-n', 'kube-node-lease', 'get', 'lease', name, '-o', 'jsonpath={.spec.renewTime}'])
  ).trim();
  return Date.parse(lease);
}

/** The kubelet API through the API server's node proxy, as `kubectl get --raw` does it. */
export function viaNodeProxy(c: TestCluster, name: string, path: string): Promise<string> {
  return c.kubectl(['get', '--raw', `/api/v1/nodes/${name}/proxy${path}`]);
}

export function serialOf(pem: string): string {
  return new X509Certificate(pem).serialNumber;
}
