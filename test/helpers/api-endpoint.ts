// A second API server endpoint for the approver tests, as an HA control plane has one per kube-apiserver: a
// TLS listener serving a certificate the cluster CA signed, published in an EndpointSlice of the kubernetes
// Service the way a kube-apiserver's endpoint reconciler publishes its advertise address. EndpointSlices may
// not hold loopback addresses, and the approver dials every address listed to read its certificate, so the
// listener is on this machine's own non-loopback address: the traffic stays on the machine.
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { DiscoveryV1Api } from '@kubernetes/client-node';
import { serveCertificate } from '../unit/pki/helpers.ts';
import { uniqueName, type TestCluster } from './cluster.ts';

export interface ApiEndpoint {
  /** This machine's own address, where the listener is. */
  address: string;
  port: number;
  close(): Promise<void>;
}

/**
 * A non-internal address of this machine that no Node claims (a real kubelet registers with the host's
 * IPv4 address, so IPv6 is tried first), or a clear failure.
 */
export function ownAddress(taken: ReadonlySet<string> = new Set()): { address: string; family: 'IPv4' | 'IPv6' } {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  const usable = all.filter(
    (a) => !a.internal && !(a.family === 'IPv6' && a.address.startsWith('fe80')) && !taken.has(a.address),
  );
  const pick = usable.find((a) => a.family === 'IPv6') ?? usable[0];
  if (!pick) throw new Error('this machine has no unclaimed non-loopback address for a second API server endpoint');
  return { address: pick.address, family: pick.family as 'IPv4' | 'IPv6' };
}

/** Serves a cluster-CA certificate for `dnsNames` (and the address itself) and lists it in an EndpointSlice. */
export async function startApiEndpoint(c: TestCluster, dnsNames: string[]): Promise<ApiEndpoint> {
  const nodes = await c.core.listNode();
  const taken = new Set(nodes.items.flatMap((n) => (n.status?.addresses ?? []).map((a) => a.address)));
  const { address, family } = ownAddress(taken);
  const ca = {
    name: 'nodecred-local-ca',
    certificatePem: c.ca,
    privateKey: createPrivateKey(readFileSync(c.state.caKeyFile)),
  };
  const { server, port } = await serveCertificate(ca, address, dnsNames, [address]);
  const discovery = c.admin.makeApiClient(DiscoveryV1Api);
  const slice = uniqueName('kubernetes-extra');
  await discovery.createNamespacedEndpointSlice({
    namespace: 'default',
    body: {
      metadata: { name: slice, labels: { 'kubernetes.io/service-name': 'kubernetes' } },
      addressType: family,
      endpoints: [{ addresses: [address] }],
      ports: [{ name: 'https', port, protocol: 'TCP' }],
    },
  });
  return {
    address,
    port,
    close: async () => {
      await discovery.deleteNamespacedEndpointSlice({ name: slice, namespace: 'default' });
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
