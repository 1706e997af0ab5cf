// The local control plane: etcd, kube-apiserver and kube-controller-manager from the multicall binary built
// by scripts/build-cluster, on loopback with free ports, PKI from ./pki.ts, state in DIR/cluster.json.
//
// Used by `scripts/local-cluster` (up/down/status), the test runner (one control plane per test run), the
// benchmarks and the demo. Processes are started detached so a `up` from a shell outlives the command;
// `down` stops every process recorded in the state file and checks that none is left.
import { makeDirs } from '../../src/store/atomic.ts';
import { spawn, execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile, readFile, rm } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { promisify } from 'node:util';
import { generateClusterPki } from './pki.ts';
import { apiserverArgs } from './apiserver-args.ts';
import {
  ClusterError,
  freePort,
  httpGet,
  isAlive,
  startProcess,
  stopPids,
  waitReady,
  type HttpCheck,
} from './processes.ts';
import { detach, readAttached } from './attached.ts';

// Where these lived before: importers of this module keep working.
export { ClusterError, freePort, httpGet, isAlive, startProcess, waitReady } from './processes.ts';
export { attach, detach, readAttached, type Attached } from './attached.ts';

const execFileP = promisify(execFile);

export type Component = 'etcd' | 'kube-apiserver' | 'kube-controller-manager';
export const COMPONENTS: readonly Component[] = ['etcd', 'kube-apiserver', 'kube-controller-manager'];

export interface ClusterState {
  dir: string;
  binary: string;
  /** https://127.0.0.1:<port> */
  apiserver: string;
  etcd: string;
  controllerManager: string;
  kubeconfig: string;
  caFile: string;
  caKeyFile: string;
  kubectl: string;
  signingDuration: string;
  auditLog: string | null;
  pids: Record<Component, number>;
  startedAt: string;
}

export interface UpOptions {
  dir: string;
  /** The multicall binary; default: ask scripts/build-cluster (builds on first use). */
  binary?: string;
  /** kube-controller-manager --cluster-signing-duration, e.g. "8760h" or "1h". */
  signingDuration?: string;
  /** Write an apiserver audit log (Metadata level) to DIR/logs/audit.log, for request counting. */
  audit?: boolean;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Per-component readiness deadline. */
  readyTimeoutMs?: number;
  /** kube-controller-manager --controllers; fault tests drop csrsigning to play the signer themselves. */
  controllers?: string;
}

const REPO_ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../..');
const STATE_FILE = 'cluster.json';

/** Builds (or finds in the cache) the control-plane binary. Progress of a cold build goes to stderr. */
export async function ensureBinary(): Promise<string> {
  // An explicit binary (e.g. one already built for this test run) skips the cache lookup.
  const explicit = process.env.NODECRED_CLUSTER_BINARY;
  if (explicit) return explicit;
  const script = join(REPO_ROOT, 'scripts/build-cluster');
  return new Promise((resolvePath, reject) => {
    const child = spawn(script, [], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const path = out.trim().split('\n').pop() ?? '';
      if (code === 0 && path) resolvePath(path);
      else reject(new ClusterError(`scripts/build-cluster failed (exit ${code}); see its output above`));
    });
  });
}

export function readState(dir: string): ClusterState | null {
  const file = join(resolve(dir), STATE_FILE);
  if (!existsSync(file)) return null;
  return JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
}

function kubeconfigYaml(server: string, ca: string, cert: string, key: string, user: string): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: local',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(ca)}`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    client-certificate-data: ${b64(cert)}`,
    `    client-key-data: ${b64(key)}`,
    'contexts:',
    `- name: ${user}@local`,
    '  context:',
    '    cluster: local',
    `    user: ${user}`,
    `current-context: ${user}@local`,
    '',
  ].join('\n');
}

const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
`;

export async function up(opts: UpOptions): Promise<ClusterState> {
  const dir = resolve(opts.dir);
  const log = opts.log ?? (() => {});
  const timeoutMs = opts.readyTimeoutMs ?? 120_000;
  const existing = readState(dir);
  if (existing && COMPONENTS.some((c) => isAlive(existing.pids[c]))) {
    throw new ClusterError(
      `a control plane is already running in ${dir} (apiserver ${existing.apiserver}); ` +
        `run 'scripts/local-cluster down --dir ${dir}' first`,
    );
  }
  const binary = opts.binary ?? (await ensureBinary());
  const signingDuration = opts.signingDuration ?? '8760h';
  await makeDirs(join(dir, 'logs'));
  await rm(join(dir, 'etcd-data'), { recursive: true, force: true });

  const started = Date.now();
  const pki = await generateClusterPki(dir);
  const read = (f: string) => readFileSync(join(pki, f), 'utf8');
  const ca = read('ca.crt');
  log(`pki generated in ${pki} (${Date.now() - started} ms)`);

  const [etcdClient, etcdPeer, apiPort, kcmPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const pids = {} as Record<Component, number>;
  const logs = Object.fromEntries(COMPONENTS.map((c) => [c, join(dir, 'logs', `${c}.log`)])) as Record<
    Component,
    string
  >;
  const state: ClusterState = {
    dir,
    binary,
    apiserver: `https://127.0.0.1:${apiPort}`,
    etcd: `http://127.0.0.1:${etcdClient}`,
    controllerManager: `https://127.0.0.1:${kcmPort}`,
    kubeconfig: join(dir, 'admin.kubeconfig'),
    caFile: join(dir, 'ca.crt'),
    caKeyFile: join(pki, 'ca.key'),
    kubectl: join(dirname(binary), 'kubectl'),
    signingDuration,
    auditLog: opts.audit ? join(dir, 'logs', 'audit.log') : null,
    pids,
    startedAt: new Date().toISOString(),
  };
  await writeFile(state.caFile, ca);
  await writeFile(
    state.kubeconfig,
    kubeconfigYaml(state.apiserver, ca, read('admin.crt'), read('admin.key'), 'admin'),
    { mode: 0o600 },
  );
  const kcmKubeconfig = join(dir, 'controller-manager.kubeconfig');
  await writeFile(
    kcmKubeconfig,
    kubeconfigYaml(
      state.apiserver,
      ca,
      read('controller-manager.crt'),
      read('controller-manager.key'),
      'kube-controller-manager',
    ),
    { mode: 0o600 },
  );
  const saveState = () => writeFile(join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);

  try {
    // etcd: plain HTTP on loopback only, and no fsync: this is a throwaway test store, as in upstream's
    // own integration tests.
    pids.etcd = startProcess(
      binary,
      'etcd',
      [
        '--name=local',
        `--data-dir=${join(dir, 'etcd-data')}`,
        `--listen-client-urls=${state.etcd}`,
        `--advertise-client-urls=${state.etcd}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=local=http://127.0.0.1:${etcdPeer}`,
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      logs.etcd,
    );
    await saveState();
    const etcdMs = await waitReady({
      component: 'etcd',
      pid: pids.etcd,
      logFile: logs.etcd,
      timeoutMs,
      ready: async () => {
        const [status, body] = await httpGet({ url: `${state.etcd}/health` });
        return status === 200 && body.includes('"health":"true"');
      },
    });
    log(`etcd ready at ${state.etcd} (${etcdMs} ms)`);

    const apiArgs = apiserverArgs({ etcd: state.etcd, port: apiPort, pki, caFile: state.caFile });
    if (state.auditLog) {
      const policy = join(dir, 'audit-policy.yaml');
      await writeFile(policy, AUDIT_POLICY);
      apiArgs.push(`--audit-policy-file=${policy}`, `--audit-log-path=${state.auditLog}`, '--audit-log-mode=blocking');
    }
    pids['kube-apiserver'] = startProcess(binary, 'kube-apiserver', apiArgs, logs['kube-apiserver']);
    await saveState();
    const adminTls = { ca, cert: read('admin.crt'), key: read('admin.key') };
    const apiMs = await waitReady({
      component: 'kube-apiserver',
      pid: pids['kube-apiserver'],
      logFile: logs['kube-apiserver'],
      timeoutMs,
      ready: async () => (await httpGet({ url: `${state.apiserver}/readyz`, ...adminTls }))[0] === 200,
    });
    log(`kube-apiserver ready at ${state.apiserver} (${apiMs} ms)`);
    await bindKubeletApiAdmin(state.apiserver, adminTls);

    pids['kube-controller-manager'] = startProcess(
      binary,
      'kube-controller-manager',
      [
        `--kubeconfig=${kcmKubeconfig}`,
        `--authentication-kubeconfig=${kcmKubeconfig}`,
        `--authorization-kubeconfig=${kcmKubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${kcmPort}`,
        `--tls-cert-file=${join(pki, 'controller-manager-serving.crt')}`,
        `--tls-private-key-file=${join(pki, 'controller-manager-serving.key')}`,
        `--controllers=${opts.controllers ?? '*,bootstrapsigner,tokencleaner'}`,
        `--cluster-signing-cert-file=${state.caFile}`,
        `--cluster-signing-key-file=${state.caKeyFile}`,
        `--cluster-signing-duration=${signingDuration}`,
        `--root-ca-file=${state.caFile}`,
        `--service-account-private-key-file=${join(pki, 'sa.key')}`,
        '--use-service-account-credentials=true',
        '--leader-elect=false',
      ],
      logs['kube-controller-manager'],
    );
    await saveState();
    const kcmMs = await waitReady({
      component: 'kube-controller-manager',
      pid: pids['kube-controller-manager'],
      logFile: logs['kube-controller-manager'],
      timeoutMs,
      ready: async () => (await httpGet({ url: `${state.controllerManager}/healthz`, ca }))[0] === 200,
    });
    log(`kube-controller-manager ready at ${state.controllerManager} (${kcmMs} ms)`);
    await writeFile(
      join(dir, 'env'),
      [
        `APISERVER=${state.apiserver}`,
        `KUBECONFIG=${state.kubeconfig}`,
        `KUBECTL=${state.kubectl}`,
        `CA_FILE=${state.caFile}`,
        '',
      ].join('\n'),
    );
    log(`control plane up in ${Date.now() - started} ms; env in ${join(dir, 'env')}`);
    return state;
  } catch (err) {
    await down(dir).catch(() => {});
    throw err;
  }
}

/** The binding kubeadm makes: the API server's kubelet client identity may use every kubelet API. */
async function bindKubeletApiAdmin(apiserver: string, admin: { ca: string; cert: string; key: string }) {
  const body = JSON.stringify({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'nodecred-local:apiserver-kubelet-api-admin' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:kubelet-api-admin' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'kube-apiserver-kubelet-client' }],
  });
  const url = `${apiserver}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings`;
  const [code, reply] = await httpGet({ url, method: 'POST', body, ...admin });
  if (code !== 201 && code !== 409)
    throw new ClusterError(`creating ClusterRoleBinding for the API server's kubelet client: ${code} ${reply}`);
}

/** Stops every recorded process (SIGTERM, then SIGKILL after a grace period); returns the pids stopped. */
export async function down(dir: string, graceMs = 15_000): Promise<number[]> {
  const state = readState(dir);
  if (!state) return [];
  const nodeSide: number[] = [];
  for (const entry of await readAttached(dir)) nodeSide.push(...(await detach(dir, entry.name, graceMs)));
  const pids = COMPONENTS.map((c) => state.pids[c]).filter((p): p is number => typeof p === 'number');
  // Reverse start order: controller-manager and apiserver before the store they write to.
  await stopPids(pids, graceMs);
  await rm(join(resolve(dir), STATE_FILE), { force: true });
  return [...nodeSide, ...pids];
}

export interface ComponentStatus {
  component: Component;
  pid: number;
  alive: boolean;
  healthy: boolean;
  detail: string;
}

export async function status(dir: string): Promise<ComponentStatus[] | null> {
  const state = readState(dir);
  if (!state) return null;
  const ca = await readFile(state.caFile, 'utf8');
  const pki = join(state.dir, 'pki');
  const admin = {
    ca,
    cert: readFileSync(join(pki, 'admin.crt'), 'utf8'),
    key: readFileSync(join(pki, 'admin.key'), 'utf8'),
  };
  const probes: Record<Component, HttpCheck> = {
    etcd: { url: `${state.etcd}/health` },
    'kube-apiserver': { url: `${state.apiserver}/readyz`, ...admin },
    'kube-controller-manager': { url: `${state.controllerManager}/healthz`, ca },
  };
  return Promise.all(
    COMPONENTS.map(async (component) => {
      const pid = state.pids[component];
      const alive = isAlive(pid);
      let healthy = false;
      let detail = alive ? '' : 'not running';
      if (alive) {
        try {
          const [code, body] = await httpGet(probes[component]);
          healthy = code === 200;
          detail = `${probes[component].url} → ${code} ${body.trim().slice(0, 60)}`;
        } catch (err) {
          detail = `${probes[component].url} → ${(err as Error).message}`;
        }
      }
      return { component, pid, alive, healthy, detail };
    }),
  );
}

/** Runs the cluster's kubectl with the admin kubeconfig. */
export async function kubectl(state: ClusterState, args: string[], input?: string): Promise<string> {
  const child = execFileP(state.kubectl, [`--kubeconfig=${state.kubeconfig}`, ...args], { maxBuffer: 64 << 20 });
  if (input !== undefined) child.child.stdin?.end(input);
  return (await child).stdout;
}
