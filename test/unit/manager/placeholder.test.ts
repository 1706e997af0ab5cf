// The first-boot placeholder: a self-signed serving pair the kubelet accepts, installed only when no pair
// exists, never over a real one. openssl is the outside parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertStore, parsePairFile } from '../../../src/store/cert-store.ts';
import { ensureServingPlaceholder, PLACEHOLDER_ORGANIZATION } from '../../../src/manager/placeholder.ts';
import { generateKey } from '../../../src/pki/keys.ts';
import { issueLeaf, makeCa, SERVER_AUTH } from '../pki/helpers.ts';

const now = new Date('2026-01-02T03:04:05Z');

test('the placeholder is a self-signed ECDSA serving pair for the node name, in the kubelet layout', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-placeholder-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new CertStore(join(dir, 'pki'));
  const path = await ensureServingPlaceholder(store, 'worker-1', now);
  assert.ok(path, 'installed');
  const text = await readFile(store.currentPath('server'), 'utf8');
  parsePairFile(text, path); // the store (and so the kubelet's tls.X509KeyPair) accepts it: key matches
  const cert = new X509Certificate(text);
  assert.equal(cert.issuer, cert.subject);
  assert.ok(cert.verify(cert.publicKey), 'signed by its own key');
  const openssl = execFileSync('openssl', ['x509', '-noout', '-subject', '-ext', 'subjectAltName,extendedKeyUsage'], {
    input: text,
    encoding: 'utf8',
  });
  assert.match(openssl, new RegExp(`O ?= ?${PLACEHOLDER_ORGANIZATION}`));
  assert.match(openssl, /DNS:worker-1/);
  assert.match(openssl, /TLS Web Server Authentication/);
  assert.equal(await ensureServingPlaceholder(store, 'worker-1', now), null, 'not twice');
});

test('never over an installed serving certificate', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-placeholder-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new CertStore(join(dir, 'pki'));
  const ca = await makeCa('test-ca');
  const { privateKey } = await generateKey('ecdsa-p256');
  const leaf = await issueLeaf(ca, { publicKey: privateKey, extendedKeyUsages: [SERVER_AUTH], dnsNames: ['worker-1'] });
  await store.install('server', leaf, privateKey, now);
  assert.equal(await ensureServingPlaceholder(store, 'worker-1', now), null);
  assert.equal(new X509Certificate(await readFile(store.currentPath('server'))).issuer, 'CN=test-ca');
});
