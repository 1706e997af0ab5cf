// The configuration: one typed object the rest of nodecred reads, built from defaults (kubelet-compatible
// paths), an optional versioned YAML file, and flags (flags win). Unknown or mistyped fields are errors
// that name the file and the field.
import { hostname } from 'node:os';
import { UserError } from '../errors.ts';
import { KEY_ALGORITHMS, isKeyAlgorithm, type KeyAlgorithm } from '../pki/keys.ts';
import { isLogLevel, LOG_LEVELS_TEXT, type LogLevel } from './log-level.ts';
import { BOOTSTRAP_TOKEN_RE } from '../kube/discovery.ts';
import { parsePinHash } from '../pki/cert.ts';
import { canonicalIp, isDnsSanName } from '../pki/san.ts';
import { parseDuration } from './duration.ts';
import { KUBELET_ROTATION_WINDOW, type NodeAddress, type RotationWindow } from '../manager/policy.ts';

export const CONFIG_API_VERSION = 'nodecred.io/v1alpha1';
export const CONFIG_KIND = 'NodeCredConfiguration';

interface DiscoveryConfig {
  apiServer: string;
  /** "<id>.<secret>" */
  token: string;
  caCertHashes: string[];
  /** The name the API server's certificate is checked against, when it differs from apiServer's host. */
  tlsServerName?: string;
}

export interface Config {
  nodeName: string;
  kubeconfig: string;
  bootstrapKubeconfig: string | undefined;
  discovery: DiscoveryConfig | undefined;
  certDir: string;
  rotateCertificates: boolean;
  rotateServerCertificates: boolean;
  keyAlgorithm: KeyAlgorithm;
  /** spec.expirationSeconds to ask for; undefined lets the signer decide. */
  requestedLifetimeMs: number | undefined;
  rotationWindow: RotationWindow;
  /** SANs for the serving certificate while the Node object does not exist yet. */
  servingAddresses: NodeAddress[];
  /** The CA bundle issued certificates must chain to; default: the CA of the API connection. */
  clusterCAFile: string | undefined;
  /** Overall deadline for `nodecred bootstrap`. */
  timeoutMs: number;
  /** Allowed clock difference when checking that a certificate is valid now. */
  clockSkewMs: number;
  logLevel: LogLevel;
  /**
   * How often the daemon re-checks while nothing is due: the Node's addresses (serving SANs) and a pending
   * CSR (re-read, never re-created). Short in tests, minutes in production.
   */
  recheckIntervalMs: number;
  /**
   * Server-side timeout of a CSR watch; a stream silent for 1.25× this (+1 s) is taken as half-open and
   * re-opened after a fresh read of the CSR.
   */
  watchTimeoutMs: number;
  /**
   * 'managed': nodecred bootstraps and rotates the client certificate. 'external': the node kubeconfig's
   * credentials come from elsewhere (an exec plugin on EKS-style nodes); only the serving certificate is
   * managed.
   */
  clientCredentials: 'managed' | 'external';
  /** Plain health/metrics listener; '' disables it. Loopback by default. */
  healthListen: string;
  /** Authenticated listener (node serving certificate, webhook authn/authz); '' disables it. */
  secureListen: string;
  /** CA bundle for x509 client certificates on the secure listener. */
  clientCAFile: string | undefined;
  /** /readyz fails when a certificate expires sooner than this. */
  readyExpiryThresholdMs: number;
  hooks: HooksConfig;
  /** Other certificates `nodecred status`/`check` report on (etcd, apiserver, …). */
  extraCertificates: Array<{ name: string; path: string; caFile?: string }>;
}

export interface HooksConfig {
  /** Run after each install, with NODECRED_KIND, NODECRED_CERT_FILE, NODECRED_KUBECONFIG in its environment. */
  command: string[] | undefined;
  timeoutMs: number;
  /** Signal the process whose PID is in this file after each install (e.g. to make a server reload). */
  pidFile: string | undefined;
  signal: string;
}

export function defaultConfig(): Config {
  return {
    nodeName: hostname().toLowerCase(),
    kubeconfig: '/var/lib/kubelet/kubeconfig',
    bootstrapKubeconfig: undefined,
    discovery: undefined,
    certDir: '/var/lib/kubelet/pki',
    rotateCertificates: true,
    rotateServerCertificates: false,
    keyAlgorithm: 'ecdsa-p256',
    requestedLifetimeMs: undefined,
    rotationWindow: { ...KUBELET_ROTATION_WINDOW },
    servingAddresses: [],
    clusterCAFile: undefined,
    timeoutMs: 15 * 60_000,
    clockSkewMs: 5 * 60_000,
    logLevel: 'info',
    recheckIntervalMs: 5 * 60_000,
    watchTimeoutMs: 60_000,
    clientCredentials: 'managed',
    healthListen: '127.0.0.1:10271',
    secureListen: '',
    clientCAFile: undefined,
    readyExpiryThresholdMs: 10 * 60_000,
    hooks: { command: undefined, timeoutMs: 30_000, pidFile: undefined, signal: 'SIGHUP' },
    extraCertificates: [],
  };
}

/** Everything a file or the flags may set: the same fields, all optional. */
export type ConfigOverrides = Partial<Config>;

type Raw = Record<string, unknown>;

/** Reads typed values out of an untrusted object, naming `<source>: <path>` in every error. */
export class FieldReader {
  readonly source: string;
  readonly path: string;

  constructor(source: string, path = '') {
    this.source = source;
    this.path = path;
  }

  where(field: string): string {
    const p = this.path ? `${this.path}.${field}` : field;
    return `${this.source}: ${p}`;
  }

  fail(field: string, message: string, fix: string): never {
    throw new UserError(message, { where: this.where(field), fix, code: 'CONFIG_INVALID' });
  }

  object(value: unknown, field: string): Raw {
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      this.fail(field, `must be a mapping, got ${describe(value)}`, 'write key: value pairs');
    return value as Raw;
  }

  rejectUnknown(obj: Raw, known: readonly string[]): void {
    for (const key of Object.keys(obj)) {
      if (!known.includes(key)) this.fail(key, 'unknown field', `remove it; known fields here: ${known.join(', ')}`);
    }
  }

  string(value: unknown, field: string): string {
    if (typeof value !== 'string' || value.trim() === '')
      this.fail(field, `must be a non-empty string, got ${describe(value)}`, 'quote the value if needed');
    return value;
  }

  boolean(value: unknown, field: string): boolean {
    if (typeof value !== 'boolean')
      this.fail(field, `must be true or false, got ${describe(value)}`, 'write true or false without quotes');
    return value;
  }

  fraction(value: unknown, field: string): number {
    if (typeof value !== 'number' || !(value > 0 && value < 1))
      this.fail(field, `must be a number between 0 and 1 (exclusive), got ${describe(value)}`, 'e.g. 0.7');
    return value;
  }

  duration(value: unknown, field: string): number {
    return parseDuration(this.string(value, field), this.where(field));
  }

  stringList(value: unknown, field: string): string[] {
    if (!Array.isArray(value)) this.fail(field, `must be a list, got ${describe(value)}`, 'write a YAML list');
    return value.map((v, i) => this.string(v, `${field}[${i}]`));
  }

  nested(field: string): FieldReader {
    return new FieldReader(this.source, this.path ? `${this.path}.${field}` : field);
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `"${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  return typeof value === 'object' ? 'a mapping' : `${typeof value} ${String(value)}`;
}

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function validateNodeName(name: string, where: string): string {
  if (name.length > 253 || !NODE_NAME.test(name)) {
    throw new UserError(`node name "${name}" is not a valid DNS subdomain`, {
      where,
      fix: 'use lower-case letters, digits, "-" and "." (max 253 characters)',
      code: 'CONFIG_INVALID',
    });
  }
  return name;
}

const ADDRESS_TYPES = ['Hostname', 'InternalIP', 'ExternalIP', 'InternalDNS', 'ExternalDNS'] as const;

/** `where` names the address, `typeWhere` the type (they differ in a file: `...addresses[0].type`). */
export function validateAddress(type: string, address: string, where: string, typeWhere = where): NodeAddress {
  if (!(ADDRESS_TYPES as readonly string[]).includes(type)) {
    throw new UserError(`unknown address type "${type}"`, {
      where: typeWhere,
      fix: `use one of ${ADDRESS_TYPES.join(', ')}`,
      code: 'CONFIG_INVALID',
    });
  }
  if (type.endsWith('IP') && canonicalIp(address) === undefined) {
    throw new UserError(`"${address}" is not an IP address`, {
      where,
      fix: 'write a plain IPv4 or IPv6 address',
      code: 'CONFIG_INVALID',
    });
  }
  // A name the CSR builder would refuse must fail here, naming the field, not later at request time.
  if (!type.endsWith('IP') && canonicalIp(address) === undefined && !isDnsSanName(address)) {
    throw new UserError(`"${address}" is not a valid DNS name`, {
      where,
      fix: 'use letters, digits, "-" and "." (or an IP address for Hostname)',
      code: 'CONFIG_INVALID',
    });
  }
  return { type, address };
}

export function validateDiscoveryToken(token: string, where: string): string {
  if (!BOOTSTRAP_TOKEN_RE.test(token)) {
    throw new UserError('discovery token must look like abcdef.0123456789abcdef', {
      where,
      fix: 'pass the token printed by create-bootstrap-token or kubeadm token create',
      code: 'CONFIG_INVALID',
    });
  }
  return token;
}

export function validateApiServer(url: string, where: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url.includes('://') ? url : `https://${url}`);
  } catch {
    throw new UserError(`"${url}" is not a URL`, { where, fix: 'e.g. https://10.0.0.1:6443', code: 'CONFIG_INVALID' });
  }
  if (parsed.protocol !== 'https:') {
    throw new UserError(`the API server must be reached over https, got ${parsed.protocol}`, {
      where,
      fix: 'use an https:// URL',
      code: 'CONFIG_INVALID',
    });
  }
  return parsed.origin;
}

const MIN_REQUESTED_LIFETIME_MS = 600 * 1000;
const MAX_REQUESTED_LIFETIME_MS = (2 ** 31 - 1) * 1000;

/** spec.expirationSeconds: the API server rejects less than 600, and it is an int32. */
export function validateRequestedLifetime(ms: number, where: string): number {
  if (ms < MIN_REQUESTED_LIFETIME_MS || ms > MAX_REQUESTED_LIFETIME_MS) {
    throw new UserError(
      `requested lifetime must be between 10m and ${Math.floor(MAX_REQUESTED_LIFETIME_MS / 3_600_000)}h (spec.expirationSeconds limits)`,
      {
        where,
        fix: 'e.g. 8760h, or leave it out to let the signer decide',
        code: 'CONFIG_INVALID',
      },
    );
  }
  return ms;
}

export function validateTimeout(ms: number, where: string): number {
  if (ms <= 0) throw new UserError('timeout must be longer than 0', { where, fix: 'e.g. 15m', code: 'CONFIG_INVALID' });
  return ms;
}

const TOP_LEVEL = [
  'apiVersion',
  'kind',
  'nodeName',
  'kubeconfig',
  'bootstrapKubeconfig',
  'discovery',
  'certDir',
  'rotateCertificates',
  'rotateServerCertificates',
  'keyAlgorithm',
  'requestedLifetime',
  'rotation',
  'serving',
  'clusterCAFile',
  'timeout',
  'clockSkew',
  'logLevel',
  'recheckInterval',
  'clientCredentials',
  'healthListen',
  'secureListen',
  'clientCAFile',
  'readyExpiryThreshold',
  'hooks',
  'extraCertificates',
  'watchTimeout',
] as const;

/** Validates a parsed YAML document (from `source`) into overrides. */
export function overridesFromDocument(doc: unknown, source: string): ConfigOverrides {
  const r = new FieldReader(source);
  const raw = r.object(doc ?? {}, '(document)');
  // Identify the document before judging its fields: a KubeletConfiguration passed by mistake should be
  // reported as the wrong kind, not as its first unknown field.
  if (raw.apiVersion !== CONFIG_API_VERSION)
    r.fail(
      'apiVersion',
      `must be ${CONFIG_API_VERSION}, got ${describe(raw.apiVersion)}`,
      `set apiVersion: ${CONFIG_API_VERSION}`,
    );
  if (raw.kind !== CONFIG_KIND)
    r.fail('kind', `must be ${CONFIG_KIND}, got ${describe(raw.kind)}`, `set kind: ${CONFIG_KIND}`);
  r.rejectUnknown(raw, TOP_LEVEL);
  const o: ConfigOverrides = {};
  if (raw.nodeName !== undefined)
    o.nodeName = validateNodeName(r.string(raw.nodeName, 'nodeName'), r.where('nodeName'));
  if (raw.kubeconfig !== undefined) o.kubeconfig = r.string(raw.kubeconfig, 'kubeconfig');
  if (raw.bootstrapKubeconfig !== undefined)
    o.bootstrapKubeconfig = r.string(raw.bootstrapKubeconfig, 'bootstrapKubeconfig');
  if (raw.certDir !== undefined) o.certDir = r.string(raw.certDir, 'certDir');
  if (raw.rotateCertificates !== undefined)
    o.rotateCertificates = r.boolean(raw.rotateCertificates, 'rotateCertificates');
  if (raw.rotateServerCertificates !== undefined)
    o.rotateServerCertificates = r.boolean(raw.rotateServerCertificates, 'rotateServerCertificates');
  if (raw.keyAlgorithm !== undefined) {
    const alg = r.string(raw.keyAlgorithm, 'keyAlgorithm');
    if (isKeyAlgorithm(alg)) o.keyAlgorithm = alg;
    else r.fail('keyAlgorithm', `unknown key algorithm "${alg}"`, `use one of ${KEY_ALGORITHMS.join(', ')}`);
  }
  if (raw.requestedLifetime !== undefined)
    o.requestedLifetimeMs = validateRequestedLifetime(
      r.duration(raw.requestedLifetime, 'requestedLifetime'),
      r.where('requestedLifetime'),
    );
  if (raw.timeout !== undefined) o.timeoutMs = validateTimeout(r.duration(raw.timeout, 'timeout'), r.where('timeout'));
  if (raw.clockSkew !== undefined) o.clockSkewMs = r.duration(raw.clockSkew, 'clockSkew');
  if (raw.clientCredentials !== undefined) {
    const mode = r.string(raw.clientCredentials, 'clientCredentials');
    if (mode !== 'managed' && mode !== 'external')
      r.fail(
        'clientCredentials',
        `unknown mode "${mode}"`,
        'use managed (nodecred bootstraps the client certificate) or external (the kubeconfig has its own credentials, e.g. an exec plugin)',
      );
    o.clientCredentials = mode as Config['clientCredentials'];
  }
  if (raw.healthListen !== undefined)
    o.healthListen = raw.healthListen === '' ? '' : r.string(raw.healthListen, 'healthListen');
  if (raw.secureListen !== undefined)
    o.secureListen = raw.secureListen === '' ? '' : r.string(raw.secureListen, 'secureListen');
  if (raw.clientCAFile !== undefined) o.clientCAFile = r.string(raw.clientCAFile, 'clientCAFile');
  if (raw.readyExpiryThreshold !== undefined)
    o.readyExpiryThresholdMs = r.duration(raw.readyExpiryThreshold, 'readyExpiryThreshold');
  if (raw.hooks !== undefined) {
    const hr = r.nested('hooks');
    const h = r.object(raw.hooks, 'hooks');
    hr.rejectUnknown(h, ['command', 'timeout', 'pidFile', 'signal']);
    const signal = h.signal === undefined ? 'SIGHUP' : hr.string(h.signal, 'signal');
    if (!/^SIG[A-Z0-9]+$/.test(signal)) hr.fail('signal', `"${signal}" is not a signal name`, 'e.g. SIGHUP');
    o.hooks = {
      command: h.command === undefined ? undefined : hr.stringList(h.command, 'command'),
      timeoutMs:
        h.timeout === undefined ? 30_000 : validateTimeout(hr.duration(h.timeout, 'timeout'), hr.where('timeout')),
      pidFile: h.pidFile === undefined ? undefined : hr.string(h.pidFile, 'pidFile'),
      signal,
    };
    if (o.hooks.command?.length === 0)
      hr.fail('command', 'must not be empty', 'list the program and its arguments, e.g. [systemctl, reload, nginx]');
  }
  if (raw.extraCertificates !== undefined) {
    const list = raw.extraCertificates;
    if (!Array.isArray(list))
      r.fail(
        'extraCertificates',
        'must be a list',
        'e.g. - {name: etcd-server, path: /etc/kubernetes/pki/etcd/server.crt}',
      );
    o.extraCertificates = (list as unknown[]).map((entry, i) => {
      const er = r.nested(`extraCertificates[${i}]`);
      const e = r.object(entry, `extraCertificates[${i}]`);
      er.rejectUnknown(e, ['name', 'path', 'caFile']);
      return {
        name: er.string(e.name, 'name'),
        path: er.string(e.path, 'path'),
        ...(e.caFile !== undefined ? { caFile: er.string(e.caFile, 'caFile') } : {}),
      };
    });
  }
  if (raw.watchTimeout !== undefined) {
    o.watchTimeoutMs = r.duration(raw.watchTimeout, 'watchTimeout');
    if (o.watchTimeoutMs < 1000) r.fail('watchTimeout', 'must be at least 1s', 'e.g. 60s');
  }
  if (raw.recheckInterval !== undefined) o.recheckIntervalMs = r.duration(raw.recheckInterval, 'recheckInterval');
  if (raw.clusterCAFile !== undefined) o.clusterCAFile = r.string(raw.clusterCAFile, 'clusterCAFile');
  if (raw.logLevel !== undefined) {
    const level = r.string(raw.logLevel, 'logLevel');
    if (isLogLevel(level)) o.logLevel = level;
    else r.fail('logLevel', `unknown level "${level}"`, `use ${LOG_LEVELS_TEXT}`);
  }
  if (raw.rotation !== undefined) {
    const rr = r.nested('rotation');
    const rot = r.object(raw.rotation, 'rotation');
    rr.rejectUnknown(rot, ['from', 'to']);
    const from = rot.from === undefined ? 0.7 : rr.fraction(rot.from, 'from');
    const to = rot.to === undefined ? 0.9 : rr.fraction(rot.to, 'to');
    if (to < from) rr.fail('to', `must not be below rotation.from (${from})`, 'e.g. from: 0.7, to: 0.9');
    o.rotationWindow = { from, to };
  }
  if (raw.serving !== undefined) {
    const sr = r.nested('serving');
    const serving = r.object(raw.serving, 'serving');
    sr.rejectUnknown(serving, ['addresses']);
    const addresses = serving.addresses;
    if (addresses !== undefined) {
      if (!Array.isArray(addresses))
        sr.fail('addresses', 'must be a list', 'e.g. - {type: InternalIP, address: 10.0.0.5}');
      o.servingAddresses = (addresses as unknown[]).map((entry: unknown, i: number) => {
        const er = sr.nested(`addresses[${i}]`);
        const e = sr.object(entry, `addresses[${i}]`);
        er.rejectUnknown(e, ['type', 'address']);
        return validateAddress(
          er.string(e.type, 'type'),
          er.string(e.address, 'address'),
          er.where('address'),
          er.where('type'),
        );
      });
    }
  }
  if (raw.discovery !== undefined) {
    const dr = r.nested('discovery');
    const d = r.object(raw.discovery, 'discovery');
    dr.rejectUnknown(d, ['apiServer', 'token', 'caCertHashes', 'tlsServerName']);
    const hashes = dr
      .stringList(d.caCertHashes ?? [], 'caCertHashes')
      .map((h, i) => parsePinHash(h, dr.where(`caCertHashes[${i}]`)));
    if (hashes.length === 0)
      dr.fail(
        'caCertHashes',
        'at least one CA hash is required: discovery without a pin would trust any server',
        'add the sha256:… hash printed by create-bootstrap-token',
      );
    o.discovery = {
      apiServer: validateApiServer(dr.string(d.apiServer, 'apiServer'), dr.where('apiServer')),
      token: validateDiscoveryToken(dr.string(d.token, 'token'), dr.where('token')),
      caCertHashes: hashes,
      ...(d.tlsServerName !== undefined ? { tlsServerName: dr.string(d.tlsServerName, 'tlsServerName') } : {}),
    };
  }
  return o;
}

/** Defaults ← file ← flags, then the checks that need the whole picture. */
export function mergeConfig(...layers: ConfigOverrides[]): Config {
  const config = defaultConfig();
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value !== undefined) (config as unknown as Record<string, unknown>)[key] = value;
    }
  }
  validateNodeName(config.nodeName, '--node-name');
  return config;
}
