// The demo's last act (scripts/demo.ts): a real kubelet on nodecred's credentials, from nothing. `nodecred run`
// bootstraps the client certificate and, with no serving certificate possible yet, installs a self-signed
// placeholder; the kubelet (v1.37.2, the documented KubeletConfiguration, a fake container runtime) starts on
// them and registers its Node; nodecred requests the serving certificate for the Node's addresses;
// `nodecred approve` approves it under its policy; the kubelet serves it without a restart, and the API
// server, which verifies kubelet certificates, reaches the kubelet through its node proxy.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { kubectl, type ClusterState } from './local-cluster.ts';
import { freePort, waitReady } from './processes.ts';
import { nodeIp, startKubelet } from './kubelet.ts';

const NODECRED = resolve(import.meta.dirname, '../../bin/nodecred');

export interface DemoOutput {
  step(title: string): void;
  show(text: string): void;
}

/** The serial the kubelet presents, its handshake verified against the cluster CA. */
function servedSerial(host: string, port: number, ca: string): Promise<string> {
  return new Promise((res, rej) => {
    const s = connect({ host, port, ca }, () => {
      const serial = new X509Certificate(s.getPeerCertificate().raw).serialNumber;
      s.end();
      res(serial);
    });
    s.setTimeout(5_000, () => s.destroy(new Error('TLS handshake timed out')));
    s.on('error', rej);
  });
}

/** Starts `bin/nodecred ARGS` detached from the demo's terminal, its JSON log in `logFile`. */
function nodecredProcess(args: string[], logFile: string) {
  const out = createWriteStream(logFile);
  const child = spawn(NODECRED, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    pid: child.pid!,
    log: () => readFile(logFile, 'utf8').catch(() => ''),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

const messages = (log: string) =>
  log
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; csr?: string });

export async function kubeletFinale(
  state: ClusterState,
  o: { base: string; bootstrapKubeconfig: string; out: DemoOutput },
): Promise<void> {
  const { step, show } = o.out;
  const nodeName = 'demo-node-2';
  const dir = join(o.base, 'node-2');
  const certDir = join(dir, 'pki');
  const kubeconfig = join(dir, 'kubeconfig');
  step(`A real kubelet on nodecred's credentials, from nothing: node ${nodeName}`);
  if (process.getuid?.() !== 0) {
    show('skipped: the kubelet needs root (it bind-mounts its root directory); run the demo as root to see it');
    return;
  }
  const ip = nodeIp();
  const daemon = nodecredProcess(
    [
      'run',
      '--bootstrap-kubeconfig',
      o.bootstrapKubeconfig,
      '--node-name',
      nodeName,
      '--cert-dir',
      certDir,
      '--kubeconfig',
      kubeconfig,
      '--rotate-server-certificates',
      '--health-listen',
      `127.0.0.1:${await freePort()}`,
    ],
    join(o.base, 'nodecred-run.log'),
  );
  const approverConfig = join(o.base, 'approver.yaml');
  await writeFile(
    approverConfig,
    stringify({
      apiVersion: 'nodecred.io/v1alpha1',
      kind: 'ApproverConfiguration',
      nodeNamePattern: nodeName,
      allowedCidrs: [`${ip}/32`],
    }),
  );
  let approver: ReturnType<typeof nodecredProcess> | undefined;
  const logged = (msg: string) => async () => messages(await daemon.log()).some((m) => m.msg.startsWith(msg));
  try {
    const wait = (what: string, ready: () => Promise<boolean>) =>
      waitReady({
        component: what,
        pid: daemon.pid,
        logFile: join(o.base, 'nodecred-run.log'),
        timeoutMs: 120_000,
        ready,
      });
    await wait('nodecred run', logged('the kubelet can start'));
    show('nodecred run: client certificate bootstrapped; no Node yet, so a self-signed serving placeholder; READY');
    const k = await startKubelet({ dir: state.dir, nodeName, kubeconfig, certDir });
    show(`kubelet v1.37.2 started on ${kubeconfig} and ${join(certDir, 'kubelet-server-current.pem')}`);
    show(`(rotateCertificates: false, serverTLSBootstrap: false; port ${ip}:${k.port})`);
    await wait('the serving CSR', logged('submitted CSR'));
    approver = nodecredProcess(
      ['approve', '--kubeconfig', state.kubeconfig, '--config', approverConfig, '--metrics-listen', 'off'],
      join(o.base, 'approver.log'),
    );
    await wait('the serving certificate', logged('installed serving certificate'));
    for (const m of messages(await approver.log()).filter((x) => /(approved|denied) CSR/.test(x.msg)))
      show(`[approver] ${m.msg} ${m.csr ?? ''}`);
    const ca = await readFile(state.caFile, 'utf8');
    const onDisk = new X509Certificate(await readFile(join(certDir, 'kubelet-server-current.pem'))).serialNumber;
    await wait('the kubelet to serve it', async () => (await servedSerial(ip, k.port, ca).catch(() => '')) === onDisk);
    show(await kubectl(state, ['get', 'node', nodeName, '-o', 'wide']));
    show(`the kubelet serves serial ${onDisk}, the certificate nodecred installed (no kubelet restart)`);
    const healthz = await kubectl(state, ['get', '--raw', `/api/v1/nodes/${nodeName}/proxy/healthz`]);
    show(`kubectl get --raw /api/v1/nodes/${nodeName}/proxy/healthz → ${healthz} (the API server verified it)`);
  } finally {
    await approver?.stop();
    await daemon.stop();
  }
}
