// The approver's strict reader of spec.request (src/pki/strict-csr.ts): what it reads from requests real
// tools make (nodecred itself, openssl), and the exact refusal for every crafted request in
// test/fuzz/csr-cases.ts. That Go reads the accepted ones identically is test/integration/csr-oracle.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { buildCsrPem, nodeSubject, parseCsrPem } from '../../../src/pki/csr.ts';
import { encodePrivateKeyPem, generateKey } from '../../../src/pki/keys.ts';
import { encodePem, parsePemBlocks } from '../../../src/pki/pem.ts';
import { parseStrictCsr, type StrictCsrResult } from '../../../src/pki/strict-csr.ts';
import { CRAFTED_CASES } from '../../fuzz/csr-cases.ts';
import {
  decodeNode,
  encodeNode,
  extensionRequest,
  nodeName,
  oid,
  prim,
  requestInfo,
  sanExtension,
  seq,
  signRequest,
  toPem,
} from '../../helpers/der-builder.ts';
import { openssl } from './helpers.ts';

const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const parse = (pem: string) => parseStrictCsr(Buffer.from(pem));

function accepted(r: StrictCsrResult) {
  assert.ok(r.ok, JSON.stringify(r));
  return r.csr;
}

test('reads what nodecred builds, for every key algorithm, exactly', async () => {
  for (const alg of ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048'] as const) {
    const { privateKey } = await generateKey(alg);
    const pem = await buildCsrPem(privateKey, {
      ...nodeSubject('worker-1'),
      dnsNames: ['worker-1', 'worker-1.example'],
      ipAddresses: ['10.0.0.5', '2001:db8::5'],
    });
    const csr = accepted(parse(pem));
    assert.equal(csr.commonName, 'system:node:worker-1');
    assert.deepEqual(csr.organizations, ['system:nodes']);
    assert.deepEqual(csr.otherSubjectAttributes, []);
    assert.deepEqual(csr.dnsNames, ['worker-1', 'worker-1.example']);
    assert.deepEqual(csr.ipAddresses, ['10.0.0.5', '2001:db8::5']);
    assert.equal(csr.keyAlgorithm, alg);
    assert.equal(csr.signatureValid, true);
    assert.deepEqual(csr.extensions, [{ id: '2.5.29.17', critical: false }]);
  }
});

test('reads an openssl-made request: OU, email and URI SANs are reported for the policy to refuse', () => {
  const pem = openssl(
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
    { 'key.pem': encodePrivateKeyPem(key) },
  );
  const csr = accepted(parse(pem));
  assert.deepEqual(csr.otherSubjectAttributes, ['OU=ops']);
  assert.deepEqual(csr.dnsNames, ['x.example']);
  assert.deepEqual(csr.ipAddresses, ['10.9.8.7']);
  assert.deepEqual(csr.emailAddresses, ['a@example.com']);
  assert.deepEqual(csr.uris, ['spiffe://cluster/ns/x']);
  assert.equal(csr.signatureValid, true);
});

test('a signature that does not verify is read, with signatureValid false', async () => {
  const der = parsePemBlocks(await buildCsrPem(key, { ...nodeSubject('n'), ipAddresses: ['10.0.0.5'] }), 'csr')[0]!.der;
  der[der.length - 5]! ^= 0x01;
  assert.equal(accepted(parse(encodePem('CERTIFICATE REQUEST', der))).signatureValid, false);
});

test('a signature under an algorithm that names another key type is invalid, in both CSR readers (as Go)', async () => {
  // Go: "x509: signature algorithm specifies an ECDSA public key, but have public key of type *rsa.PublicKey"
  // (crypto/x509 checkSignature), whatever the signature bytes are; node:crypto verifies by the key alone.
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const info = requestInfo(rsa, nodeName('n1'), [extensionRequest(sanExtension([{ ip: '10.0.0.5' }]))]);
  const rsaLabelledEcdsa = toPem(signRequest(info, rsa)); // PKCS#1 v1.5, labelled ecdsa-with-SHA256
  const ecInfo = encodeNode(requestInfo(key, nodeName('n1'), []));
  const ecLabelledRsa = toPem(
    encodeNode(
      seq(
        decodeNode(ecInfo),
        seq(oid('1.2.840.113549.1.1.11'), prim(0x05, [])), // sha256WithRSAEncryption, over an ECDSA signature
        prim(0x03, Buffer.concat([Buffer.from([0]), sign('sha256', ecInfo, { key, dsaEncoding: 'der' })])),
      ),
    ),
  );
  for (const pem of [rsaLabelledEcdsa, ecLabelledRsa]) {
    assert.equal(accepted(parse(pem)).signatureValid, false);
    assert.equal((await parseCsrPem(pem)).signatureValid, false);
  }
});

for (const c of CRAFTED_CASES) {
  test(`crafted: ${c.name} → ${c.expect}`, () => {
    const r = parseStrictCsr(Buffer.from(toPem(c.build(key))));
    if (c.expect === 'ok') accepted(r);
    else {
      assert.equal(r.ok, false, `accepted: ${JSON.stringify(r)}`);
      assert.equal(r.ok === false && r.reason, c.expect, r.ok === false ? r.message : '');
    }
  });
}

test('text is read as Go reads it: a leading BOM, a zero-width space and a NUL are kept, bad UTF-8 refused', () => {
  const read = (prefix: string) =>
    accepted(parseStrictCsr(Buffer.from(toPem(CRAFTED_CASES.find((c) => c.name.startsWith(prefix))!.build(key)))));
  // A decoder that strips the BOM read O=system:nodes; Go reads "\ufeffsystem:nodes" and the signer refuses it.
  assert.deepEqual(read('a BOM before system:nodes').organizations, ['\ufeffsystem:nodes']);
  assert.equal(read('a zero-width space and a NUL').commonName, 'system:node:\u200bfuzz-node\u0000');
  const overlong = parseStrictCsr(
    Buffer.from(toPem(CRAFTED_CASES.find((c) => c.name.startsWith('an overlong'))!.build(key))),
  );
  assert.equal(overlong.ok === false && overlong.reason, 'InvalidRequest');
});

test('the issue-11 request is refused naming the exact cause', () => {
  const r = parseStrictCsr(Buffer.from(toPem(CRAFTED_CASES[1]!.build(key))));
  assert.deepEqual(r, {
    ok: false,
    reason: 'NonCanonicalDER',
    message: 'not canonical DER at attributes[0].type: OBJECT IDENTIFIER not minimally encoded',
  });
});

test('PEM framing: exactly one CERTIFICATE REQUEST block and nothing else', async () => {
  const pem = await buildCsrPem(key, { ...nodeSubject('n'), ipAddresses: ['10.0.0.5'] });
  accepted(parse(`\n${pem}\n\n`));
  for (const text of [`${pem}${pem}`, `note\n${pem}`, `${pem}trailer`, '', 'garbage', pem.replace(/REQUEST/g, 'X')]) {
    const r = parse(text);
    assert.equal(r.ok, false, text.slice(0, 40));
    assert.equal(r.ok === false && r.reason, 'InvalidRequest');
  }
});
