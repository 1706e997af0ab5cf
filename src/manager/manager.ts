// The certificate manager: makes sure a valid client certificate (and, when enabled, serving certificate)
// is installed, decides when to rotate, and falls back to the bootstrap credentials when the node's own
// certificate can no longer be used. Policy comes from policy.ts; everything it touches (disk, API,
// credentials, time) comes in through ManagerDeps (state.ts), so tests and the simulator can replace it.
import type { Config } from '../config/schema.ts';
import type { ApiConnection } from '../kube/api.ts';
import type { CertKind } from '../store/cert-store.ts';
import { ClientCertificate } from './client.ts';
import { InstalledCertificates } from './installed.ts';
import type { SubjectAltNames } from './policy.ts';
import { Requests } from './requests.ts';
import { ServingCertificate } from './serving.ts';
import type { CertificateState, EnsureOptions, EnsureResult, ManagerDeps } from './state.ts';

export type { CertificateState, EnsureResult, ManagerDeps, ManagerEvents } from './state.ts';

export class CertificateManager {
  readonly deps: ManagerDeps;
  private readonly installed: InstalledCertificates;
  private readonly client: ClientCertificate;
  private readonly serving: ServingCertificate;

  constructor(deps: ManagerDeps) {
    this.deps = deps;
    this.installed = new InstalledCertificates(deps);
    const requests = new Requests(deps, this.installed.states);
    this.client = new ClientCertificate(deps, this.installed, requests);
    this.serving = new ServingCertificate(deps, this.installed, requests);
  }

  get states(): Record<CertKind, CertificateState> {
    return this.installed.states;
  }

  get config(): Config {
    return this.deps.config;
  }

  /** The certificates this configuration manages. */
  managedKinds(): CertKind[] {
    const { config } = this.deps;
    return [
      ...(config.clientCredentials === 'managed' ? (['client'] as const) : []),
      ...(config.rotateServerCertificates ? (['server'] as const) : []),
    ];
  }

  /** A reloaded configuration (SIGHUP) applies from the next pass on. */
  reconfigure(config: Config): void {
    this.deps.config = config;
    // The approver's (or the policy's) configuration may have been fixed too: a denied request may go again.
    for (const state of Object.values(this.installed.states)) state.denied = undefined;
  }

  /**
   * Makes sure a valid client certificate and the node kubeconfig exist. Renews with the current
   * certificate when it is still valid but due; bootstraps when it is missing, invalid or expired.
   */
  ensureClient(opts: EnsureOptions): Promise<EnsureResult> {
    return this.client.ensure(opts);
  }

  /** Makes sure a valid serving certificate for the node's current addresses is installed. */
  ensureServing(opts: EnsureOptions): Promise<EnsureResult> {
    return this.serving.ensure(opts);
  }

  /** The node's connection, from the node kubeconfig (ours, or an exec kubeconfig on EKS-style nodes). */
  nodeConnection(): Promise<ApiConnection> {
    return this.deps.credentials.node();
  }

  /** The serving certificate's SANs: the Node's status.addresses, or the configured ones before it exists. */
  wantedServingSans(conn: ApiConnection): Promise<SubjectAltNames> {
    return this.serving.wantedSans(conn);
  }

  /**
   * What the API server answered the node's own client certificate (the health probe, the serving pass):
   * a persistent 401 makes the next client pass bootstrap again. `fingerprint`: the certificate in use when
   * the request was made (states.client.fingerprint then).
   */
  noteNodeAuthentication(fingerprint: string | undefined, accepted: boolean): void {
    this.installed.noteNodeAuthentication(fingerprint, accepted);
  }

  /**
   * A verified pair of `kind`, still within its validity at `now`, is held in memory: when its file vanishes
   * the next pass puts it back (installed.ts), so nothing else should be installed in its place meanwhile.
   */
  remembersValid(kind: CertKind, now: Date): boolean {
    const leaf = this.installed.lastVerified(kind)?.certificates[0]?.summary;
    return leaf !== undefined && leaf.notAfter.getTime() > now.getTime();
  }

  /** Cheap local check for the file watcher's safety net: does disk still hold what we last verified? */
  async diskMatchesMemory(): Promise<boolean> {
    for (const kind of this.managedKinds()) {
      const pair = await this.deps.store.readCurrent(kind).catch(() => null);
      if (!pair || pair.certificates[0]!.summary.sha256Fingerprint !== this.states[kind].fingerprint) return false;
    }
    return this.deps.credentials.nodeKubeconfigPresent();
  }
}
