// CertificateSigningRequest objects as JSON on the wire, and the contract's view of them (node-api.ts):
// the body a node POSTs, and what a CSR the API server returns says. Pure; shared by every NodeApi.
import type { Csr, CsrDecision, CsrSubmission } from './node-api.ts';

export const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'nodecred' };

/** The fields of a CSR object nodecred reads; everything else is ignored. */
export interface CsrObject {
  metadata?: { name?: string; resourceVersion?: string };
  spec?: { signerName?: string; request?: string };
  status?: {
    certificate?: string;
    conditions?: Array<{ type?: string; status?: string; reason?: string; message?: string }>;
  };
}

/** The body of the create request. */
export function csrBody(s: CsrSubmission): object {
  return {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { name: s.name, labels: MANAGED_BY },
    spec: {
      request: Buffer.from(s.requestPem).toString('base64'),
      signerName: s.signerName,
      usages: s.usages,
      ...(s.expirationSeconds ? { expirationSeconds: s.expirationSeconds } : {}),
    },
  };
}

/** What a CSR object says right now; undefined while it is still pending (see Csr.decision). */
export function decisionOf(csr: CsrObject): CsrDecision | undefined {
  for (const c of csr.status?.conditions ?? []) {
    if (c.status !== 'True') continue;
    if (c.type === 'Denied') return { kind: 'denied', reason: c.reason ?? '', message: c.message ?? '' };
    if (c.type === 'Failed') return { kind: 'failed', reason: c.reason ?? '', message: c.message ?? '' };
  }
  const cert = csr.status?.certificate as unknown;
  if (typeof cert === 'string' && cert.length > 0) {
    return { kind: 'issued', certificatePem: Buffer.from(cert, 'base64').toString('utf8') };
  }
  return undefined;
}

export function toCsr(csr: CsrObject): Csr {
  return {
    name: csr.metadata?.name ?? '',
    resourceVersion: csr.metadata?.resourceVersion ?? '',
    signerName: csr.spec?.signerName ?? '',
    requestPem: Buffer.from(csr.spec?.request ?? '', 'base64').toString('utf8'),
    decision: decisionOf(csr),
  };
}
