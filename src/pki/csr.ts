// PKCS#10 certificate signing requests: build them for our own keys, parse the ones the approver is asked
// to approve. Our own DER (x509-write.ts, x509-read.ts) because node:crypto cannot make CSRs.

import type { KeyObject } from 'node:crypto';
import { UserError } from '../errors.ts';
import { describeKeyAlgorithm, KEY_ALGORITHMS, spkiDer, supportedKeyAlgorithm, type KeyAlgorithm } from './keys.ts';
import { libraryErrorMessage } from './library-error.ts';
import { encodePem, pemBlocksLabelled } from './pem.ts';
import { canonicalIp, isDnsSanName } from './san.ts';
import { readSubjectAltNames, readSubjectFields } from './x509-fields.ts';
import { OID, readRequest, type RequestFields } from './x509-read.ts';
import { buildRequestDer, subjectAltNameExtension, type NameRdns } from './x509-write.ts';

export const CSR_PEM_LABEL = 'CERTIFICATE REQUEST';
/** The group every node certificate carries; the Node authorizer and the approvers key on it. */
export const NODES_ORGANIZATION = 'system:nodes';
/** A node's user name (and certificate CN) is this prefix and the node name; the Node authorizer parses it. */
export const NODE_USER_PREFIX = 'system:node:';

interface CsrSubject {
  commonName: string;
  organizations: readonly string[];
}

export interface CsrRequest extends CsrSubject {
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
}

export interface ParsedCsr {
  commonName: string | undefined;
  organizations: string[];
  /** Subject attributes other than CN and O, as "TYPE=value". */
  otherSubjectAttributes: string[];
  dnsNames: string[];
  /** Canonical text (IPv6 compressed, IPv4-mapped as dotted IPv4). */
  ipAddresses: string[];
  emailAddresses: string[];
  uris: string[];
  /** SANs of other types as "type:value". */
  otherSubjectAltNames: string[];
  publicKey: KeyObject;
  /** See describeKeyAlgorithm: one of KEY_ALGORITHMS, or a description of a key nodecred does not use. */
  keyAlgorithm: string;
  /** Whether the CSR is signed by the private key of the public key it carries (proof of possession). */
  signatureValid: boolean;
}

/** The subject kubelet uses for both its client and serving certificates. */
export function nodeSubject(nodeName: string): CsrSubject {
  return { commonName: `${NODE_USER_PREFIX}${nodeName}`, organizations: [NODES_ORGANIZATION] };
}

/**
 * A PEM CSR for `request`, signed with `privateKey`. SANs go in an extensionRequest attribute, and a
 * request without SANs has no attributes at all — the client-certificate signer rejects any SAN.
 */
export async function buildCsrPem(privateKey: KeyObject, request: CsrRequest): Promise<string> {
  const algorithm = requireSupportedKey(privateKey);
  const names = {
    dnsNames: (request.dnsNames ?? []).map(checkedDnsName),
    ipAddresses: (request.ipAddresses ?? []).map(checkedIp),
  };
  const hasNames = names.dnsNames.length + names.ipAddresses.length > 0;
  const der = buildRequestDer(
    privateKey,
    spkiDer(privateKey),
    algorithm,
    subjectNameFor(request),
    hasNames ? [subjectAltNameExtension(names)] : [],
  );
  return encodePem(CSR_PEM_LABEL, der);
}

function requireSupportedKey(privateKey: KeyObject): KeyAlgorithm {
  if (privateKey.type !== 'private') throw new Error('buildCsrPem needs a private key');
  const algorithm = supportedKeyAlgorithm(privateKey);
  if (algorithm !== undefined) return algorithm;
  throw new UserError(`cannot build a CSR for a ${describeKeyAlgorithm(privateKey)} key`, {
    fix: `use a key of one of ${KEY_ALGORITHMS.join(', ')}`,
    code: 'KEY_UNSUPPORTED',
  });
}

// Organization before CN, each attribute one RDN (several O values share one set), as Go's pkix.Name does.
function subjectNameFor(subject: CsrSubject): NameRdns {
  if (subject.commonName.length === 0)
    throw new UserError('a CSR needs a non-empty common name', { code: 'CSR_INVALID' });
  const name: NameRdns = [];
  if (subject.organizations.length > 0) name.push(subject.organizations.map((o) => [OID.organization, o]));
  name.push([[OID.commonName, subject.commonName]]);
  return name;
}

function checkedDnsName(name: string): string {
  if (isDnsSanName(name)) return name;
  throw new UserError(`invalid DNS name for a certificate SAN: ${JSON.stringify(name)}`, {
    fix: 'use a host name of letters, digits, hyphens and dots',
    code: 'CSR_INVALID',
  });
}

function checkedIp(ip: string): string {
  const canonical = canonicalIp(ip);
  if (canonical !== undefined) return canonical;
  throw new UserError(`invalid IP address for a certificate SAN: ${JSON.stringify(ip)}`, {
    fix: 'use a plain IPv4 or IPv6 address, without zone or prefix length',
    code: 'CSR_INVALID',
  });
}

/**
 * Parses one PEM CSR (as found in a CertificateSigningRequest's spec.request) into plain data. Throws a
 * UserError for anything that is not exactly one well-formed CSR; a bad signature is reported in
 * `signatureValid`, not thrown, so the approver can say why it refuses.
 */
export async function parseCsrPem(text: string, source?: string): Promise<ParsedCsr> {
  const what = 'certificate signing request';
  const blocks = pemBlocksLabelled(text, CSR_PEM_LABEL, what, source);
  if (blocks.length !== 1) {
    throw new UserError(`expected exactly one PEM "${CSR_PEM_LABEL}" block, found ${blocks.length}`, {
      where: source,
      fix: 'provide a single PEM-encoded PKCS#10 certificate signing request',
      code: 'CSR_INVALID',
    });
  }
  const csr = decodeCsr(blocks[0]!.der, source);
  return describeCsr(csr, what, source);
}

function decodeCsr(der: Buffer, source: string | undefined): RequestFields {
  try {
    return readRequest(der);
  } catch (cause) {
    throw invalidCsr(cause, source);
  }
}

async function describeCsr(csr: RequestFields, what: string, source?: string): Promise<ParsedCsr> {
  const { subject, sans, publicKey } = readCsrContents(csr, what, source);
  return {
    commonName: subject.commonName,
    organizations: subject.organizations,
    otherSubjectAttributes: subject.otherAttributes,
    dnsNames: sans.dnsNames,
    ipAddresses: sans.ipAddresses,
    emailAddresses: sans.emailAddresses,
    uris: sans.uris,
    otherSubjectAltNames: sans.otherNames,
    publicKey,
    keyAlgorithm: describeKeyAlgorithm(publicKey),
    signatureValid: csr.signatureValid,
  };
}

function readCsrContents(csr: RequestFields, what: string, source?: string) {
  try {
    return {
      subject: readSubjectFields(csr.subject, what, source),
      sans: readSubjectAltNames(csr.extensions),
      publicKey: csr.publicKey,
    };
  } catch (cause) {
    if (cause instanceof UserError) throw cause;
    throw invalidCsr(cause, source);
  }
}

function invalidCsr(cause: unknown, source: string | undefined): UserError {
  return new UserError(`the certificate signing request could not be parsed: ${libraryErrorMessage(cause)}`, {
    where: source,
    fix: 'provide a PEM-encoded PKCS#10 certificate signing request',
    code: 'CSR_INVALID',
    cause,
  });
}
