// `npm run demo` (the README's first command; CI runs it as written there): build and start a real local
// control plane, prepare it for TLS bootstrap the way kubeadm does, and bootstrap a node whose directories
// do not exist yet against it with `nodecred bootstrap`, showing each step and its result; and last, a real
// kubelet on nodecred's credentials from nothing (lib/demo-kubelet.ts).
// `npm run demo -- --keep` leaves the control plane and the node directory running/in place to explore.
import { UserError } from '../src/errors.ts';
import { runMain } from '../src/cli/exit.ts';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, writeFile, readdir, lstat, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { up, down, kubectl, type ClusterState } from './lib/local-cluster.ts';
import { kubeletFinale } from './lib/demo-kubelet.ts';

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, '..');
const NODECRED = join(REPO, 'bin/nodecred');
// The demo node's address: a documentation network (RFC 5737), nothing on this machine answers there.
const DEMO_NODE_IP = '192.0.2.10';
const DEMO_NODE_CIDR = '192.0.2.0/24';
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (s: string) => process.stdout.write(`\n${bold(`▶ ${s}`)}\n`);
// Indented; every line (including the last) ends with a newline, and no indent dangles after it.
const show = (s: string) => process.stdout.write(`${s.replace(/\n$/, '').replace(/^/gm, '  ')}\n`);

function token(): { id: string; secret: string } {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const pick = (n: number) => Array.from(randomBytes(n), (b) => alphabet[b % alphabet.length]).join('');
  return { id: pick(6), secret: pick(16) };
}

/** Runs nodecred, streaming its JSON log lines as a compact "msg" view. */
function nodecred(args: string[]): Promise<number> {
  return new Promise((res) => {
    const child = spawn(NODECRED, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const { level, msg, csr } = JSON.parse(line) as { level: string; msg: string; csr?: string };
          show(`[${level}] ${msg}${csr ? ` (${csr})` : ''}`);
        } catch {
          show(line);
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => show(d.toString()));
    child.on('exit', (code) => res(code ?? 1));
  });
}

async function prepareCluster(state: ClusterState, t: { id: string; secret: string }): Promise<void> {
  const k = (args: string[]) => kubectl(state, args);
  await k([
    '-n',
    'kube-system',
    'create',
    'secret',
    'generic',
    `bootstrap-token-${t.id}`,
    '--type',
    'bootstrap.kubernetes.io/token',
    `--from-literal=token-id=${t.id}`,
    `--from-literal=token-secret=${t.secret}`,
    '--from-literal=usage-bootstrap-authentication=true',
    '--from-literal=usage-bootstrap-signing=true',
    `--from-literal=expiration=${new Date(Date.now() + 3600_000).toISOString().replace(/\.\d+Z$/, 'Z')}`,
  ]);
  await k([
    'create',
    'clusterrolebinding',
    'kubeadm:kubelet-bootstrap',
    '--clusterrole=system:node-bootstrapper',
    '--group=system:bootstrappers',
  ]);
  await k([
    'create',
    'clusterrolebinding',
    'kubeadm:node-autoapprove-bootstrap',
    '--clusterrole=system:certificates.k8s.io:certificatesigningrequests:nodeclient',
    '--group=system:bootstrappers',
  ]);
  await k([
    'create',
    'clusterrolebinding',
    'kubeadm:node-autoapprove-certificate-rotation',
    '--clusterrole=system:certificates.k8s.io:certificatesigningrequests:selfnodeclient',
    '--group=system:nodes',
  ]);
}

async function main(): Promise<number> {
  const keep = process.argv.includes('--keep');
  const base = await mkdtemp(join(tmpdir(), 'nodecred-demo-'));
  const clusterDir = join(base, 'cluster');
  const nodeDir = join(base, 'node');
  const nodeName = 'demo-node-1';
  let state: ClusterState | undefined;
  try {
    step(
      'Building (first run only, then cached) and starting etcd, kube-apiserver and kube-controller-manager on ' +
        'loopback',
    );
    state = await up({ dir: clusterDir, log: (l) => show(l) });
    const version = JSON.parse(await kubectl(state, ['get', '--raw', '/version'])) as { gitVersion: string };
    show(`API server ${state.apiserver} reports ${version.gitVersion}`);

    step('Preparing the cluster for TLS bootstrap as kubeadm does: a bootstrap token and the node RBAC');
    const t = token();
    await prepareCluster(state, t);
    show(`bootstrap token ${t.id}.<secret> (expires in 1 h), node-bootstrapper + auto-approval ClusterRoleBindings`);
    const bootstrapConf = join(base, 'bootstrap-kubelet.conf');
    await writeFile(
      bootstrapConf,
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
        `    token: ${t.id}.${t.secret}`,
        'contexts:',
        '- name: bootstrap',
        '  context: {cluster: local, user: kubelet-bootstrap}',
        'current-context: bootstrap',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );

    const flags = [
      '--bootstrap-kubeconfig',
      bootstrapConf,
      '--kubeconfig',
      join(nodeDir, 'kubeconfig'),
      '--cert-dir',
      join(nodeDir, 'pki'),
      '--node-name',
      nodeName,
    ];
    step(
      `nodecred bootstrap --node-name ${nodeName} (key → CSR → auto-approval → issuance → verify → install → ` +
        `kubeconfig)`,
    );
    const started = Date.now();
    const code = await nodecred(['bootstrap', ...flags]);
    if (code !== 0) throw new UserError(`nodecred bootstrap exited ${code}`, { fix: 'see its message above' });
    show(`done in ${Date.now() - started} ms (including process start)`);

    step("What is on disk (kubelet's layout)");
    for (const name of (await readdir(join(nodeDir, 'pki'))).sort()) {
      const p = join(nodeDir, 'pki', name);
      const st = await lstat(p);
      show(`${(st.mode & 0o777).toString(8)}  ${name}${st.isSymbolicLink() ? ` -> ${await readlink(p)}` : ''}`);
    }
    const cert = await run('openssl', [
      'x509',
      '-in',
      join(nodeDir, 'pki', 'kubelet-client-current.pem'),
      '-noout',
      '-subject',
      '-issuer',
      '-enddate',
    ]);
    show(cert.stdout);

    step('The node kubeconfig authenticates as the node (kubectl auth whoami)');
    const who = await run(state.kubectl, ['--kubeconfig', join(nodeDir, 'kubeconfig'), 'auth', 'whoami']);
    show(who.stdout);

    step('Running bootstrap again changes nothing: the installed certificate is verified and kept');
    await nodecred(['bootstrap', ...flags]);

    step(
      'The serving certificate: a Node with addresses, `nodecred approve` approving, `nodecred bootstrap ' +
        '--rotate-server-certificates`',
    );
    await kubectl(
      state,
      ['create', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: nodeName } }),
    );
    await kubectl(state, [
      'patch',
      'node',
      nodeName,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({
        status: {
          addresses: [
            { type: 'InternalIP', address: DEMO_NODE_IP },
            { type: 'Hostname', address: nodeName },
          ],
        },
      }),
    ]);
    show(`Node ${nodeName} with addresses InternalIP ${DEMO_NODE_IP}, Hostname ${nodeName}`);
    // The approver approves only names its policy bounds: here the demo's node network, and each node's own
    // single-label name ("*"; a node name proves nothing by itself: whoever holds a bootstrap token picks it).
    // (127.0.0.1, where the API server listens, is never a node's: the approver would deny it.)
    const approverConfig = join(base, 'approver.yaml');
    await writeFile(
      approverConfig,
      'apiVersion: nodecred.io/v1alpha1\nkind: ApproverConfiguration\n' +
        `allowedCidrs: [${DEMO_NODE_CIDR}]\ndnsPatterns: ["*"]\n`,
    );
    show(`approver policy: allowedCidrs [${DEMO_NODE_CIDR}], dnsPatterns ["*"] (each node's own single-label name)`);
    const approver = spawn(
      NODECRED,
      ['approve', '--kubeconfig', state.kubeconfig, '--config', approverConfig, '--metrics-listen', 'off'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let approverLog = '';
    approver.stdout.on('data', (d: Buffer) => (approverLog += d.toString()));
    try {
      const servingCode = await nodecred(['bootstrap', ...flags, '--rotate-server-certificates']);
      if (servingCode !== 0)
        throw new UserError(`nodecred bootstrap --rotate-server-certificates exited ${servingCode}`, {
          fix: 'see its message above',
        });
    } finally {
      approver.kill('SIGTERM');
      await new Promise((r) => approver.once('exit', r));
    }
    for (const line of approverLog.split('\n').filter((l) => /"msg":"(approved|denied|left) CSR/.test(l))) {
      const { msg, csr, reason } = JSON.parse(line) as { msg: string; csr?: string; reason?: string };
      show(`[approver] ${msg}${csr ? ` ${csr}` : ''}${reason ? ` (${reason})` : ''}`);
    }
    const serving = await run('openssl', [
      'x509',
      '-in',
      join(nodeDir, 'pki', 'kubelet-server-current.pem'),
      '-noout',
      '-subject',
      '-ext',
      'subjectAltName,extendedKeyUsage',
    ]);
    show(serving.stdout);

    step('CSRs in the cluster (one per request, named from the key and the request)');
    show(await kubectl(state, ['get', 'csr']));

    await kubeletFinale(state, { base, bootstrapKubeconfig: bootstrapConf, out: { step, show } });
    if (keep) {
      show(
        `\ncontrol plane left running: . ${join(clusterDir, 'env')}; stop it with scripts/local-cluster down --dir ` +
          `${clusterDir}`,
      );
      show(`node files in ${nodeDir}`);
    }
    return 0;
  } finally {
    if (!keep) {
      if (state) await down(clusterDir);
      await rm(base, { recursive: true, force: true });
    }
  }
}

runMain('demo', main, { exit: true });
