// The names a kubelet serving certificate may carry, as pure functions: what a host name is, which names
// operator policy bounds (dnsPatterns, allowedCidrs), which belong to the cluster itself, and which another
// Node claims. A node's own status.addresses are not proof of anything (NodeRestriction lets a node write
// them), so none of these rules takes them as a reason to approve; other Nodes' claims only ever deny.
import { BlockList, isIP } from 'node:net';
import type { NodeAddress } from '../manager/policy.ts';
import { canonicalDnsName, canonicalIp, dnsSanCovers } from '../pki/san.ts';

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_NAME = 253;

/**
 * Why `name` is not a host name a serving certificate may carry (RFC 1123: dot-separated labels of
 * lower-case letters, digits and inner hyphens, ≤ 63 each, ≤ 253 in all), or undefined when it is one.
 * No wildcard, no empty label (so no trailing dot), no upper case (Kubernetes' own RFC 1123 rule; every
 * comparison is case-insensitive anyway), and no IP address spelled as a DNS name.
 */
export function hostnameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.length > MAX_NAME) return `is longer than ${MAX_NAME} characters`;
  if (name.includes('*')) return 'has a "*" (wildcard names are never approved)';
  if (/[A-Z]/.test(name)) return 'has upper-case letters (RFC 1123 names are lower-case)';
  const labels = name.split('.');
  if (labels.includes('')) return 'has an empty label';
  const bad = labels.find((l) => !LABEL.test(l));
  if (bad !== undefined) return `has the label "${bad}" (1-63 of a-z, 0-9 and inner "-")`;
  if (isIP(name)) return 'is an IP address written as a DNS name';
  return undefined;
}

/**
 * Whether a dnsPatterns entry bounds `name` for node `nodeName`. "*.<suffix>": "*" is exactly one label,
 * and it must be the node's own (the first label of its name): node ip-10-0-0-5 may have
 * ip-10-0-0-5.compute.internal, never ip-10-0-0-6.compute.internal. "*" alone: the node's own name, when
 * that name is a single label (a multi-label name needs a "*.<suffix>" pattern, so that the operator, not
 * whoever picked the node name, bounds the domain). Any other entry is one exact name the operator grants
 * to every node in scope. Case-insensitive.
 */
export function dnsPatternMatches(pattern: string, name: string, nodeName: string): boolean {
  const p = canonicalDnsName(pattern);
  const n = canonicalDnsName(name);
  const node = canonicalDnsName(nodeName);
  if (p === '*') return n === node && !node.includes('.');
  if (!p.startsWith('*.')) return p === n;
  const ownLabel = node.split('.')[0];
  return n === `${ownLabel}${p.slice(1)}`;
}

/** Parses "ip/prefix"; undefined when it is not a CIDR. */
export function parseCidr(text: string): { network: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const network = canonicalIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (network === undefined || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const family = network.includes(':') ? 'ipv6' : 'ipv4';
  const prefix = Number(prefixText);
  if (prefix > (family === 'ipv4' ? 32 : 128)) return undefined;
  return { network, prefix, family };
}

export function ipInCidr(ip: string, cidr: string): boolean {
  const parsed = parseCidr(cidr);
  const address = canonicalIp(ip);
  if (!parsed || address === undefined) return false;
  const family = address.includes(':') ? 'ipv6' : 'ipv4';
  if (family !== parsed.family) return false;
  const list = new BlockList();
  list.addSubnet(parsed.network, parsed.prefix, parsed.family);
  return list.check(address, family);
}

/** The API server's own names and addresses, as the cluster shows them (see cluster-view.ts). */
export interface ApiServerNames {
  /** Host names in the API server's serving certificates, and the host name of the approver's kubeconfig. */
  dnsNames: ReadonlySet<string>;
  /** Every address: the kubernetes Service's cluster IPs, its EndpointSlices, certificate IP SANs, kubeconfig. */
  ips: ReadonlySet<string>;
  /**
   * The addresses in the kubernetes Service's EndpointSlices: each is an API server's advertise address,
   * written by the API servers themselves, so each is a control-plane host's own address.
   */
  advertised: ReadonlySet<string>;
}

export interface ReservedNamePolicy {
  /** The cluster DNS domain: every name in it (and every *.svc name) belongs to Services and Pods. */
  clusterDomain: string;
  /** Approve loopback names and addresses (localhost, 127.0.0.0/8, ::1): off unless an operator opts in. */
  allowLoopback: boolean;
  /** Names no node may have (load balancers, VIPs): exact names, or "*.<domain>" for every name under it. */
  reservedNames: readonly string[];
  /** Addresses no node may have (VIPs, load balancers), as CIDRs. */
  reservedCidrs: readonly string[];
}

/**
 * Why a name or address is not a node's. `requester` is what the CSR's condition says (the requesting node
 * can read it, on its own CSR and often on every CSR): it never says where the approver learnt the name.
 * `detail` is for the approver's log and the Event. `source`: a fixed rule, the operator's reservedNames/
 * reservedCidrs, or one of the API server's own names and addresses as learnt from the cluster.
 */
interface Reservation {
  requester: string;
  detail: string;
  source: 'rule' | 'operator' | 'api-server';
}

const rule = (why: string): Reservation => ({ requester: why, detail: why, source: 'rule' });
const RESERVED_FOR_CLUSTER = 'is reserved for the cluster';

/**
 * Names the resolver library or /etc/hosts maps to loopback: localhost and every *.localhost (RFC 6761),
 * and the aliases distributions ship (Debian: ip6-localhost, ip6-loopback; Red Hat: localhost.localdomain,
 * localhost4/6 and their .localdomain4/6 forms).
 */
const LOOPBACK_NAMES = new Set([
  'localhost.localdomain',
  'ip6-localhost',
  'ip6-loopback',
  'localhost4',
  'localhost4.localdomain4',
  'localhost6',
  'localhost6.localdomain6',
]);

export function isLoopbackName(name: string): boolean {
  const n = canonicalDnsName(name);
  return n === 'localhost' || n.endsWith('.localhost') || LOOPBACK_NAMES.has(n);
}

/** Whether a reservedNames entry covers `name`: the exact name, or for "*.<domain>" any name under it. */
function reservedNameMatches(entry: string, name: string): boolean {
  const e = canonicalDnsName(entry);
  const n = canonicalDnsName(name);
  return e.startsWith('*.') ? n.endsWith(e.slice(1)) : e === n;
}

/**
 * Why a DNS SAN belongs to the cluster rather than to a node, or undefined. `name` is canonical. The fixed
 * rules come first, then the operator's reservedNames, then the API server's names, so a name reserved
 * for more than one reason reports the one nothing can release (see the control-plane rule in policy.ts).
 */
export function reservedDnsName(
  name: string,
  policy: ReservedNamePolicy,
  api: ApiServerNames,
): Reservation | undefined {
  if (name === 'kubernetes' || name === 'kubernetes.default') return rule("is the API server's Service name");
  if (name === 'svc' || name.endsWith('.svc')) return rule('is a Service name (*.svc)');
  const domain = canonicalDnsName(policy.clusterDomain);
  if (name === domain || name.endsWith(`.${domain}`)) return rule(`is in the cluster domain ${domain}`);
  if (!policy.allowLoopback && isLoopbackName(name)) return rule('is a loopback name (allowLoopback is off)');
  const entry = policy.reservedNames.find((e) => reservedNameMatches(e, name));
  if (entry !== undefined)
    return { requester: RESERVED_FOR_CLUSTER, detail: `is in reservedNames (${entry})`, source: 'operator' };
  // A name the API server's certificate covers, as a TLS client would match it ("*.<domain>": one label).
  if ([...api.dnsNames].some((san) => dnsSanCovers(san, name)))
    return {
      requester: RESERVED_FOR_CLUSTER,
      detail: "is a name of the API server (its serving certificate or the approver's kubeconfig)",
      source: 'api-server',
    };
  return undefined;
}

/** Why an IP SAN belongs to the cluster (or to no one), or undefined. `ip` is canonical. Order as above. */
export function reservedIp(ip: string, policy: ReservedNamePolicy, api: ApiServerNames): Reservation | undefined {
  if (ip === '0.0.0.0' || ip === '::') return rule('is the unspecified address');
  if (!policy.allowLoopback && (ip === '::1' || ipInCidr(ip, '127.0.0.0/8')))
    return rule('is a loopback address (allowLoopback is off)');
  const cidr = policy.reservedCidrs.find((c) => ipInCidr(ip, c));
  if (cidr !== undefined)
    return { requester: RESERVED_FOR_CLUSTER, detail: `is in reservedCidrs (${cidr})`, source: 'operator' };
  if (api.ips.has(ip)) {
    const where = api.advertised.has(ip) ? "an API server's advertise address" : 'an address of the API server';
    return { requester: RESERVED_FOR_CLUSTER, detail: `is ${where}`, source: 'api-server' };
  }
  return undefined;
}

/**
 * kube-apiserver's NodeRestriction admission forbids a kubelet to set this label on its own Node, at
 * create and at update (k8s.io/kubernetes plugin/pkg/admission/noderestriction/admission.go, admitNode →
 * getForbiddenLabels: a modified label in a kubernetes.io or k8s.io namespace is forbidden unless
 * k8s.io/kubelet/pkg/apis IsKubeletLabel allows it, and that allows only kubelet.kubernetes.io/*,
 * node.kubernetes.io/* and a fixed list of topology/os/arch/hostname labels; v1.37.2). A labelled Node was
 * therefore marked by an administrator (or a controller with Node write access), not by the node.
 */
export const CONTROL_PLANE_LABEL = 'node-role.kubernetes.io/control-plane';

/**
 * The one exception to the API server's names: a control-plane Node's own name and its own advertise
 * address. kubeadm puts both into each API server's certificate and advertises that address in the
 * kubernetes EndpointSlice, so without this every control-plane kubelet would be denied its serving
 * certificate for good. Only what was learnt from the cluster as the API server's is released, never a
 * fixed rule or the operator's reservedNames/reservedCidrs; and only to a Node labelled CONTROL_PLANE_LABEL,
 * for its own name, or for an advertise address (in the EndpointSlices) that its own status.addresses list.
 * The other rules still apply after this (policy.ts): dnsPatterns/allowedCidrs, and no other Node's claim.
 */
export function releasedToControlPlane(
  reserved: Reservation,
  san: { dns: string } | { ip: string },
  node: { name: string; addresses: readonly NodeAddress[]; controlPlane?: boolean },
  api: ApiServerNames,
): boolean {
  if (reserved.source !== 'api-server' || node.controlPlane !== true) return false;
  if ('dns' in san) return san.dns === canonicalDnsName(node.name);
  return api.advertised.has(san.ip) && node.addresses.some((a) => canonicalIp(a.address.trim()) === san.ip);
}

/**
 * The names a Node claims: its own name (and the address, when the name is an IP: a kubelet named
 * "10.0.0.7" asks for IP:10.0.0.7) and every status address, as canonical "dns:…" / "ip:…" keys.
 */
export function claimsOf(nodeName: string, addresses: readonly NodeAddress[]): string[] {
  const keys = new Set<string>();
  const nameIp = canonicalIp(nodeName);
  keys.add(dnsKey(nodeName));
  if (nameIp !== undefined) keys.add(ipKey(nameIp));
  for (const { address } of addresses) {
    const value = address.trim();
    if (!value) continue;
    const ip = canonicalIp(value);
    keys.add(ip === undefined ? dnsKey(value) : ipKey(ip));
  }
  return [...keys];
}

export const dnsKey = (name: string) => `dns:${canonicalDnsName(name)}`;
export const ipKey = (ip: string) => `ip:${canonicalIp(ip) ?? ip}`;

/** Which Nodes claim which names: kept current from the Node informer, asked once per SAN. */
export class NodeClaims {
  private readonly byKey = new Map<string, Set<string>>();
  private readonly byNode = new Map<string, string[]>();

  set(nodeName: string, addresses: readonly NodeAddress[]): void {
    this.delete(nodeName);
    const keys = claimsOf(nodeName, addresses);
    this.byNode.set(nodeName, keys);
    for (const key of keys) {
      const nodes = this.byKey.get(key) ?? new Set<string>();
      this.byKey.set(key, nodes);
      nodes.add(nodeName);
    }
  }

  delete(nodeName: string): void {
    for (const key of this.byNode.get(nodeName) ?? []) {
      const nodes = this.byKey.get(key)!;
      nodes.delete(nodeName);
      if (nodes.size === 0) this.byKey.delete(key);
    }
    this.byNode.delete(nodeName);
  }

  /** Nodes other than `except` that claim `key` (see dnsKey, ipKey). */
  claimants(key: string, except: string): string[] {
    return [...(this.byKey.get(key) ?? [])].filter((n) => n !== except);
  }
}
