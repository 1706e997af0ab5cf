// Running one certificate request for the manager: what to ask for (the spec kubelet would send), which
// CSR is pending (recorded in the state, so health and `status` can name it), and cleaning up a CSR we stop
// waiting for because the request changed under it.
import { nodeSubject } from '../pki/csr.ts';
import { CLIENT_SIGNER, SERVING_SIGNER } from '../kube/csr-name.ts';
import type { ApiConnection } from '../kube/api.ts';
import type { NodeApi } from '../kube/node-api.ts';
import type { Config } from '../config/schema.ts';
import type { CertKind } from '../store/cert-store.ts';
import type { SubjectAltNames } from './policy.ts';
import { PKI_CRYPTO, requestCertificate, type Issued, type RequestSpec } from './request.ts';
import type { CertificateState, ManagerDeps } from './state.ts';

export const NO_SANS: SubjectAltNames = { dnsNames: [], ipAddresses: [] };

/** What kubelet would request: its subject, signer and usages, our SANs and requested lifetime. */
export function requestSpec(config: Config, kind: CertKind, sans: SubjectAltNames): RequestSpec {
  const ms = config.requestedLifetimeMs;
  return {
    kind,
    signerName: kind === 'client' ? CLIENT_SIGNER : SERVING_SIGNER,
    ...nodeSubject(config.nodeName),
    dnsNames: sans.dnsNames,
    ipAddresses: sans.ipAddresses,
    ...(ms ? { expirationSeconds: Math.round(ms / 1000) } : {}),
  };
}

export class Requests {
  private readonly deps: ManagerDeps;
  private readonly states: Record<CertKind, CertificateState>;

  constructor(deps: ManagerDeps, states: Record<CertKind, CertificateState>) {
    this.deps = deps;
    this.states = states;
  }

  /** Requests a certificate as `conn`; it must chain to `ca`. A pass never waits past `deadline`. */
  run(conn: ApiConnection, spec: RequestSpec, ca: string, deadline: number): Promise<Issued> {
    const { config, clock, log } = this.deps;
    const api = this.deps.connect(conn);
    const state = this.states[spec.kind];
    return requestCertificate(
      {
        api,
        via: conn.description,
        store: this.deps.store,
        log,
        clock,
        crypto: this.deps.crypto ?? PKI_CRYPTO,
        keyAlgorithm: config.keyAlgorithm,
        caBundlePem: ca,
        clockSkewMs: config.clockSkewMs,
        onPending: (name) => {
          if (state.pendingCsr && state.pendingCsr !== name) void this.abandon(api, state.pendingCsr);
          state.pendingCsr = name;
          state.pendingSince ??= new Date(clock.now());
        },
      },
      spec,
      {
        deadline,
        watchTimeoutSeconds: Math.max(1, Math.round(config.watchTimeoutMs / 1000)),
        ...(this.deps.signal ? { signal: this.deps.signal } : {}),
      },
    );
  }

  /** Deletes a CSR we no longer wait for, where RBAC allows (nodes cannot delete CSRs by default). */
  private async abandon(api: NodeApi, name: string): Promise<void> {
    const deleted = await api.deleteCsr(name).catch(() => false);
    this.deps.log.info(
      { csr: name, deleted },
      deleted
        ? 'deleted abandoned CSR'
        : "abandoned CSR left for kube-controller-manager's CSR cleaner (no delete permission)",
    );
  }
}
