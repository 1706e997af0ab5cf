import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { UserError } from '../../../src/errors.ts';
import { buildCsrPem, nodeSubject, parseCsrPem } from '../../../src/pki/csr.ts';
import { encodePrivateKeyPem, generateKey, samePublicKey, type KeyPair } from '../../../src/pki/keys.ts';
import { encodePem, parsePemBlocks } from '../../../src/pki/pem.ts';
import { openssl } from './helpers.ts';

let key: KeyPair;
before(async () => {
  key = await generateKey('ecdsa-p256');
});

test("nodeSubject is kubelet's O=system:nodes, CN=system:node:<name>", () => {
  assert.deepEqual(nodeSubject('ip-10-0-0-1'), {
    commonName: 'system:node:ip-10-0-0-1',
    organizations: ['system:nodes'],
  });
});

test('a serving CSR carries subject and DNS, IPv4 and IPv6 SANs that openssl reads back', async () => {
  const csrPem = await buildCsrPem(key.privateKey, {
    ...nodeSubject('node-1'),
    dnsNames: ['node-1', 'node-1.example.com'],
    ipAddresses: ['10.0.0.1', '2001:db8::1'],
  });
  const text = openssl(['req', '-in', '{csr.pem}', '-verify', '-noout', '-text'], { 'csr.pem': csrPem });
  assert.match(text, /verify OK/);
  assert.match(text, /Subject: O = system:nodes, CN = system:node:node-1\n/);
  assert.match(text, /DNS:node-1, DNS:node-1\.example\.com, IP Address:10\.0\.0\.1, IP Address:2001:DB8:0:0:0:0:0:1\n/);

  const parsed = await parseCsrPem(csrPem);
  assert.equal(parsed.commonName, 'system:node:node-1');
  assert.deepEqual(parsed.organizations, ['system:nodes']);
  assert.deepEqual(parsed.dnsNames, ['node-1', 'node-1.example.com']);
  assert.deepEqual(parsed.ipAddresses, ['10.0.0.1', '2001:db8::1']);
  assert.deepEqual(
    [parsed.emailAddresses, parsed.uris, parsed.otherSubjectAltNames, parsed.otherSubjectAttributes],
    [[], [], [], []],
  );
  assert.ok(samePublicKey(parsed.publicKey, key.publicKey));
  assert.equal(parsed.signatureValid, true);
});

test('a client CSR has no SAN extension at all (the client signer rejects SANs)', async () => {
  const csrPem = await buildCsrPem(key.privateKey, nodeSubject('node-1'));
  const text = openssl(['req', '-in', '{csr.pem}', '-noout', '-text'], { 'csr.pem': csrPem });
  assert.doesNotMatch(text, /Subject Alternative Name/);
  assert.match(text, /Attributes:\s+\(none\)/);
});

test('several organizations share one RDN set, as Go encodes them', async () => {
  const csrPem = await buildCsrPem(key.privateKey, { commonName: 'c', organizations: ['a', 'b'] });
  const text = openssl(['req', '-in', '{csr.pem}', '-noout', '-subject'], { 'csr.pem': csrPem });
  assert.equal(text.trim(), 'subject=O = a + O = b, CN = c');
  assert.deepEqual((await parseCsrPem(csrPem)).organizations, ['a', 'b']);
});

test('IPv4-mapped IPv6 SANs are written as 4-byte IPv4, as Go writes them', async () => {
  const csrPem = await buildCsrPem(key.privateKey, { ...nodeSubject('n'), ipAddresses: ['::ffff:10.1.2.3'] });
  const text = openssl(['req', '-in', '{csr.pem}', '-noout', '-text'], { 'csr.pem': csrPem });
  assert.match(text, /IP Address:10\.1\.2\.3\n/);
});

test('invalid SANs and an empty CN are UserErrors, not malformed CSRs', async () => {
  const invalid = [
    { ...nodeSubject('n'), ipAddresses: ['10.0.0.256'] },
    { ...nodeSubject('n'), ipAddresses: ['fe80::1%eth0'] },
    { ...nodeSubject('n'), dnsNames: ['bad name'] },
    { ...nodeSubject('n'), dnsNames: [''] },
    { commonName: '', organizations: ['system:nodes'] },
  ];
  for (const request of invalid) {
    await assert.rejects(
      buildCsrPem(key.privateKey, request),
      (error: unknown) => error instanceof UserError && error.code === 'CSR_INVALID',
    );
  }
});

test('parseCsrPem reads email, URI and other subject attributes from an openssl-made CSR', async () => {
  const csrPem = openssl(
    [
      'req',
      '-new',
      '-key',
      '{key.pem}',
      '-subj',
      '/O=system:nodes/OU=ops/CN=system:node:x',
      '-addext',
      'subjectAltName=DNS:x.example,IP:10.9.8.7,email:a@example.com,URI:spiffe://cluster/ns/x',
    ],
    { 'key.pem': encodePrivateKeyPem(key.privateKey) },
  );
  const parsed = await parseCsrPem(csrPem);
  assert.equal(parsed.commonName, 'system:node:x');
  assert.deepEqual(parsed.otherSubjectAttributes, ['OU=ops']);
  assert.deepEqual(parsed.dnsNames, ['x.example']);
  assert.deepEqual(parsed.ipAddresses, ['10.9.8.7']);
  assert.deepEqual(parsed.emailAddresses, ['a@example.com']);
  assert.deepEqual(parsed.uris, ['spiffe://cluster/ns/x']);
  assert.equal(parsed.signatureValid, true);
});

test('a CSR whose signature does not match its public key parses with signatureValid false', async () => {
  const der = parsePemBlocks(await buildCsrPem(key.privateKey, nodeSubject('node-1')), 'csr')[0]!.der;
  der[der.length - 5]! ^= 0x01; // inside the signature value, at the end of the DER
  const parsed = await parseCsrPem(encodePem('CERTIFICATE REQUEST', der));
  assert.equal(parsed.signatureValid, false);
  assert.equal(parsed.commonName, 'system:node:node-1');
});

test('parseCsrPem refuses zero or several CSRs, and garbage, with a UserError naming the source', async () => {
  const csrPem = await buildCsrPem(key.privateKey, nodeSubject('node-1'));
  const cases = [
    '',
    csrPem + csrPem,
    encodePem('CERTIFICATE REQUEST', Buffer.from('not der')),
    encodePem('CERTIFICATE', Buffer.from('x')),
  ];
  for (const text of cases) {
    await assert.rejects(
      parseCsrPem(text, 'csr/node-csr-abc'),
      (error: unknown) => error instanceof UserError && error.where === 'csr/node-csr-abc',
    );
  }
});

test('a CSR with two common names is refused: Go and openssl would disagree on which one counts', async () => {
  const csrPem = openssl(['req', '-new', '-key', '{key.pem}', '-subj', '/CN=a/CN=b'], {
    'key.pem': encodePrivateKeyPem(key.privateKey),
  });
  await assert.rejects(
    parseCsrPem(csrPem),
    (error: unknown) => error instanceof UserError && error.code === 'NAME_AMBIGUOUS',
  );
});
