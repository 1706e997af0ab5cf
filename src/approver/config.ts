// The approver's configuration: defaults ← an optional versioned YAML file (kind ApproverConfiguration) ←
// flags. Unknown or mistyped fields are errors naming the file and field, as for NodeCredConfiguration.
import { parseListen, type ListenAddress } from '../config/listen.ts';
import { readYamlFile } from '../config/yaml-file.ts';
import { UserError } from '../errors.ts';
import { CONFIG_API_VERSION } from '../config/schema.ts';
import { FieldReader } from '../config/fields.ts';
import { KEY_ALGORITHMS, isKeyAlgorithm, type KeyAlgorithm } from '../pki/keys.ts';
import { isLogLevel, LOG_LEVELS_TEXT, type LogLevel } from '../config/log-level.ts';
import { hostnameProblem, parseCidr } from './names.ts';
import type { ApproverPolicy, LeaveOrDeny } from './policy.ts';

export const APPROVER_CONFIG_KIND = 'ApproverConfiguration';

export interface ApproverConfig {
  dnsPatterns: string[];
  allowedCidrs: string[];
  maxExpirationSeconds: number | undefined;
  allowedKeyAlgorithms: KeyAlgorithm[];
  clusterDomain: string;
  allowLoopback: boolean;
  reservedNames: string[];
  reservedCidrs: string[];
  denyMode: LeaveOrDeny;
  onUnknownNode: LeaveOrDeny;
  /** Source of ApproverPolicy.nodeNamePattern, matched against the whole node name. */
  nodeNamePattern: string | undefined;
  leaseNamespace: string;
  leaseName: string;
  /** Re-list (and re-decide pending CSRs) at least this often, e.g. for a Node that appeared meanwhile. */
  resyncIntervalMs: number;
  /** host:port for /metrics and /healthz, or "off". */
  metricsListen: string;
  logLevel: LogLevel;
}

export function defaultApproverConfig(): ApproverConfig {
  return {
    dnsPatterns: [],
    allowedCidrs: [],
    maxExpirationSeconds: undefined,
    allowedKeyAlgorithms: [...KEY_ALGORITHMS],
    clusterDomain: 'cluster.local',
    allowLoopback: false,
    reservedNames: [],
    reservedCidrs: [],
    denyMode: 'deny',
    onUnknownNode: 'deny',
    nodeNamePattern: undefined,
    leaseNamespace: 'kube-system',
    leaseName: 'nodecred-approver',
    resyncIntervalMs: 5 * 60_000,
    metricsListen: '127.0.0.1:10291',
    logLevel: 'info',
  };
}

export type ApproverOverrides = Partial<ApproverConfig>;

export function policyOf(config: ApproverConfig): ApproverPolicy {
  return {
    dnsPatterns: config.dnsPatterns,
    allowedCidrs: config.allowedCidrs,
    maxExpirationSeconds: config.maxExpirationSeconds,
    allowedKeyAlgorithms: config.allowedKeyAlgorithms,
    clusterDomain: config.clusterDomain,
    allowLoopback: config.allowLoopback,
    reservedNames: config.reservedNames,
    reservedCidrs: config.reservedCidrs,
    denyMode: config.denyMode,
    onUnknownNode: config.onUnknownNode,
    nodeNamePattern: config.nodeNamePattern === undefined ? undefined : wholeMatch(config.nodeNamePattern),
  };
}

function wholeMatch(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`);
}

const TOP_LEVEL = [
  'apiVersion',
  'kind',
  'dnsPatterns',
  'allowedCidrs',
  'maxLifetime',
  'allowedKeyAlgorithms',
  'clusterDomain',
  'allowLoopback',
  'reservedNames',
  'reservedCidrs',
  'denyMode',
  'onUnknownNode',
  'nodeNamePattern',
  'leaseNamespace',
  'leaseName',
  'resyncInterval',
  'metricsListen',
  'logLevel',
] as const;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const MAX_EXPIRATION_SECONDS = 2 ** 31 - 1;

/**
 * A dnsPatterns entry: a DNS name, "*." followed by a DNS name of at least two labels, or "*" (the node's
 * own single-label name).
 */
function validateDnsPattern(pattern: string, where: string): string {
  const lower = pattern.toLowerCase();
  if (lower === '*') return lower;
  const suffix = lower.startsWith('*.') ? lower.slice(2) : lower;
  const wildcard = suffix !== lower;
  // The same host-name rule the approver applies to a DNS SAN: a pattern no SAN can match is a mistake.
  if (hostnameProblem(suffix) !== undefined || (wildcard && suffix.split('.').length < 2)) {
    throw new UserError(
      `"${pattern}" is not a DNS name or a "*.<domain>" pattern with at least two labels after "*."`,
      {
        where,
        fix: 'e.g. *.compute.internal ("*" is the node\'s own first label), or "*" for single-label node names',
        code: 'CONFIG_INVALID',
      },
    );
  }
  return lower;
}

/** A reservedNames entry: a DNS name, or "*." followed by a DNS name (every name under it). */
function validateReservedName(entry: string, where: string): string {
  const lower = entry.toLowerCase();
  if (hostnameProblem(lower.startsWith('*.') ? lower.slice(2) : lower) !== undefined)
    throw new UserError(`"${entry}" is not a DNS name or "*.<domain>"`, {
      where,
      fix: 'e.g. k8s-api.example.com, or *.lb.example.com for every name under lb.example.com',
      code: 'CONFIG_INVALID',
    });
  return lower;
}

function validateCidr(cidr: string, where: string): string {
  if (parseCidr(cidr) === undefined)
    throw new UserError(`"${cidr}" is not a CIDR`, {
      where,
      fix: 'e.g. 10.0.0.0/8 or 2001:db8::/32',
      code: 'CONFIG_INVALID',
    });
  return cidr;
}

function validateNodeNamePattern(pattern: string, where: string): string {
  try {
    wholeMatch(pattern);
  } catch (err) {
    throw new UserError(`not a valid regular expression: ${(err as Error).message}`, {
      where,
      fix: 'e.g. ip-10-.* (matched against the whole node name)',
      code: 'CONFIG_INVALID',
    });
  }
  return pattern;
}

export function validateNamespace(name: string, where: string): string {
  if (name.length > 63 || !DNS_LABEL.test(name))
    throw new UserError(`"${name}" is not a valid namespace name`, {
      where,
      fix: 'use lower-case letters, digits and "-"',
      code: 'CONFIG_INVALID',
    });
  return name;
}

export function validateLeaseName(name: string, where: string): string {
  if (name.length > 253 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) {
    throw new UserError(`"${name}" is not a valid object name`, {
      where,
      fix: 'use lower-case letters, digits, "-" and "."',
      code: 'CONFIG_INVALID',
    });
  }
  return name;
}

/** The metrics listener: a listen address (src/config/listen.ts), or "off" for none. */
export function parseMetricsListen(value: string, where: string): ListenAddress | null {
  return value === 'off' ? null : parseListen(value, where);
}

function leaveOrDeny(r: FieldReader, value: unknown, field: string): LeaveOrDeny {
  const v = r.string(value, field);
  if (v !== 'deny' && v !== 'leave-pending') r.fail(field, `unknown mode "${v}"`, 'use deny or leave-pending');
  return v;
}

/** Validates a parsed YAML document (from `source`) into overrides. */
export function approverOverridesFromDocument(doc: unknown, source: string): ApproverOverrides {
  const r = new FieldReader(source);
  const raw = r.object(doc ?? {}, '(document)');
  if (raw.apiVersion !== CONFIG_API_VERSION)
    r.fail(
      'apiVersion',
      `must be ${CONFIG_API_VERSION}, got ${JSON.stringify(raw.apiVersion) ?? 'nothing'}`,
      `set apiVersion: ${CONFIG_API_VERSION}`,
    );
  if (raw.kind !== APPROVER_CONFIG_KIND)
    r.fail(
      'kind',
      `must be ${APPROVER_CONFIG_KIND}, got ${JSON.stringify(raw.kind) ?? 'nothing'}`,
      `set kind: ${APPROVER_CONFIG_KIND}`,
    );
  r.rejectUnknown(raw, TOP_LEVEL);
  const o: ApproverOverrides = {};
  if (raw.dnsPatterns !== undefined)
    o.dnsPatterns = r
      .stringList(raw.dnsPatterns, 'dnsPatterns')
      .map((p, i) => validateDnsPattern(p, r.where(`dnsPatterns[${i}]`)));
  if (raw.allowedCidrs !== undefined)
    o.allowedCidrs = r
      .stringList(raw.allowedCidrs, 'allowedCidrs')
      .map((c, i) => validateCidr(c, r.where(`allowedCidrs[${i}]`)));
  if (raw.maxLifetime !== undefined) {
    const ms = r.duration(raw.maxLifetime, 'maxLifetime');
    if (ms < 600_000 || ms / 1000 > MAX_EXPIRATION_SECONDS)
      r.fail('maxLifetime', 'must be at least 10m (the shortest lifetime a signer issues)', 'e.g. 720h');
    o.maxExpirationSeconds = Math.floor(ms / 1000);
  }
  if (raw.allowedKeyAlgorithms !== undefined) {
    const algs = r.stringList(raw.allowedKeyAlgorithms, 'allowedKeyAlgorithms');
    if (algs.length === 0)
      r.fail(
        'allowedKeyAlgorithms',
        'must not be empty (that would refuse every CSR)',
        `list some of ${KEY_ALGORITHMS.join(', ')}`,
      );
    o.allowedKeyAlgorithms = algs.map((a, i): KeyAlgorithm => {
      if (isKeyAlgorithm(a)) return a;
      return r.fail(
        `allowedKeyAlgorithms[${i}]`,
        `unknown key algorithm "${a}"`,
        `use some of ${KEY_ALGORITHMS.join(', ')}`,
      );
    });
  }
  if (raw.clusterDomain !== undefined) {
    const domain = r.string(raw.clusterDomain, 'clusterDomain');
    const problem = hostnameProblem(domain);
    if (problem) r.fail('clusterDomain', `"${domain}" ${problem}`, 'e.g. cluster.local (kubelet --cluster-domain)');
    o.clusterDomain = domain;
  }
  if (raw.allowLoopback !== undefined) o.allowLoopback = r.boolean(raw.allowLoopback, 'allowLoopback');
  if (raw.reservedNames !== undefined)
    o.reservedNames = r
      .stringList(raw.reservedNames, 'reservedNames')
      .map((n, i) => validateReservedName(n, r.where(`reservedNames[${i}]`)));
  if (raw.reservedCidrs !== undefined)
    o.reservedCidrs = r
      .stringList(raw.reservedCidrs, 'reservedCidrs')
      .map((c, i) => validateCidr(c, r.where(`reservedCidrs[${i}]`)));
  if (raw.denyMode !== undefined) o.denyMode = leaveOrDeny(r, raw.denyMode, 'denyMode');
  if (raw.onUnknownNode !== undefined) o.onUnknownNode = leaveOrDeny(r, raw.onUnknownNode, 'onUnknownNode');
  if (raw.nodeNamePattern !== undefined)
    o.nodeNamePattern = validateNodeNamePattern(
      r.string(raw.nodeNamePattern, 'nodeNamePattern'),
      r.where('nodeNamePattern'),
    );
  if (raw.leaseNamespace !== undefined)
    o.leaseNamespace = validateNamespace(r.string(raw.leaseNamespace, 'leaseNamespace'), r.where('leaseNamespace'));
  if (raw.leaseName !== undefined)
    o.leaseName = validateLeaseName(r.string(raw.leaseName, 'leaseName'), r.where('leaseName'));
  if (raw.resyncInterval !== undefined) {
    const ms = r.duration(raw.resyncInterval, 'resyncInterval');
    if (ms < 1000) r.fail('resyncInterval', 'must be at least 1s', 'e.g. 5m');
    o.resyncIntervalMs = ms;
  }
  if (raw.metricsListen !== undefined) {
    const v = r.string(raw.metricsListen, 'metricsListen');
    parseMetricsListen(v, r.where('metricsListen'));
    o.metricsListen = v;
  }
  if (raw.logLevel !== undefined) {
    const level = r.string(raw.logLevel, 'logLevel');
    if (isLogLevel(level)) o.logLevel = level;
    else r.fail('logLevel', `unknown level "${level}"`, `use ${LOG_LEVELS_TEXT}`);
  }
  return o;
}

/**
 * Why the approver must not start with this configuration, or undefined. Without allowedCidrs or
 * dnsPatterns the only name policy bounds is each node's own name, and every kubelet asks for its IPs too:
 * such an approver would deny nearly every CSR for good (a denied CSR is final). Refusing to start keeps
 * the CSRs pending until the operator says which names nodes may have.
 */
export function unboundedPolicyProblem(
  config: Pick<ApproverConfig, 'allowedCidrs' | 'dnsPatterns'>,
): string | undefined {
  if (config.allowedCidrs.length > 0 || config.dnsPatterns.length > 0) return undefined;
  return 'no name-bounding policy: allowedCidrs and dnsPatterns are both empty';
}

export async function readApproverConfigFile(path: string): Promise<ApproverOverrides> {
  return approverOverridesFromDocument(await readYamlFile(path), path);
}

export function mergeApproverConfig(...layers: ApproverOverrides[]): ApproverConfig {
  const config = defaultApproverConfig();
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value !== undefined) (config as unknown as Record<string, unknown>)[key] = value;
    }
  }
  return config;
}
