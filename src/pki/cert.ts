// X.509 certificates: split bundles, summarise certificates as plain data, and compute/parse kubeadm's CA
// pin ("sha256:<hex>"). Certificates come from disk, from the API and from anonymous discovery, so every
// parse failure is a UserError naming what was being read.
//
// Two parsers on purpose: node:crypto's X509Certificate does the cryptography (signature checks, issuer
// match, fingerprints) with OpenSSL, our DER reader (x509-read.ts) gives structured names and extensions,
// where node only offers display strings.

import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { UserError } from '../errors.ts';
import { describeKeyAlgorithm } from './keys.ts';
import { libraryErrorMessage } from './library-error.ts';
import { pemBlocksLabelled, type PemBlock } from './pem.ts';
import { readSubjectAltNames, readSubjectFields } from './x509-fields.ts';
import {
  readCertificate,
  readExtendedKeyUsageOids,
  readKeyUsageBits,
  unhandledCriticalExtensions,
  type CertificateFields,
} from './x509-read.ts';

const CERTIFICATE_PEM_LABEL = 'CERTIFICATE';
const PIN_HASH_PREFIX = 'sha256:';

const EXTENDED_KEY_USAGE_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
  '2.5.29.37.0': 'anyExtendedKeyUsage',
};

// RFC 5280 names, in bit order (digitalSignature is bit 0).
const KEY_USAGE_NAMES = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
] as const;

export interface CertificateSummary {
  subjectCommonName: string | undefined;
  subjectOrganizations: string[];
  /** Subject attributes other than CN and O, as "TYPE=value". */
  otherSubjectAttributes: string[];
  issuerCommonName: string | undefined;
  /** Upper-case hex, as openssl prints it. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  dnsNames: string[];
  /** Canonical text (IPv6 compressed, IPv4-mapped as dotted IPv4). */
  ipAddresses: string[];
  emailAddresses: string[];
  uris: string[];
  /** SANs of other types as "type:value". */
  otherSubjectAltNames: string[];
  /** RFC 5280 names ("clientAuth", "serverAuth", ...) or the OID; undefined without the extension. */
  extendedKeyUsages: string[] | undefined;
  /** RFC 5280 names ("digitalSignature", ...); undefined without the extension. */
  keyUsages: string[] | undefined;
  isCertificateAuthority: boolean;
  /** Critical extensions (OIDs) Go does not handle: it will not verify a chain through this certificate. */
  unhandledCriticalExtensions: string[];
  publicKey: KeyObject;
  /** See describeKeyAlgorithm. */
  keyAlgorithm: string;
  /** SHA-256 of the DER certificate, colon-separated upper-case hex as `openssl x509 -fingerprint -sha256`. */
  sha256Fingerprint: string;
}

/** A certificate decoded by both parsers; what verification works on. */
export interface LoadedCertificate {
  pem: string;
  native: X509Certificate;
  summary: CertificateSummary;
  /** The DER SubjectPublicKeyInfo exactly as it appears in the certificate. */
  spkiDer: Buffer;
}

/** The certificate PEM blocks of a bundle, in order; other blocks (a key) are skipped. */
export function splitCertificatePems(text: string, what = 'certificate bundle', source?: string): string[] {
  return certificateBlocks(text, what, source).map((block) => block.pem);
}

/** Every certificate of a bundle, decoded. `what` names the input in errors, e.g. "CA bundle". */
export function loadCertificates(text: string, what = 'certificate bundle', source?: string): LoadedCertificate[] {
  const blocks = certificateBlocks(text, what, source);
  return blocks.map((block, index) => {
    const label = blocks.length > 1 ? `${what} (certificate ${index + 1} of ${blocks.length})` : what;
    return loadCertificateDer(block.der, block.pem, label, source);
  });
}

function certificateBlocks(text: string, what: string, source: string | undefined): PemBlock[] {
  const blocks = pemBlocksLabelled(text, CERTIFICATE_PEM_LABEL, what, source);
  if (blocks.length > 0) return blocks;
  throw new UserError(`${what} contains no PEM "${CERTIFICATE_PEM_LABEL}" block`, {
    where: source,
    fix: `provide a PEM-encoded ${what}`,
    code: 'CERT_NOT_FOUND',
  });
}

/** Summaries of every certificate in a bundle, in order. */
export function parseCertificateBundle(
  text: string,
  what = 'certificate bundle',
  source?: string,
): CertificateSummary[] {
  return loadCertificates(text, what, source).map((certificate) => certificate.summary);
}

/** The summary of the first certificate in `text` (a leaf followed by its chain, typically). */
export function parseCertificatePem(text: string, what = 'certificate', source?: string): CertificateSummary {
  return loadCertificates(text, what, source)[0]!.summary;
}

/**
 * Certificates decoded lately, by their PEM block. Decoding costs most of a millisecond (the structured
 * parser), and the same few certificates (the cluster CA, the installed pairs) are read on every pass of
 * the daemon, and each issued certificate three times (verified, stored, verified as stored). Only
 * successful decodes are kept; a LoadedCertificate is never modified. A daemon holds a handful; the bound
 * matters where many are read at once (the fleet simulator verifies hundreds of nodes' certificates in one
 * instant).
 */
const decoded = new Map<string, LoadedCertificate>();
const DECODED_MAX = 256;

function loadCertificateDer(der: Buffer, pem: string, what: string, source: string | undefined): LoadedCertificate {
  const known = decoded.get(pem);
  if (known) return known;
  try {
    const native = new X509Certificate(der);
    const structured = readCertificate(der);
    const spkiDer = structured.spkiDer;
    const loaded = { pem, native, spkiDer, summary: summarise(native, structured, what, source) };
    if (decoded.size >= DECODED_MAX) decoded.delete(decoded.keys().next().value!);
    decoded.set(pem, loaded);
    return loaded;
  } catch (cause) {
    if (cause instanceof UserError) throw cause;
    throw new UserError(`${what} could not be parsed: ${libraryErrorMessage(cause)}`, {
      where: source,
      fix: `provide a valid PEM-encoded X.509 ${what}`,
      code: 'CERT_INVALID',
      cause,
    });
  }
}

function summarise(
  native: X509Certificate,
  structured: CertificateFields,
  what: string,
  source?: string,
): CertificateSummary {
  const subject = readSubjectFields(structured.subject, what, source);
  const issuer = readSubjectFields(structured.issuer, `${what} issuer`, source);
  const sans = readSubjectAltNames(structured.extensions);
  return {
    subjectCommonName: subject.commonName,
    subjectOrganizations: subject.organizations,
    otherSubjectAttributes: subject.otherAttributes,
    issuerCommonName: issuer.commonName,
    serialNumber: native.serialNumber.toUpperCase(),
    notBefore: native.validFromDate,
    notAfter: native.validToDate,
    dnsNames: sans.dnsNames,
    ipAddresses: sans.ipAddresses,
    emailAddresses: sans.emailAddresses,
    uris: sans.uris,
    otherSubjectAltNames: sans.otherNames,
    extendedKeyUsages: readExtendedKeyUsageOids(structured.extensions)?.map(
      (oid) => EXTENDED_KEY_USAGE_NAMES[oid] ?? oid,
    ),
    keyUsages: readKeyUsageBits(structured.extensions)
      ?.filter((bit) => bit < KEY_USAGE_NAMES.length)
      .map((bit) => KEY_USAGE_NAMES[bit]!),
    isCertificateAuthority: native.ca,
    unhandledCriticalExtensions: unhandledCriticalExtensions(structured.extensions),
    publicKey: native.publicKey,
    keyAlgorithm: describeKeyAlgorithm(native.publicKey),
    sha256Fingerprint: native.fingerprint256,
  };
}

/**
 * kubeadm's discovery-token-ca-cert-hash of a CA certificate: "sha256:" + hex SHA-256 of its DER
 * SubjectPublicKeyInfo. `caPem` must hold exactly one certificate, so a bundle cannot silently pin
 * whichever CA happens to come first; use caPinHashes for bundles.
 */
export function caPinHash(caPem: string, source?: string): string {
  const certificates = loadCertificates(caPem, 'CA certificate', source);
  if (certificates.length !== 1) {
    throw new UserError(`expected one CA certificate to pin, found ${certificates.length}`, {
      where: source,
      fix: 'pin each CA of a bundle separately (one hash per certificate)',
      code: 'CA_PIN_AMBIGUOUS',
    });
  }
  return pinHashOfSpki(certificates[0]!.spkiDer);
}

/** The pin hash of every certificate in a CA bundle, in order. */
export function caPinHashes(bundlePem: string, source?: string): string[] {
  return loadCertificates(bundlePem, 'CA bundle', source).map((certificate) => pinHashOfSpki(certificate.spkiDer));
}

function pinHashOfSpki(spkiDer: Uint8Array): string {
  return `${PIN_HASH_PREFIX}${createHash('sha256').update(spkiDer).digest('hex')}`;
}

/**
 * Validates a pin given by a user ("sha256:" + 64 hex digits, as kubeadm prints it) and returns it in
 * canonical lower case. kubeadm accepts upper-case hex too, so we do.
 */
export function parsePinHash(value: string, where?: string): string {
  const match = /^sha256:([0-9a-fA-F]{64})$/.exec(value.trim());
  if (match !== null) return `${PIN_HASH_PREFIX}${match[1]!.toLowerCase()}`;
  throw new UserError(
    `invalid CA pin ${JSON.stringify(truncate(value))}: expected "sha256:" followed by 64 hex digits`,
    {
      where,
      fix:
        'copy the hash printed by `kubeadm token create --print-join-command`, or compute it with `openssl x509 ' +
        '-pubkey -in ca.crt | openssl pkey -pubin -outform der | openssl dgst -sha256`',
      code: 'CA_PIN_INVALID',
    },
  );
}

function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 80)}…` : value;
}
