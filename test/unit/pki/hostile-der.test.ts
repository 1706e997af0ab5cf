// Hostile DER that costs more than it should, or that Go refuses: what the node-side readers (src/pki/der.ts,
// x509-read.ts, strict-csr.ts) do with it. Go's behaviour is cited from its source (go1.2x, encoding/asn1 and
// crypto/x509); what Go reads of a CSR is also checked against Go itself in test/integration/csr-oracle.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { parseCertificatePem } from '../../../src/pki/cert.ts';
import { parseCsrPem } from '../../../src/pki/csr.ts';
import { encodeTlv, readOid, readOnly, TAG } from '../../../src/pki/der.ts';
import { encodePem, parsePemBlocks } from '../../../src/pki/pem.ts';
import { parseStrictCsr } from '../../../src/pki/strict-csr.ts';
import { readCertificate } from '../../../src/pki/x509-read.ts';
import {
  decodeNode,
  extensionRequestTwice,
  encodeNode,
  type DerNode,
  nodeName,
  prim,
  resignCertificate,
  requestInfo,
  seq,
  signRequest,
  toPem,
} from '../../helpers/der-builder.ts';
import { issueLeaf, makeCa } from './helpers.ts';

const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
/** A test that would take quadratic time fails by this timeout rather than by a timed assertion. */
const HANG = { timeout: 20_000 };

/** 1.2.<one sub-identifier of `bytes` continuation bytes>: an arc of 7·bytes bits. */
const hugeArcOid = (bytes: number): DerNode => prim(0x06, [0x2a, ...Buffer.alloc(bytes, 0xff), 0x7f]);
const oidText = (contents: number[]) => readOid(readOnly(encodeTlv(TAG.OID, Buffer.from(contents)), 'oid'), 'oid');

test("OID sub-identifiers are held to Go's limit (encoding/asn1 parseBase128Int: at most MaxInt32)", () => {
  assert.equal(oidText([0x2a, 0x87, 0xff, 0xff, 0xff, 0x7f]), '1.2.2147483647');
  assert.throws(() => oidText([0x2a, 0x88, 0x80, 0x80, 0x80, 0x00]), /sub-identifier too large/); // 2^31
  assert.throws(() => oidText([0x2a, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00]), /sub-identifier too large/); // 6 bytes
  assert.throws(() => oidText([0xff, 0xff, 0xff, 0xff, 0x7f]), /sub-identifier too large/); // first arcs combined
  // Many small arcs are no sub-identifier over the limit: Go reads them, and so do we (in linear time).
  assert.equal(oidText([0x2a, ...Array(100_000).fill(3)]), `1.2${'.3'.repeat(100_000)}`);
});

test('a CSR with one 300 KB OID is refused by both CSR readers, not read for minutes', HANG, async () => {
  const attribute = seq(hugeArcOid(300_000), prim(0x31, [5, 0]));
  const pem = toPem(signRequest(requestInfo(key, nodeName('n1'), [attribute]), key));
  const strict = parseStrictCsr(Buffer.from(pem));
  assert.equal(strict.ok, false);
  assert.match(strict.ok ? '' : strict.message, /sub-identifier too large/);
  await assert.rejects(parseCsrPem(pem, 'csr.pem'), /sub-identifier too large/);
});

test('a certificate with one 300 KB OID in its subject is refused, not read for minutes', HANG, async () => {
  const ca = await makeCa('hostile-der-ca');
  const leafPem = await issueLeaf(ca, { publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey });
  const root = decodeNode(parsePemBlocks(leafPem, 'leaf')[0]!.der);
  const cert = root as { children: DerNode[] };
  const tbs = cert.children[0] as { children: DerNode[] };
  const subject = tbs.children[5] as { children: Array<{ children: Array<{ children: DerNode[] }> }> };
  subject.children[0]!.children[0]!.children[0] = hugeArcOid(300_000);
  const der = encodeNode(root);
  assert.throws(() => readCertificate(der), /sub-identifier too large/);
  assert.throws(() => parseCertificatePem(encodePem('CERTIFICATE', der), 'client certificate'));
});

test("the node's CSR reader reads extensionRequest as Go does: each attribute's first value, none twice", async () => {
  // Go (crypto/x509 parseCSRExtensions): attr.Values[0] only; "certificate request contains duplicate
  // requested extensions". csr-oracle.test.ts checks the same two requests against Go itself.
  const twoValues = await parseCsrPem(toPem(extensionRequestTwice(key, 'n1', 'values')));
  assert.deepEqual(twoValues.dnsNames, ['a.n1']);
  await assert.rejects(
    parseCsrPem(toPem(extensionRequestTwice(key, 'n1', 'attributes'))),
    /duplicate requested extensions \(2\.5\.29\.17\)/,
  );
});

test('a key usage BIT STRING Go refuses ("x509: invalid key usage"): unused bits over 7, or not zero', async () => {
  const ca = await makeCa('key-usage-ca');
  const leaf = await issueLeaf(ca, { publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey });
  const withKeyUsage = (bitString: number[]) =>
    resignCertificate(leaf, ca.privateKey, (tbs) => {
      const extensions = (tbs.children[7] as { children: Array<{ children: DerNode[] }> }).children[0]!;
      const keyUsage = extensions.children.find(
        (e) =>
          (e as { children: DerNode[] }).children[0]!.tag === 0x06 &&
          (e as { children: Array<{ contents: Buffer }> }).children[0]!.contents.equals(
            Buffer.from([0x55, 0x1d, 0x0f]),
          ),
      );
      const parts = (keyUsage as { children: DerNode[] }).children;
      parts[parts.length - 1] = prim(0x04, encodeTlv(TAG.BIT_STRING, Buffer.from(bitString)));
    });
  // digitalSignature, 7 unused bits, zero: as Go and every CA write it.
  assert.deepEqual(parseCertificatePem(withKeyUsage([7, 0x80])).keyUsages, ['digitalSignature']);
  assert.throws(() => parseCertificatePem(withKeyUsage([7, 0xff])), /unused bits set/);
  assert.throws(() => parseCertificatePem(withKeyUsage([8, 0x80])), /8 unused bits/);
  assert.throws(() => parseCertificatePem(withKeyUsage([1])), /1 unused bits/);
});
