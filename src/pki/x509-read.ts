// Reading X.509 certificates and PKCS#10 requests with the project's own DER reader (der.ts): the names,
// extensions and SubjectPublicKeyInfo that node:crypto's X509Certificate offers only as display strings.
// Our own instead of @peculiar/x509 on the node side: that library, its ASN.1 schemas, tsyringe and
// reflect-metadata held ~8 MiB of an idle daemon's RSS for parsing a handful of certificates (issue 13).
// Certificates reach this reader after OpenSSL has decoded them (cert.ts), so it is strict about DER framing
// (der.ts readTlv) and lenient only about string types of name values, as Go is.
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import {
  children,
  DerError,
  expectTag,
  readBitString,
  readOid,
  readOnly,
  readWholeBitString,
  TAG,
  type Tlv,
} from './der.ts';
import { canonicalIp } from './san.ts';

/** One attribute of a distinguished name: its short name ("CN", "O", "OU", …) or dotted OID, and value. */
export interface NameAttribute {
  type: string;
  value: string;
}

export interface Extension {
  id: string;
  critical: boolean;
  /** The contents of the extnValue OCTET STRING. */
  value: Buffer;
}

export interface CertificateFields {
  /** Every attribute of the subject, in DER order (RDN by RDN). */
  subject: NameAttribute[];
  issuer: NameAttribute[];
  /** The DER SubjectPublicKeyInfo exactly as it appears in the certificate. */
  spkiDer: Buffer;
  extensions: Extension[];
}

export interface RequestFields {
  subject: NameAttribute[];
  publicKey: KeyObject;
  /**
   * The extensions of every extensionRequest attribute's first value, merged in order, none twice (as Go
   * reads them: x509.parseCSRExtensions).
   */
  extensions: Extension[];
  /** Whether the signature verifies with the request's own key under its stated algorithm. */
  signatureValid: boolean;
}

export const OID = {
  subjectAltName: '2.5.29.17',
  keyUsage: '2.5.29.15',
  extendedKeyUsage: '2.5.29.37',
  basicConstraints: '2.5.29.19',
  extensionRequest: '1.2.840.113549.1.9.14',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
} as const;

// The short names OpenSSL and @peculiar/x509 print; anything else is shown as its dotted OID.
const SHORT_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.6': 'C',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'E',
  '2.5.4.42': 'G',
  '2.5.4.43': 'I',
  '2.5.4.4': 'SN',
  '2.5.4.12': 'T',
};

/**
 * Signature algorithms a request may use (RSA PKCS#1 v1.5 and ECDSA, as Go signs), their hash, and the key
 * type each one names: Go counts a signature made with another kind of key as invalid (x509.checkSignature),
 * whatever node:crypto would make of it.
 */
export const SIGNATURE_ALGORITHMS: Record<string, { hash: string; keyType: 'ec' | 'rsa' }> = {
  '1.2.840.10045.4.3.2': { hash: 'sha256', keyType: 'ec' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', keyType: 'ec' },
  '1.2.840.10045.4.3.4': { hash: 'sha512', keyType: 'ec' },
  '1.2.840.113549.1.1.11': { hash: 'sha256', keyType: 'rsa' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', keyType: 'rsa' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', keyType: 'rsa' },
};

/** Whether `signature` over `tbs` verifies with `key` under `algorithm`, which must name the key's type. */
export function signatureVerifies(
  algorithm: { hash: string; keyType: string } | undefined,
  tbs: Buffer,
  key: KeyObject,
  signature: Buffer,
): boolean {
  if (algorithm === undefined) return false; // an algorithm we do not know proves nothing
  if (key.asymmetricKeyType !== algorithm.keyType) return false;
  try {
    return verify(algorithm.hash, tbs, { key, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

const CONTEXT = { explicit0: 0xa0, implicit1: 0x81, implicit2: 0x82, explicit3: 0xa3 } as const;

export function readCertificate(der: Buffer): CertificateFields {
  const root = expectTag(readOnly(der, 'certificate'), TAG.SEQUENCE, 'certificate', 'a SEQUENCE');
  const tbs = expectTag(children(root, 'certificate')[0], TAG.SEQUENCE, 'tbsCertificate', 'a SEQUENCE');
  const fields = children(tbs, 'tbsCertificate');
  let i = fields[0]?.tag === CONTEXT.explicit0 ? 1 : 0; // version, absent for v1
  const serial = expectTag(fields[i++], TAG.INTEGER, 'serialNumber', 'an INTEGER').contents;
  // Go (1.23+, unless GODEBUG x509negativeserial=1) refuses the certificate: "x509: negative serial number".
  if (serial.length > 0 && serial[0]! >= 0x80) throw new DerError('serialNumber', 'negative serial number');
  i++; // signature (node:crypto reads it)
  const issuer = readName(fields[i++], 'issuer');
  i++; // validity
  const subject = readName(fields[i++], 'subject');
  const spki = expectTag(fields[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo', 'a SEQUENCE');
  let extensions: Extension[] = [];
  for (; i < fields.length; i++) {
    const field = fields[i]!;
    if (field.tag === CONTEXT.explicit3) {
      extensions = readExtensions(onlyChild(field, 'extensions'), 'extensions');
      refuseDuplicates(extensions, 'extensions', 'extensions');
    } else if (field.tag !== CONTEXT.implicit1 && field.tag !== CONTEXT.implicit2)
      throw new DerError(`tbsCertificate[${i}]`, `unexpected field (tag 0x${field.tag.toString(16)})`);
  }
  return { subject, issuer, spkiDer: spki.bytes, extensions };
}

export function readRequest(der: Buffer): RequestFields {
  const root = expectTag(readOnly(der, 'request'), TAG.SEQUENCE, 'request', 'a SEQUENCE');
  const [info, algorithm, signature] = children(root, 'request');
  const infoFields = children(expectTag(info, TAG.SEQUENCE, 'certificationRequestInfo', 'a SEQUENCE'), 'info');
  const subject = readName(infoFields[1], 'subject');
  const spkiDer = expectTag(infoFields[2], TAG.SEQUENCE, 'subjectPublicKeyInfo', 'a SEQUENCE').bytes;
  const attributes = expectTag(infoFields[3], CONTEXT.explicit0, 'attributes', 'the [0] attributes');
  const extensions = children(attributes, 'attributes').flatMap((attribute, n) => {
    const path = `attributes[${n}]`;
    const [type, values] = children(expectTag(attribute, TAG.SEQUENCE, path, 'an Attribute'), path);
    if (readOid(type, `${path}.type`) !== OID.extensionRequest) return [];
    const set = children(expectTag(values, TAG.SET, `${path}.values`, 'a SET'), `${path}.values`);
    // Go reads the first value only (x509.parseCSRExtensions), and skips an attribute with none.
    return set.length === 0 ? [] : readExtensions(set[0], `${path}.values[0]`);
  });
  refuseDuplicates(extensions, 'attributes', 'requested extensions');
  const algorithmId = children(expectTag(algorithm, TAG.SEQUENCE, 'signatureAlgorithm', 'a SEQUENCE'), 'sigAlg')[0];
  const algorithmOid = readOid(algorithmId, 'signatureAlgorithm.id');
  const publicKey = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
  const bits = readWholeBitString(signature, 'signature');
  return {
    subject,
    publicKey,
    extensions,
    signatureValid: signatureVerifies(SIGNATURE_ALGORITHMS[algorithmOid], info!.bytes, publicKey, bits),
  };
}

function onlyChild(tlv: Tlv, path: string): Tlv {
  const list = children(tlv, path);
  if (list.length !== 1) throw new DerError(path, `${list.length} elements where 1 belongs`);
  return list[0]!;
}

/** A Name's attributes in DER order: RDN by RDN, each SET's members in the order they are encoded. */
export function readName(tlv: Tlv | undefined, path: string): NameAttribute[] {
  const rdns = children(expectTag(tlv, TAG.SEQUENCE, path, 'a Name'), path);
  return rdns.flatMap((rdn, i) =>
    children(expectTag(rdn, TAG.SET, `${path}[${i}]`, 'an RDN SET'), `${path}[${i}]`).map((atv, j) => {
      const at = `${path}[${i}][${j}]`;
      const [type, value] = children(expectTag(atv, TAG.SEQUENCE, at, 'an attribute'), at);
      const oid = readOid(type, `${at}.type`);
      if (value === undefined) throw new DerError(at, 'missing value');
      return { type: SHORT_NAMES[oid] ?? oid, value: directoryString(value) };
    }),
  );
}

const STRING_TAG = { teletex: 0x14, visible: 0x1a, universal: 0x1c, bmp: 0x1e } as const;
const UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });

function directoryString(tlv: Tlv): string {
  switch (tlv.tag) {
    case TAG.UTF8_STRING:
      return UTF8.decode(tlv.contents);
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case STRING_TAG.teletex:
    case STRING_TAG.visible:
      return tlv.contents.toString('latin1');
    case STRING_TAG.bmp:
      return new TextDecoder('utf-16be').decode(tlv.contents);
    case STRING_TAG.universal:
      return String.fromCodePoint(
        ...Array.from({ length: tlv.contents.length >> 2 }, (_, k) => tlv.contents.readUInt32BE(4 * k)),
      );
    default:
      return `#${tlv.bytes.toString('hex')}`; // RFC 4514's form for a value that is not a string
  }
}

/** Go refuses a certificate or request that carries an extension twice: which one holds would be a guess. */
function refuseDuplicates(extensions: readonly Extension[], path: string, what: string): void {
  const seen = new Set<string>();
  for (const { id } of extensions) {
    if (seen.has(id)) throw new DerError(path, `duplicate ${what} (${id})`);
    seen.add(id);
  }
}

function readExtensions(tlv: Tlv | undefined, path: string): Extension[] {
  return children(expectTag(tlv, TAG.SEQUENCE, path, 'Extensions'), path).map((ext, i) => {
    const at = `${path}[${i}]`;
    const parts = children(expectTag(ext, TAG.SEQUENCE, at, 'an Extension'), at);
    const critical = parts.length === 3 && expectTag(parts[1], TAG.BOOLEAN, at, 'a BOOLEAN').contents[0] !== 0;
    const value = expectTag(parts[parts.length - 1], TAG.OCTET_STRING, `${at}.value`, 'an OCTET STRING');
    return { id: readOid(parts[0], `${at}.id`), critical, value: value.contents };
  });
}

export interface GeneralNames {
  dnsNames: string[];
  /** Canonical text (see canonicalIp); an address that has no canonical form is kept as hex. */
  ipAddresses: string[];
  emailAddresses: string[];
  uris: string[];
  /** SANs of any other type (directory names, other names, …) as "type:value". */
  otherNames: string[];
}

// GeneralName's other context tags, named as @peculiar/x509 and openssl name them.
const GENERAL_NAME = new Map([
  [0xa0, 'other'],
  [0xa3, 'x400'],
  [0xa4, 'dn'],
  [0xa5, 'edi'],
  [0x88, 'id'],
]);

/** The names of every subjectAltName extension among `extensions`. */
export function readSubjectAltNames(extensions: readonly Extension[]): GeneralNames {
  const names: GeneralNames = { dnsNames: [], ipAddresses: [], emailAddresses: [], uris: [], otherNames: [] };
  for (const extension of extensions) {
    if (extension.id !== OID.subjectAltName) continue;
    const list = readOnly(extension.value, 'subjectAltName');
    children(expectTag(list, TAG.SEQUENCE, 'subjectAltName', 'GeneralNames'), 'subjectAltName').forEach((name) => {
      const text = name.contents.toString('latin1');
      if (name.tag === 0x82) names.dnsNames.push(text);
      else if (name.tag === 0x87) names.ipAddresses.push(ipText(name.contents));
      else if (name.tag === 0x81) names.emailAddresses.push(text);
      else if (name.tag === 0x86) names.uris.push(text);
      else
        names.otherNames.push(
          `${GENERAL_NAME.get(name.tag) ?? `[0x${name.tag.toString(16)}]`}:${name.bytes.toString('hex')}`,
        );
    });
  }
  return names;
}

function ipText(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  if (bytes.length === 16) {
    const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(2 * i).toString(16)).join(':');
    return canonicalIp(groups) ?? groups;
  }
  return bytes.toString('hex');
}

/**
 * The extensions Go's crypto/x509 acts on (parser.go processExtensions): subjectKeyIdentifier, keyUsage,
 * subjectAltName, basicConstraints, nameConstraints, cRLDistributionPoints, certificatePolicies,
 * policyMappings, authorityKeyIdentifier, policyConstraints, extKeyUsage, inhibitAnyPolicy.
 */
const HANDLED_EXTENSIONS = new Set(
  ['14', '15', '17', '19', '30', '31', '32', '33', '35', '36', '37', '54'].map((n) => `2.5.29.${n}`),
);

/**
 * Critical extensions Go does not act on, so refuses to verify a chain through ("x509: unhandled critical
 * extension"). As in Go, a critical SAN extension that names nothing Go reads counts as unhandled.
 */
export function unhandledCriticalExtensions(extensions: readonly Extension[]): string[] {
  return extensions
    .filter((e) => e.critical)
    .filter((e) => {
      if (!HANDLED_EXTENSIONS.has(e.id)) return true;
      if (e.id !== OID.subjectAltName) return false;
      const names = readSubjectAltNames([e]);
      return [names.dnsNames, names.emailAddresses, names.ipAddresses, names.uris].every((n) => n.length === 0);
    })
    .map((e) => e.id);
}

/** The EKU extension's purposes as dotted OIDs; undefined without the extension. */
export function readExtendedKeyUsageOids(extensions: readonly Extension[]): string[] | undefined {
  const extension = extensions.find((e) => e.id === OID.extendedKeyUsage);
  if (extension === undefined) return undefined;
  const list = expectTag(readOnly(extension.value, 'extKeyUsage'), TAG.SEQUENCE, 'extKeyUsage', 'a SEQUENCE');
  return children(list, 'extKeyUsage').map((oid, i) => readOid(oid, `extKeyUsage[${i}]`));
}

/** The key usage extension's bits that are set (bit 0 = digitalSignature); undefined without it. */
export function readKeyUsageBits(extensions: readonly Extension[]): number[] | undefined {
  const extension = extensions.find((e) => e.id === OID.keyUsage);
  if (extension === undefined) return undefined;
  // Go refuses the certificate ("x509: invalid key usage") unless the BIT STRING is as readBitString reads.
  const bytes = readBitString(readOnly(extension.value, 'keyUsage'), 'keyUsage');
  const bits: number[] = [];
  for (let bit = 0; bit < bytes.length * 8; bit++) if ((bytes[bit >> 3]! & (0x80 >> (bit & 7))) !== 0) bits.push(bit);
  return bits;
}
