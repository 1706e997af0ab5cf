// docs/kubelet.md shows the KubeletConfiguration the tests run the real kubelet on (docs/kubelet-config.yaml,
// read by scripts/lib/kubelet.ts): the two must not drift apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

const DOCS = join(import.meta.dirname, '../../../docs');

test('docs/kubelet.md shows docs/kubelet-config.yaml, which hands both certificates to nodecred', () => {
  const page = readFileSync(join(DOCS, 'kubelet.md'), 'utf8');
  const block = /```yaml\n(apiVersion: kubelet\.config\.k8s\.io\/v1beta1\n[\s\S]*?)```/.exec(page)?.[1];
  assert.ok(block, 'docs/kubelet.md has the KubeletConfiguration block');
  const file = parse(readFileSync(join(DOCS, 'kubelet-config.yaml'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(parse(block), file);
  assert.equal(file.rotateCertificates, false);
  assert.equal(file.serverTLSBootstrap, false);
  assert.equal(file.tlsCertFile, '/var/lib/kubelet/pki/kubelet-server-current.pem');
  assert.equal(file.tlsPrivateKeyFile, file.tlsCertFile);
});
