// Deterministic CertificateSigningRequest names. The same key and the same request always give the same
// name, so after a restart nodecred finds its pending CSR instead of creating another one (kubelet's
// random names flood etcd when nobody approves, k/k #132947); any change to the request gives a new name.

import { createHash } from 'node:crypto';

export const CLIENT_SIGNER = 'kubernetes.io/kube-apiserver-client-kubelet';
export const SERVING_SIGNER = 'kubernetes.io/kubelet-serving';

export interface CsrNameInput {
  /** Which certificate the CSR is for: the readable part of the name. */
  kind: CsrKind;
  /** DER SubjectPublicKeyInfo of the key the CSR is for. */
  spkiDer: Uint8Array;
  commonName: string;
  organizations: readonly string[];
  usages: readonly string[];
  signerName: string;
  /** Serving SANs: a request for other addresses is another request, so it gets another name. */
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
}

type CsrKind = 'client' | 'serving';

const VERSION = 'nodecred-csr-name/v1';

function lengthPrefixed(parts: Uint8Array[]): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(p.length);
    chunks.push(len, Buffer.from(p));
  }
  return Buffer.concat(chunks);
}

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

// Code-unit order, not locale order: the name must not depend on the machine.
const sorted = (xs: readonly string[]): string[] => [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/**
 * The canonical bytes that are hashed: every field length-prefixed (so no two inputs collide by
 * concatenation), list fields sorted (order does not matter) with their count first.
 */
function canonicalCsrEncoding(input: CsrNameInput): Buffer {
  const list = (xs: readonly string[]): Buffer => {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(xs.length);
    return Buffer.concat([count, lengthPrefixed(sorted(xs).map(utf8))]);
  };
  return lengthPrefixed([
    utf8(VERSION),
    utf8(input.signerName),
    input.spkiDer,
    utf8(input.commonName),
    list(input.organizations),
    list(input.usages),
    list(input.dnsNames ?? []),
    list(input.ipAddresses ?? []),
  ]);
}

/** nodecred-<client|serving>-<24 hex chars of SHA-256 over the canonical encoding>. */
export function csrName(input: CsrNameInput): string {
  const hex = createHash('sha256').update(canonicalCsrEncoding(input)).digest('hex');
  return `nodecred-${input.kind}-${hex.slice(0, 24)}`;
}
