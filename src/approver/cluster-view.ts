// What the approver knows about the cluster besides the CSRs: every Node (from an informer, so deciding a
// CSR needs no GET) with the names it claims, and the API server's own addresses — the kubernetes
// Service's cluster IPs, the addresses in its EndpointSlices (one per API server in an HA control plane)
// and the host of the approver's own kubeconfig. Decisions wait until both have been listed once.
import type { V1EndpointSlice, V1Node } from '@kubernetes/client-node';
import { statusOf } from '../kube/api.ts';
import type { Logger } from '../log.ts';
import type { NodeAddress } from '../manager/policy.ts';
import { canonicalDnsName, canonicalIp } from '../pki/san.ts';
import type { ApiSource } from './api.ts';
import type { ApproverMetrics } from './metrics.ts';
import { NodeClaims, type ApiServerNames } from './names.ts';
import type { ClusterView, NodeFacts } from './policy.ts';
import { Reflector } from './reflector.ts';

export const API_SERVICE = { namespace: 'default', name: 'kubernetes' };
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface ClusterFactsOptions {
  source: ApiSource;
  log: Logger;
  metrics: ApproverMetrics;
  resyncIntervalMs: number;
  random?: () => number;
}

function addressesOf(node: V1Node): NodeAddress[] {
  return (node.status?.addresses ?? []).map((a) => ({ type: a.type, address: a.address }));
}

export class ClusterFacts implements ClusterView {
  private readonly o: ClusterFactsOptions;
  private readonly nodes = new Map<string, NodeAddress[]>();
  private readonly claims = new NodeClaims();
  private readonly slices = new Map<string, string[]>();
  private serviceIps: string[] = [];
  private names: ApiServerNames = { dnsNames: new Set(), ips: new Set() };
  private readonly nodeReflector: Reflector<V1Node>;
  private readonly sliceReflector: Reflector<V1EndpointSlice>;

  constructor(options: ClusterFactsOptions) {
    this.o = options;
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
        this.recomputeNames();
      },
      upsert: (slice) => {
        this.setSlice(slice);
        this.recomputeNames();
      },
      remove: (slice) => {
        this.slices.delete(slice.metadata?.name ?? '');
        this.recomputeNames();
      },
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.nodeReflector.run(signal), this.sliceReflector.run(signal)]);
  }

  /** Resolves once Nodes and the API server's addresses have each been listed. */
  async synced(): Promise<void> {
    await Promise.all([this.nodeReflector.synced, this.sliceReflector.synced]);
  }

  claimants(key: string, requester: string): readonly string[] {
    return this.claims.claimants(key, requester);
  }

  get apiServer(): ApiServerNames {
    return this.names;
  }

  /**
   * The requesting Node. A Node created a moment ago may not have reached the informer yet: then one GET,
   * so a node that registers and asks for its certificate at once is not refused for our lag.
   */
  async node(name: string): Promise<NodeFacts> {
    const cached = this.nodes.get(name);
    if (cached) return { name, addresses: cached };
    const { core } = await this.o.source.clients();
    try {
      const node = await core.readNode({ name });
      this.setNode(node);
      return { name, addresses: addressesOf(node) };
    } catch (err) {
      if (statusOf(err) === 404) return null;
      this.o.metrics.apiErrors.inc({ operation: 'node-get' });
      this.o.source.noteFailure(err);
      throw err;
    }
  }

  private setNode(node: V1Node): void {
    const name = node.metadata?.name;
    if (!name) return;
    const addresses = addressesOf(node);
    this.nodes.set(name, addresses);
    this.claims.set(name, addresses);
  }

  private forgetNode(name: string): void {
    this.nodes.delete(name);
    this.claims.delete(name);
  }

  private setSlice(slice: V1EndpointSlice): void {
    const addresses = (slice.endpoints ?? []).flatMap((e) => e.addresses ?? []);
    this.slices.set(slice.metadata?.name ?? '', addresses);
  }

  private recomputeNames(): void {
    const dnsNames = new Set<string>();
    const ips = new Set<string>();
    for (const value of [...this.o.source.serverNames, ...this.serviceIps, ...[...this.slices.values()].flat()]) {
      if (!value) continue;
      const ip = canonicalIp(value);
      if (ip === undefined) dnsNames.add(canonicalDnsName(value));
      else ips.add(ip);
    }
    this.names = { dnsNames, ips };
    this.o.log.debug({ apiServer: [...dnsNames, ...ips] }, "the API server's names and addresses");
  }
}
