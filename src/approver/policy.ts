// May this kubelet-serving CSR be approved? A pure function of the CSR's spec (as the API server recorded
// it), the parsed PKCS#10 request, the Node's status.addresses and the approver's configuration. The
// controller gathers those facts and writes the answer; every rule lives here so it is tested without I/O.
//
// kube-controller-manager signs kubelet-serving CSRs but never approves them: approving one lets the
// requester serve TLS as the node for every name in it, so each name must be one the Node really has.
import { BlockList } from 'node:net';
import type { ParsedCsr } from '../pki/csr.ts';
import { NODES_ORGANIZATION } from '../pki/csr.ts';
import type { KeyAlgorithm } from '../pki/keys.ts';
import { canonicalDnsName, canonicalIp } from '../pki/san.ts';
import { servingSansFromAddresses, type NodeAddress } from '../manager/policy.ts';

export const KUBELET_SERVING_SIGNER = 'kubernetes.io/kubelet-serving';
export const NODE_USER_PREFIX = 'system:node:';
/** The condition reason of an approval, as other serving-CSR approvers write it. */
export const APPROVED_REASON = 'AutoApproved';

/** Usages a kubelet-serving certificate must have, and the one it may add (kubelet adds it for RSA keys). */
export const REQUIRED_USAGES = ['digital signature', 'server auth'] as const;
export const OPTIONAL_USAGES = ['key encipherment'] as const;

/** Every reason a CSR is refused: the Denied condition's reason, the Event reason and the metric label. */
export const DENY_REASONS = [
  'InvalidRequest',
  'InvalidSignature',
  'RequesterNotANode',
  'CommonNameMismatch',
  'OrganizationMismatch',
  'UnexpectedSubjectAttributes',
  'DisallowedUsages',
  'NoSubjectAltNames',
  'DisallowedSANType',
  'KeyAlgorithmNotAllowed',
  'LifetimeTooLong',
  'NodeNotFound',
  'SANNotInNodeAddresses',
  'IPNotInAllowedCIDRs',
  'RequesterNotAuthorized',
] as const;
export type DenyReason = (typeof DENY_REASONS)[number];

/** Reasons a CSR is none of this approver's business (it is left alone, without an Event). */
export const IGNORE_REASONS = ['OtherSigner', 'OutOfScope'] as const;
export type IgnoreReason = (typeof IGNORE_REASONS)[number];

export type Decision =
  | { decision: 'approve'; message: string }
  | { decision: 'deny'; reason: DenyReason; message: string }
  /** Leave the CSR pending: not ours (IgnoreReason), or a refusal in leave-pending mode (DenyReason). */
  | { decision: 'skip'; reason: IgnoreReason | DenyReason; message: string };

export type LeaveOrDeny = 'deny' | 'leave-pending';

export interface ApproverPolicy {
  /**
   * DNS SANs allowed besides the Node's own addresses: exact names, or "*.<suffix>" where "*" stands for
   * exactly one DNS label (as in a TLS wildcard), compared case-insensitively.
   */
  dnsPatterns: readonly string[];
  /** When not empty, every IP SAN must also fall in one of these CIDRs ("10.0.0.0/8", "2001:db8::/32"). */
  allowedCidrs: readonly string[];
  /** Largest spec.expirationSeconds allowed; undefined: no limit (the signer's own maximum applies). */
  maxExpirationSeconds: number | undefined;
  allowedKeyAlgorithms: readonly KeyAlgorithm[];
  /** 'leave-pending': refuse by leaving the CSR pending (for a human or another approver) instead of denying. */
  denyMode: LeaveOrDeny;
  /** What to do while the requesting node has no Node object: deny, or leave pending until it appears. */
  onUnknownNode: LeaveOrDeny;
  /** Only nodes whose name matches (whole name) are this approver's business; undefined: every node. */
  nodeNamePattern: RegExp | undefined;
}

/** The CSR as the API server recorded it. username/groups are set by the API server, not the requester. */
export interface CsrFacts {
  signerName: string;
  username: string;
  groups: readonly string[];
  usages: readonly string[];
  expirationSeconds: number | undefined;
  /** The parsed spec.request, or why it could not be parsed. */
  request: ParsedCsr | { error: string };
}

/** The Node named by the requester: its status.addresses, or null when there is no such Node. */
export type NodeFacts = { name: string; addresses: readonly NodeAddress[] } | null;

/** The node name in a "system:node:<name>" username, or undefined for any other user. */
export function nodeNameOf(username: string): string | undefined {
  if (!username.startsWith(NODE_USER_PREFIX)) return undefined;
  const name = username.slice(NODE_USER_PREFIX.length);
  return name.length > 0 ? name : undefined;
}

/** Whether this approver should look at the CSR at all (cheap, before any API call for it). */
export function inScope(
  csr: Pick<CsrFacts, 'signerName' | 'username'>,
  policy: Pick<ApproverPolicy, 'nodeNamePattern'>,
): Extract<Decision, { decision: 'skip' }> | undefined {
  if (csr.signerName !== KUBELET_SERVING_SIGNER) {
    return {
      decision: 'skip',
      reason: 'OtherSigner',
      message: `signer ${csr.signerName} is not ${KUBELET_SERVING_SIGNER}`,
    };
  }
  if (policy.nodeNamePattern) {
    const node = nodeNameOf(csr.username);
    if (node === undefined || !policy.nodeNamePattern.test(node)) {
      return {
        decision: 'skip',
        reason: 'OutOfScope',
        message: `requester ${csr.username} is not a node matching nodeNamePattern ${policy.nodeNamePattern.source}`,
      };
    }
  }
  return undefined;
}

/** Decides one CSR. `node` is only consulted once the CSR itself is acceptable. */
export function decideServingCsr(csr: CsrFacts, node: NodeFacts, policy: ApproverPolicy): Decision {
  const ignored = inScope(csr, policy);
  if (ignored) return ignored;
  const refusal = checkRequest(csr, policy) ?? checkAgainstNode(csr, node, policy);
  if (refusal) return refuse(refusal, policy);
  const req = csr.request as ParsedCsr;
  const sans = [...req.dnsNames, ...req.ipAddresses].join(', ');
  return {
    decision: 'approve',
    message: `kubelet serving certificate for node ${node!.name}; SANs ${sans} are the Node's addresses or allowed patterns`,
  };
}

/** Applies the SubjectAccessReview verdict (may the requester create CSRs?) to an approval. */
export function applyAuthorization(
  decision: Decision,
  review: { allowed: boolean; reason?: string | undefined },
  username: string,
  policy: Pick<ApproverPolicy, 'denyMode'>,
): Decision {
  if (decision.decision !== 'approve' || review.allowed) return decision;
  const why = review.reason ? ` (${review.reason})` : '';
  return refuse(
    {
      reason: 'RequesterNotAuthorized',
      message: `${username} may not create certificatesigningrequests (SubjectAccessReview denied${why})`,
    },
    policy,
  );
}

interface Refusal {
  reason: DenyReason;
  message: string;
}

function refuse(
  r: Refusal,
  policy: Pick<ApproverPolicy, 'denyMode'> & Partial<Pick<ApproverPolicy, 'onUnknownNode'>>,
): Decision {
  const mode =
    r.reason === 'NodeNotFound' && policy.onUnknownNode === 'leave-pending' ? 'leave-pending' : policy.denyMode;
  return mode === 'deny' ? { decision: 'deny', ...r } : { decision: 'skip', ...r };
}

function checkRequest(csr: CsrFacts, policy: ApproverPolicy): Refusal | undefined {
  if ('error' in csr.request)
    return { reason: 'InvalidRequest', message: `spec.request is not a usable PKCS#10 request: ${csr.request.error}` };
  const req = csr.request;
  if (!req.signatureValid)
    return {
      reason: 'InvalidSignature',
      message: 'the CSR signature does not verify with the public key it carries (no proof of possession)',
    };

  const nodeName = nodeNameOf(csr.username);
  if (nodeName === undefined)
    return {
      reason: 'RequesterNotANode',
      message: `requester ${csr.username} is not a node (username must be ${NODE_USER_PREFIX}<name>)`,
    };
  if (req.commonName !== csr.username)
    return {
      reason: 'CommonNameMismatch',
      message: `subject CN ${req.commonName ?? '(none)'} is not the requester ${csr.username}`,
    };
  if (!csr.groups.includes(NODES_ORGANIZATION))
    return {
      reason: 'RequesterNotANode',
      message: `requester ${csr.username} is not in group ${NODES_ORGANIZATION} (groups: ${csr.groups.join(', ') || 'none'})`,
    };
  if (req.organizations.length !== 1 || req.organizations[0] !== NODES_ORGANIZATION) {
    return {
      reason: 'OrganizationMismatch',
      message: `subject O must be exactly [${NODES_ORGANIZATION}], got [${req.organizations.join(', ')}]`,
    };
  }
  if (req.otherSubjectAttributes.length > 0)
    return {
      reason: 'UnexpectedSubjectAttributes',
      message: `subject may hold only O and CN, also has ${req.otherSubjectAttributes.join(', ')}`,
    };

  const usages = checkUsages(csr.usages);
  if (usages) return usages;

  const disallowed = [
    ...req.emailAddresses.map((e) => `email:${e}`),
    ...req.uris.map((u) => `URI:${u}`),
    ...req.otherSubjectAltNames,
  ];
  if (disallowed.length > 0)
    return { reason: 'DisallowedSANType', message: `only DNS and IP SANs are allowed, got ${disallowed.join(', ')}` };
  if (req.dnsNames.length === 0 && req.ipAddresses.length === 0)
    return { reason: 'NoSubjectAltNames', message: 'a serving certificate needs at least one DNS or IP SAN' };

  if (!(policy.allowedKeyAlgorithms as readonly string[]).includes(req.keyAlgorithm)) {
    return {
      reason: 'KeyAlgorithmNotAllowed',
      message: `key ${req.keyAlgorithm} is not allowed (allowed: ${policy.allowedKeyAlgorithms.join(', ')})`,
    };
  }
  if (
    policy.maxExpirationSeconds !== undefined &&
    csr.expirationSeconds !== undefined &&
    csr.expirationSeconds > policy.maxExpirationSeconds
  ) {
    return {
      reason: 'LifetimeTooLong',
      message: `spec.expirationSeconds ${csr.expirationSeconds} exceeds the maximum ${policy.maxExpirationSeconds}`,
    };
  }
  return undefined;
}

function checkUsages(usages: readonly string[]): Refusal | undefined {
  const allowed: readonly string[] = [...REQUIRED_USAGES, ...OPTIONAL_USAGES];
  const extra = [...new Set(usages.filter((u) => !allowed.includes(u)))];
  const missing = REQUIRED_USAGES.filter((u) => !usages.includes(u));
  if (extra.length === 0 && missing.length === 0) return undefined;
  const parts = [
    extra.length ? `not allowed: ${extra.join(', ')}` : '',
    missing.length ? `missing: ${missing.join(', ')}` : '',
  ].filter(Boolean);
  return {
    reason: 'DisallowedUsages',
    message: `usages must be ${REQUIRED_USAGES.join(' + ')} (+ ${OPTIONAL_USAGES.join(', ')}); ${parts.join('; ')}`,
  };
}

function checkAgainstNode(csr: CsrFacts, node: NodeFacts, policy: ApproverPolicy): Refusal | undefined {
  const req = csr.request as ParsedCsr;
  const nodeName = nodeNameOf(csr.username)!;
  if (node === null)
    return { reason: 'NodeNotFound', message: `Node ${nodeName} does not exist, so its addresses cannot be checked` };
  const allowed = servingSansFromAddresses(node.addresses);
  const allowedDns = new Set(allowed.dnsNames);
  const allowedIps = new Set(allowed.ipAddresses);
  const offending = [
    ...req.dnsNames
      .filter((d) => !allowedDns.has(canonicalDnsName(d)) && !policy.dnsPatterns.some((p) => dnsPatternMatches(p, d)))
      .map((d) => `DNS:${d}`),
    ...req.ipAddresses.filter((ip) => !allowedIps.has(canonicalIp(ip) ?? ip)).map((ip) => `IP:${ip}`),
  ];
  if (offending.length > 0) {
    const addresses = node.addresses.map((a) => `${a.type} ${a.address}`).join(', ') || 'none';
    const patterns = policy.dnsPatterns.length ? `; dnsPatterns: ${policy.dnsPatterns.join(', ')}` : '';
    return {
      reason: 'SANNotInNodeAddresses',
      message: `${offending.join(', ')} not among Node ${node.name}'s addresses (${addresses})${patterns}`,
    };
  }
  if (policy.allowedCidrs.length > 0) {
    const outside = req.ipAddresses.filter((ip) => !policy.allowedCidrs.some((cidr) => ipInCidr(ip, cidr)));
    if (outside.length > 0)
      return {
        reason: 'IPNotInAllowedCIDRs',
        message: `IP ${outside.join(', ')} outside allowedCidrs ${policy.allowedCidrs.join(', ')}`,
      };
  }
  return undefined;
}

/** "*.<suffix>" matches one DNS label followed by the suffix; anything else matches itself. Case-insensitive. */
export function dnsPatternMatches(pattern: string, name: string): boolean {
  const p = canonicalDnsName(pattern);
  const n = canonicalDnsName(name);
  if (!p.startsWith('*.')) return p === n;
  const suffix = p.slice(1); // ".<suffix>"
  if (!n.endsWith(suffix)) return false;
  const label = n.slice(0, -suffix.length);
  return label.length > 0 && !label.includes('.');
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
