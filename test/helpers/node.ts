// Running the real `bin/nodecred` as a node would: in a temporary node directory, as a child process.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { StopWaiting, uniqueName, waitFor, type TestCluster } from './cluster.ts';

export const REPO = resolve(import.meta.dirname, '../..');
export const NODECRED = join(REPO, 'bin/nodecred');

export interface NodeDir {
  name: string;
  dir: string;
  certDir: string;
  kubeconfig: string;
  /** Flags every command needs for this node. */
  flags: string[];
  cleanup(): Promise<void>;
}

export async function newNodeDir(prefix = 'node'): Promise<NodeDir> {
  const name = uniqueName(prefix);
  const dir = await mkdtemp(join(tmpdir(), `nodecred-${prefix}-`));
  const certDir = join(dir, 'pki');
  const kubeconfig = join(dir, 'kubeconfig');
  return {
    name,
    dir,
    certDir,
    kubeconfig,
    flags: ['--node-name', name, '--cert-dir', certDir, '--kubeconfig', kubeconfig],
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runNodecred(
  args: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((res, rej) => {
    const child = spawn(NODECRED, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(
        new Error(
          `nodecred ${args[0]} did not exit within ${opts.timeoutMs ?? 120_000} ms; stderr: ${stderr.slice(-500)}`,
        ),
      );
    }, opts.timeoutMs ?? 120_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

export type KubeconfigUser =
  | { token: string }
  | { clientCertificate: string; clientKey: string }
  | { exec: { command: string; args?: string[]; env?: Array<{ name: string; value: string }> } };

/** A kubeconfig for the test cluster (or `server`, e.g. a fault-injecting proxy in front of it). */
export async function writeKubeconfig(
  path: string,
  c: TestCluster,
  user: KubeconfigUser,
  server = c.state.apiserver,
  /** More fields of the cluster entry, e.g. { 'proxy-url': ... }. */
  cluster: Record<string, unknown> = {},
): Promise<string> {
  const u =
    'token' in user
      ? { token: user.token }
      : 'exec' in user
        ? { exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', interactiveMode: 'Never', ...user.exec } }
        : { 'client-certificate': user.clientCertificate, 'client-key': user.clientKey };
  await writeFile(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'local', cluster: { server, 'certificate-authority': c.state.caFile, ...cluster } }],
      users: [{ name: 'bootstrap', user: u }],
      contexts: [{ name: 'bootstrap', context: { cluster: 'local', user: 'bootstrap' } }],
      'current-context': 'bootstrap',
    }),
    { mode: 0o600 },
  );
  return path;
}

/**
 * A token kubeconfig for the test cluster with its CA inline, for a reader that cannot see the cluster's
 * files (a container, a tree whose parents are being tested).
 */
export function inlineTokenKubeconfig(c: TestCluster, token: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'local',
        cluster: { server: c.state.apiserver, 'certificate-authority-data': Buffer.from(c.ca).toString('base64') },
      },
    ],
    users: [{ name: 'bootstrap', user: { token } }],
    contexts: [{ name: 'bootstrap', context: { cluster: 'local', user: 'bootstrap' } }],
    'current-context': 'bootstrap',
  });
}

export async function writeConfig(path: string, fields: Record<string, unknown>): Promise<string> {
  await writeFile(path, stringify({ apiVersion: 'nodecred.io/v1alpha1', kind: 'NodeCredConfiguration', ...fields }));
  return path;
}

export interface Daemon {
  child: ChildProcess;
  output(): string;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<number | null>;
}

/** Starts `nodecred run` and collects its JSON log lines. */
/** `nodecred run ARGS`; `binary` runs another build of nodecred (the bundle, the single executable). */
export function startDaemon(args: string[], opts: { binary?: string; cwd?: string } = {}): Daemon {
  const child = spawn(opts.binary ?? NODECRED, ['run', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return {
    child,
    output: () => out,
    waitForLog: (pattern, timeoutMs = 60_000) =>
      waitFor(
        `daemon log matching ${pattern}`,
        async () => {
          // StopWaiting: a daemon that is gone will not log anything any more (a plain Error was retried until
          // the timeout, and the output that said why was lost behind the next failed assertion).
          if (child.exitCode !== null)
            throw new StopWaiting(`daemon exited (${child.exitCode}); output:\n${out.slice(-2000)}`);
          return pattern.exec(out)?.[0];
        },
        timeoutMs,
      ),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** kube-public/cluster-info as kubeadm makes it, through the project's own script (token discovery needs it). */
export async function ensureClusterInfo(c: TestCluster): Promise<void> {
  await promisify(execFile)(join(REPO, 'scripts/setup-cluster-info'), ['--kubeconfig', c.state.kubeconfig], {
    env: { ...process.env, KUBECTL: c.state.kubectl },
  });
}
