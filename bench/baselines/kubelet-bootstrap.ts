// Baseline for P1: the kubelet's own TLS bootstrap, from the test plane's binary (the same v1.37.2 modules as
// the control plane). With --bootstrap-kubeconfig and rotateCertificates: false the kubelet bootstraps
// synchronously (pkg/kubelet/certificate/bootstrap.LoadClientCert: key, CSR, wait for the certificate,
// kubelet-client-current.pem, kubeconfig) before it needs a container runtime. Here it has none, so it stops
// at its runtime check right after and is stopped if it has not exited by then.
//
// Timed: process start → the kubeconfig file appears (an inotify watch on its directory, started before the
// process). The kubelet writes the pair first and the kubeconfig last, without fsync. The caller verifies
// the result outside the timed part, as for every other flow.
import { spawn } from 'node:child_process';
import { watch } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';

const execFileP = promisify(execFile);

export interface KubeletBootstrapRun {
  /** Date.now() just before spawn. */
  startedAt: number;
  /** Date.now() when the kubeconfig appeared. */
  kubeconfigAt: number;
  kubeconfig: string;
  log: string;
}

export async function kubeletBootstrap(o: {
  binary: string;
  dir: string;
  nodeName: string;
  bootstrapKubeconfig: string;
  port: number;
  timeoutMs: number;
}): Promise<KubeletBootstrapRun> {
  const [pki, root, cwd] = ['pki', 'root', 'cwd'].map((d) => join(o.dir, d)) as [string, string, string];
  for (const d of [pki, root, cwd]) await mkdir(d, { recursive: true, mode: 0o700 });
  const config = join(o.dir, 'kubelet-config.yaml');
  await writeFile(
    config,
    stringify({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      rotateCertificates: false,
      serverTLSBootstrap: false,
      // Nothing it would serve is reached: it stops at the runtime check. Still nothing anonymous.
      authentication: { anonymous: { enabled: false }, webhook: { enabled: false } },
      authorization: { mode: 'AlwaysDeny' },
      readOnlyPort: 0,
      port: o.port,
      healthzPort: 0,
      containerRuntimeEndpoint: `unix://${join(o.dir, 'no-runtime.sock')}`,
      failCgroupV1: false,
      cgroupsPerQOS: false,
      enforceNodeAllocatable: [],
      failSwapOn: false,
    }),
  );
  const kubeconfig = join(o.dir, 'kubeconfig');
  let kubeconfigAt = 0;
  let sawKubeconfig: () => void = () => {};
  const appeared = new Promise<void>((r) => (sawKubeconfig = r));
  const watcher = watch(o.dir, (_event, name) => {
    if (name !== 'kubeconfig' || kubeconfigAt) return;
    kubeconfigAt = Date.now();
    sawKubeconfig();
  });
  const args = [
    'kubelet',
    `--config=${config}`,
    `--bootstrap-kubeconfig=${o.bootstrapKubeconfig}`,
    `--kubeconfig=${kubeconfig}`,
    `--cert-dir=${pki}`,
    `--root-dir=${root}`,
    `--hostname-override=${o.nodeName}`,
  ];
  let log = '';
  const startedAt = Date.now();
  const child = spawn(o.binary, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), o.timeoutMs)));
  try {
    const first = await Promise.race([appeared.then(() => 'kubeconfig' as const), exited, timedOut]);
    if (first !== 'kubeconfig') {
      throw new Error(
        `the kubelet ${first === 'timeout' ? 'did not bootstrap in time' : 'exited before writing a kubeconfig'}; ` +
          `last output:\n${log.slice(-1500)}`,
      );
    }
    // It goes on to its runtime check and exits there; stop it if it lingers (the timing is taken).
    const grace = new Promise<void>((r) => setTimeout(r, 10_000).unref());
    await Promise.race([exited, grace]);
  } finally {
    clearTimeout(timer);
    watcher.close();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    // A kubelet that got as far as bind-mounting its root dir leaves the mount behind.
    await execFileP('umount', [root]).catch(() => {});
  }
  if (!(await stat(kubeconfig)).isFile()) throw new Error(`${kubeconfig} is not a file`);
  return { startedAt, kubeconfigAt, kubeconfig, log };
}
