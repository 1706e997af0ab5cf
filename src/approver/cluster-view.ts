// What the approver knows about the cluster besides the CSRs: every Node (from an informer, so deciding a
// CSR needs no GET) with the names it claims and whether an administrator labelled it control-plane, and
// the API server's own names and addresses — the kubernetes Service's cluster IPs, the addresses in its
// EndpointSlices (one per API server in an HA control plane), the host of the approver's own kubeconfig,
// and every name in the serving certificates found at those addresses (api-server-certs.ts). Decisions
// wait until Nodes and EndpointSlices have been listed once and one certificate has been read.
import type { V1EndpointSlice, V1Node } from '@kubernetes/client-node';
import { systemClock } from '../clock.ts';
import { errorLine } from '../errors.ts';
import { statusOf } from '../kube/api.ts';
import type { Logger } from '../log.ts';
import { canonicalDnsName, canonicalIp } from '../pki/san.ts';
import { hostOf, type ApiSource } from './api.ts';
import { ApiServerCertificates, type ServingEndpoint } from './api-server-certs.ts';
import type { ApproverMetrics } from './metrics.ts';
import { CONTROL_PLANE_LABEL, NodeClaims, type ApiServerNames } from './names.ts';
import type { ClusterView, NodeFacts } from './policy.ts';
import { Reflector } from './reflector.ts';

const API_SERVICE = { namespace: 'default', name: 'kubernetes' };
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

interface ClusterFactsOptions {
  source: ApiSource;
  log: Logger;
  metrics: ApproverMetrics;
  resyncIntervalMs: number;
  random?: () => number;
}

const HTTPS_PORT = 443;

function factsOf(node: V1Node): NonNullable<NodeFacts> {
  return {
    name: node.metadata?.name ?? '',
    addresses: (node.status?.addresses ?? []).map((a) => ({ type: a.type, address: a.address })),
    controlPlane: Object.hasOwn(node.metadata?.labels ?? {}, CONTROL_PLANE_LABEL),
  };
}

/** The port an API server listens on, from an EndpointSlice (its reconciler names it "https"). */
function slicePort(slice: V1EndpointSlice): number {
  const ports = slice.ports ?? [];
  return (ports.find((p) => p.name === 'https') ?? ports[0])?.port ?? HTTPS_PORT;
}

/** host, port and SNI of a kubeconfig server URL. */
function serverEndpoint(server: string, tlsServerName: string | undefined): ServingEndpoint | undefined {
  const host = hostOf(server);
  if (host === undefined) return undefined;
  const port = Number(new URL(server).port) || HTTPS_PORT;
  const serverName = tlsServerName ?? (canonicalIp(host) === undefined ? host : undefined);
  return { host, port, ...(serverName ? { serverName } : {}) };
}

export class ClusterFacts implements ClusterView {
  private readonly o: ClusterFactsOptions;
  private readonly nodes = new Map<string, NonNullable<NodeFacts>>();
  private readonly claims = new NodeClaims();
  private readonly slices = new Map<string, { addresses: string[]; port: number }>();
  private serviceIps: string[] = [];
  private names: ApiServerNames = { dnsNames: new Set(), ips: new Set(), advertised: new Set() };
  private readonly certificates: ApiServerCertificates;
  private kubeconfigEndpoint: ServingEndpoint | undefined;
  /** Certificate reads run one at a time (a resync and an EndpointSlice change may ask together). */
  private reading: Promise<void> = Promise.resolve();
  private readonly nodeReflector: Reflector<V1Node>;
  private readonly sliceReflector: Reflector<V1EndpointSlice>;

  constructor(options: ClusterFactsOptions) {
    this.o = options;
    this.certificates = new ApiServerCertificates({
      log: options.log,
      trustedCa: async () => (await options.source.endpoint()).caPem,
    });
    const common = { source: options.source, log: options.log, metrics: options.metrics };
    const timing = { resyncIntervalMs: options.resyncIntervalMs, random: options.random };
    this.nodeReflector = new Reflector<V1Node>({
      ...common,
      ...timing,
      resource: 'node',
      list: (c) => c.core.listNode(),
      watchPath: '/api/v1/nodes',
      replace: (items) => {
        for (const name of [...this.nodes.keys()]) this.forgetNode(name);
        for (const node of items) this.setNode(node);
      },
      upsert: (node) => this.setNode(node),
      remove: (node) => this.forgetNode(node.metadata?.name ?? ''),
    });
    this.sliceReflector = new Reflector<V1EndpointSlice>({
      ...common,
      ...timing,
      resource: 'endpointslice',
      list: async (c) => {
        // The Service's cluster IPs never change, but re-reading them on every list costs one request.
        const service = await c.core.readNamespacedService(API_SERVICE).catch((err: unknown) => {
          if (statusOf(err) === 404) return undefined;
          throw err;
        });
        this.serviceIps = service?.spec?.clusterIPs ?? (service?.spec?.clusterIP ? [service.spec.clusterIP] : []);
        return c.discovery.listNamespacedEndpointSlice({
          namespace: API_SERVICE.namespace,
          labelSelector: `${SERVICE_NAME_LABEL}=${API_SERVICE.name}`,
        });
      },
      watchPath: `/apis/discovery.k8s.io/v1/namespaces/${API_SERVICE.namespace}/endpointslices`,
      watchQuery: { labelSelector: `${SERVICE_NAME_LABEL}=${API_SERVICE.name}` },
      replace: (items) => {
        this.slices.clear();
        for (const slice of items) this.setSlice(slice);
        this.endpointsChanged();
      },
      upsert: (slice) => {
        this.setSlice(slice);
        this.endpointsChanged();
      },
      remove: (slice) => {
        this.slices.delete(slice.metadata?.name ?? '');
        this.endpointsChanged();
      },
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.nodeReflector.run(signal), this.sliceReflector.run(signal), this.readCertificates(signal)]);
  }

  /** Resolves once Nodes and the API server's addresses have been listed and one certificate read. */
  async synced(): Promise<void> {
    await Promise.all([this.nodeReflector.synced, this.sliceReflector.synced, this.certificates.ready]);
  }

  /** Nodes known (for the start-up log line). */
  get nodeCount(): number {
    return this.nodes.size;
  }

  claimants(key: string, requester: string): readonly string[] {
    return this.claims.claimants(key, requester);
  }

  get apiServer(): ApiServerNames {
    return this.names;
  }

  /**
   * The requesting Node. A Node created a moment ago may not have reached the informer yet: then one GET,
   * so a node that registers and asks for its certificate at once is not refused for our lag. The answer is
   * not put into the cache: only the watch writes it, as in client-go's informers. A GET answered after the
   * watch's DELETED would bring a deleted Node back, with its address claims, until the next list.
   */
  async node(name: string): Promise<NodeFacts> {
    const cached = this.nodes.get(name);
    if (cached) return cached;
    const { core } = await this.o.source.clients();
    try {
      return factsOf(await core.readNode({ name }));
    } catch (err) {
      if (statusOf(err) === 404) return null;
      this.o.metrics.apiErrors.inc({ operation: 'node-get' });
      this.o.source.noteFailure(err);
      throw err;
    }
  }

  private setNode(node: V1Node): void {
    const facts = factsOf(node);
    if (!facts.name) return;
    this.nodes.set(facts.name, facts);
    this.claims.set(facts.name, facts.addresses);
  }

  private forgetNode(name: string): void {
    this.nodes.delete(name);
    this.claims.delete(name);
  }

  private setSlice(slice: V1EndpointSlice): void {
    const addresses = (slice.endpoints ?? []).flatMap((e) => e.addresses ?? []);
    this.slices.set(slice.metadata?.name ?? '', { addresses, port: slicePort(slice) });
  }

  /** Every address to read a serving certificate from: each API server's, and the kubeconfig server. */
  private servingEndpoints(): ServingEndpoint[] {
    const fromSlices = [...this.slices.values()].flatMap(({ addresses, port }) =>
      addresses.map((host) => ({ host, port })),
    );
    return [...(this.kubeconfigEndpoint ? [this.kubeconfigEndpoint] : []), ...fromSlices];
  }

  private endpointsChanged(): void {
    this.certificates.setEndpoints(this.servingEndpoints());
    this.recomputeNames();
    // New addresses are read at once; the resync loop re-reads all of them.
    void this.reread(false);
  }

  /** Reads certificates (only new endpoints' unless `all`), one read at a time; recomputes on a change. */
  private reread(all: boolean): Promise<void> {
    this.reading = this.reading
      .then(() => this.certificates.refresh(all))
      .then(
        (changed) => {
          if (changed) this.recomputeNames();
        },
        // E.g. the in-cluster CA file unreadable: logged, and the next resync tries again.
        (err: unknown) => this.o.log.warn({ err: errorLine(err) }, "cannot read the API server's certificates"),
      );
    return this.reading;
  }

  /** Reads the certificates until one is known (backing off), then again at every resync. */
  private async readCertificates(signal: AbortSignal): Promise<void> {
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        const { server, tlsServerName } = await this.o.source.endpoint();
        this.kubeconfigEndpoint = serverEndpoint(server, tlsServerName);
      } catch (err) {
        this.o.log.warn({ err: errorLine(err) }, 'cannot read where the API server is (the kubeconfig)');
      }
      this.certificates.setEndpoints(this.servingEndpoints());
      await this.reread(true);
      const { dnsNames, ips } = this.certificates.names();
      const known = dnsNames.length + ips.length > 0;
      const backoffMs = Math.min(this.o.resyncIntervalMs, 1000 * 2 ** Math.min(attempt, 5));
      await systemClock.sleep(known ? this.o.resyncIntervalMs : backoffMs, signal);
    }
  }

  private recomputeNames(): void {
    const dnsNames = new Set<string>();
    const ips = new Set<string>();
    const advertised = new Set<string>();
    const learnt = this.certificates.names();
    const sliceAddresses = [...this.slices.values()].flatMap((s) => s.addresses);
    for (const value of [
      ...this.o.source.serverNames,
      ...this.serviceIps,
      ...sliceAddresses,
      ...learnt.dnsNames,
      ...learnt.ips,
    ]) {
      if (!value) continue;
      const ip = canonicalIp(value);
      if (ip === undefined) dnsNames.add(canonicalDnsName(value));
      else ips.add(ip);
    }
    for (const value of sliceAddresses) {
      const ip = canonicalIp(value);
      if (ip !== undefined) advertised.add(ip);
    }
    this.names = { dnsNames, ips, advertised };
    this.o.log.debug({ apiServer: [...dnsNames, ...ips] }, "the API server's names and addresses");
  }
}
