// The approver's reading of a CertificateSigningRequest's spec.request: exactly what Go's crypto/x509 (the
// API server's validation and the kubelet-serving signer) will read, or a refusal naming why.
//
// Go merges every PKCS#10 extensionRequest attribute and silently skips attributes it cannot parse; other
// parsers read the first one, or read non-minimal encodings Go refuses. A request that one parser reads as
// "IP:10.0.0.5" and Go as "DNS:kubernetes.default.svc" was approved and signed that way (issue 11). So this
// parser accepts only canonical DER, at most one attribute (extensionRequest, one value), no extension OID
// twice, no unknown critical extension, and re-encodes what it understood to prove it read every byte.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { isUserError } from '../errors.ts';
import type { ParsedCsr } from './csr.ts';
import { describeKeyAlgorithm } from './keys.ts';
import { CSR_PEM_LABEL } from './csr.ts';
import { parsePemBlocks } from './pem.ts';
import { canonicalIp } from './san.ts';
import {
  children,
  DerError,
  encodeOid,
  encodeTlv,
  expectTag,
  readOid,
  readOnly,
  readSmallInteger,
  readTrue,
  readWholeBitString,
  TAG,
  type Tlv,
} from './der.ts';
import { SIGNATURE_ALGORITHMS, signatureVerifies } from './x509-read.ts';

/** Why a request is refused before any policy looks at it (these are also the approver's deny reasons). */
export const REQUEST_REFUSALS = [
  'InvalidRequest',
  'NonCanonicalDER',
  'UnexpectedAttributes',
  'DuplicateExtension',
  'UnknownCriticalExtension',
] as const;
export type RequestRefusal = (typeof REQUEST_REFUSALS)[number];

export interface StrictCsr extends ParsedCsr {
  /** Every requested extension, as Go lists them in CertificateRequest.Extensions. */
  extensions: Array<{ id: string; critical: boolean }>;
}

export type StrictCsrResult = { ok: true; csr: StrictCsr } | { ok: false; reason: RequestRefusal; message: string };

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectAltName: '2.5.29.17',
  ecPublicKey: '1.2.840.10045.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
};
const SHORT_NAMES: Record<string, string> = { [OID.commonName]: 'CN', [OID.organization]: 'O', '2.5.4.11': 'OU' };

/** Extensions the signer is known to drop (it copies only subject, SANs and key): allowed even if critical. */
const KNOWN_EXTENSIONS = new Set([OID.subjectAltName, '2.5.29.14', '2.5.29.15', '2.5.29.19', '2.5.29.37']);

/** Signature algorithms and their hash; `rsa`: parameters must be NULL, else absent (RFC 5758, RFC 4055). */
const NULL_DER = Buffer.from([TAG.NULL, 0]);
const EXPLICIT_0 = 0xa0;

class Refusal extends Error {
  readonly reason: RequestRefusal;
  constructor(reason: RequestRefusal, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** Reads spec.request (the PEM bytes the API server stored). Pure: no I/O, no clock. */
export function parseStrictCsr(specRequest: Uint8Array): StrictCsrResult {
  try {
    return { ok: true, csr: readRequest(pemBody(Buffer.from(specRequest).toString('latin1'))) };
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, reason: err.reason, message: err.message };
    if (err instanceof DerError)
      return {
        ok: false,
        reason: err.nonCanonical ? 'NonCanonicalDER' : 'InvalidRequest',
        message: `${err.nonCanonical ? 'not canonical DER' : 'not a PKCS#10 request'} at ${err.message}`,
      };
    throw err;
  }
}

/** The DER of the one "CERTIFICATE REQUEST" block, which must be all the text holds (whitespace aside). */
function pemBody(text: string): Buffer {
  let blocks: ReturnType<typeof parsePemBlocks>;
  try {
    blocks = parsePemBlocks(text, 'spec.request');
  } catch (err) {
    if (isUserError(err)) throw new Refusal('InvalidRequest', err.message);
    throw err;
  }
  const trimmed = text.trim();
  if (
    blocks.length !== 1 ||
    blocks[0]!.label !== CSR_PEM_LABEL ||
    !trimmed.startsWith(`-----BEGIN ${CSR_PEM_LABEL}-----`) ||
    !trimmed.endsWith(`-----END ${CSR_PEM_LABEL}-----`)
  )
    throw new Refusal(
      'InvalidRequest',
      `spec.request must be exactly one PEM "${CSR_PEM_LABEL}" block and nothing else (found ${blocks.length} blocks)`,
    );
  return blocks[0]!.der;
}

interface SubjectEntry {
  oid: string;
  tag: number;
  value: string;
  raw: Buffer;
  /** Which RDN (SET) of the Name it is in: Go puts several values of one type in one SET. */
  rdn: number;
}

function readRequest(der: Buffer): StrictCsr {
  const root = expectTag(readOnly(der, 'request'), TAG.SEQUENCE, 'request', 'a SEQUENCE');
  const [info, sigAlg, sigBits] = exactly(children(root, 'request'), 3, 'request');
  const infoTlv = expectTag(info, TAG.SEQUENCE, 'certificationRequestInfo', 'a SEQUENCE');
  const [version, subject, spki, attributes] = exactly(children(infoTlv, 'info'), 4, 'certificationRequestInfo');
  if (readSmallInteger(version, 'version') !== 0)
    throw new Refusal('InvalidRequest', 'version: only version 0 (v1) requests exist');
  const names = readSubject(subject!);
  const key = readPublicKey(spki!);
  const requested = readAttributes(expectTag(attributes, EXPLICIT_0, 'attributes', 'the [0] attributes'));
  const extensions = requested ?? [];
  const algorithm = readSignatureAlgorithm(sigAlg!);
  const signature = readWholeBitString(sigBits, 'signature');

  const sans = readSubjectAltNames(extensions);
  // What we understood, encoded again: equal to the input only if no byte was skipped or read two ways.
  const again = seq(
    seq(
      encodeTlv(TAG.INTEGER, Buffer.from([0])),
      encodeName(names),
      seq(seq(encodeOid(key.algorithm), key.parameters), encodeTlv(TAG.BIT_STRING, pre0(key.bits))),
      encodeTlv(EXPLICIT_0, requested ? encodeExtensionRequest(requested) : Buffer.alloc(0)),
    ),
    seq(encodeOid(algorithm.oid), algorithm.parameters),
    encodeTlv(TAG.BIT_STRING, pre0(signature)),
  );
  if (!again.equals(der))
    throw new Refusal('NonCanonicalDER', 'not canonical DER: re-encoding the request gives different bytes');

  const other = names.filter((n) => n.oid !== OID.commonName && n.oid !== OID.organization);
  const commonNames = names.filter((n) => n.oid === OID.commonName);
  if (commonNames.length > 1)
    throw new Refusal('InvalidRequest', 'subject: more than one CN (Go keeps the last, other readers the first)');
  return {
    commonName: commonNames[0]?.value,
    organizations: names.filter((n) => n.oid === OID.organization).map((n) => n.value),
    otherSubjectAttributes: other.map((n) => `${SHORT_NAMES[n.oid] ?? n.oid}=${n.value}`),
    ...sans,
    publicKey: key.object,
    keyAlgorithm: describeKeyAlgorithm(key.object),
    signatureValid: signatureVerifies(algorithm.known, info!.bytes, key.object, signature),
    extensions: extensions.map((e) => ({ id: e.oid, critical: e.critical })),
  };
}

function readSubject(subject: Tlv): SubjectEntry[] {
  const rdns = children(expectTag(subject, TAG.SEQUENCE, 'subject', 'a Name'), 'subject');
  return rdns.flatMap((rdn, i) => {
    const path = `subject[${i}]`;
    const atvs = children(expectTag(rdn, TAG.SET, path, 'an RDN SET'), path);
    if (atvs.length === 0) throw new DerError(path, 'an empty RDN');
    // DER orders the members of a SET OF by their encodings (Go's encoder does); another order is BER.
    for (let j = 1; j < atvs.length; j++)
      if (Buffer.compare(atvs[j - 1]!.bytes, atvs[j]!.bytes) > 0)
        throw new DerError(`${path}[${j}]`, 'SET OF members out of DER order', true);
    return atvs.map((atv, j) => {
      const at = `${path}[${j}]`;
      const [type, value] = exactly(children(expectTag(atv, TAG.SEQUENCE, at, 'an attribute'), at), 2, at);
      const oid = readOid(type, `${at}.type`);
      return { oid, tag: value!.tag, value: readDirectoryString(value!, `${at}.value`), raw: value!.contents, rdn: i };
    });
  });
}

function encodeName(names: SubjectEntry[]): Buffer {
  const rdns: Buffer[][] = [];
  for (const n of names) {
    rdns[n.rdn] ??= [];
    rdns[n.rdn]!.push(seq(encodeOid(n.oid), encodeTlv(n.tag, n.raw)));
  }
  return seq(...rdns.map((members) => encodeTlv(TAG.SET, Buffer.concat(members))));
}

// Go reads a PrintableString with '*' and '&' too (certificates in the wild carry them).
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?*&]*$/;
// fatal: invalid UTF-8 (overlong forms, surrogates, stray bytes) is refused, as Go refuses it. ignoreBOM:
// a leading U+FEFF is part of the value, as for Go; the default decoder drops it, and then read
// "\ufeffsystem:nodes" as system:nodes, which the signer refuses after the approver approved it.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function readDirectoryString(tlv: Tlv, path: string): string {
  if (tlv.tag === TAG.UTF8_STRING) {
    try {
      return UTF8.decode(tlv.contents);
    } catch {
      throw new Refusal('InvalidRequest', `${path}: UTF8String is not valid UTF-8`);
    }
  }
  const text = tlv.contents.toString('latin1');
  if (tlv.tag === TAG.PRINTABLE_STRING && PRINTABLE.test(text)) return text;
  throw new Refusal('InvalidRequest', `${path}: only UTF8String or PrintableString values are accepted`);
}

interface PublicKeyInfo {
  algorithm: string;
  parameters: Buffer;
  bits: Buffer;
  object: KeyObject;
}

function readPublicKey(spki: Tlv): PublicKeyInfo {
  const [algId, bitString] = exactly(children(expectTag(spki, TAG.SEQUENCE, 'spki', 'a SEQUENCE'), 'spki'), 2, 'spki');
  const [oid, params, ...extra] = children(
    expectTag(algId, TAG.SEQUENCE, 'spki.algorithm', 'a SEQUENCE'),
    'spki.algorithm',
  );
  if (extra.length > 0) throw new DerError('spki.algorithm', 'more than two fields');
  const algorithm = readOid(oid, 'spki.algorithm.id');
  if (algorithm === OID.ecPublicKey) readOid(params, 'spki.algorithm.namedCurve');
  else if (algorithm === OID.rsaEncryption && !params?.bytes.equals(NULL_DER))
    throw new Refusal('InvalidRequest', 'spki.algorithm: RSA parameters must be NULL (Go refuses anything else)');
  const bits = readWholeBitString(bitString, 'spki.subjectPublicKey');
  const parameters = params?.bytes ?? Buffer.alloc(0);
  try {
    return { algorithm, parameters, bits, object: createPublicKey({ key: spki.bytes, format: 'der', type: 'spki' }) };
  } catch {
    throw new Refusal('InvalidRequest', 'spki: the public key does not parse');
  }
}

interface RequestedExtension {
  oid: string;
  critical: boolean;
  value: Buffer;
}

/** The extensions of the one extensionRequest attribute, or undefined when there is no attribute. */
function readAttributes(attributes: Tlv): RequestedExtension[] | undefined {
  const list = children(attributes, 'attributes');
  const types = list.map((attribute, i) => {
    const path = `attributes[${i}]`;
    const [type] = children(expectTag(attribute, TAG.SEQUENCE, path, 'an Attribute'), path);
    return readOid(type, `${path}.type`);
  });
  if (list.length > 1)
    throw new Refusal(
      'UnexpectedAttributes',
      `attributes: ${list.length} attributes (${types.join(', ')}); at most one, an extensionRequest, is accepted ` +
        '(Go merges every extensionRequest, other parsers read only the first)',
    );
  if (list.length === 0) return undefined;
  if (types[0] !== OID.extensionRequest)
    throw new Refusal(
      'UnexpectedAttributes',
      `attributes[0]: attribute ${types[0]} is not accepted (only extensionRequest)`,
    );
  const [, values] = exactly(children(list[0]!, 'attributes[0]'), 2, 'attributes[0]');
  const set = children(expectTag(values, TAG.SET, 'attributes[0].values', 'a SET'), 'attributes[0].values');
  if (set.length !== 1)
    throw new Refusal('UnexpectedAttributes', `attributes[0]: the extensionRequest holds ${set.length} values, not 1`);
  return readExtensions(set[0]!);
}

function readExtensions(value: Tlv): RequestedExtension[] {
  const path = 'extensionRequest';
  const seen = new Set<string>();
  return children(expectTag(value, TAG.SEQUENCE, path, 'Extensions'), path).map((ext, i) => {
    const at = `${path}[${i}]`;
    const parts = children(expectTag(ext, TAG.SEQUENCE, at, 'an Extension'), at);
    if (parts.length !== 2 && parts.length !== 3) throw new DerError(at, `an Extension of ${parts.length} fields`);
    const oid = readOid(parts[0], `${at}.id`);
    const critical = parts.length === 3;
    if (critical) readTrue(parts[1]!, `${at}.critical`);
    const octets = expectTag(parts[parts.length - 1], TAG.OCTET_STRING, `${at}.value`, 'an OCTET STRING');
    if (seen.has(oid)) throw new Refusal('DuplicateExtension', `${at}: extension ${oid} is requested twice`);
    seen.add(oid);
    if (critical && !KNOWN_EXTENSIONS.has(oid))
      throw new Refusal('UnknownCriticalExtension', `${at}: unknown extension ${oid} is marked critical`);
    return { oid, critical, value: octets.contents };
  });
}

function encodeExtensionRequest(extensions: RequestedExtension[]): Buffer {
  const list = extensions.map((e) =>
    seq(
      encodeOid(e.oid),
      e.critical ? Buffer.from([TAG.BOOLEAN, 1, 0xff]) : Buffer.alloc(0),
      encodeTlv(TAG.OCTET_STRING, e.value),
    ),
  );
  return seq(encodeOid(OID.extensionRequest), encodeTlv(TAG.SET, seq(...list)));
}

type Sans = Pick<ParsedCsr, 'dnsNames' | 'ipAddresses' | 'emailAddresses' | 'uris' | 'otherSubjectAltNames'>;

const GENERAL_NAME = { email: 0x81, dns: 0x82, uri: 0x86, ip: 0x87 };

function readSubjectAltNames(extensions: RequestedExtension[]): Sans {
  const sans: Sans = { dnsNames: [], ipAddresses: [], emailAddresses: [], uris: [], otherSubjectAltNames: [] };
  const ext = extensions.find((e) => e.oid === OID.subjectAltName);
  if (!ext) return sans;
  const path = 'subjectAltName';
  const names = children(expectTag(readOnly(ext.value, path), TAG.SEQUENCE, path, 'GeneralNames'), path);
  names.forEach((name, i) => {
    const at = `${path}[${i}]`;
    if (name.tag === GENERAL_NAME.ip) sans.ipAddresses.push(ipText(name.contents, at));
    else if (name.tag === GENERAL_NAME.dns) sans.dnsNames.push(ia5(name.contents, at));
    else if (name.tag === GENERAL_NAME.email) sans.emailAddresses.push(ia5(name.contents, at));
    else if (name.tag === GENERAL_NAME.uri) sans.uris.push(ia5(name.contents, at));
    else sans.otherSubjectAltNames.push(`[tag 0x${name.tag.toString(16)}]`);
  });
  if (!seq(...names.map((n) => n.bytes)).equals(ext.value))
    throw new Refusal('NonCanonicalDER', `not canonical DER: ${path} re-encodes differently`);
  return sans;
}

function ia5(bytes: Buffer, path: string): string {
  if (bytes.some((b) => b > 0x7f)) throw new Refusal('InvalidRequest', `${path}: not an IA5String (non-ASCII)`);
  return bytes.toString('latin1');
}

function ipText(bytes: Buffer, path: string): string {
  let text: string | undefined;
  if (bytes.length === 4) text = [...bytes].join('.');
  else if (bytes.length === 16)
    text = canonicalIp(Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(2 * i).toString(16)).join(':'));
  if (text === undefined) throw new Refusal('InvalidRequest', `${path}: an IP address of ${bytes.length} bytes`);
  return text;
}

interface SignatureAlgorithm {
  oid: string;
  parameters: Buffer;
  /** Undefined when the algorithm is unknown or its parameters do not belong. */
  known: (typeof SIGNATURE_ALGORITHMS)[string] | undefined;
}

function readSignatureAlgorithm(tlv: Tlv): SignatureAlgorithm {
  const parts = children(expectTag(tlv, TAG.SEQUENCE, 'signatureAlgorithm', 'a SEQUENCE'), 'signatureAlgorithm');
  if (parts.length < 1 || parts.length > 2) throw new DerError('signatureAlgorithm', `${parts.length} fields`);
  const oid = readOid(parts[0], 'signatureAlgorithm.id');
  const parameters = parts[1]?.bytes ?? Buffer.alloc(0);
  const known = SIGNATURE_ALGORITHMS[oid];
  // An unknown algorithm, or parameters that do not belong, proves nothing: the signature counts as invalid.
  const fits = known !== undefined && parameters.equals(known.keyType === 'rsa' ? NULL_DER : Buffer.alloc(0));
  return { oid, parameters, known: fits ? known : undefined };
}

function exactly(list: Tlv[], n: number, path: string): Array<Tlv | undefined> {
  if (list.length !== n) throw new DerError(path, `${list.length} fields where ${n} belong`);
  return list;
}

function seq(...parts: Buffer[]): Buffer {
  return encodeTlv(TAG.SEQUENCE, Buffer.concat(parts));
}

function pre0(bits: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0]), bits]);
}
