// A real kubelet (from the same multicall binary as the control plane) for one node, on credentials someone
// else owns: nodecred's kubeconfig and serving pair, or, for baselines and migrations, the kubelet's own TLS
// bootstrap. Its container runtime is upstream's fake CRI, so it runs no containers; it registers its Node,
// renews its Lease and serves its port like any kubelet.
//
// The KubeletConfiguration is the one docs/kubelet.md documents (docs/kubelet-config.yaml, paths replaced),
// plus what this harness needs and a real node would not (see HARNESS below).
//
// Files live in DIR/kubelets/<node>/ (DIR is the control plane's directory); the processes are registered
// with the control plane (attach), so `local-cluster down` stops them and unmounts the kubelet's --root-dir.
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { isIPv4 } from 'node:net';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { readState } from './local-cluster.ts';
import { attach, detach, readAttached } from './attached.ts';
import { ClusterError, freePort, httpGet, startProcess, waitReady } from './processes.ts';

export const DOCUMENTED_CONFIG = resolve(import.meta.dirname, '../../docs/kubelet-config.yaml');

/** Who owns the kubelet's certificates. */
export type CertificateOwner =
  /** nodecred: rotateCertificates false, serving pair from tlsCertFile (the documented configuration). */
  | 'nodecred'
  /** the kubelet itself: rotateCertificates and serverTLSBootstrap (kubeadm/EKS defaults; migrations). */
  | 'kubelet';

export interface KubeletOptions {
  /** The control plane's directory (`local-cluster up --dir`). */
  dir: string;
  nodeName: string;
  kubeconfig: string;
  certDir: string;
  owner?: CertificateOwner;
  /** The kubelet's own TLS bootstrap (owner 'kubelet', or the bench baseline). */
  bootstrapKubeconfig?: string;
  /** Default: this machine's first non-loopback IPv4 address (see nodeIp()). */
  nodeIp?: string;
  /** klog verbosity; 2 logs certificate reloads, 1 client-certificate rotation. */
  verbosity?: number;
  /**
   * 'external': the kubelet sets its addresses only while the Node has none, and then leaves them to a
   * cloud controller manager, as on cloud nodes. Tests play that controller to change addresses.
   */
  cloudProvider?: 'external';
  /** Extra environment for the kubelet (test/cluster/kubelet.go reads NODECRED_TEST_CLIENT_CERT_RELOAD). */
  env?: Record<string, string>;
  /** Wait until the healthz port answers (default true). */
  wait?: boolean;
  log?: (line: string) => void;
}

export interface KubeletInstance {
  name: string;
  dir: string;
  nodeIp: string;
  /** The kubelet's API port (10250 on a real node), on nodeIp. */
  port: number;
  /** Its healthz port, on 127.0.0.1. */
  healthzPort: number;
  configFile: string;
  logFile: string;
  pids: { kubelet: number; fakeCri: number };
}

/**
 * What this harness needs and a real node would not: free ports instead of 10250/10248, a private root
 * dir and log dir, the fake runtime's socket, no cgroup management (this machine has cgroup v1, which
 * v1.37 refuses unless told, and a kubelet per test must not reorganise the host's cgroups).
 */
function harness(o: { dir: string; nodeIp: string; port: number; healthzPort: number }): Record<string, unknown> {
  return {
    address: o.nodeIp,
    port: o.port,
    healthzBindAddress: '127.0.0.1',
    healthzPort: o.healthzPort,
    containerRuntimeEndpoint: `unix://${join(o.dir, 'cri.sock')}`,
    imageServiceEndpoint: `unix://${join(o.dir, 'cri.sock')}`,
    podLogsDir: join(o.dir, 'pod-logs'),
    failCgroupV1: false,
    cgroupsPerQOS: false,
    enforceNodeAllocatable: [],
    failSwapOn: false,
  };
}

/**
 * The address the kubelet serves on and reports as its InternalIP. The API server's node proxy refuses
 * addresses that are not global unicast (loopback included), so a test of `…/nodes/N/proxy` needs a real
 * address of this machine: NODECRED_NODE_IP, else the first non-internal IPv4 address.
 */
export function nodeIp(): string {
  const configured = process.env.NODECRED_NODE_IP;
  if (configured) return configured;
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.internal || !isIPv4(a.address) || a.address.startsWith('169.254.')) continue;
      return a.address;
    }
  }
  throw new ClusterError(
    'no non-loopback IPv4 address on this machine for the kubelet (the API server proxies only to global ' +
      'unicast addresses); set NODECRED_NODE_IP',
  );
}

/** The documented KubeletConfiguration with this node's paths, as an object. */
export async function documentedConfig(paths: { certDir: string; clientCAFile: string }) {
  const text = (await readFile(DOCUMENTED_CONFIG, 'utf8'))
    .replaceAll('/var/lib/kubelet/pki', paths.certDir)
    .replaceAll('/etc/kubernetes/pki/ca.crt', paths.clientCAFile);
  return parse(text) as Record<string, unknown>;
}

/** The same configuration with the kubelet owning its certificates (what nodecred takes over from). */
function kubeletOwned(config: Record<string, unknown>): Record<string, unknown> {
  const { tlsCertFile: _c, tlsPrivateKeyFile: _k, ...rest } = config;
  return { ...rest, rotateCertificates: true, serverTLSBootstrap: true };
}

/** The whole KubeletConfiguration a harness kubelet runs on: the documented one plus HARNESS settings. */
export async function kubeletConfig(o: {
  owner?: CertificateOwner;
  certDir: string;
  clientCAFile: string;
  /** Where the fake runtime's socket and the pod logs go. */
  dir: string;
  nodeIp: string;
  port: number;
  healthzPort: number;
}): Promise<Record<string, unknown>> {
  const documented = await documentedConfig(o);
  return { ...(o.owner === 'kubelet' ? kubeletOwned(documented) : documented), ...harness(o) };
}

export async function startKubelet(opts: KubeletOptions): Promise<KubeletInstance> {
  const cluster = readState(opts.dir);
  if (!cluster) throw new ClusterError(`no control plane in ${opts.dir}; run 'scripts/local-cluster up' first`);
  const name = opts.nodeName;
  if ((await readAttached(opts.dir)).some((a) => a.name === `kubelet-${name}`))
    throw new ClusterError(`a kubelet for node ${name} is already running in ${opts.dir}`);
  const binary = cluster.binary;
  const dir = join(resolve(opts.dir), 'kubelets', name);
  const rootDir = join(dir, 'root');
  // The fake runtime reports empty log paths, and the kubelet's container-log cleanup then deletes
  // files in its working directory: give it an empty one.
  const cwd = join(dir, 'cwd');
  for (const d of [rootDir, cwd, join(dir, 'pod-logs')]) await mkdir(d, { recursive: true, mode: 0o700 });
  const ip = opts.nodeIp ?? nodeIp();
  const [port, healthzPort] = [await freePort(), await freePort()];
  const config = await kubeletConfig({
    ...(opts.owner ? { owner: opts.owner } : {}),
    certDir: opts.certDir,
    clientCAFile: cluster.caFile,
    dir,
    nodeIp: ip,
    port,
    healthzPort,
  });
  const configFile = join(dir, 'config.yaml');
  await writeFile(configFile, stringify(config));

  const logFile = join(dir, 'kubelet.log');
  await rm(join(dir, 'cri.sock'), { force: true });
  const criLog = join(dir, 'fake-cri.log');
  const fakeCri = startProcess(binary, 'fake-cri', [`--endpoint=${config.containerRuntimeEndpoint}`], criLog);
  const entry = { name: `kubelet-${name}`, pids: [fakeCri], unmount: [rootDir] };
  await attach(opts.dir, entry);
  // The kubelet gives up at once when its runtime does not answer: start it once the socket exists.
  await waitReady({
    component: `fake-cri for ${name}`,
    pid: fakeCri,
    logFile: criLog,
    timeoutMs: 30_000,
    ready: async () => (await stat(join(dir, 'cri.sock')).catch(() => null))?.isSocket() ?? false,
  });
  const args = [
    `--config=${configFile}`,
    `--kubeconfig=${opts.kubeconfig}`,
    `--cert-dir=${opts.certDir}`,
    `--root-dir=${rootDir}`,
    `--hostname-override=${name}`,
    `--node-ip=${ip}`,
    `--v=${opts.verbosity ?? 2}`,
    ...(opts.bootstrapKubeconfig ? [`--bootstrap-kubeconfig=${opts.bootstrapKubeconfig}`] : []),
    ...(opts.cloudProvider ? [`--cloud-provider=${opts.cloudProvider}`] : []),
  ];
  const kubelet = startProcess(binary, 'kubelet', args, logFile, { cwd, ...(opts.env ? { env: opts.env } : {}) });
  entry.pids.push(kubelet);
  await attach(opts.dir, entry);
  const instance: KubeletInstance = {
    name,
    dir,
    nodeIp: ip,
    port,
    healthzPort,
    configFile,
    logFile,
    pids: { kubelet, fakeCri },
  };
  await writeFile(join(dir, 'kubelet.json'), `${JSON.stringify(instance, null, 2)}\n`);
  if (opts.wait ?? true) {
    const ms = await waitReady({
      component: `kubelet ${name}`,
      pid: kubelet,
      logFile,
      timeoutMs: 120_000,
      ready: async () => (await httpGet({ url: `http://127.0.0.1:${healthzPort}/healthz` }))[0] === 200,
    });
    opts.log?.(`kubelet ${name} healthy in ${ms} ms: port ${ip}:${port}, healthz 127.0.0.1:${healthzPort}`);
  }
  return instance;
}

/** Stops a node's kubelet and fake runtime and unmounts its root dir; false when none was running. */
export async function stopKubelet(dir: string, nodeName: string): Promise<boolean> {
  return (await detach(dir, `kubelet-${nodeName}`)).length > 0;
}
