// The names a kubelet serving certificate may carry, as pure functions: what a host name is, which names
// operator policy bounds (dnsPatterns, allowedCidrs), which belong to the cluster itself, and which another
// Node claims. A node's own status.addresses are not proof of anything (NodeRestriction lets a node write
// them), so none of these rules takes them as a reason to approve; other Nodes' claims only ever deny.
import { BlockList, isIP } from 'node:net';
import type { NodeAddress } from '../manager/policy.ts';
import { canonicalDnsName, canonicalIp } from '../pki/san.ts';

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
 * ip-10-0-0-5.compute.internal, never ip-10-0-0-6.compute.internal. Any other entry is one exact name the
 * operator grants to every node in scope. Case-insensitive.
 */
export function dnsPatternMatches(pattern: string, name: string, nodeName: string): boolean {
  const p = canonicalDnsName(pattern);
  const n = canonicalDnsName(name);
  if (!p.startsWith('*.')) return p === n;
  const ownLabel = canonicalDnsName(nodeName).split('.')[0];
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

/** The API server's own names and addresses: the kubernetes Service and EndpointSlices, the kubeconfig. */
export interface ApiServerNames {
  dnsNames: ReadonlySet<string>;
  ips: ReadonlySet<string>;
}

export interface ReservedNamePolicy {
  /** The cluster DNS domain: every name in it (and every *.svc name) belongs to Services and Pods. */
  clusterDomain: string;
  /** Approve loopback names and addresses (localhost, 127.0.0.0/8, ::1): off unless an operator opts in. */
  allowLoopback: boolean;
}

/** Why a DNS SAN belongs to the cluster rather than to a node, or undefined. `name` is canonical. */
export function reservedDnsName(name: string, policy: ReservedNamePolicy, api: ApiServerNames): string | undefined {
  if (name === 'kubernetes' || name === 'kubernetes.default') return "the API server's Service name";
  if (name === 'svc' || name.endsWith('.svc')) return 'a Service name (*.svc)';
  const domain = canonicalDnsName(policy.clusterDomain);
  if (name === domain || name.endsWith(`.${domain}`)) return `in the cluster domain ${domain}`;
  if (api.dnsNames.has(name)) return "the API server's host name";
  if (!policy.allowLoopback && (name === 'localhost' || name.endsWith('.localhost')))
    return 'a loopback name (allowLoopback is off)';
  return undefined;
}

/** Why an IP SAN belongs to the cluster (or to no one), or undefined. `ip` is canonical. */
export function reservedIp(ip: string, policy: ReservedNamePolicy, api: ApiServerNames): string | undefined {
  if (ip === '0.0.0.0' || ip === '::') return 'the unspecified address';
  if (api.ips.has(ip)) return 'an address of the API server';
  if (!policy.allowLoopback && (ip === '::1' || ipInCidr(ip, '127.0.0.0/8')))
    return 'a loopback address (allowLoopback is off)';
  return undefined;
}

/** The names a Node claims: its own name and every status address, as canonical "dns:…" / "ip:…" keys. */
export function claimsOf(nodeName: string, addresses: readonly NodeAddress[]): string[] {
  const keys = new Set([dnsKey(nodeName)]);
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
