// `nodecred approve` as a child process deciding the serving CSRs of the nodes a test names, under its
// safe policy: the Node's addresses, and IPs only inside the allowed CIDRs. It runs with the admin
// kubeconfig and a Lease of its own, so it never competes with the approvers test/integration/approver.test.ts
// starts (that file proves deploy/approver-rbac.yaml suffices).
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { StopWaiting, waitFor, type TestCluster } from './cluster.ts';
import { NODECRED } from './node.ts';

export interface RunningApprover {
  output(): string;
  stop(): Promise<number | null>;
}

export async function startApprover(
  c: TestCluster,
  opts: { dir: string; nodeNames: string[]; allowedCidrs: string[]; leaseName: string },
): Promise<RunningApprover> {
  const config = join(opts.dir, `${opts.leaseName}.yaml`);
  await writeFile(
    config,
    stringify({
      apiVersion: 'nodecred.io/v1alpha1',
      kind: 'ApproverConfiguration',
      nodeNamePattern: opts.nodeNames.map((n) => n.replaceAll('.', '\\.')).join('|'),
      allowedCidrs: opts.allowedCidrs,
      resyncInterval: '3s',
    }),
  );
  const child = spawn(
    NODECRED,
    [
      'approve',
      '--kubeconfig',
      c.state.kubeconfig,
      '--config',
      config,
      '--lease-name',
      opts.leaseName,
      '--metrics-listen',
      'off',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await waitFor('the approver to lead', async () => {
    if (child.exitCode !== null) throw new StopWaiting(`approver exited (${child.exitCode}):\n${out.slice(-2000)}`);
    return /"msg":"became leader"/.test(out) ? true : undefined;
  });
  return {
    output: () => out,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
