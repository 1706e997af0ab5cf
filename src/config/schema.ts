// The configuration: one typed object the rest of nodecred reads, built from defaults (kubelet-compatible
// paths), an optional versioned YAML file, and flags (flags win). Unknown or mistyped fields are errors
// that name the file and the field.
import { constants, hostname } from 'node:os';
import { KEY_ALGORITHMS, isKeyAlgorithm, type KeyAlgorithm } from '../pki/keys.ts';
import { isLogLevel, LOG_LEVELS_TEXT, type LogLevel } from './log-level.ts';
import { parsePinHash } from '../pki/cert.ts';
import { parseListen } from './listen.ts';
import {
  FieldReader,
  validateAddress,
  validateApiServer,
  validateDiscoveryToken,
  validateNodeName,
  validateRequestedLifetime,
  validateTimeout,
  describeValue,
} from './fields.ts';
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
  /** How long the API server must refuse (401) the node's verified client certificate before a new bootstrap. */
  unauthorizedGraceMs: number;
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
    unauthorizedGraceMs: 5 * 60_000,
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
  'unauthorizedGrace',
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
      `must be ${CONFIG_API_VERSION}, got ${describeValue(raw.apiVersion)}`,
      `set apiVersion: ${CONFIG_API_VERSION}`,
    );
  if (raw.kind !== CONFIG_KIND)
    r.fail('kind', `must be ${CONFIG_KIND}, got ${describeValue(raw.kind)}`, `set kind: ${CONFIG_KIND}`);
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
        'use managed (nodecred bootstraps the client certificate) or external (the kubeconfig has its own ' +
          'credentials, e.g. an exec plugin)',
      );
    o.clientCredentials = mode as Config['clientCredentials'];
  }
  // Checked here, not only when bound: an error then would name the flag, and `nodecred reload` would pass it.
  for (const field of ['healthListen', 'secureListen'] as const) {
    if (raw[field] === undefined) continue;
    o[field] = raw[field] === '' ? '' : r.string(raw[field], field);
    if (o[field]) parseListen(o[field], r.where(field));
  }
  if (raw.clientCAFile !== undefined) o.clientCAFile = r.string(raw.clientCAFile, 'clientCAFile');
  if (raw.readyExpiryThreshold !== undefined)
    o.readyExpiryThresholdMs = r.duration(raw.readyExpiryThreshold, 'readyExpiryThreshold');
  if (raw.hooks !== undefined) {
    const hr = r.nested('hooks');
    const h = r.object(raw.hooks, 'hooks');
    hr.rejectUnknown(h, ['command', 'timeout', 'pidFile', 'signal']);
    const signal = h.signal === undefined ? 'SIGHUP' : hr.string(h.signal, 'signal');
    // One this system knows: process.kill refuses any other name, at every install, long after the config passed.
    if (!/^SIG[A-Z0-9]+$/.test(signal) || !Object.hasOwn(constants.signals, signal))
      hr.fail('signal', `"${signal}" is not a signal name`, 'e.g. SIGHUP (kill -l lists them, without SIG)');
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
    // At most 24h: the watch's idle guard (1.25 × this) must fit a timer, which Node fires at once beyond 2^31 ms.
    if (o.watchTimeoutMs < 1000 || o.watchTimeoutMs > 24 * 3_600_000)
      r.fail('watchTimeout', 'must be between 1s and 24h', 'e.g. 60s');
  }
  if (raw.unauthorizedGrace !== undefined)
    o.unauthorizedGraceMs = r.duration(raw.unauthorizedGrace, 'unauthorizedGrace');
  if (raw.recheckInterval !== undefined) {
    o.recheckIntervalMs = r.duration(raw.recheckInterval, 'recheckInterval');
    // 0 makes every pass due at once and every CSR wait end at once: a loop of API requests on every node.
    if (o.recheckIntervalMs < 1000) r.fail('recheckInterval', 'must be at least 1s', 'e.g. 5m (the default)');
  }
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
  for (const layer of layers) setDefined(config, layer);
  validateNodeName(config.nodeName, '--node-name');
  return config;
}

/** Copies the settings a layer sets; one it leaves undefined (a flag not given) keeps the value below. */
function setDefined(config: Config, layer: ConfigOverrides): void {
  for (const key of Object.keys(layer) as Array<keyof Config>) setIfDefined(config, layer, key);
}

function setIfDefined<K extends keyof Config>(config: Config, layer: ConfigOverrides, key: K): void {
  const value = layer[key];
  if (value !== undefined) config[key] = value;
}
