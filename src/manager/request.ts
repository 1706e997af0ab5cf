// One certificate request, restart-proof: the pending key lives on disk until its certificate is
// installed, and the CSR name is derived from the key and the request, so a restarted nodecred (or a second
// `nodecred bootstrap`) re-attaches to the CSR it already submitted instead of creating another.
import type { KeyObject } from 'node:crypto';
import { UserError } from '../errors.ts';
import { generateKey, spkiDer, samePublicKey, type KeyAlgorithm } from '../pki/keys.ts';
import { buildCsrPem, parseCsrPem } from '../pki/csr.ts';
import { verifyIssuedCertificate, type CertificateUsage } from '../pki/verify.ts';
import { csrName } from '../kube/csr-name.ts';
import { createCsr, getCsr, waitForCsr, WaitTimeout, type WaitOptions } from '../kube/csr-api.ts';
import type { ApiConnection } from '../kube/api.ts';
import type { CertStore, CertKind } from '../store/cert-store.ts';
import type { Logger } from '../log.ts';

export interface RequestSpec {
  kind: CertKind;
  signerName: string;
  commonName: string;
  organizations: string[];
  dnsNames: string[];
  ipAddresses: string[];
  expirationSeconds?: number;
}

export interface RequestDeps {
  store: CertStore;
  log: Logger;
  keyAlgorithm: KeyAlgorithm;
  /** The CA bundle the issued certificate must chain to. */
  caBundlePem: string;
  clockSkewMs: number;
  now: () => Date;
  /** Told the CSR name once it is submitted or re-attached, before waiting. */
  onPending?: (csrName: string) => void;
}

export interface Issued {
  chainPem: string;
  key: KeyObject;
  csrName: string;
}

const USAGE_OF: Record<CertKind, CertificateUsage> = { client: 'client', server: 'server' };

/** kubelet's usages: key encipherment only for RSA (it is meaningless for ECDSA keys). */
export function usagesFor(kind: CertKind, key: KeyObject): string[] {
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
  const { privateKey } = await generateKey(deps.keyAlgorithm);
  await deps.store.writePendingKey(kind, privateKey);
  deps.log.info(
    { kind, algorithm: deps.keyAlgorithm, path: deps.store.pendingKeyPath(kind) },
    'generated a new private key for the request',
  );
  return privateKey;
}

/** Throws unless the CSR found under our name is the one we would have submitted. */
async function checkSameRequest(
  found: { spec: { request: string; signerName: string; usages?: string[] } },
  spec: RequestSpec,
  key: KeyObject,
  name: string,
): Promise<void> {
  const parsed = await parseCsrPem(Buffer.from(found.spec.request, 'base64').toString('utf8'), `CSR ${name}`);
  const problems: string[] = [];
  if (!samePublicKey(parsed.publicKey, key)) problems.push('its public key is not our pending key');
  if (found.spec.signerName !== spec.signerName) problems.push(`its signer is ${found.spec.signerName}`);
  if (parsed.commonName !== spec.commonName) problems.push(`its CN is ${parsed.commonName}`);
  if (problems.length) {
    throw new UserError(`a CSR named ${name} exists but is not ours: ${problems.join('; ')}`, {
      where: `certificatesigningrequest/${name}`,
      fix: `delete it (kubectl delete csr ${name}) if it is stale; nodecred derives the name from its key, so a clash means someone reused the name`,
      code: 'CSR_NAME_CONFLICT',
    });
  }
}

function deniedError(
  kind: 'denied' | 'failed',
  reason: string,
  message: string,
  spec: RequestSpec,
  name: string,
): UserError {
  const hint =
    spec.kind === 'client'
      ? "a client CSR is approved by kube-controller-manager when the requester's group is bound to system:certificates.k8s.io:certificatesigningrequests:nodeclient (bootstrap) or selfnodeclient (renewal); fix those ClusterRoleBindings (or approve by hand); the next attempt is a new CSR"
      : 'kube-controller-manager never approves kubelet-serving CSRs: run an approver (nodecred approve) and check why it refused';
  return new UserError(
    `CSR ${name} was ${kind === 'denied' ? 'denied' : 'failed'}: ${reason || '(no reason)'}${message ? `: ${message}` : ''}`,
    {
      where: `certificatesigningrequest/${name}`,
      fix: hint,
      code: kind === 'denied' ? 'CSR_DENIED' : 'CSR_FAILED',
    },
  );
}

/**
 * Submits (or re-attaches to) the CSR for `spec` and waits until it is issued and verified. Throws
 * UserError on denial, on a certificate that fails verification, and WaitTimeout at the deadline. On
 * verification failure the pending key is discarded, so the next attempt is a fresh request.
 */
export async function requestCertificate(
  deps: RequestDeps,
  conn: ApiConnection,
  spec: RequestSpec,
  wait: WaitOptions,
): Promise<Issued> {
  const { log, store } = deps;
  for (;;) {
    const key = await pendingKey(deps, spec.kind);
    const usages = usagesFor(spec.kind, key);
    const name = csrName({
      spkiDer: spkiDer(key),
      commonName: spec.commonName,
      organizations: spec.organizations,
      usages,
      signerName: spec.signerName,
      dnsNames: spec.dnsNames,
      ipAddresses: spec.ipAddresses,
    });
    // Create first: on a fresh request that is the only write, and its response starts the watch (two
    // requests per bootstrap). A 409 means we submitted it before (a restart, a retry): read it and
    // re-attach, after making sure it really is ours.
    const requestPem = await buildCsrPem(key, {
      commonName: spec.commonName,
      organizations: spec.organizations,
      dnsNames: spec.dnsNames,
      ipAddresses: spec.ipAddresses,
    });
    let current = await createCsr(conn, {
      name,
      requestPem,
      signerName: spec.signerName,
      usages,
      ...(spec.expirationSeconds ? { expirationSeconds: spec.expirationSeconds } : {}),
    });
    if (current) {
      log.info({ kind: spec.kind, csr: name, signer: spec.signerName, via: conn.description }, 'submitted CSR');
    } else {
      current = await getCsr(conn, name);
      if (current) {
        await checkSameRequest(current as never, spec, key, name);
        log.info({ kind: spec.kind, csr: name }, 're-attached to the pending CSR submitted earlier');
      }
    }

    deps.onPending?.(name);
    const outcome = await waitForCsr(conn, name, {
      ...wait,
      ...(current ? { initial: current } : {}),
      onProgress: (p) => {
        if (p.what !== 'event')
          log.info({ kind: spec.kind, csr: name, detail: p.detail }, `waiting for CSR: ${p.what}`);
        wait.onProgress?.(p);
      },
    });
    switch (outcome.kind) {
      case 'deleted':
        log.warn({ kind: spec.kind, csr: name }, 'CSR was deleted while pending; submitting it again');
        // Something deleting CSRs quickly must not turn this into a create/delete loop.
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      case 'denied':
      case 'failed':
        // A decided CSR cannot be decided again: the next attempt (after backoff) is a new request with a
        // new key, under a new name.
        await store.removePendingKey(spec.kind);
        throw deniedError(outcome.kind, outcome.reason, outcome.message, spec, name);
      case 'issued': {
        const verdict = verifyIssuedCertificate({
          certificatePem: outcome.certificatePem,
          key,
          caBundlePem: deps.caBundlePem,
          template: {
            commonName: spec.commonName,
            organizations: spec.organizations,
            usage: USAGE_OF[spec.kind],
            dnsNames: spec.dnsNames,
            ipAddresses: spec.ipAddresses,
          },
          now: deps.now(),
          clockSkewMs: deps.clockSkewMs,
        });
        if (!verdict.ok) {
          await store.removePendingKey(spec.kind);
          throw new UserError(
            `the certificate issued for CSR ${name} was rejected, nothing installed: ${verdict.problems.join('; ')}`,
            {
              where: `certificatesigningrequest/${name}`,
              fix: 'check the signer (kube-controller-manager --cluster-signing-cert-file) matches the cluster CA nodecred trusts (clusterCAFile), and the node clock',
              code: 'CERT_REJECTED',
            },
          );
        }
        return { chainPem: outcome.certificatePem, key, csrName: name };
      }
    }
  }
}

export { WaitTimeout };
