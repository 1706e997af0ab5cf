// The node kubeconfig nodecred writes names the client pair by an absolute path. client-go (the kubelet) and
// nodecred's own reader resolve a relative client-certificate against the kubeconfig's directory, not the
// directory nodecred was started in: with a relative --cert-dir the kubelet looked for its pair elsewhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parse } from 'yaml';
import { mergeConfig } from '../../../src/config/schema.ts';
import { fileCredentials } from '../../../src/kube/node-credentials.ts';
import { readKubeconfigFile } from '../../../src/kube/api.ts';
import { createLogger } from '../../../src/log.ts';
import { makeCa } from '../pki/helpers.ts';

test('a relative cert dir: the node kubeconfig names the pair by its absolute path', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-kc-paths-'));
  const cwd = process.cwd();
  t.after(async () => {
    process.chdir(cwd);
    await rm(dir, { recursive: true, force: true });
  });
  await mkdir(join(dir, 'work'));
  process.chdir(join(dir, 'work'));
  const kubeconfig = join(dir, 'etc', 'kubelet.conf');
  const config = mergeConfig({ nodeName: 'worker-1', certDir: 'pki', kubeconfig });
  const log = createLogger('error', new Writable({ write: (_c, _e, done) => done() }) as never);
  const credentials = fileCredentials(() => config, log, join(config.certDir, 'kubelet-client-current.pem'));
  const ca = await makeCa('paths-test');
  await credentials.writeNodeKubeconfig(
    { server: 'https://10.0.0.1:6443', caPem: ca.certificatePem },
    ca.certificatePem,
  );
  const written = parse(await readFile(kubeconfig, 'utf8'));
  const wanted = join(dir, 'work', 'pki', 'kubelet-client-current.pem');
  assert.equal(written.users[0].user['client-certificate'], wanted);
  assert.equal(written.users[0].user['client-key'], wanted);
  const read = await readKubeconfigFile(kubeconfig);
  assert.deepEqual(read.credential, { kind: 'clientCert', certPath: wanted, keyPath: wanted });
});
