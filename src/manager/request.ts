// One certificate request, restart-proof: the pending key lives on disk until its certificate is
// installed, and the CSR name is derived from the key and the request, so a restarted nodecred (or a second
// `nodecred bootstrap`) re-attaches to the CSR it already submitted instead of creating another.
import type { KeyObject } from 'node:crypto';
import { UserError } from '../errors.ts';
import { generateKey, spkiDer, samePublicKey, type KeyAlgorithm } from '../pki/keys.ts';
import { buildCsrPem, parseCsrPem, type CsrRequest } from '../pki/csr.ts';
import { selfSignedServingPair } from '../pki/self-signed.ts';
import { verifyIssuedCertificate, type VerifyIssuedCertificateResult } from '../pki/verify.ts';
import { csrName } from '../kube/csr-name.ts';
import type { Csr, NodeApi } from '../kube/node-api.ts';
import type { Clock } from '../clock.ts';
import type { CertKind } from '../store/cert-store.ts';
import type { CsrCondition } from '../store/denial-record.ts';
import type { Logger } from '../log.ts';
import type { CredentialStore } from './state.ts';
import { waitForCsr, type WaitOptions } from './csr-wait.ts';

export interface RequestSpec {
  kind: CertKind;
  signerName: string;
  commonName: string;
  organizations: readonly string[];
  dnsNames: string[];
  ipAddresses: string[];
  expirationSeconds?: number;
}

/**
 * The node's own cryptography: where a request gets its private key and PKCS#10, how it reads a CSR found
 * under its name, and the first-boot placeholder (placeholder.ts). The pki modules in production; the
 * simulator substitutes synchronous ones, which its clock need not wait for.
 */
export interface RequestCrypto {
  generateKey(algorithm: KeyAlgorithm): Promise<KeyObject>;
  buildCsr(key: KeyObject, request: CsrRequest): Promise<string>;
  readCsr(pem: string, source: string): Promise<{ publicKey: KeyObject; commonName: string | undefined }>;
  selfSignedServing(nodeName: string, now: Date): Promise<{ chainPem: string; key: KeyObject }>;
}

export const PKI_CRYPTO: RequestCrypto = {
  generateKey: async (algorithm) => (await generateKey(algorithm)).privateKey,
  buildCsr: buildCsrPem,
  readCsr: parseCsrPem,
  selfSignedServing: selfSignedServingPair,
};

interface RequestDeps {
  api: NodeApi;
  /** The identity `api` speaks as, for logs: "bootstrap token from /etc/kubernetes/bootstrap-kubelet.conf". */
  via: string;
  store: CredentialStore;
  log: Logger;
  clock: Clock;
  crypto: RequestCrypto;
  keyAlgorithm: KeyAlgorithm;
  /** The CA bundle the issued certificate must chain to. */
  caBundlePem: string;
  clockSkewMs: number;
  /** Told the CSR name once it is submitted or re-attached, before waiting. */
  onPending?: (csrName: string) => void;
}

export interface Issued {
  chainPem: string;
  key: KeyObject;
  csrName: string;
  /** The verification it passed: the manager records it instead of verifying the installed copy again. */
  verdict: AcceptedCertificate;
}

export type AcceptedCertificate = Extract<VerifyIssuedCertificateResult, { ok: true }>;

/** Something deleting CSRs as fast as we create them must not turn into a create/delete loop. */
const RESUBMIT_PAUSE_MS = 1000;

/** kubelet's usages: key encipherment only for RSA (it is meaningless for ECDSA keys). */
function usagesFor(kind: CertKind, key: KeyObject): string[] {
  const usages = ['digital signature', kind === 'client' ? 'client auth' : 'server auth'];
  if (key.asymmetricKeyType === 'rsa') usages.splice(1, 0, 'key encipherment');
  return usages;
}

async function pendingKey(deps: RequestDeps, kind: CertKind): Promise<KeyObject> {
  const existing = await deps.store.readPendingKey(kind).catch((err: unknown) => {
    deps.log.warn({ kind, err: (err as Error).message }, 'pending key unreadable; generating a new one');
    return null;
  });
  // A crash between installing a certificate and removing its pending key leaves the installed key here;
  // reusing it would re-attach to the already issued CSR and install the same certificate again.
  const installed = await deps.store.readCurrent(kind).catch(() => null);
  if (existing && !(installed && samePublicKey(installed.key, existing))) return existing;
  if (existing) deps.log.info({ kind }, 'pending key is the installed one (interrupted install); generating a new one');
  const key = await deps.crypto.generateKey(deps.keyAlgorithm);
  await deps.store.writePendingKey(kind, key);
  deps.log.info(
    { kind, algorithm: deps.keyAlgorithm, path: deps.store.pendingKeyPath(kind) },
    'generated a new private key for the request',
  );
  return key;
}

/** Throws unless the CSR found under our name is the one we would have submitted. */
async function checkSameRequest(
  deps: RequestDeps,
  found: Csr,
  spec: RequestSpec,
  key: KeyObject,
  name: string,
): Promise<void> {
  const parsed = await deps.crypto.readCsr(found.requestPem, `CSR ${name}`);
  const problems: string[] = [];
  if (!samePublicKey(parsed.publicKey, key)) problems.push('its public key is not our pending key');
  if (found.signerName !== spec.signerName) problems.push(`its signer is ${found.signerName}`);
  if (parsed.commonName !== spec.commonName) problems.push(`its CN is ${parsed.commonName}`);
  if (problems.length) {
    throw new UserError(`a CSR named ${name} exists but is not ours: ${problems.join('; ')}`, {
      where: `certificatesigningrequest/${name}`,
      fix:
        `delete it (kubectl delete csr ${name}) if it is stale; nodecred derives the name from its key, ` +
        'so a clash means someone reused the name',
      code: 'CSR_NAME_CONFLICT',
    });
  }
}

const DECIDED_FIX: Record<CertKind, string> = {
  client:
    'a client CSR is approved by kube-controller-manager when the requester’s group is bound to ' +
    'system:certificates.k8s.io:certificatesigningrequests:nodeclient (bootstrap) or selfnodeclient (renewal); ' +
    'fix those ClusterRoleBindings (or approve by hand); the next attempt is a new CSR',
  server:
    'kube-controller-manager never approves kubelet-serving CSRs: run an approver (nodecred approve) and check ' +
    'why it refused',
};

/** The CSR a CSR_DENIED or CSR_FAILED error is about, and the condition the API server gave it. */
export interface DecidedCsr {
  csr: string;
  condition: CsrCondition;
}

const DECIDED = Symbol('nodecred.decidedCsr');

/** The decided CSR behind an error from a request, when it was denied or failed. */
export function decidedCsr(err: unknown): DecidedCsr | undefined {
  return (err as { [DECIDED]?: DecidedCsr } | null)?.[DECIDED];
}

function deniedError(
  outcome: { kind: 'denied' | 'failed'; reason: string; message: string },
  spec: RequestSpec,
  name: string,
): UserError {
  const detail = `${outcome.reason || '(no reason)'}${outcome.message ? `: ${outcome.message}` : ''}`;
  const err = new UserError(`CSR ${name} was ${outcome.kind}: ${detail}`, {
    where: `certificatesigningrequest/${name}`,
    fix: DECIDED_FIX[spec.kind],
    code: outcome.kind === 'denied' ? 'CSR_DENIED' : 'CSR_FAILED',
  });
  const condition: CsrCondition = {
    type: outcome.kind === 'denied' ? 'Denied' : 'Failed',
    reason: outcome.reason,
    message: outcome.message,
  };
  return Object.assign(err, { [DECIDED]: { csr: name, condition } });
}

/** Creates the CSR, or re-attaches to the one already under its name after checking it is ours. */
async function submit(deps: RequestDeps, spec: RequestSpec, key: KeyObject, name: string): Promise<Csr | null> {
  // Create first: on a fresh request that is the only write, and its response starts the watch (two
  // requests per bootstrap). 'exists' means we submitted it before (a restart, a retry): read it and
  // re-attach, after making sure it really is ours.
  const requestPem = await deps.crypto.buildCsr(key, {
    commonName: spec.commonName,
    organizations: spec.organizations,
    dnsNames: spec.dnsNames,
    ipAddresses: spec.ipAddresses,
  });
  const created = await deps.api.createCsr({
    name,
    requestPem,
    signerName: spec.signerName,
    usages: usagesFor(spec.kind, key),
    ...(spec.expirationSeconds ? { expirationSeconds: spec.expirationSeconds } : {}),
  });
  if (created !== 'exists') {
    deps.log.info({ kind: spec.kind, csr: name, signer: spec.signerName, via: deps.via }, 'submitted CSR');
    return created;
  }
  const found = await deps.api.getCsr(name);
  if (found) {
    await checkSameRequest(deps, found, spec, key, name);
    deps.log.info({ kind: spec.kind, csr: name }, 're-attached to the pending CSR submitted earlier');
  }
  return found;
}

/** The issued certificate, or a UserError (nothing installed, fresh key next time) when it is not ours. */
async function acceptIssued(
  deps: RequestDeps,
  spec: RequestSpec,
  key: KeyObject,
  name: string,
  pem: string,
): Promise<AcceptedCertificate> {
  const verdict = verifyIssuedCertificate({
    certificatePem: pem,
    key,
    caBundlePem: deps.caBundlePem,
    template: {
      commonName: spec.commonName,
      organizations: spec.organizations,
      usage: spec.kind,
      dnsNames: spec.dnsNames,
      ipAddresses: spec.ipAddresses,
    },
    now: new Date(deps.clock.now()),
    clockSkewMs: deps.clockSkewMs,
  });
  if (verdict.ok) return verdict;
  if (verdict.notYetValid) {
    // Only this node's clock is behind: a new request would be issued with the same offset and refused the
    // same way, a CSR each attempt. Keep the key: the next attempt re-attaches to this CSR, and the same
    // certificate is accepted once the clock reaches it (or NTP corrects the clock).
    throw new UserError(
      `the certificate issued for CSR ${name} is not valid yet by this node's clock, nothing installed: ` +
        `${verdict.problems.join('; ')}`,
      {
        where: `certificatesigningrequest/${name}`,
        fix: 'check the node clock (NTP/chrony); nodecred keeps the request and installs it once the clock agrees',
        code: 'CERT_NOT_YET_VALID',
      },
    );
  }
  await deps.store.removePendingKey(spec.kind);
  throw new UserError(
    `the certificate issued for CSR ${name} was rejected, nothing installed: ${verdict.problems.join('; ')}`,
    {
      where: `certificatesigningrequest/${name}`,
      fix:
        'check the signer (kube-controller-manager --cluster-signing-cert-file) matches the cluster CA nodecred ' +
        'trusts (clusterCAFile), and the node clock',
      code: 'CERT_REJECTED',
    },
  );
}

/**
 * Submits (or re-attaches to) the CSR for `spec` and waits until it is issued and verified. Throws
 * UserError on denial, on a certificate that fails verification, and WaitTimeout at the deadline. On
 * denial or verification failure the pending key is discarded, so the next attempt is a fresh request;
 * except when the certificate is only not valid yet by this node's clock (CERT_NOT_YET_VALID): then the
 * next attempt re-attaches to the same CSR and verifies the same certificate again.
 */
export async function requestCertificate(deps: RequestDeps, spec: RequestSpec, wait: WaitOptions): Promise<Issued> {
  const { log } = deps;
  for (;;) {
    const key = await pendingKey(deps, spec.kind);
    const name = csrName({
      kind: spec.kind === 'client' ? 'client' : 'serving',
      spkiDer: spkiDer(key),
      commonName: spec.commonName,
      organizations: spec.organizations,
      usages: usagesFor(spec.kind, key),
      signerName: spec.signerName,
      dnsNames: spec.dnsNames,
      ipAddresses: spec.ipAddresses,
    });
    const current = await submit(deps, spec, key, name);
    deps.onPending?.(name);
    const outcome = await waitForCsr(deps.api, deps.clock, name, {
      ...wait,
      ...(current ? { initial: current } : {}),
      onProgress: (p) => {
        log.info({ kind: spec.kind, csr: name, detail: p.detail }, `waiting for CSR: ${p.what}`);
        wait.onProgress?.(p);
      },
    });
    switch (outcome.kind) {
      case 'deleted':
        log.warn({ kind: spec.kind, csr: name }, 'CSR was deleted while pending; submitting it again');
        await deps.clock.sleep(RESUBMIT_PAUSE_MS, wait.signal);
        if (wait.signal?.aborted) throw wait.signal.reason;
        continue;
      case 'denied':
      case 'failed':
        // A decided CSR cannot be decided again: the next attempt (after backoff) is a new request with a
        // new key, under a new name.
        await deps.store.removePendingKey(spec.kind);
        throw deniedError(outcome, spec, name);
      case 'issued':
        return {
          chainPem: outcome.certificatePem,
          key,
          csrName: name,
          verdict: await acceptIssued(deps, spec, key, name, outcome.certificatePem),
        };
    }
  }
}
