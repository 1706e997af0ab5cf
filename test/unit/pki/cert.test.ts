import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { UserError } from '../../../src/errors.ts';
import {
  caPinHash,
  caPinHashes,
  parseCertificateBundle,
  parseCertificatePem,
  parsePinHash,
  splitCertificatePems,
} from '../../../src/pki/cert.ts';
import { encodePrivateKeyPem, samePublicKey } from '../../../src/pki/keys.ts';
import { encodePem } from '../../../src/pki/pem.ts';
import { issueLeaf, makeCa, newEcKey, openssl, SERVER_AUTH, shell, type TestCa } from './helpers.ts';

let ca: TestCa;
let otherCa: TestCa;
before(async () => {
  [ca, otherCa] = await Promise.all([makeCa('test-ca'), makeCa('other-ca')]);
});

test('splitCertificatePems returns every certificate of a bundle, skipping other blocks', async () => {
  const key = newEcKey();
  const leaf = await issueLeaf(ca, { publicKey: key.publicKey });
  const file = leaf + ca.certificatePem + encodePrivateKeyPem(key.privateKey);
  assert.deepEqual(splitCertificatePems(file), [leaf, ca.certificatePem]);
  assert.equal(parseCertificateBundle(file).length, 2);
});

test('splitCertificatePems refuses a bundle without certificates, naming it', () => {
  assert.throws(
    () => splitCertificatePems('nothing here', 'CA bundle', '/etc/kubernetes/pki/ca.crt'),
    (error: unknown) =>
      error instanceof UserError &&
      error.code === 'CERT_NOT_FOUND' &&
      error.oneLine().includes('/etc/kubernetes/pki/ca.crt: CA bundle'),
  );
});

test('parseCertificatePem summarises a serving certificate as openssl sees it', async () => {
  const key = newEcKey();
  const notBefore = new Date('2026-01-01T00:00:00Z');
  const notAfter = new Date('2027-01-01T00:00:00Z');
  const pem = await issueLeaf(ca, {
    publicKey: key.publicKey,
    extendedKeyUsages: [SERVER_AUTH],
    dnsNames: ['node-1'],
    ipAddresses: ['10.0.0.1', '2001:db8::1'],
    notBefore,
    notAfter,
  });
  const summary = parseCertificatePem(pem + ca.certificatePem);
  assert.equal(summary.subjectCommonName, 'system:node:node-1');
  assert.deepEqual(summary.subjectOrganizations, ['system:nodes']);
  assert.equal(summary.issuerCommonName, 'test-ca');
  assert.deepEqual(summary.notBefore, notBefore);
  assert.deepEqual(summary.notAfter, notAfter);
  assert.deepEqual(summary.dnsNames, ['node-1']);
  assert.deepEqual(summary.ipAddresses, ['10.0.0.1', '2001:db8::1']);
  assert.deepEqual(summary.extendedKeyUsages, ['serverAuth']);
  assert.deepEqual(summary.keyUsages, ['digitalSignature']);
  assert.equal(summary.isCertificateAuthority, false);
  assert.equal(summary.keyAlgorithm, 'ecdsa-p256');
  assert.ok(samePublicKey(summary.publicKey, key.publicKey));

  const opensslView = openssl(['x509', '-in', '{c.pem}', '-noout', '-serial', '-fingerprint', '-sha256'], {
    'c.pem': pem,
  });
  assert.match(opensslView, new RegExp(`serial=${summary.serialNumber}\n`));
  assert.match(opensslView, new RegExp(`Fingerprint=${summary.sha256Fingerprint}\n`));
});

test('a certificate without EKU or key usage extensions reports them as absent, not empty', async () => {
  const pem = await issueLeaf(ca, { publicKey: newEcKey().publicKey, extendedKeyUsages: null, keyUsages: null });
  const summary = parseCertificatePem(pem);
  assert.equal(summary.extendedKeyUsages, undefined);
  assert.equal(summary.keyUsages, undefined);
});

test('a CA certificate summary says so and lists its key usages', () => {
  const summary = parseCertificatePem(ca.certificatePem);
  assert.equal(summary.isCertificateAuthority, true);
  assert.deepEqual(summary.keyUsages, ['digitalSignature', 'keyCertSign', 'cRLSign']);
});

test('an undecodable certificate is a UserError naming which certificate of the bundle', () => {
  const text = ca.certificatePem + encodePem('CERTIFICATE', Buffer.from('definitely not DER'));
  assert.throws(
    () => parseCertificateBundle(text, 'CA bundle', 'ca.crt'),
    (error: unknown) =>
      error instanceof UserError &&
      error.code === 'CERT_INVALID' &&
      error.message.startsWith('CA bundle (certificate 2 of 2) could not be parsed'),
  );
});

const OPENSSL_PIN_RECIPE =
  'openssl x509 -pubkey -noout -in {ca.pem} | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex';

function opensslPin(caPem: string): string {
  const digest = shell(OPENSSL_PIN_RECIPE, { 'ca.pem': caPem }).trim().split(' ').pop()!;
  return `sha256:${digest}`;
}

test("caPinHash matches kubeadm's openssl recipe for EC and RSA CAs", () => {
  assert.equal(caPinHash(ca.certificatePem), opensslPin(ca.certificatePem));
  const rsaCa = openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    '/dev/null',
    '-subj',
    '/CN=rsa-ca',
    '-days',
    '1',
  ]);
  assert.equal(caPinHash(rsaCa), opensslPin(rsaCa));
});

test('caPinHash refuses a bundle; caPinHashes pins each certificate of it', () => {
  const bundle = ca.certificatePem + otherCa.certificatePem;
  assert.throws(
    () => caPinHash(bundle),
    (error: unknown) => error instanceof UserError && error.code === 'CA_PIN_AMBIGUOUS',
  );
  assert.deepEqual(caPinHashes(bundle), [caPinHash(ca.certificatePem), caPinHash(otherCa.certificatePem)]);
});

test("parsePinHash accepts kubeadm's format, normalising hex case", () => {
  const hex = 'ab'.repeat(32);
  assert.equal(parsePinHash(`sha256:${hex}`), `sha256:${hex}`);
  assert.equal(parsePinHash(`sha256:${hex.toUpperCase()}`), `sha256:${hex}`);
});

test('parsePinHash refuses anything else with a UserError', () => {
  const hex = 'ab'.repeat(32);
  for (const value of [
    '',
    hex,
    `sha1:${hex}`,
    `SHA256:${hex}`,
    `sha256:${hex}00`,
    `sha256:${hex.slice(2)}`,
    `sha256:${'zz'.repeat(32)}`,
  ]) {
    assert.throws(
      () => parsePinHash(value, '--discovery-token-ca-cert-hash'),
      (error: unknown) =>
        error instanceof UserError &&
        error.code === 'CA_PIN_INVALID' &&
        error.where === '--discovery-token-ca-cert-hash',
      value,
    );
  }
});
