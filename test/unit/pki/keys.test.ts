import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { before, test } from 'node:test';
import { UserError } from '../../../src/errors.ts';
import { buildCsrPem, nodeSubject, parseCsrPem } from '../../../src/pki/csr.ts';
import {
  DEFAULT_KEY_ALGORITHM,
  describeKeyAlgorithm,
  encodePrivateKeyPem,
  generateKey,
  KEY_ALGORITHMS,
  loadPrivateKeyPem,
  isKeyAlgorithm,
  samePublicKey,
  supportedKeyAlgorithm,
  type KeyAlgorithm,
  type KeyPair,
} from '../../../src/pki/keys.ts';
import { openssl } from './helpers.ts';

const EXPECTED_PEM_LABEL: Record<KeyAlgorithm, string> = {
  'ecdsa-p256': 'EC PRIVATE KEY',
  'ecdsa-p384': 'EC PRIVATE KEY',
  'rsa-2048': 'RSA PRIVATE KEY',
  'rsa-3072': 'RSA PRIVATE KEY',
  'rsa-4096': 'RSA PRIVATE KEY',
};
const EXPECTED_CSR_SIGNATURE: Record<KeyAlgorithm, string> = {
  'ecdsa-p256': 'ecdsa-with-SHA256',
  'ecdsa-p384': 'ecdsa-with-SHA384',
  'rsa-2048': 'sha256WithRSAEncryption',
  'rsa-3072': 'sha256WithRSAEncryption',
  'rsa-4096': 'sha256WithRSAEncryption',
};

// Generated in parallel once: RSA 4096 alone takes seconds on a busy machine.
const generated = new Map<KeyAlgorithm, KeyPair>();
before(async () => {
  const pairs = await Promise.all(KEY_ALGORITHMS.map((algorithm) => generateKey(algorithm)));
  KEY_ALGORITHMS.forEach((algorithm, index) => {
    generated.set(algorithm, pairs[index]!);
  });
});

test('isKeyAlgorithm accepts the five algorithms and nothing else; the default is ecdsa-p256', () => {
  for (const algorithm of KEY_ALGORITHMS) assert.equal(isKeyAlgorithm(algorithm), true);
  for (const other of ['ed25519', 'ECDSA-P256', 'rsa-1024', '']) assert.equal(isKeyAlgorithm(other), false, other);
  assert.equal(DEFAULT_KEY_ALGORITHM, 'ecdsa-p256');
});

for (const algorithm of KEY_ALGORITHMS) {
  test(`${algorithm}: generate → PEM → load → CSR → openssl req -verify`, async () => {
    const { privateKey, publicKey } = generated.get(algorithm)!;
    assert.equal(describeKeyAlgorithm(privateKey), algorithm);
    assert.equal(describeKeyAlgorithm(publicKey), algorithm);

    const pem = encodePrivateKeyPem(privateKey);
    assert.match(pem, new RegExp(`^-----BEGIN ${EXPECTED_PEM_LABEL[algorithm]}-----\n`));
    const opensslPublic = openssl(['pkey', '-in', '{key.pem}', '-pubout'], { 'key.pem': pem });
    assert.equal(opensslPublic, publicKey.export({ format: 'pem', type: 'spki' }));

    const loaded = loadPrivateKeyPem(pem);
    assert.ok(samePublicKey(loaded, publicKey));
    assert.equal(supportedKeyAlgorithm(loaded), algorithm);

    const csrPem = await buildCsrPem(loaded, nodeSubject('node-1'));
    const text = openssl(['req', '-in', '{csr.pem}', '-verify', '-noout', '-text'], { 'csr.pem': csrPem });
    assert.match(text, /verify OK/);
    assert.match(text, new RegExp(`Signature Algorithm: ${EXPECTED_CSR_SIGNATURE[algorithm]}`));
    const parsed = await parseCsrPem(csrPem);
    assert.equal(parsed.keyAlgorithm, algorithm);
    assert.equal(parsed.signatureValid, true);
    assert.ok(samePublicKey(parsed.publicKey, publicKey));
  });
}

test('loadPrivateKeyPem accepts PKCS#8 and a kubelet-style "certificate then key" file', () => {
  const { privateKey, publicKey } = generated.get('ecdsa-p256')!;
  const pkcs8 = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  assert.ok(samePublicKey(loadPrivateKeyPem(pkcs8), publicKey));
  const certificate = openssl(['req', '-x509', '-key', '{key.pem}', '-subj', '/CN=x', '-days', '1'], {
    'key.pem': pkcs8,
  });
  const kubeletFile = certificate + encodePrivateKeyPem(privateKey);
  assert.ok(samePublicKey(loadPrivateKeyPem(kubeletFile), publicKey));
});

function assertUserError(fn: () => unknown, code: string, source?: string): void {
  assert.throws(fn, (error: unknown) => error instanceof UserError && error.code === code && error.where === source);
}

test('loadPrivateKeyPem names the file when there is no key, two keys, or an undecodable key', () => {
  const pem = encodePrivateKeyPem(generated.get('ecdsa-p256')!.privateKey);
  assertUserError(
    () => loadPrivateKeyPem('', '/var/lib/kubelet/pki/k.pem'),
    'KEY_NOT_FOUND',
    '/var/lib/kubelet/pki/k.pem',
  );
  assertUserError(() => loadPrivateKeyPem(pem + pem, 'k.pem'), 'KEY_NOT_FOUND', 'k.pem');
  const garbage = '-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n';
  assertUserError(() => loadPrivateKeyPem(garbage, 'k.pem'), 'KEY_INVALID', 'k.pem');
});

test('loadPrivateKeyPem refuses encrypted keys and key types nodecred cannot use', () => {
  const { privateKey } = generated.get('ecdsa-p256')!;
  const encrypted = privateKey.export({
    format: 'pem',
    type: 'pkcs8',
    cipher: 'aes-128-cbc',
    passphrase: 'x',
  }) as string;
  assertUserError(() => loadPrivateKeyPem(encrypted), 'KEY_ENCRYPTED');
  const ed25519 = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  assertUserError(() => loadPrivateKeyPem(ed25519), 'KEY_UNSUPPORTED');
});

test('describeKeyAlgorithm names keys nodecred does not generate, for the approver to refuse', () => {
  const describe = (key: KeyObject) => describeKeyAlgorithm(key);
  assert.equal(describe(generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey), 'ecdsa-p521');
  assert.equal(describe(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey), 'ecdsa-secp256k1');
  assert.equal(describe(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey), 'rsa-1024');
  assert.equal(describe(generateKeyPairSync('ed25519').publicKey), 'ed25519');
  assert.equal(supportedKeyAlgorithm(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey), undefined);
});

test('samePublicKey compares public halves of private and public keys', () => {
  const a = generated.get('ecdsa-p256')!;
  const b = generated.get('ecdsa-p384')!;
  assert.ok(samePublicKey(a.privateKey, a.publicKey));
  assert.ok(!samePublicKey(a.privateKey, b.publicKey));
});
