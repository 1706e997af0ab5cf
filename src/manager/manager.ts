// The certificate manager: makes sure a valid client certificate (and, when enabled, serving certificate)
// is installed, decides when to rotate, and falls back to the bootstrap credentials when the node's own
// certificate can no longer be used. Policy comes from policy.ts; disk from the store; API from kube/.
import { readFile } from 'node:fs/promises';
import { UserError, isUserError } from '../errors.ts';
import { verifyIssuedCertificate } from '../pki/verify.ts';
import { NODES_ORGANIZATION } from '../pki/csr.ts';
import { encodePrivateKeyPem } from '../pki/keys.ts';
import { CLIENT_SIGNER, SERVING_SIGNER } from '../kube/csr-name.ts';
import {
  readKubeconfigFile,
  connectionFromKubeconfig,
  endpointOf,
  clientsFor,
  explainApiError,
  statusOf,
  type ApiConnection,
  type ApiEndpoint,
} from '../kube/api.ts';
import { renderNodeKubeconfig, type KubeconfigConnection } from '../kube/kubeconfig.ts';
import { discover } from '../kube/discovery-client.ts';
import { deleteCsr } from '../kube/csr-api.ts';
import { writeFileAtomic, ensureParentDirs } from '../store/atomic.ts';
import { diskError, type CertStore, type CertKind, type StoredPair } from '../store/cert-store.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import {
  rotationDeadline,
  servingSansFromAddresses,
  sameSans,
  type Random,
  type SubjectAltNames,
  type NodeAddress,
} from './policy.ts';
import { requestCertificate, type RequestSpec } from './request.ts';
import { isPlaceholder } from './placeholder.ts';

export interface ManagerDeps {
  config: Config;
  store: CertStore;
  log: Logger;
  now: () => Date;
  random: Random;
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
}

/** What the manager tells observers (metrics, hooks): one call per install or failed pass. */
export interface ManagerEvents {
  installed?(kind: CertKind, state: CertificateState, previous: { notBefore?: Date; notAfter?: Date } | null): void;
  failed?(kind: CertKind, error: unknown): void;
  /** A different valid certificate was found on disk and adopted (an operator dropped it in). */
  adopted?(kind: CertKind, state: CertificateState): void;
}

export type EnsureResult = 'valid' | 'installed';

export class CertificateManager {
  readonly deps: ManagerDeps;
  readonly states: Record<CertKind, CertificateState>;
  /** The last pair that passed verification, to reinstall when the file vanishes or is damaged. */
  private readonly lastGood: Partial<Record<CertKind, StoredPair>> = {};
  /** Rotation deadlines are drawn once per certificate (by fingerprint) so the jitter is stable. */
  private readonly deadlines = new Map<string, Date>();

  constructor(deps: ManagerDeps) {
    this.deps = deps;
    this.states = {
      client: { kind: 'client', path: deps.store.currentPath('client') },
      server: { kind: 'server', path: deps.store.currentPath('server') },
    };
  }

  private get log(): Logger {
    return this.deps.log;
  }

  private deadlineFor(fingerprint: string, notBefore: Date, notAfter: Date): Date {
    // Keyed by the window too: a rotation window changed by a config reload (SIGHUP) applies at once.
    const { from, to } = this.deps.config.rotationWindow;
    const key = `${fingerprint}@${from}-${to}`;
    let d = this.deadlines.get(key);
    if (!d) {
      d = rotationDeadline(notBefore, notAfter, this.deps.config.rotationWindow, this.deps.random);
      this.deadlines.set(key, d);
    }
    return d;
  }

  private async readCurrent(kind: CertKind): Promise<StoredPair | null> {
    try {
      return await this.deps.store.readCurrent(kind);
    } catch (err) {
      this.log.warn(
        { kind, err: isUserError(err) ? err.oneLine() : String(err) },
        'installed certificate unreadable; treating it as missing',
      );
      return null;
    }
  }

  /** The CA bundle issued certificates must chain to: clusterCAFile, else the API connection's CA. */
  private async caBundle(endpoint: ApiEndpoint): Promise<string> {
    const file = this.deps.config.clusterCAFile;
    if (file) {
      try {
        return await readFile(file, 'utf8');
      } catch (err) {
        throw new UserError(`cannot read cluster CA: ${(err as NodeJS.ErrnoException).code}`, {
          where: `clusterCAFile ${file}`,
          fix: 'point clusterCAFile at the CA that signs node certificates',
          code: 'FILE_UNREADABLE',
        });
      }
    }
    if (!endpoint.caPem) {
      throw new UserError('no cluster CA to verify issued certificates against', {
        where: endpoint.server,
        fix: 'set certificate-authority(-data) in the kubeconfig or clusterCAFile in the config',
        code: 'NO_CA',
      });
    }
    return endpoint.caPem;
  }

  /** The bootstrap credentials: token discovery, or the bootstrap kubeconfig. Null when none configured. */
  async bootstrapConnection(): Promise<ApiConnection | null> {
    const { discovery, bootstrapKubeconfig } = this.deps.config;
    if (discovery) return discover(discovery);
    if (bootstrapKubeconfig)
      return connectionFromKubeconfig(await readKubeconfigFile(bootstrapKubeconfig), 'bootstrap');
    return null;
  }

  private async readNodeKubeconfig(): Promise<KubeconfigConnection | null> {
    try {
      return await readKubeconfigFile(this.deps.config.kubeconfig);
    } catch (err) {
      if (isUserError(err) && err.code === 'FILE_UNREADABLE') return null;
      this.log.warn(
        { path: this.deps.config.kubeconfig, err: isUserError(err) ? err.oneLine() : String(err) },
        'node kubeconfig unreadable; it will be rewritten',
      );
      return null;
    }
  }

  private clientTemplate(): { commonName: string; organizations: string[] } {
    return { commonName: `system:node:${this.deps.config.nodeName}`, organizations: [NODES_ORGANIZATION] };
  }

  private expirationSeconds(): number | undefined {
    const ms = this.deps.config.requestedLifetimeMs;
    return ms ? Math.round(ms / 1000) : undefined;
  }

  /** Verifies an installed pair against what we would request; records its state; returns the problems. */
  private assess(
    kind: CertKind,
    pair: StoredPair | null,
    ca: string,
    sans: SubjectAltNames,
  ): { usable: boolean; rotate: boolean; problems: string[] } {
    const state = this.states[kind];
    if (!pair) {
      for (const field of [
        'subject',
        'dnsNames',
        'ipAddresses',
        'notBefore',
        'notAfter',
        'rotationDeadline',
        'fingerprint',
        'issuer',
      ] as const)
        delete state[field];
      Object.assign(state, { verified: false, problems: ['no certificate installed'] });
      return { usable: false, rotate: true, problems: ['no certificate installed'] };
    }
    const verdict = verifyIssuedCertificate({
      certificatePem: pair.chainPem,
      key: pair.key,
      caBundlePem: ca,
      template: { ...this.clientTemplate(), usage: kind, dnsNames: sans.dnsNames, ipAddresses: sans.ipAddresses },
      now: this.deps.now(),
      clockSkewMs: this.deps.config.clockSkewMs,
    });
    const leaf = pair.certificates[0]!.summary;
    const deadline = this.deadlineFor(leaf.sha256Fingerprint, leaf.notBefore, leaf.notAfter);
    Object.assign(state, {
      subject: `CN=${leaf.subjectCommonName}, O=${leaf.subjectOrganizations.join('+')}`,
      dnsNames: leaf.dnsNames,
      ipAddresses: leaf.ipAddresses,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      rotationDeadline: deadline,
      fingerprint: leaf.sha256Fingerprint,
      issuer: leaf.issuerCommonName,
      verified: verdict.ok,
      problems: verdict.ok ? [] : verdict.problems,
    });
    if (!verdict.ok) return { usable: false, rotate: true, problems: verdict.problems };
    const previous = this.lastGood[kind];
    if (
      previous &&
      previous.certificates[0]!.summary.sha256Fingerprint !== leaf.sha256Fingerprint &&
      this.states[kind].pendingCsr === undefined
    ) {
      this.log.info(
        { kind, fingerprint: leaf.sha256Fingerprint, path: pair.file },
        'adopted a valid certificate found on disk',
      );
      this.deps.events?.adopted?.(kind, state);
    }
    this.lastGood[kind] = pair;
    return { usable: true, rotate: this.deps.now().getTime() >= deadline.getTime(), problems: [] };
  }

  /**
   * The file on disk is gone or damaged but the pair we last verified is still good: put it back rather
   * than request a new certificate. Returns the reassessment, or null when memory has nothing usable.
   */
  private async reinstallFromMemory(kind: CertKind, ca: string, sans: SubjectAltNames, problems: string[]) {
    const remembered = this.lastGood[kind];
    if (!remembered) return null;
    const again = this.assess(kind, remembered, ca, sans);
    if (!again.usable) return null;
    await this.deps.store.install(kind, remembered.chainPem, remembered.key, this.deps.now());
    this.log.warn(
      { kind, problems, path: this.deps.store.currentPath(kind) },
      'certificate on disk missing or damaged; reinstalled the verified one from memory',
    );
    return again;
  }

  /** Cheap local check for the file watcher's safety net: does disk still hold what we last verified? */
  async diskMatchesMemory(): Promise<boolean> {
    const { config, store } = this.deps;
    const kinds: CertKind[] = [
      ...(config.clientCredentials === 'managed' ? ['client' as const] : []),
      ...(config.rotateServerCertificates ? ['server' as const] : []),
    ];
    for (const kind of kinds) {
      const pair = await store.readCurrent(kind).catch(() => null);
      if (!pair || pair.certificates[0]!.summary.sha256Fingerprint !== this.states[kind].fingerprint) return false;
    }
    const kubeconfig = await readFile(config.kubeconfig, 'utf8').catch(() => null);
    return kubeconfig !== null && kubeconfig.length > 0;
  }

  private async writeNodeKubeconfig(endpoint: ApiEndpoint, caPem: string): Promise<void> {
    const path = this.deps.config.kubeconfig;
    const current = this.deps.store.currentPath('client');
    const text = renderNodeKubeconfig({
      server: endpoint.server,
      caData: caPem,
      ...(endpoint.tlsServerName ? { tlsServerName: endpoint.tlsServerName } : {}),
      certPath: current,
      keyPath: current,
    });
    const existing = await readFile(path, 'utf8').catch(() => null);
    if (existing === text) return;
    // Create the directory if missing (0700), but never change the mode of one we do not own (/var/lib/kubelet).
    await ensureParentDirs(path);
    await writeFileAtomic(path, text, 0o600).catch((err: unknown) => {
      throw diskError(err, path);
    });
    this.log.info({ path, server: endpoint.server }, 'wrote node kubeconfig');
  }

  private recordError(kind: CertKind, err: unknown): void {
    this.states[kind].lastError = isUserError(err) ? err.oneLine() : ((err as Error).message ?? String(err));
    this.deps.events?.failed?.(kind, err);
  }

  private recordInstalled(kind: CertKind, previous: { notBefore?: Date; notAfter?: Date } | null): void {
    Object.assign(this.states[kind], {
      lastError: undefined,
      lastSuccess: this.deps.now(),
      pendingCsr: undefined,
      pendingSince: undefined,
    });
    this.deps.events?.installed?.(kind, this.states[kind], previous);
  }

  /**
   * Makes sure a valid client certificate and the node kubeconfig exist. Renews with the current
   * certificate when it is still valid but due; bootstraps when it is missing, invalid or expired.
   */
  async ensureClient(opts: { deadline: number; rotate: boolean }): Promise<EnsureResult> {
    const { store, config } = this.deps;
    try {
      const nodeKubeconfig = await this.readNodeKubeconfig();
      const pair = await this.readCurrent('client');
      let bootstrap: ApiConnection | null | undefined;
      const getBootstrap = async () => {
        if (bootstrap === undefined) bootstrap = await this.bootstrapConnection();
        return bootstrap;
      };

      // The endpoint (server, CA, TLS name) the node kubeconfig carries: kept from the existing node
      // kubeconfig when there is one, else taken from the bootstrap source.
      const endpoint: ApiEndpoint | undefined = nodeKubeconfig
        ? await endpointOf(nodeKubeconfig)
        : (await getBootstrap())?.endpoint;
      if (!endpoint) {
        throw new UserError('no node kubeconfig and no bootstrap credentials', {
          where: config.kubeconfig,
          fix: 'pass --bootstrap-kubeconfig, or --api-server with --discovery-token and --discovery-token-ca-cert-hash',
          code: 'NO_CREDENTIALS',
        });
      }
      const ca = await this.caBundle(endpoint);
      let assessed = this.assess('client', pair, ca, { dnsNames: [], ipAddresses: [] });
      if (!assessed.usable)
        assessed =
          (await this.reinstallFromMemory('client', ca, { dnsNames: [], ipAddresses: [] }, assessed.problems)) ??
          assessed;
      if (assessed.usable && (!assessed.rotate || !opts.rotate)) {
        await this.writeNodeKubeconfig(endpoint, endpoint.caPem ?? ca);
        this.states.client.lastError = undefined;
        return 'valid';
      }

      let conn: ApiConnection | null = null;
      const renewWith = assessed.usable ? this.lastGood.client : undefined;
      if (renewWith) {
        conn = {
          endpoint,
          credential: { kind: 'clientCert', certPem: renewWith.chainPem, keyPem: encodePrivateKeyPem(renewWith.key) },
          description: `node client certificate ${store.currentPath('client')}`,
        };
        this.log.info(
          { notAfter: this.states.client.notAfter, deadline: this.states.client.rotationDeadline },
          'client certificate due for rotation; renewing with it',
        );
      } else {
        conn = await getBootstrap();
        if (!conn) {
          throw new UserError(
            `client certificate unusable (${assessed.problems.join('; ')}) and no bootstrap credentials configured`,
            {
              where: store.currentPath('client'),
              fix: 'configure --bootstrap-kubeconfig or token discovery so nodecred can bootstrap again',
              code: 'NO_CREDENTIALS',
            },
          );
        }
        if (pair)
          this.log.warn(
            { problems: assessed.problems, via: conn.description },
            'client certificate unusable; falling back to bootstrap credentials',
          );
        else this.log.info({ via: conn.description }, 'no client certificate; bootstrapping');
      }

      const spec: RequestSpec = {
        kind: 'client',
        signerName: CLIENT_SIGNER,
        ...this.clientTemplate(),
        dnsNames: [],
        ipAddresses: [],
        ...(this.expirationSeconds() ? { expirationSeconds: this.expirationSeconds()! } : {}),
      };
      const renewal = conn;
      // A renewal keeps the node kubeconfig's endpoint; a bootstrap takes the bootstrap source's server and
      // CA (which may have moved: a cluster CA rotation, a new endpoint) for verification and the kubeconfig.
      const requestWith = async (c: ApiConnection) => {
        const target = c === renewal && renewWith ? endpoint : c.endpoint;
        const caFor = target === endpoint ? ca : await this.caBundle(target);
        return { issued: await this.request(c, spec, caFor, opts.deadline), target, caFor };
      };
      const { issued, target, caFor } = await requestWith(conn).catch(async (err: unknown) => {
        // A renewal the API server refuses (certificate revoked, node deleted) or whose endpoint is no
        // longer trusted falls back to bootstrap.
        if (renewWith && isUserError(err) && (err.code === 'UNAUTHORIZED' || err.code === 'TLS_UNTRUSTED')) {
          const fallback = await getBootstrap();
          if (fallback) {
            this.log.warn(
              { via: fallback.description, why: err.code },
              'renewal with the node certificate failed; falling back to bootstrap credentials',
            );
            return requestWith(fallback);
          }
        }
        throw err;
      });
      const previous = pair
        ? { notBefore: pair.certificates[0]!.summary.notBefore, notAfter: pair.certificates[0]!.summary.notAfter }
        : null;
      await store.install('client', issued.chainPem, issued.key, this.deps.now());
      await store.removePendingKey('client');
      await this.writeNodeKubeconfig(target, target.caPem ?? caFor);
      this.assess('client', await this.readCurrent('client'), caFor, { dnsNames: [], ipAddresses: [] });
      this.recordInstalled('client', previous);
      this.log.info(
        {
          csr: issued.csrName,
          notAfter: this.states.client.notAfter,
          deadline: this.states.client.rotationDeadline,
          path: store.currentPath('client'),
        },
        'installed client certificate',
      );
      return 'installed';
    } catch (err) {
      this.recordError('client', err);
      throw err;
    }
  }

  private async request(conn: ApiConnection, spec: RequestSpec, ca: string, deadline: number) {
    const state = this.states[spec.kind];
    return requestCertificate(
      {
        store: this.deps.store,
        log: this.log,
        keyAlgorithm: this.deps.config.keyAlgorithm,
        caBundlePem: ca,
        clockSkewMs: this.deps.config.clockSkewMs,
        now: this.deps.now,
        onPending: (name) => {
          if (state.pendingCsr && state.pendingCsr !== name) void this.abandon(conn, state.pendingCsr);
          state.pendingCsr = name;
          state.pendingSince ??= this.deps.now();
        },
      },
      conn,
      spec,
      {
        deadline,
        watchTimeoutSeconds: Math.max(1, Math.round(this.deps.config.watchTimeoutMs / 1000)),
        ...(this.deps.signal ? { signal: this.deps.signal } : {}),
      },
    );
  }

  /** The node's connection, from the kubeconfig nodecred wrote (or an exec kubeconfig on EKS-style nodes). */
  async nodeConnection(): Promise<ApiConnection> {
    return connectionFromKubeconfig(await readKubeconfigFile(this.deps.config.kubeconfig), 'node');
  }

  /** The serving certificate's SANs: the Node's status.addresses, or the configured ones before it exists. */
  async wantedServingSans(conn: ApiConnection): Promise<SubjectAltNames> {
    const { config } = this.deps;
    let addresses: NodeAddress[];
    try {
      const { core } = await clientsFor(conn);
      const node = await core.readNode({ name: config.nodeName });
      addresses = (node.status?.addresses ?? []).map((a) => ({ type: a.type, address: a.address }));
      if (addresses.length === 0) addresses = config.servingAddresses;
    } catch (err) {
      if (statusOf(err) !== 404) throw explainApiError(err, conn, `read Node ${config.nodeName}`);
      addresses = config.servingAddresses;
    }
    const sans = servingSansFromAddresses(addresses);
    if (sans.dnsNames.length + sans.ipAddresses.length === 0) {
      throw new UserError(`Node ${config.nodeName} has no addresses yet and none are configured`, {
        where: 'serving.addresses',
        fix: 'wait for kubelet to register the Node, or list the node addresses under serving.addresses (or --node-ip)',
        code: 'NO_SERVING_ADDRESSES',
      });
    }
    return sans;
  }

  /** Makes sure a valid serving certificate for the node's current addresses is installed. */
  async ensureServing(opts: { deadline: number; rotate: boolean }): Promise<EnsureResult> {
    const { store } = this.deps;
    try {
      const conn = await this.nodeConnection();
      const ca = await this.caBundle(conn.endpoint);
      const sans = await this.wantedServingSans(conn);
      const pair = await this.readCurrent('server');
      let assessed = this.assess('server', pair, ca, sans);
      if (!assessed.usable)
        assessed = (await this.reinstallFromMemory('server', ca, sans, assessed.problems)) ?? assessed;
      const placeholder = pair !== null && isPlaceholder(pair);
      const addressesChanged =
        pair !== null &&
        !placeholder &&
        !sameSans(sans, {
          dnsNames: this.states.server.dnsNames ?? [],
          ipAddresses: this.states.server.ipAddresses ?? [],
        });
      if (assessed.usable && !addressesChanged && (!assessed.rotate || !opts.rotate)) {
        this.states.server.lastError = undefined;
        return 'valid';
      }
      if (addressesChanged)
        this.log.info(
          { installed: { dns: this.states.server.dnsNames, ip: this.states.server.ipAddresses }, wanted: sans },
          'node addresses changed; requesting a new serving certificate',
        );
      else if (placeholder)
        this.log.info(
          { sans },
          'the Node is registered: requesting the serving certificate to replace the placeholder',
        );
      else if (pair)
        this.log.info(
          { problems: assessed.problems, deadline: this.states.server.rotationDeadline },
          'serving certificate due; requesting a new one',
        );
      const spec: RequestSpec = {
        kind: 'server',
        signerName: SERVING_SIGNER,
        ...this.clientTemplate(),
        ...sans,
        ...(this.expirationSeconds() ? { expirationSeconds: this.expirationSeconds()! } : {}),
      };
      const issued = await this.request(conn, spec, ca, opts.deadline);
      const previous = pair
        ? { notBefore: pair.certificates[0]!.summary.notBefore, notAfter: pair.certificates[0]!.summary.notAfter }
        : null;
      await store.install('server', issued.chainPem, issued.key, this.deps.now());
      await store.removePendingKey('server');
      this.assess('server', await this.readCurrent('server'), ca, sans);
      this.recordInstalled('server', previous);
      this.log.info(
        {
          csr: issued.csrName,
          dnsNames: sans.dnsNames,
          ipAddresses: sans.ipAddresses,
          notAfter: this.states.server.notAfter,
          path: store.currentPath('server'),
        },
        'installed serving certificate',
      );
      return 'installed';
    } catch (err) {
      this.recordError('server', err);
      throw err;
    }
  }

  /** Deletes a CSR we no longer wait for, where RBAC allows (nodes cannot delete CSRs by default). */
  private async abandon(conn: ApiConnection, name: string): Promise<void> {
    const deleted = await deleteCsr(conn, name).catch(() => false);
    this.log.info(
      { csr: name, deleted },
      deleted
        ? 'deleted abandoned CSR'
        : "abandoned CSR left for kube-controller-manager's CSR cleaner (no delete permission)",
    );
  }
}
