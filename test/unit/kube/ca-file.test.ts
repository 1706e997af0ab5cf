// The kubeconfig's certificate-authority file: an empty or non-PEM file is refused in one line naming it,
// never read as "no CA" (which would trust the system roots instead of the cluster CA).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { isUserError } from '../../../src/errors.ts';
import { endpointOf, readKubeconfigFile } from '../../../src/kube/api.ts';
import { makeCa } from '../pki/helpers.ts';

async function endpointWithCaFile(dir: string, caText: string | Buffer) {
  const caFile = join(dir, 'ca.crt');
  await writeFile(caFile, caText);
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1:6443', 'certificate-authority': 'ca.crt' } }],
      users: [{ name: 'u', user: { token: 'abcdef.0123456789abcdef' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
  );
  return endpointOf(await readKubeconfigFile(kubeconfig));
}

test('certificate-authority: empty, blank or non-PEM files are refused, naming the file; PEM is read', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-ca-file-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const ca = await makeCa('ca-file-test');
  for (const [what, text] of [
    ['empty', ''],
    ['blank', '\n  \n'],
    ['not PEM', 'this is not a certificate\n'],
    ['DER', Buffer.from(ca.certificatePem.split('\n').slice(1, -2).join(''), 'base64')],
  ] as const) {
    try {
      await endpointWithCaFile(dir, text);
      assert.fail(`${what}: accepted`);
    } catch (err) {
      assert.ok(isUserError(err), `${what}: ${(err as Error).stack}`);
      const line = err.oneLine();
      assert.ok(!line.includes('\n'), `${what}: one line`);
      assert.match(line, new RegExp(`${join(dir, 'ca.crt').replaceAll('.', '\\.')}`), `${what}: names the file`);
      assert.match(line, /kubeconfig: certificate-authority/, `${what}: names the field`);
    }
  }
  assert.equal((await endpointWithCaFile(dir, ca.certificatePem)).caPem, ca.certificatePem);
});
