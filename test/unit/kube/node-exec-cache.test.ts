// An exec-plugin node kubeconfig (EKS-style: aws-iam-authenticator): the daemon asks fileCredentials for the
// node's connection on every serving pass and every uncached health probe, and re-reads the kubeconfig each
// time. The plugin (an STS call, a vault login) must still run only when its credential is no longer fresh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { mergeConfig } from '../../../src/config/schema.ts';
import { fileCredentials } from '../../../src/kube/node-credentials.ts';
import type { ApiConnection } from '../../../src/kube/api.ts';
import { createLogger } from '../../../src/log.ts';

/** A node kubeconfig whose user is `command args…`; the plugin appends a line to `calls` on every run. */
async function execNode(dir: string, args: string[]) {
  const command = join(dir, 'plugin');
  const calls = join(dir, 'calls.log');
  const credential = JSON.stringify({
    apiVersion: 'client.authentication.k8s.io/v1beta1',
    kind: 'ExecCredential',
    status: { token: 'k8s-aws-v1.test', expirationTimestamp: new Date(Date.now() + 15 * 60_000).toISOString() },
  });
  await writeFile(command, `#!/bin/sh\necho "$*" >> '${calls}'\necho '${credential}'\n`);
  await chmod(command, 0o755);
  const kubeconfig = join(dir, 'kubelet.conf');
  const write = (pluginArgs: string[]) =>
    writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1:6443', 'insecure-skip-tls-verify': false } }],
        users: [
          {
            name: 'u',
            user: {
              exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command, args: pluginArgs },
            },
          },
        ],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
      { mode: 0o600 },
    );
  await write(args);
  const runs = async () => (await readFile(calls, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
  return { kubeconfig, runs, rewrite: write };
}

async function token(conn: ApiConnection): Promise<string | undefined> {
  assert.equal(conn.credential.kind, 'exec');
  return conn.credential.kind === 'exec' ? (await conn.credential.cache.get()).token : undefined;
}

test('an exec-plugin node identity runs its plugin once while the credential is fresh, not per call', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-exec-cache-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const node = await execNode(dir, ['token', '-i', 'a']);
  const config = mergeConfig({ nodeName: 'worker-1', certDir: join(dir, 'pki'), kubeconfig: node.kubeconfig });
  const log = createLogger('error', new Writable({ write: (_c, _e, done) => done() }) as never);
  const credentials = fileCredentials(() => config, log, join(dir, 'pki', 'kubelet-client-current.pem'));
  for (let pass = 0; pass < 5; pass++) assert.equal(await token(await credentials.node()), 'k8s-aws-v1.test');
  assert.equal(await node.runs(), 1, 'five passes, one plugin run');
  // Another plugin invocation (the kubeconfig was rewritten) is another credential: it runs.
  await node.rewrite(['token', '-i', 'b']);
  await token(await credentials.node());
  await token(await credentials.node());
  assert.equal(await node.runs(), 2);
});
