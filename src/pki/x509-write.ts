// Writing PKCS#10 requests and the self-signed placeholder certificate in DER, signed with node:crypto:
// node:crypto cannot make either, and @peculiar/x509 costs an idle daemon ~8 MiB of RSS (issue 13). The
// encodings follow Go's crypto/x509 (CreateCertificateRequest, CreateCertificate), so our requests look
// like the kubelet's; tests read them back with openssl and Go (test/unit/pki/csr.test.ts, the csr-inspect
// oracle).
import { isIPv4 } from 'node:net';
import { sign, type KeyObject } from 'node:crypto';
import { encodeOid, encodeTlv, TAG } from './der.ts';
import type { KeyAlgorithm } from './keys.ts';
import { OID } from './x509-read.ts';

/** A Name as RDNs, each a list of [dotted OID, value]: several values of one type share one RDN, as in Go. */
export type NameRdns = Array<Array<[string, string]>>;

export interface GeneralNameInput {
  dnsNames: readonly string[];
  /** Canonical IP text (san.ts canonicalIp). */
  ipAddresses: readonly string[];
}

export interface ExtensionInput {
  id: string;
  critical: boolean;
  value: Buffer;
}

// Go signs with the hash that matches the curve, and SHA-256 for RSA (x509.signingParamsForKey).
const SIGNATURE: Record<KeyAlgorithm, { oid: string; hash: string; rsa: boolean }> = {
  'ecdsa-p256': { oid: '1.2.840.10045.4.3.2', hash: 'sha256', rsa: false },
  'ecdsa-p384': { oid: '1.2.840.10045.4.3.3', hash: 'sha384', rsa: false },
  'rsa-2048': { oid: '1.2.840.113549.1.1.11', hash: 'sha256', rsa: true },
  'rsa-3072': { oid: '1.2.840.113549.1.1.11', hash: 'sha256', rsa: true },
  'rsa-4096': { oid: '1.2.840.113549.1.1.11', hash: 'sha256', rsa: true },
};

export function seq(...parts: Buffer[]): Buffer {
  return encodeTlv(TAG.SEQUENCE, Buffer.concat(parts));
}

// Go's asn1 marshals a string as PrintableString when every character allows it, else as UTF8String.
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

function directoryString(value: string): Buffer {
  return PRINTABLE.test(value)
    ? encodeTlv(TAG.PRINTABLE_STRING, Buffer.from(value, 'latin1'))
    : encodeTlv(TAG.UTF8_STRING, Buffer.from(value, 'utf8'));
}

/** DER orders the members of a SET OF by their encodings. */
function setOf(members: Buffer[]): Buffer {
  return encodeTlv(TAG.SET, Buffer.concat([...members].sort(Buffer.compare)));
}

export function encodeName(rdns: NameRdns): Buffer {
  return seq(...rdns.map((rdn) => setOf(rdn.map(([oid, value]) => seq(encodeOid(oid), directoryString(value))))));
}

/** 4 bytes for IPv4, 16 for IPv6; `ip` is canonical text (san.ts canonicalIp: hex groups, no dotted tail). */
function ipBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const hextets = (part: string) => (part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16)));
  const left = hextets(head);
  const right = ip.includes('::') ? hextets(tail) : [];
  const groups = [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  for (const [i, group] of groups.entries()) out.writeUInt16BE(group, 2 * i);
  return out;
}

/** The subjectAltName extension: DNS names first, then IP addresses (Go's order). */
export function subjectAltNameExtension(names: GeneralNameInput): ExtensionInput {
  const dns = names.dnsNames.map((name) => encodeTlv(0x82, Buffer.from(name, 'latin1')));
  const ips = names.ipAddresses.map((ip) => encodeTlv(0x87, ipBytes(ip)));
  return { id: OID.subjectAltName, critical: false, value: seq(...dns, ...ips) };
}

function encodeExtensions(extensions: readonly ExtensionInput[]): Buffer {
  return seq(
    ...extensions.map((e) =>
      seq(
        encodeOid(e.id),
        e.critical ? Buffer.from([TAG.BOOLEAN, 1, 0xff]) : Buffer.alloc(0),
        encodeTlv(TAG.OCTET_STRING, e.value),
      ),
    ),
  );
}

function signed(tbs: Buffer, privateKey: KeyObject, algorithm: KeyAlgorithm): Buffer {
  const { oid, hash, rsa } = SIGNATURE[algorithm];
  const algorithmId = seq(encodeOid(oid), rsa ? Buffer.from([TAG.NULL, 0]) : Buffer.alloc(0));
  const signature = sign(hash, tbs, { key: privateKey, dsaEncoding: 'der' });
  return seq(tbs, algorithmId, encodeTlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), signature])));
}

/**
 * A PKCS#10 request for `subject` with the key pair's public half. Extensions go in one extensionRequest
 * attribute; without extensions the request has no attributes at all (the client signer refuses any SAN).
 */
export function buildRequestDer(
  privateKey: KeyObject,
  publicSpkiDer: Buffer,
  algorithm: KeyAlgorithm,
  subject: NameRdns,
  extensions: readonly ExtensionInput[],
): Buffer {
  const attributes =
    extensions.length === 0
      ? Buffer.alloc(0)
      : seq(encodeOid(OID.extensionRequest), setOf([encodeExtensions(extensions)]));
  const info = seq(
    encodeTlv(TAG.INTEGER, Buffer.from([0])),
    encodeName(subject),
    publicSpkiDer,
    encodeTlv(0xa0, attributes),
  );
  return signed(info, privateKey, algorithm);
}

export interface CertificateInput {
  /** Positive, at most 20 bytes, first byte < 0x80. */
  serial: Buffer;
  subject: NameRdns;
  issuer: NameRdns;
  notBefore: Date;
  notAfter: Date;
  publicSpkiDer: Buffer;
  extensions: readonly ExtensionInput[];
}

/** RFC 5280: UTCTime through 2049, GeneralizedTime from 2050. */
function encodeTime(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14); // YYYYMMDDHHMMSS
  return date.getUTCFullYear() < 2050
    ? encodeTlv(0x17, Buffer.from(`${iso.slice(2)}Z`, 'latin1'))
    : encodeTlv(0x18, Buffer.from(`${iso}Z`, 'latin1'));
}

/** A v3 certificate for `input`, signed by `signingKey` (the subject's own key for a self-signed one). */
export function buildCertificateDer(input: CertificateInput, signingKey: KeyObject, algorithm: KeyAlgorithm): Buffer {
  const { oid, rsa } = SIGNATURE[algorithm];
  const tbs = seq(
    encodeTlv(0xa0, encodeTlv(TAG.INTEGER, Buffer.from([2]))),
    encodeTlv(TAG.INTEGER, input.serial),
    seq(encodeOid(oid), rsa ? Buffer.from([TAG.NULL, 0]) : Buffer.alloc(0)),
    encodeName(input.issuer),
    seq(encodeTime(input.notBefore), encodeTime(input.notAfter)),
    encodeName(input.subject),
    input.publicSpkiDer,
    encodeTlv(0xa3, encodeExtensions(input.extensions)),
  );
  return signed(tbs, signingKey, algorithm);
}
