// The approver's API access: a kubeconfig file (parsed by src/kube with errors that name the file) or the
// in-cluster service account (client-node re-reads the projected token every minute), and the Lease store
// the leader election writes through.
import {
  ApiException,
  AuthorizationV1Api,
  CertificatesV1Api,
  CoordinationV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  type V1Lease,
} from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import { UserError } from '../errors.ts';
import {
  apiMessage,
  connectionFromKubeconfigFile,
  statusOf,
  type ApiConnection,
  type ApiEndpoint,
} from '../kube/api.ts';
import { kubeConfigFor, TimedKubeConfig } from '../kube/client-node.ts';
import { SERVING_SIGNER } from '../kube/csr-name.ts';
import { LeaseConflict, type LeaseRecord, type LeaseStore, type StoredLease } from './leader.ts';

export interface ApproverClients {
  kubeConfig: TimedKubeConfig;
  certificates: CertificatesV1Api;
  core: CoreV1Api;
  authorization: AuthorizationV1Api;
  discovery: DiscoveryV1Api;
  /** On a connection per request: see ApiSource. */
  coordination: CoordinationV1Api;
}

/**
 * Where the approver's credentials come from. Clients are rebuilt now and then so rotated files are picked
 * up. The decision path of each generation shares its connections (HTTP/2 where the API server offers it;
 * undici PINGs a session that stops answering and replaces it). The Lease does not: one renewal every few
 * seconds must never wait on a silently dead connection, or leadership is lost for nothing.
 */
export class ApiSource {
  readonly description: string;
  /** The API server's host names/addresses as this approver reaches it: names no node may have. */
  readonly serverNames: readonly string[];
  private readonly load: (shared: boolean) => Promise<TimedKubeConfig>;
  /** Where the API server is and the CA it must chain to, for reading its serving certificate. */
  readonly endpoint: () => Promise<ApiEndpoint>;
  private cached: { clients: ApproverClients; at: number } | undefined;
  private building: Promise<ApproverClients> | undefined;
  private readonly maxAgeMs: number;

  private constructor(
    description: string,
    serverNames: readonly string[],
    load: (shared: boolean) => Promise<TimedKubeConfig>,
    maxAgeMs: number,
    endpoint: () => Promise<ApiEndpoint>,
  ) {
    this.description = description;
    this.serverNames = serverNames;
    this.load = load;
    this.endpoint = endpoint;
    this.maxAgeMs = maxAgeMs;
  }

  /** From a kubeconfig file: token, client certificate or exec plugin; files are re-read every minute. */
  static async fromKubeconfig(path: string): Promise<ApiSource> {
    let conn: ApiConnection = await connectionFromKubeconfigFile(path, 'approver');
    let readAt = Date.now();
    const { server, tlsServerName } = conn.endpoint;
    return new ApiSource(
      conn.description,
      [hostOf(server), tlsServerName].filter((n) => n !== undefined),
      async (shared) => {
        // Re-read the kubeconfig and its files (rotated certificates or tokens); keep the old one if that fails.
        if (Date.now() - readAt > 60_000) {
          conn = await connectionFromKubeconfigFile(path, 'approver').catch(() => conn);
          readAt = Date.now();
        }
        return kubeConfigFor(conn, { shareConnections: shared });
      },
      60_000,
      async () => conn.endpoint,
    );
  }

  /** In a Pod: the service account token (re-read by client-node every minute) and CA mounted by the kubelet. */
  static inCluster(): ApiSource {
    return new ApiSource(
      'in-cluster service account',
      [process.env.KUBERNETES_SERVICE_HOST].filter((n) => n !== undefined),
      async (shared) => {
        const kc = new TimedKubeConfig({ shareConnections: shared });
        kc.loadFromCluster();
        return kc;
      },
      10 * 60_000,
      async () => {
        const host = process.env.KUBERNETES_SERVICE_HOST ?? '';
        return {
          server: `https://${host.includes(':') ? `[${host}]` : host}:${process.env.KUBERNETES_SERVICE_PORT ?? '443'}`,
          caPem: await readFile(SERVICE_ACCOUNT_CA, 'utf8'),
        };
      },
    );
  }

  async clients(): Promise<ApproverClients> {
    if (this.cached && Date.now() - this.cached.at < this.maxAgeMs) return this.cached.clients;
    // One generation at a time: callers arriving together share it instead of each opening a pool.
    this.building ??= this.build().finally(() => (this.building = undefined));
    return this.building;
  }

  private async build(): Promise<ApproverClients> {
    const kubeConfig = await this.load(true);
    const clients = {
      kubeConfig,
      certificates: kubeConfig.makeApiClient(CertificatesV1Api),
      core: kubeConfig.makeApiClient(CoreV1Api),
      authorization: kubeConfig.makeApiClient(AuthorizationV1Api),
      discovery: kubeConfig.makeApiClient(DiscoveryV1Api),
      coordination: (await this.load(false)).makeApiClient(CoordinationV1Api),
    };
    // The previous generation's connections close once its in-flight requests and watch end.
    this.cached?.clients.kubeConfig.retire();
    this.cached = { clients, at: Date.now() };
    return clients;
  }

  /** After a 401: build fresh clients (credentials re-read) on the next call. */
  invalidate(): void {
    this.cached?.clients.kubeConfig.retire();
    this.cached = undefined;
  }

  /**
   * Every failed request is reported here. Only a 401 changes anything: the credentials are re-read.
   * Connection failures are undici's to handle (see SHARED_HEADERS_TIMEOUT_MS): dropping the pool here
   * would also kill the healthy requests and the watch sharing it.
   */
  noteFailure(err: unknown): void {
    if (statusOf(err) === 401) this.invalidate();
  }
}

/** The CA the kubelet mounts into every Pod for its service account (client-node's loadFromCluster reads it). */
const SERVICE_ACCOUNT_CA = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt';

/** The host of a server URL ("https://[::1]:6443" → "::1"), or undefined when it does not parse. */
export function hostOf(server: string): string | undefined {
  try {
    return new URL(server).hostname.replace(/^\[(.*)\]$/, '$1') || undefined;
  } catch {
    return undefined;
  }
}

/** One line for logs: status and the API server's message, never a request or response body. */
export function describeApiError(err: unknown): string {
  const status = statusOf(err);
  if (err instanceof ApiException || status !== undefined) return `${status ?? '?'} ${apiMessage(err)}`.slice(0, 300);
  return apiMessage(err).slice(0, 300);
}

interface Permission {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  name?: string;
  namespace?: string;
}

/** What the approver needs (deploy/approver-rbac.yaml grants exactly this). */
export function requiredPermissions(leaseNamespace: string, leaseName: string): Permission[] {
  const csrs = { group: 'certificates.k8s.io', resource: 'certificatesigningrequests' };
  return [
    { verb: 'list', ...csrs },
    { verb: 'watch', ...csrs },
    { verb: 'update', ...csrs, subresource: 'approval' },
    { verb: 'approve', group: 'certificates.k8s.io', resource: 'signers', name: SERVING_SIGNER },
    { verb: 'get', group: '', resource: 'nodes' },
    { verb: 'list', group: '', resource: 'nodes' },
    { verb: 'watch', group: '', resource: 'nodes' },
    { verb: 'get', group: '', resource: 'services', namespace: 'default', name: 'kubernetes' },
    { verb: 'list', group: 'discovery.k8s.io', resource: 'endpointslices', namespace: 'default' },
    { verb: 'watch', group: 'discovery.k8s.io', resource: 'endpointslices', namespace: 'default' },
    { verb: 'create', group: 'authorization.k8s.io', resource: 'subjectaccessreviews' },
    { verb: 'create', group: '', resource: 'events', namespace: 'default' },
    { verb: 'get', group: 'coordination.k8s.io', resource: 'leases', namespace: leaseNamespace, name: leaseName },
    { verb: 'create', group: 'coordination.k8s.io', resource: 'leases', namespace: leaseNamespace },
    { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: leaseNamespace, name: leaseName },
  ];
}

function describePermission(p: Permission): string {
  const resource = `${p.resource}${p.subresource ? `/${p.subresource}` : ''}${p.group ? `.${p.group}` : ''}`;
  return `${p.verb} ${resource}${p.name ? ` "${p.name}"` : ''}${p.namespace ? ` in namespace ${p.namespace}` : ''}`;
}

/**
 * Asks the API server (SelfSubjectAccessReview) for each permission the approver needs, and fails with one
 * line naming every missing rule: better than a controller that retries 403s forever.
 */
export async function checkPermissions(source: ApiSource, permissions: Permission[]): Promise<void> {
  const { authorization } = await source.clients();
  const missing: string[] = [];
  for (const p of permissions) {
    let allowed: boolean;
    try {
      const review = await authorization.createSelfSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SelfSubjectAccessReview',
          spec: {
            resourceAttributes: {
              verb: p.verb,
              group: p.group,
              resource: p.resource,
              ...(p.subresource ? { subresource: p.subresource } : {}),
              ...(p.name ? { name: p.name } : {}),
              ...(p.namespace ? { namespace: p.namespace } : {}),
            },
          },
        },
      });
      allowed = review.status?.allowed === true;
    } catch (err) {
      const status = statusOf(err);
      if (status === 401) {
        throw new UserError(`401 Unauthorized with the ${source.description}`, {
          fix: 'the credentials are unknown or expired: issue a new token or certificate for the approver',
          code: 'UNAUTHORIZED',
          cause: err,
        });
      }
      throw new UserError(`cannot check the approver's permissions: ${describeApiError(err)}`, {
        fix: 'check that the API server is reachable',
        code: 'API_UNREACHABLE',
        cause: err,
      });
    }
    if (!allowed) missing.push(describePermission(p));
  }
  if (missing.length > 0) {
    throw new UserError(`the ${source.description} lacks permissions: ${missing.join('; ')}`, {
      fix: 'apply deploy/approver-rbac.yaml (and bind it to this identity), or grant the rules named here',
      code: 'FORBIDDEN',
    });
  }
}

const LEASE_LABELS = { 'app.kubernetes.io/name': 'nodecred-approver' };

/** The Lease store over the coordination.k8s.io/v1 API. */
export function kubeLeaseStore(source: ApiSource, namespace: string, name: string): LeaseStore {
  const toStored = (lease: V1Lease): StoredLease => {
    const s = lease.spec ?? {};
    return {
      resourceVersion: lease.metadata?.resourceVersion ?? '',
      record: {
        holderIdentity: s.holderIdentity ?? '',
        leaseDurationSeconds: s.leaseDurationSeconds ?? 0,
        // MicroTime is not in client-node's type map: it arrives as the API server's string.
        acquireTime: String(s.acquireTime ?? ''),
        renewTime: String(s.renewTime ?? ''),
        leaseTransitions: s.leaseTransitions ?? 0,
      },
    };
  };
  const spec = (r: LeaseRecord) => ({
    holderIdentity: r.holderIdentity,
    leaseDurationSeconds: r.leaseDurationSeconds,
    acquireTime: r.acquireTime as unknown as Date,
    renewTime: r.renewTime as unknown as Date,
    leaseTransitions: r.leaseTransitions,
  });
  const conflict = (err: unknown) => {
    if (statusOf(err) === 409) return new LeaseConflict(`lease ${namespace}/${name} changed under us`);
    source.noteFailure(err);
    return err;
  };
  return {
    description: `${namespace}/${name}`,
    async get() {
      const { coordination } = await source.clients();
      try {
        return toStored(await coordination.readNamespacedLease({ name, namespace }));
      } catch (err) {
        if (statusOf(err) === 404) return null;
        source.noteFailure(err);
        throw err;
      }
    },
    async create(record) {
      const { coordination } = await source.clients();
      try {
        return toStored(
          await coordination.createNamespacedLease({
            namespace,
            body: {
              apiVersion: 'coordination.k8s.io/v1',
              kind: 'Lease',
              metadata: { name, namespace, labels: LEASE_LABELS },
              spec: spec(record),
            },
          }),
        );
      } catch (err) {
        throw conflict(err);
      }
    },
    async update(record, resourceVersion) {
      const { coordination } = await source.clients();
      try {
        return toStored(
          await coordination.replaceNamespacedLease({
            name,
            namespace,
            body: {
              apiVersion: 'coordination.k8s.io/v1',
              kind: 'Lease',
              metadata: { name, namespace, resourceVersion, labels: LEASE_LABELS },
              spec: spec(record),
            },
          }),
        );
      } catch (err) {
        throw conflict(err);
      }
    },
  };
}
