// What the certificate manager is given (its seams) and what it tells: the state of each managed
// certificate and the events observers receive. Production wires the real parts (src/cli/node-setup.ts);
// tests and the fleet simulator wire fakes (bench/sim/).
import type { KeyObject } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { ApiConnection, ApiEndpoint } from '../kube/api.ts';
import type { ConnectApi } from '../kube/node-api.ts';
import type { Logger } from '../log.ts';
import type { CertKind, StoredPair } from '../store/cert-store.ts';
import type { Denial } from './policy.ts';
import type { RequestCrypto } from './request.ts';

/** The certificate store as the manager uses it (src/store/cert-store.ts CertStore on a real disk). */
export interface CredentialStore {
  currentPath(kind: CertKind): string;
  pendingKeyPath(kind: CertKind): string;
  /** The installed pair; null when there is none; a UserError naming the file when it is unreadable. */
  readCurrent(kind: CertKind): Promise<StoredPair | null>;
  /** Writes a new pair and makes it current, atomically; a full disk is a UserError (code FILESYSTEM). */
  install(kind: CertKind, chainPem: string, key: KeyObject, now: Date): Promise<string>;
  readPendingKey(kind: CertKind): Promise<KeyObject | null>;
  writePendingKey(kind: CertKind, key: KeyObject): Promise<void>;
  removePendingKey(kind: CertKind): Promise<void>;
  /** Where the denied request of this kind is recorded (what `nodecred status` reads). */
  denialPath(kind: CertKind): string;
  /** The recorded denial; null when none; a UserError naming the file when it cannot be read as one. */
  readDenial(kind: CertKind): Promise<Denial | null>;
  /** Records the denial atomically, or with null removes the record. */
  writeDenial(kind: CertKind, denial: Denial | null): Promise<void>;
}

/**
 * Connection construction: the identities the manager speaks as, and the node kubeconfig it maintains
 * (src/kube/node-credentials.ts on a real disk). The renewal identity (the installed client certificate)
 * needs no I/O and is built by the manager itself.
 */
export interface Credentials {
  /** Token discovery or the bootstrap kubeconfig; null when neither is configured. */
  bootstrap(): Promise<ApiConnection | null>;
  /** The endpoint the node kubeconfig names; null when it is missing or unreadable (it is then rewritten). */
  nodeEndpoint(): Promise<ApiEndpoint | null>;
  /** The node's own identity, as the node kubeconfig gives it (ours, or an exec kubeconfig on EKS-style nodes). */
  node(): Promise<ApiConnection>;
  /** Writes the node kubeconfig for `endpoint`, trusting `caPem`, pointing at the current client pair. */
  writeNodeKubeconfig(endpoint: ApiEndpoint, caPem: string): Promise<void>;
  /** The node kubeconfig exists and is not empty (the cheap check between passes). */
  nodeKubeconfigPresent(): Promise<boolean>;
  /** The CA bundle issued certificates must chain to: clusterCAFile, else the endpoint's CA. */
  clusterCa(endpoint: ApiEndpoint): Promise<string>;
}

export interface ManagerDeps {
  config: Config;
  store: CredentialStore;
  credentials: Credentials;
  connect: ConnectApi;
  clock: Clock;
  log: Logger;
  /** Key generation and CSR building; the pki modules unless a test or the simulator says otherwise. */
  crypto?: RequestCrypto;
  events?: ManagerEvents;
  /** Aborts a CSR wait at once (SIGTERM), instead of after the recheck interval. */
  signal?: AbortSignal;
}

/** What the manager knows about one managed certificate, for health checks, metrics and `status`. */
export interface CertificateState {
  kind: CertKind;
  path: string;
  subject?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  notBefore?: Date;
  notAfter?: Date;
  rotationDeadline?: Date;
  fingerprint?: string;
  pendingCsr?: string;
  pendingSince?: Date;
  lastError?: string;
  lastSuccess?: Date;
  issuer?: string;
  /** The installed certificate passed verification at the last check. */
  verified?: boolean;
  /** Why it did not, when it did not. */
  problems?: string[];
  /** Client: the API server has refused the installed certificate (401) since then, with no success between. */
  refusedSince?: Date;
  /** The last request was denied: the same request waits until denied.retryAt (policy.ts Denial). */
  denied?: Denial;
}

export type Lifetime = { notBefore?: Date; notAfter?: Date };

/** What the manager tells observers (metrics, hooks): one call per install or failed pass. */
export interface ManagerEvents {
  installed?(kind: CertKind, state: CertificateState, previous: Lifetime | null): void;
  failed?(kind: CertKind, error: unknown): void;
  /** A different valid certificate was found on disk and adopted (an operator dropped it in). */
  adopted?(kind: CertKind, state: CertificateState): void;
}

export type EnsureResult = 'valid' | 'installed';

export interface EnsureOptions {
  /** No CSR wait outlives this (ms since the epoch, on the manager's clock). */
  deadline: number;
  /** Renew a certificate that is valid but past its rotation deadline (false: only obtain missing ones). */
  rotate: boolean;
}
