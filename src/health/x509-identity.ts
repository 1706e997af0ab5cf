// Who a verified client certificate says it is, exactly as Kubernetes' x509 authenticator decides it
// (k8s.io/apiserver pkg/authentication/request/x509, CommonNameUserConversion, as the kubelet uses it): the
// user is the subject CN of the leaf, the groups its O values in order; a leaf without a CN authenticates
// nobody (the next authenticator, the bearer token, is tried). Go's pkix.Name keeps the LAST CN when there
// are several, so the same certificate names the same user here as on the API server and the kubelet.
import { createHash } from 'node:crypto';
import { DerError } from '../pki/der.ts';
import { readCertificate } from '../pki/x509-read.ts';

interface CertificateUser {
  user: string;
  groups: string[];
  extra: Record<string, string[]>;
}

const COMMON_NAME = 'CN';
const ORGANIZATION = 'O';

/**
 * The user of a DER certificate (its chain already verified for client auth), null without a CN, or
 * 'unreadable' when it is not DER we read (e.g. a non-minimal length, which OpenSSL lets through the
 * handshake but Go's TLS stack, and so the API server, refuses): a rejected credential, not an outage.
 */
export function userFromCertificate(der: Uint8Array): CertificateUser | null | 'unreadable' {
  let subject: ReturnType<typeof readCertificate>['subject'];
  try {
    subject = readCertificate(Buffer.from(der)).subject;
  } catch (err) {
    if (err instanceof DerError) return 'unreadable';
    throw err;
  }
  let commonName = '';
  const organizations: string[] = [];
  // In DER order, as Go's FillFromRDNSequence walks it: every CN overwrites the one before.
  for (const { type, value } of subject) {
    if (type === COMMON_NAME) commonName = value;
    else if (type === ORGANIZATION) organizations.push(value);
  }
  if (commonName === '') return null;
  // Kubernetes names the credential in the user's extra (user.CredentialIDKey) with the leaf's fingerprint.
  const id = `X509SHA256=${createHash('sha256').update(der).digest('hex')}`;
  return { user: commonName, groups: organizations, extra: { 'authentication.kubernetes.io/credential-id': [id] } };
}
