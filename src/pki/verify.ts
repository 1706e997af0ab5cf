// "Is the certificate the API handed back the one we asked for?" — checked before it is installed, because
// an installed wrong certificate (someone else's key, a stale CA, a missing SAN) takes the node down later
// and far from the cause. Pure: data and a clock in, a verdict out; it never throws for bad input.

import type { KeyObject } from 'node:crypto';
import { errorLine, quote } from '../errors.ts';
import { loadCertificates, type CertificateSummary, type LoadedCertificate } from './cert.ts';
import { describeKeyAlgorithm, samePublicKey } from './keys.ts';
import { libraryErrorMessage } from './library-error.ts';
import { canonicalDnsName, canonicalIp } from './san.ts';

/** kube-controller-manager backdates NotBefore by 5 minutes for the same reason: clocks disagree. */
const DEFAULT_CLOCK_SKEW_MS = 5 * 60 * 1000;
/** Longer chains than this are not what a Kubernetes signer produces; the bound also stops loops. */
const MAX_CHAIN_LENGTH = 8;

type CertificateUsage = 'client' | 'server';

export interface IssuedCertificateTemplate {
  commonName: string;
  organizations: readonly string[];
  usage: CertificateUsage;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
}

export interface VerifyIssuedCertificateInput {
  /** The issued certificate, possibly followed by intermediates (leaf first). */
  certificatePem: string;
  /** The key the CSR was made with: private or public. */
  key: KeyObject;
  /** The CAs the certificate must chain to. */
  caBundlePem: string;
  template: IssuedCertificateTemplate;
  now: Date;
  /** Tolerance on both ends of the validity window; default DEFAULT_CLOCK_SKEW_MS. */
  clockSkewMs?: number;
}

export type VerifyIssuedCertificateResult =
  | {
      ok: true;
      summary: CertificateSummary;
      /**
       * When the verdict holds: the intersection of the validity of the leaf and of every issuer it chains
       * through (the skew tolerance not included). Nothing else in the verdict depends on the time, so a
       * caller may reuse it for the same inputs while `now` stays inside this window (± the skew).
       */
      validity: { notBefore: Date; notAfter: Date };
    }
  | {
      ok: false;
      problems: string[];
      /**
       * Every problem is that the certificate (or a CA it chains through) is not valid yet by this clock:
       * the same certificate verifies once the clock reaches its NotBefore (minus the skew allowance).
       */
      notYetValid: boolean;
    };

const REQUIRED_EXTENDED_KEY_USAGE: Record<CertificateUsage, string> = { client: 'clientAuth', server: 'serverAuth' };

export function verifyIssuedCertificate(input: VerifyIssuedCertificateInput): VerifyIssuedCertificateResult {
  const issued = tryLoad(input.certificatePem, 'issued certificate');
  if ('problem' in issued) return { ok: false, problems: [issued.problem], notYetValid: false };
  const [leaf, ...intermediates] = issued.certificates as [LoadedCertificate, ...LoadedCertificate[]];
  const skewMs = input.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
  const chain = chainOf(leaf, intermediates, input.caBundlePem, input.now, skewMs);
  const problems = [
    ...keyProblems(leaf.summary, input.key),
    ...chain.problems,
    ...subjectProblems(leaf.summary, input.template),
    ...usageProblems(leaf.summary, input.template.usage),
    ...subjectAltNameProblems(leaf.summary, input.template),
    ...validityProblems(leaf.summary, 'certificate', input.now, skewMs),
    ...criticalExtensionProblems(leaf.summary, 'certificate'),
    ...chain.path.flatMap((issuer) => criticalExtensionProblems(issuer.summary, `issuing CA ${quote(nameOf(issuer))}`)),
  ];
  if (problems.length > 0) {
    const early = [leaf.summary, ...chain.path.map((issuer) => issuer.summary)].filter(
      (c) => c.notBefore.getTime() > input.now.getTime() + skewMs,
    );
    return { ok: false, problems, notYetValid: early.length === problems.length };
  }
  const certificates = [leaf.summary, ...chain.path.map((issuer) => issuer.summary)];
  const validity = {
    notBefore: new Date(Math.max(...certificates.map((c) => c.notBefore.getTime()))),
    notAfter: new Date(Math.min(...certificates.map((c) => c.notAfter.getTime()))),
  };
  return { ok: true, summary: leaf.summary, validity };
}

function tryLoad(pem: string, what: string): { certificates: LoadedCertificate[] } | { problem: string } {
  try {
    return { certificates: loadCertificates(pem, what) };
  } catch (error) {
    return {
      problem: errorLine(error, (e) => `${what} could not be read: ${libraryErrorMessage(e)}`),
    };
  }
}

/** Go refuses to verify through a certificate with a critical extension it does not handle; so do we. */
function criticalExtensionProblems(certificate: CertificateSummary, what: string): string[] {
  const unhandled = certificate.unhandledCriticalExtensions;
  if (unhandled.length === 0) return [];
  return [`${what} has critical extensions nothing here understands (${unhandled.join(', ')}); Go refuses it too`];
}

function keyProblems(leaf: CertificateSummary, key: KeyObject): string[] {
  if (samePublicKey(leaf.publicKey, key)) return [];
  const ours = key.type === 'private' ? 'the pending private key' : 'the expected public key';
  const algorithms = `certificate key is ${leaf.keyAlgorithm}, ours is ${describeKeyAlgorithm(key)}`;
  return [`certificate public key does not match ${ours} (${algorithms})`];
}

// ---- chain ----------------------------------------------------------------------------------------------

/** The issuers the leaf chains through to the CA bundle, and what is wrong with that chain. */
function chainOf(
  leaf: LoadedCertificate,
  intermediates: LoadedCertificate[],
  caBundlePem: string,
  now: Date,
  skewMs: number,
): { path: LoadedCertificate[]; problems: string[] } {
  const bundle = tryLoad(caBundlePem, 'CA bundle');
  if ('problem' in bundle) return { path: [], problems: [bundle.problem] };
  const path = findPathToCa(leaf, intermediates, bundle.certificates);
  if (path === undefined) return { path: [], problems: [notChainedProblem(leaf, intermediates, bundle.certificates)] };
  // The leaf's own dates are checked separately; here, the CA and intermediates it relies on.
  const problems = path.flatMap((issuer) =>
    validityProblems(issuer.summary, `issuing CA ${quote(nameOf(issuer))}`, now, skewMs),
  );
  return { path, problems };
}

/** Go's crypto/x509 bound (verify.go maxChainSignatureChecks): a hostile chain file costs at most this. */
const MAX_CHAIN_SIGNATURE_CHECKS = 100;

/**
 * The issuers from the leaf up to a CA of the bundle (inclusive), or undefined if there is none (or finding
 * one took more than MAX_CHAIN_SIGNATURE_CHECKS). Any certificate in the CA bundle is a trust anchor, as in
 * Go's x509 roots pool; intermediates sent with the leaf must be CA certificates and are each used at most
 * once. An intermediate found not to lead to a CA with n links to spare is not tried again with n or fewer:
 * trying every ordering was exponential in the number of same-named intermediates.
 */
export function findPathToCa(
  certificate: LoadedCertificate,
  intermediates: LoadedCertificate[],
  cas: LoadedCertificate[],
): LoadedCertificate[] | undefined {
  const search: PathSearch = { cas, checked: new Map(), deadEnds: new Map() };
  return pathFrom(certificate, uniqueByPem(intermediates), search, new Set([certificate.pem]), 1);
}

interface PathSearch {
  cas: LoadedCertificate[];
  /** Signature checks done, by "child pem\0issuer pem": each pair is verified once, at most 100 in all. */
  checked: Map<string, boolean>;
  /** Certificates that led nowhere, with the most links to spare they had when they did. */
  deadEnds: Map<string, number>;
}

function pathFrom(
  certificate: LoadedCertificate,
  intermediates: LoadedCertificate[],
  search: PathSearch,
  onPath: Set<string>,
  depth: number,
): LoadedCertificate[] | undefined {
  const anchor = search.cas.find((ca) => issuedWithin(certificate, ca, search));
  if (anchor !== undefined) return [anchor];
  const spare = MAX_CHAIN_LENGTH - depth;
  if (spare <= 0 || (search.deadEnds.get(certificate.pem) ?? -1) >= spare) return undefined;
  for (const intermediate of intermediates) {
    if (onPath.has(intermediate.pem) || !intermediate.summary.isCertificateAuthority) continue;
    if (!issuedWithin(certificate, intermediate, search)) continue;
    onPath.add(intermediate.pem);
    const rest = pathFrom(intermediate, intermediates, search, onPath, depth + 1);
    onPath.delete(intermediate.pem);
    if (rest !== undefined) return [intermediate, ...rest];
  }
  search.deadEnds.set(certificate.pem, Math.max(spare, search.deadEnds.get(certificate.pem) ?? -1));
  return undefined;
}

function issuedWithin(certificate: LoadedCertificate, issuer: LoadedCertificate, search: PathSearch): boolean {
  if (!namesIssuer(certificate, issuer)) return false;
  const pair = `${certificate.pem}\0${issuer.pem}`;
  const known = search.checked.get(pair);
  if (known !== undefined) return known;
  if (search.checked.size >= MAX_CHAIN_SIGNATURE_CHECKS) return false;
  const verified = signatureVerifiesWith(certificate, issuer);
  search.checked.set(pair, verified);
  return verified;
}

function uniqueByPem(certificates: LoadedCertificate[]): LoadedCertificate[] {
  return [...new Map(certificates.map((c) => [c.pem, c])).values()];
}

function namesIssuer(certificate: LoadedCertificate, issuer: LoadedCertificate): boolean {
  return certificate.native.checkIssued(issuer.native);
}

function signatureVerifiesWith(certificate: LoadedCertificate, issuer: LoadedCertificate): boolean {
  try {
    return certificate.native.verify(issuer.native.publicKey);
  } catch {
    return false; // e.g. an issuer key type OpenSSL cannot verify with: not a signature we can accept
  }
}

function notChainedProblem(
  leaf: LoadedCertificate,
  intermediates: LoadedCertificate[],
  cas: LoadedCertificate[],
): string {
  const issuer = quote(leaf.summary.issuerCommonName ?? '(no CN)');
  const candidates = [...intermediates, ...cas];
  if (candidates.some((candidate) => namesIssuer(leaf, candidate) && !signatureVerifiesWith(leaf, candidate))) {
    return (
      `certificate names issuer ${issuer} but its signature does not verify with that CA's key (a different CA ` +
      `with the same name?)`
    );
  }
  const known = cas.map((ca) => quote(nameOf(ca))).join(', ');
  return `certificate (issuer ${issuer}) does not chain to any CA in the CA bundle (CAs: ${known})`;
}

function nameOf(certificate: LoadedCertificate): string {
  return certificate.summary.subjectCommonName ?? `serial ${certificate.summary.serialNumber}`;
}

// ---- subject and usages -------------------------------------------------------------------------------

function subjectProblems(leaf: CertificateSummary, template: IssuedCertificateTemplate): string[] {
  const problems: string[] = [];
  if (leaf.subjectCommonName !== template.commonName) {
    problems.push(
      `certificate subject CN is ${quote(leaf.subjectCommonName ?? '(none)')}, requested ${quote(template.commonName)}`,
    );
  }
  // Order of O values carries no meaning (client-go compares them as sets), so neither do we.
  if (!sameSet(leaf.subjectOrganizations, template.organizations)) {
    problems.push(
      `certificate subject O is ${quoteList(leaf.subjectOrganizations)}, requested ` +
        `${quoteList(template.organizations)}`,
    );
  }
  return problems;
}

function usageProblems(leaf: CertificateSummary, usage: CertificateUsage): string[] {
  const required = REQUIRED_EXTENDED_KEY_USAGE[usage];
  const problems: string[] = [];
  if (leaf.extendedKeyUsages === undefined) {
    problems.push(`certificate has no extended key usage extension; a ${usage} certificate needs ${required}`);
  } else if (!leaf.extendedKeyUsages.includes(required)) {
    const present = leaf.extendedKeyUsages.length > 0 ? leaf.extendedKeyUsages.join(', ') : 'none';
    problems.push(`certificate extended key usages (${present}) lack ${required}, which a ${usage} certificate needs`);
  }
  // TLS peers (Go's among them) refuse a handshake signature from a key not allowed to sign.
  if (leaf.keyUsages !== undefined && !leaf.keyUsages.includes('digitalSignature')) {
    problems.push(
      `certificate key usage (${leaf.keyUsages.join(', ') || 'none'}) lacks digitalSignature, which TLS needs`,
    );
  }
  return problems;
}

// ---- subject alternative names ------------------------------------------------------------------------

function subjectAltNameProblems(leaf: CertificateSummary, template: IssuedCertificateTemplate): string[] {
  const problems = [
    ...setDifferenceProblems(
      'DNS',
      (template.dnsNames ?? []).map(canonicalDnsName),
      leaf.dnsNames.map(canonicalDnsName),
    ),
    ...setDifferenceProblems(
      'IP',
      (template.ipAddresses ?? []).map((ip) => canonicalIp(ip) ?? ip),
      leaf.ipAddresses,
    ),
  ];
  // We never request these, so any is unexpected; a signer adding them is a signer we do not understand.
  for (const email of leaf.emailAddresses) problems.push(`certificate has unexpected email SAN ${quote(email)}`);
  for (const uri of leaf.uris) problems.push(`certificate has unexpected URI SAN ${quote(uri)}`);
  for (const other of leaf.otherSubjectAltNames) problems.push(`certificate has unexpected SAN ${quote(other)}`);
  return problems;
}

function setDifferenceProblems(kind: string, requested: string[], present: string[]): string[] {
  const missing = unique(requested).filter((name) => !present.includes(name));
  const unexpected = unique(present).filter((name) => !requested.includes(name));
  return [
    ...missing.map((name) => `certificate lacks requested ${kind} SAN ${quote(name)}`),
    ...unexpected.map((name) => `certificate has unexpected ${kind} SAN ${quote(name)} that was not requested`),
  ];
}

// ---- validity -----------------------------------------------------------------------------------------

function validityProblems(certificate: CertificateSummary, what: string, now: Date, skewMs: number): string[] {
  const tolerance = `allowed clock skew ${formatDuration(skewMs)}`;
  if (certificate.notBefore.getTime() > now.getTime() + skewMs) {
    return [`${what} is not yet valid: valid from ${iso(certificate.notBefore)}, now is ${iso(now)} (${tolerance})`];
  }
  if (certificate.notAfter.getTime() < now.getTime() - skewMs) {
    return [`${what} has expired: valid until ${iso(certificate.notAfter)}, now is ${iso(now)} (${tolerance})`];
  }
  return [];
}

function formatDuration(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`;
}

function iso(date: Date): string {
  return date.toISOString();
}

// ---- helpers ------------------------------------------------------------------------------------------

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((value) => right.has(value));
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

function quoteList(values: readonly string[]): string {
  return `[${values.map(quote).join(', ')}]`;
}
