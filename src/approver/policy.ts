// May this kubelet-serving CSR be approved? A pure function of the CSR's spec (as the API server recorded
// it), its request as Go will read it (src/pki/strict-csr.ts), whether the requesting Node exists, what
// other Nodes claim, the API server's own names and the approver's configuration. The controller gathers
// those facts and writes the answer; every rule lives here so it is tested without I/O.
//
// kube-controller-manager signs kubelet-serving CSRs but never approves them: approving one lets the
// requester serve TLS for every name in it. A node writes its own status.addresses, and whoever holds a
// bootstrap token picks its node name, so neither proves anything: every name must be bounded by operator
// policy (dnsPatterns, allowedCidrs), must not be the cluster's, and must not be claimed by another Node.
//
// A decision's `message` goes into the CSR's condition, which the requesting node reads: it never names
// another Node or says where the approver learnt a reserved name. `detail` (log and Event) does.
import type { ParsedCsr } from '../pki/csr.ts';
import { NODE_USER_PREFIX, NODES_ORGANIZATION } from '../pki/csr.ts';
import { SERVING_SIGNER } from '../kube/csr-name.ts';
import type { KeyAlgorithm } from '../pki/keys.ts';
import { canonicalDnsName } from '../pki/san.ts';
import { REQUEST_REFUSALS, type RequestRefusal } from '../pki/strict-csr.ts';
import type { NodeAddress } from '../manager/policy.ts';
import {
  dnsKey,
  dnsPatternMatches,
  hostnameProblem,
  ipInCidr,
  releasedToControlPlane,
  ipKey,
  reservedDnsName,
  reservedIp,
  type ApiServerNames,
  type ReservedNamePolicy,
} from './names.ts';

/** The condition reason of an approval, as other serving-CSR approvers write it. */
export const APPROVED_REASON = 'AutoApproved';

/** Usages a kubelet-serving certificate must have, and the one it may add (kubelet adds it for RSA keys). */
const REQUIRED_USAGES = ['digital signature', 'server auth'] as const;
const OPTIONAL_USAGES = ['key encipherment'] as const;

/** Every reason a CSR is refused: the Denied condition's reason, the Event reason and the metric label. */
export const DENY_REASONS = [
  ...REQUEST_REFUSALS,
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
  'ExpirationSecondsRequired',
  'NodeNotFound',
  'InvalidDNSName',
  'SANReservedForCluster',
  'DNSNameNotAllowed',
  'IPNotInAllowedCIDRs',
  'SANClaimedByAnotherNode',
  'RequesterNotAuthorized',
] as const;
type DenyReason = (typeof DENY_REASONS)[number];

/** Reasons a CSR is none of this approver's business (it is left alone, without an Event). */
const IGNORE_REASONS = ['OtherSigner', 'OutOfScope'] as const;
type IgnoreReason = (typeof IGNORE_REASONS)[number];

/** `message`: for the CSR's condition. `detail`: for the log and the Event, when it says more than message. */
export type Decision =
  | { decision: 'approve'; message: string }
  | { decision: 'deny'; reason: DenyReason; message: string; detail?: string }
  /** Leave the CSR pending: not ours (IgnoreReason), or a refusal in leave-pending mode (DenyReason). */
  | { decision: 'skip'; reason: IgnoreReason | DenyReason; message: string; detail?: string };

export type LeaveOrDeny = 'deny' | 'leave-pending';

export interface ApproverPolicy extends ReservedNamePolicy {
  /**
   * The DNS SANs allowed, the node's own name included: "*.<suffix>", where "*" is the first label of the
   * node's name; "*", the node's own single-label name; or an exact name granted to every node in scope
   * (see dnsPatternMatches).
   */
  dnsPatterns: readonly string[];
  /** Every IP SAN must fall in one of these ("10.0.0.0/16", "2001:db8::/64"); empty: no IP SAN is approved. */
  allowedCidrs: readonly string[];
  /** Largest spec.expirationSeconds; when set, a CSR must set it. Undefined: the signer's maximum applies. */
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
  /** spec.request as Go reads it, or why it is refused before any policy (src/pki/strict-csr.ts). */
  request: ParsedCsr | { refusal: RequestRefusal; message: string };
}

/**
 * The Node named by the requester, or null when there is no such Node. `controlPlane`: it carries the
 * node-role.kubernetes.io/control-plane label, which only an administrator can set (names.ts
 * CONTROL_PLANE_LABEL).
 */
export type NodeFacts = { name: string; addresses: readonly NodeAddress[]; controlPlane?: boolean } | null;

/** What the rest of the cluster says about names: other Nodes' claims and the API server's own names. */
export interface ClusterView {
  /** Nodes other than `requester` that claim the name `key` (names.ts dnsKey / ipKey). */
  claimants(key: string, requester: string): readonly string[];
  apiServer: ApiServerNames;
}

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
  if (csr.signerName !== SERVING_SIGNER) {
    return {
      decision: 'skip',
      reason: 'OtherSigner',
      message: `signer ${csr.signerName} is not ${SERVING_SIGNER}`,
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

/** Decides one CSR. `node` and `cluster` are only consulted once the CSR itself is acceptable. */
export function decideServingCsr(
  csr: CsrFacts,
  node: NodeFacts,
  policy: ApproverPolicy,
  cluster: ClusterView,
): Decision {
  const ignored = inScope(csr, policy);
  if (ignored) return ignored;
  const refusal = checkRequest(csr, policy) ?? checkNames(csr, node, policy, cluster);
  if (refusal) return refuse(refusal, policy);
  const req = csr.request as ParsedCsr;
  const sans = [...req.dnsNames, ...req.ipAddresses].join(', ');
  return {
    decision: 'approve',
    message: `kubelet serving certificate for node ${node!.name}; SANs ${sans} are within policy and no other Node's`,
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
  detail?: string;
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
  if ('refusal' in csr.request) return { reason: csr.request.refusal, message: csr.request.message };
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
      message:
        `requester ${csr.username} is not in group ${NODES_ORGANIZATION} ` +
        `(groups: ${csr.groups.join(', ') || 'none'})`,
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
  return checkLifetime(csr.expirationSeconds, policy.maxExpirationSeconds);
}

function checkLifetime(requested: number | undefined, max: number | undefined): Refusal | undefined {
  if (max === undefined) return undefined;
  // Without spec.expirationSeconds the signer's default (--cluster-signing-duration, a year by default) applies.
  if (requested === undefined)
    return {
      reason: 'ExpirationSecondsRequired',
      message:
        `spec.expirationSeconds is not set, and maxLifetime is ${max} s: ` +
        "the signer's default lifetime would apply",
    };
  if (requested > max)
    return { reason: 'LifetimeTooLong', message: `spec.expirationSeconds ${requested} exceeds the maximum ${max}` };
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

// When several SANs fail, the first reason in this order is reported, with every SAN it applies to.
type SanReason = (typeof SAN_REASONS)[number];
interface SanProblem {
  reason: SanReason;
  /** For the requester (the condition); `detail` for the log and the Event. */
  text: string;
  detail: string;
}
const problem = (reason: SanReason, text: string, detail = text): SanProblem => ({ reason, text, detail });

const SAN_REASONS = [
  'InvalidDNSName',
  'SANReservedForCluster',
  'DNSNameNotAllowed',
  'IPNotInAllowedCIDRs',
  'SANClaimedByAnotherNode',
] as const satisfies readonly DenyReason[];

function checkNames(csr: CsrFacts, node: NodeFacts, policy: ApproverPolicy, cluster: ClusterView): Refusal | undefined {
  const req = csr.request as ParsedCsr;
  const nodeName = nodeNameOf(csr.username)!;
  if (node === null) return { reason: 'NodeNotFound', message: `Node ${nodeName} does not exist` };
  const problems = [
    ...req.dnsNames.map((d) => dnsProblem(d, node, policy, cluster)),
    ...req.ipAddresses.map((ip) => ipProblem(ip, node, policy, cluster)),
  ].filter((p) => p !== undefined);
  const reason = SAN_REASONS.find((r) => problems.some((p) => p.reason === r));
  if (reason === undefined) return undefined;
  const chosen = problems.filter((p) => p.reason === reason);
  const message = chosen.map((p) => p.text).join('; ');
  const detail = chosen.map((p) => p.detail).join('; ');
  return detail === message ? { reason, message } : { reason, message, detail };
}

function dnsProblem(
  name: string,
  node: NonNullable<NodeFacts>,
  policy: ApproverPolicy,
  cluster: ClusterView,
): SanProblem | undefined {
  const invalid = hostnameProblem(name);
  if (invalid) return problem('InvalidDNSName', `DNS:${name} ${invalid}`);
  const reserved = reservedDnsName(name, policy, cluster.apiServer);
  if (reserved && !releasedToControlPlane(reserved, { dns: name }, node, cluster.apiServer))
    return problem('SANReservedForCluster', `DNS:${name} ${reserved.requester}`, `DNS:${name} ${reserved.detail}`);
  // The node's own name is no exception: a bootstrap-token holder picks it (kube-controller-manager's
  // nodeclient approval signs any system:node:<name>), so it must be a name the operator's patterns allow.
  if (!policy.dnsPatterns.some((p) => dnsPatternMatches(p, name, node.name))) {
    const patterns = policy.dnsPatterns.length ? policy.dnsPatterns.join(', ') : 'none';
    const own = name === canonicalDnsName(node.name) ? "the node's own name, but " : '';
    return problem('DNSNameNotAllowed', `DNS:${name} is ${own}not allowed by dnsPatterns (${patterns})`);
  }
  return claimProblem(`DNS:${name}`, dnsKey(name), node.name, cluster);
}

function ipProblem(
  ip: string,
  node: NonNullable<NodeFacts>,
  policy: ApproverPolicy,
  cluster: ClusterView,
): SanProblem | undefined {
  const reserved = reservedIp(ip, policy, cluster.apiServer);
  if (reserved && !releasedToControlPlane(reserved, { ip }, node, cluster.apiServer))
    return problem('SANReservedForCluster', `IP:${ip} ${reserved.requester}`, `IP:${ip} ${reserved.detail}`);
  if (policy.allowedCidrs.length === 0)
    return problem('IPNotInAllowedCIDRs', `IP:${ip}: allowedCidrs is empty, so no IP SAN is approved`);
  if (!policy.allowedCidrs.some((cidr) => ipInCidr(ip, cidr)))
    return problem('IPNotInAllowedCIDRs', `IP:${ip} is outside allowedCidrs ${policy.allowedCidrs.join(', ')}`);
  return claimProblem(`IP:${ip}`, ipKey(ip), node.name, cluster);
}

/** Another Node's claim: the requester learns that much, never which Node (it may not read Nodes). */
function claimProblem(san: string, key: string, nodeName: string, cluster: ClusterView): SanProblem | undefined {
  const others = cluster.claimants(key, nodeName);
  if (others.length === 0) return undefined;
  return problem(
    'SANClaimedByAnotherNode',
    `${san} is claimed by another Node`,
    `${san} is claimed by Node ${others.join(', ')}`,
  );
}
