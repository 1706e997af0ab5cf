// Flag parsing shared by `bootstrap` and `run`. kubelet's flag names where kubelet has one. Accepts
// `--flag value`, `--flag=value`, and for booleans `--flag`, `--flag=true|false`. Unknown flags and bad
// values are usage errors (exit 2) that name the flag.
import { readFileSync } from 'node:fs';
import { readYamlFile } from '../config/yaml-file.ts';
import { UserError } from '../errors.ts';
import { parseDuration } from '../config/duration.ts';
import { KEY_ALGORITHMS, isKeyAlgorithm } from '../pki/keys.ts';
import { isLogLevel } from '../config/log-level.ts';
import { parsePinHash } from '../pki/cert.ts';
import { overridesFromDocument, mergeConfig, type Config, type ConfigOverrides } from '../config/schema.ts';
import {
  validateRequestedLifetime,
  validateTimeout,
  validateNodeName,
  validateAddress,
  validateDiscoveryToken,
  validateApiServer,
} from '../config/fields.ts';

/** The environment form of --discovery-token: unlike argv, a process's environment is private to its user. */
export const DISCOVERY_TOKEN_ENV = 'NODECRED_DISCOVERY_TOKEN';

interface FlagSpec {
  name: string;
  kind: 'string' | 'boolean' | 'list';
  help: string;
  placeholder?: string;
}

export const NODE_FLAGS: FlagSpec[] = [
  {
    name: 'config',
    kind: 'string',
    placeholder: 'FILE',
    help: `YAML config file (apiVersion nodecred.io/v1alpha1, kind NodeCredConfiguration); flags override it`,
  },
  { name: 'node-name', kind: 'string', placeholder: 'NAME', help: 'the Node name (default: lower-cased hostname)' },
  {
    name: 'kubeconfig',
    kind: 'string',
    placeholder: 'PATH',
    help: 'node kubeconfig to write (default /var/lib/kubelet/kubeconfig)',
  },
  {
    name: 'bootstrap-kubeconfig',
    kind: 'string',
    placeholder: 'PATH',
    help: 'kubeconfig with bootstrap credentials (token, client certificate or exec plugin)',
  },
  {
    name: 'cert-dir',
    kind: 'string',
    placeholder: 'DIR',
    help: 'where certificates and keys live (default /var/lib/kubelet/pki)',
  },
  {
    name: 'rotate-certificates',
    kind: 'boolean',
    help: 'rotate the client certificate before it expires (default true)',
  },
  {
    name: 'rotate-server-certificates',
    kind: 'boolean',
    help: 'request and rotate the kubelet serving certificate (default false)',
  },
  {
    name: 'key-algorithm',
    kind: 'string',
    placeholder: 'ALG',
    help: `${KEY_ALGORITHMS.join(' | ')} (default ecdsa-p256)`,
  },
  {
    name: 'api-server',
    kind: 'string',
    placeholder: 'URL',
    help: 'token discovery: the API server to discover through',
  },
  {
    name: 'discovery-token-file',
    kind: 'string',
    placeholder: 'FILE',
    help: `token discovery: file holding the bootstrap token (or set ${DISCOVERY_TOKEN_ENV})`,
  },
  {
    name: 'discovery-token',
    kind: 'string',
    placeholder: 'ID.SECRET',
    help: 'token discovery: the bootstrap token, on the command line where every local user sees it (ps)',
  },
  {
    name: 'discovery-token-ca-cert-hash',
    kind: 'list',
    placeholder: 'sha256:HEX',
    help: 'token discovery: CA public key pin (repeatable)',
  },
  {
    name: 'tls-server-name',
    kind: 'string',
    placeholder: 'NAME',
    help: 'token discovery: name to verify the API server certificate against',
  },
  {
    name: 'node-ip',
    kind: 'list',
    placeholder: 'IP',
    help: 'serving certificate IP SANs until the Node object exists (repeatable or comma-separated)',
  },
  {
    name: 'requested-lifetime',
    kind: 'string',
    placeholder: 'DURATION',
    help: 'ask the signer for this lifetime (spec.expirationSeconds), e.g. 24h',
  },
  {
    name: 'cluster-ca-file',
    kind: 'string',
    placeholder: 'FILE',
    help: 'CA bundle issued certificates must chain to (default: the API server CA)',
  },
  {
    name: 'timeout',
    kind: 'string',
    placeholder: 'DURATION',
    help: 'bootstrap: give up after this long (default 15m)',
  },
  {
    name: 'health-listen',
    kind: 'string',
    placeholder: 'HOST:PORT',
    help: 'run: plain /livez /readyz /healthz /metrics listener (default 127.0.0.1:10271; "" disables)',
  },
  {
    name: 'secure-listen',
    kind: 'string',
    placeholder: 'HOST:PORT',
    help: 'run: the same behind TLS with the serving certificate and kubelet-style webhook authn/authz (default off)',
  },
  {
    name: 'client-ca-file',
    kind: 'string',
    placeholder: 'FILE',
    help: 'run: CA for x509 client certificates on --secure-listen',
  },
  { name: 'log-level', kind: 'string', placeholder: 'LEVEL', help: 'debug | info | warn | error (default info)' },
];

export type ParsedFlags = Map<string, string[]>;

export function usageError(message: string, where?: string): UserError {
  return new UserError(message, { ...(where ? { where } : {}), fix: 'see --help', code: 'USAGE' });
}

export function parseFlags(args: string[], specs: FlagSpec[]): ParsedFlags {
  const out: ParsedFlags = new Map();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) throw usageError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw usageError(`unknown flag --${name}`);
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (spec.kind === 'boolean') value = 'true';
    else {
      const next = args[++i];
      if (next === undefined) throw usageError(`--${name} needs a value`);
      value = next;
    }
    if (spec.kind === 'boolean' && value !== 'true' && value !== 'false')
      throw usageError(`--${name} takes true or false, got "${value}"`);
    if (spec.kind !== 'list' && out.has(name)) throw usageError(`--${name} given twice`);
    out.set(name, [...(out.get(name) ?? []), value]);
  }
  return out;
}

export function flagsHelp(specs: FlagSpec[]): string {
  const left = specs.map(
    (s) => `  --${s.name}${s.kind === 'boolean' ? '[=true|false]' : ` ${s.placeholder ?? 'VALUE'}`}`,
  );
  const width = Math.max(...left.map((l) => l.length));
  return specs.map((s, i) => `${left[i]!.padEnd(width)}  ${s.help}`).join('\n');
}

function one(flags: ParsedFlags, name: string): string | undefined {
  return flags.get(name)?.[0];
}

/** Flag values as config overrides (validated as the config file's fields are). */
export function overridesFromFlags(flags: ParsedFlags, env: NodeJS.ProcessEnv = process.env): ConfigOverrides {
  const o: ConfigOverrides = {};
  const str = (name: string) => one(flags, name);
  const bool = (name: string) => (flags.has(name) ? one(flags, name) === 'true' : undefined);
  if (str('node-name')) o.nodeName = validateNodeName(str('node-name')!, '--node-name');
  if (str('kubeconfig')) o.kubeconfig = str('kubeconfig')!;
  if (str('bootstrap-kubeconfig')) o.bootstrapKubeconfig = str('bootstrap-kubeconfig')!;
  if (str('cert-dir')) o.certDir = str('cert-dir')!;
  if (bool('rotate-certificates') !== undefined) o.rotateCertificates = bool('rotate-certificates')!;
  if (bool('rotate-server-certificates') !== undefined)
    o.rotateServerCertificates = bool('rotate-server-certificates')!;
  if (str('key-algorithm')) {
    const alg = str('key-algorithm')!;
    if (!isKeyAlgorithm(alg))
      throw usageError(`unknown key algorithm "${alg}" (use ${KEY_ALGORITHMS.join(', ')})`, '--key-algorithm');
    o.keyAlgorithm = alg;
  }
  if (str('requested-lifetime'))
    o.requestedLifetimeMs = validateRequestedLifetime(
      parseDuration(str('requested-lifetime')!, '--requested-lifetime'),
      '--requested-lifetime',
    );
  if (str('timeout')) o.timeoutMs = validateTimeout(parseDuration(str('timeout')!, '--timeout'), '--timeout');
  if (str('cluster-ca-file')) o.clusterCAFile = str('cluster-ca-file')!;
  if (str('log-level')) {
    const level = str('log-level')!;
    if (!isLogLevel(level)) throw usageError(`unknown log level "${level}"`, '--log-level');
    o.logLevel = level;
  }
  if (flags.has('health-listen')) o.healthListen = str('health-listen')!;
  if (flags.has('secure-listen')) o.secureListen = str('secure-listen')!;
  if (str('client-ca-file')) o.clientCAFile = str('client-ca-file')!;
  const ips = (flags.get('node-ip') ?? [])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
  if (ips.length) o.servingAddresses = ips.map((ip) => validateAddress('InternalIP', ip, '--node-ip'));
  const token = discoveryToken(flags, env);
  const discoveryFlags = ['api-server', 'discovery-token-ca-cert-hash'];
  if (token || discoveryFlags.some((f) => flags.has(f))) {
    const missing = discoveryFlags.filter((f) => !flags.has(f)).map((m) => `--${m}`);
    if (!token) missing.push(`--discovery-token-file (or ${DISCOVERY_TOKEN_ENV})`);
    if (missing.length) throw usageError(`token discovery needs ${missing.join(' and ')} too`);
    o.discovery = {
      apiServer: validateApiServer(str('api-server')!, '--api-server'),
      token: validateDiscoveryToken(token!.value, token!.where),
      caCertHashes: flags
        .get('discovery-token-ca-cert-hash')!
        .map((h) => parsePinHash(h, '--discovery-token-ca-cert-hash')),
      ...(str('tls-server-name') ? { tlsServerName: str('tls-server-name')! } : {}),
    };
  }
  return o;
}

/** The bootstrap token for discovery from --discovery-token-file, --discovery-token or the environment. */
function discoveryToken(flags: ParsedFlags, env: NodeJS.ProcessEnv): { value: string; where: string } | undefined {
  const file = one(flags, 'discovery-token-file');
  const given = one(flags, 'discovery-token');
  if (file !== undefined && given !== undefined)
    throw usageError('give the bootstrap token once: --discovery-token-file or --discovery-token, not both');
  if (given !== undefined) return { value: given, where: '--discovery-token' };
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UserError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
        where: '--discovery-token-file',
        fix: 'write the token (ID.SECRET) into that file, readable by root only (chmod 600)',
        code: 'USAGE',
      });
    }
    return { value: text.trim(), where: `--discovery-token-file ${file}` };
  }
  const fromEnv = env[DISCOVERY_TOKEN_ENV];
  return fromEnv ? { value: fromEnv.trim(), where: DISCOVERY_TOKEN_ENV } : undefined;
}

/** One line for each secret given on the command line, where `ps` shows it to every local user. */
export function argvSecretWarnings(flags: ParsedFlags): string[] {
  return flags.has('discovery-token')
    ? [
        'warning: --discovery-token puts the bootstrap token on the command line, readable by every local user ' +
          `(ps, /proc/PID/cmdline); use --discovery-token-file FILE or ${DISCOVERY_TOKEN_ENV}`,
      ]
    : [];
}

async function readConfigFile(path: string): Promise<ConfigOverrides> {
  return overridesFromDocument(await readYamlFile(path), path);
}

/** Defaults ← --config file ← flags. */
export async function loadConfig(flags: ParsedFlags): Promise<Config> {
  const file = one(flags, 'config');
  const fromFile = file ? await readConfigFile(file) : {};
  return mergeConfig(fromFile, overridesFromFlags(flags));
}
