// A kubeconfig's tokenFile (a bootstrap kubeconfig cloud-init writes): an empty or blank file is refused in one
// line naming it. It used to become an empty token, so requests went out anonymously and the API server's
// answer (403 for system:anonymous, "bind system:node-bootstrapper") sent the operator after RBAC instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { isUserError } from '../../../src/errors.ts';
import { connectionFromKubeconfig, readKubeconfigFile } from '../../../src/kube/api.ts';

test('tokenFile: an empty or blank file is refused, naming it; a token is read and trimmed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-token-file-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, 'bootstrap.conf');
  await writeFile(
    kubeconfig,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1:6443' } }],
      users: [{ name: 'boot', user: { tokenFile: 'token' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'boot' } }],
      'current-context': 'x',
    }),
  );
  const connect = async () => connectionFromKubeconfig(await readKubeconfigFile(kubeconfig), 'bootstrap');
  for (const text of ['', '\n  \n']) {
    await writeFile(join(dir, 'token'), text);
    await assert.rejects(connect(), (err: unknown) => {
      assert.ok(isUserError(err), String(err));
      assert.equal(err.where, `${kubeconfig}: users[boot].tokenFile`);
      assert.match(err.oneLine(), /is empty/);
      assert.match(err.oneLine(), new RegExp(join(dir, 'token')));
      return true;
    });
  }
  await writeFile(join(dir, 'token'), 'abcdef.0123456789abcdef\n');
  const conn = await connect();
  assert.deepEqual(conn.credential, { kind: 'token', token: 'abcdef.0123456789abcdef' });
});
