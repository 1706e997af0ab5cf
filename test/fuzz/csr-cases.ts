// Hand-crafted PKCS#10 requests that exploit, or would exploit, a difference between two readers of the
// same bytes. Each names what the approver's strict reader (src/pki/strict-csr.ts) must answer; the unit
// tests check that answer, the oracle test (test/integration/csr-oracle.test.ts) checks it against what Go's
// crypto/x509 and the kubelet-serving signer make of the same bytes.
import type { KeyObject } from 'node:crypto';
import type { RequestRefusal } from '../../src/pki/strict-csr.ts';
import {
  cons,
  encodeNode,
  extension,
  extensionRequest,
  generalNames,
  nodeName,
  oid,
  OIDS,
  prim,
  rdn,
  requestInfo,
  sanExtension,
  seq,
  set,
  signRequest,
  smuggledSanRequest,
  utf8,
  type DerNode,
} from '../helpers/der-builder.ts';

export const CASE_NODE = 'fuzz-node';
export const CASE_IP = '10.0.0.5';

export interface CraftedCase {
  name: string;
  build(key: KeyObject): Buffer;
  /** ok: accepted as Go reads it; otherwise the refusal reason. */
  expect: 'ok' | RequestRefusal;
}

const own = [{ dns: CASE_NODE }, { ip: CASE_IP }];
const info = (key: KeyObject, attributes: DerNode[], subject = nodeName(CASE_NODE)) =>
  requestInfo(key, subject, attributes);
const signed = (key: KeyObject, attributes: DerNode[], subject?: DerNode) =>
  signRequest(info(key, attributes, subject), key);

export const CRAFTED_CASES: CraftedCase[] = [
  { name: 'a well-formed request', expect: 'ok', build: (k) => signed(k, [extensionRequest(sanExtension(own))]) },
  {
    name: 'issue 11: a decoy extensionRequest with a non-minimal OID before the real one',
    expect: 'NonCanonicalDER',
    build: (k) => smuggledSanRequest(k, CASE_NODE, CASE_IP, 'kubernetes.default.svc'),
  },
  {
    name: 'two well-formed extensionRequest attributes (Go merges them)',
    expect: 'UnexpectedAttributes',
    build: (k) =>
      signed(k, [
        extensionRequest(sanExtension(own)),
        extensionRequest(extension(OIDS.keyUsage, prim(0x03, [0x07, 0x80]))),
      ]),
  },
  {
    name: 'an extensionRequest whose SET holds two values (Go reads only the first)',
    expect: 'UnexpectedAttributes',
    build: (k) =>
      signed(k, [
        seq(
          oid(OIDS.extensionRequest),
          set(seq(sanExtension(own)), seq(sanExtension([{ dns: 'kubernetes.default.svc' }]))),
        ),
      ]),
  },
  {
    name: 'a challengePassword attribute',
    expect: 'UnexpectedAttributes',
    build: (k) =>
      signed(k, [seq(oid(OIDS.challengePassword), set(utf8('secret'))), extensionRequest(sanExtension(own))]),
  },
  {
    name: 'two SAN extensions in one extensionRequest',
    expect: 'DuplicateExtension',
    build: (k) => signed(k, [extensionRequest(sanExtension(own), sanExtension([{ dns: 'kubernetes.default.svc' }]))]),
  },
  {
    name: 'an unknown critical extension',
    expect: 'UnknownCriticalExtension',
    build: (k) =>
      signed(k, [
        extensionRequest(sanExtension(own), extension('1.3.6.1.4.1.99999.1', prim(0x05, []), prim(0x01, [0xff]))),
      ]),
  },
  {
    name: 'a critical SAN extension and an unknown non-critical one',
    expect: 'ok',
    build: (k) =>
      signed(k, [
        extensionRequest(
          extension(OIDS.san, generalNames(own), prim(0x01, [0xff])),
          extension('1.3.6.1.4.1.99999.1', prim(0x05, [])),
        ),
      ]),
  },
  {
    name: 'critical FALSE written out (BER, not DER)',
    expect: 'NonCanonicalDER',
    build: (k) => signed(k, [extensionRequest(extension(OIDS.san, generalNames(own), prim(0x01, [0x00])))]),
  },
  {
    name: 'a long-form length where the short form fits',
    expect: 'NonCanonicalDER',
    build: (k) => signed(k, [extensionRequest({ ...sanExtension(own), lengthBytes: 1 })]),
  },
  {
    name: 'bytes after the GeneralNames inside the SAN extension (Go ignores them)',
    expect: 'NonCanonicalDER',
    build: (k) =>
      signed(k, [
        extensionRequest(
          extension(OIDS.san, Buffer.concat([encodeNode(generalNames(own)), encodeNode(generalNames([{ dns: 'x' }]))])),
        ),
      ]),
  },
  {
    name: 'a non-minimal OID in the subject',
    expect: 'NonCanonicalDER',
    build: (k) =>
      signed(
        k,
        [extensionRequest(sanExtension(own))],
        seq(rdn(OIDS.o, utf8('system:nodes')), set(seq(oid(OIDS.cn, 1), utf8(`system:node:${CASE_NODE}`)))),
      ),
  },
  {
    name: 'Extensions as a SET instead of a SEQUENCE',
    expect: 'InvalidRequest',
    build: (k) => signed(k, [seq(oid(OIDS.extensionRequest), set(set(sanExtension(own))))]),
  },
  {
    name: 'the SAN extension nested one SEQUENCE deeper',
    expect: 'InvalidRequest',
    build: (k) => signed(k, [seq(oid(OIDS.extensionRequest), set(seq(seq(sanExtension(own)))))]),
  },
  {
    name: 'two CNs (Go keeps the last, others the first)',
    expect: 'InvalidRequest',
    build: (k) =>
      signed(
        k,
        [extensionRequest(sanExtension(own))],
        seq(
          rdn(OIDS.o, utf8('system:nodes')),
          rdn(OIDS.cn, utf8('system:node:other')),
          rdn(OIDS.cn, utf8(`system:node:${CASE_NODE}`)),
        ),
      ),
  },
  {
    name: 'O and CN in one multi-valued RDN, in DER order',
    expect: 'ok',
    build: (k) =>
      signed(
        k,
        [extensionRequest(sanExtension(own))],
        seq(set(seq(oid(OIDS.o), utf8('system:nodes')), seq(oid(OIDS.cn), utf8(`system:node:${CASE_NODE}`)))),
      ),
  },
  {
    name: 'a multi-valued RDN out of DER order',
    expect: 'NonCanonicalDER',
    build: (k) =>
      signed(
        k,
        [extensionRequest(sanExtension(own))],
        seq(set(seq(oid(OIDS.cn), utf8(`system:node:${CASE_NODE}`)), seq(oid(OIDS.o), utf8('system:nodes')))),
      ),
  },
  {
    name: 'a wildcard DNS SAN (read fine; the policy refuses it)',
    expect: 'ok',
    build: (k) => signed(k, [extensionRequest(sanExtension([{ dns: `*.${CASE_NODE}.example` }, { ip: CASE_IP }]))]),
  },
  {
    name: 'an IPv4-mapped IPv6 SAN (Go signs it as IPv4)',
    expect: 'ok',
    build: (k) => signed(k, [extensionRequest(sanExtension([{ ip: '::ffff:10.0.0.5' }]))]),
  },
  {
    name: 'a DNS SAN with a byte above 0x7f',
    expect: 'InvalidRequest',
    build: (k) => signed(k, [extensionRequest(extension(OIDS.san, seq(prim(0x82, Buffer.from([0x61, 0xc3, 0xa9])))))]),
  },
  {
    name: 'a directoryName SAN (Go drops it)',
    expect: 'ok',
    build: (k) =>
      signed(k, [extensionRequest(extension(OIDS.san, seq(prim(0x87, [10, 0, 0, 5]), cons(0xa4, nodeName('x')))))]),
  },
  {
    name: 'a byte after the request',
    expect: 'NonCanonicalDER',
    build: (k) => Buffer.concat([signed(k, [extensionRequest(sanExtension(own))]), Buffer.from([0])]),
  },
  {
    name: 'an indefinite length (BER)',
    expect: 'NonCanonicalDER',
    build: (k) => {
      const attribute = encodeNode(extensionRequest(sanExtension(own)));
      // 30 80 <contents> 00 00: the same SEQUENCE with an indefinite length.
      const indefinite = Buffer.concat([Buffer.from([0x30, 0x80]), attribute.subarray(2), Buffer.from([0, 0])]);
      const base = info(k, []) as { children: DerNode[] };
      return signRequest(seq(...base.children.slice(0, 3), { tag: 0xa0, contents: indefinite }), k);
    },
  },
  {
    name: 'no attributes at all',
    expect: 'ok',
    build: (k) => signed(k, []),
  },
];
