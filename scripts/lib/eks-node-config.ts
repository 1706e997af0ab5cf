import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { UserError, isUserError } from '../../src/errors.ts';
import { EXEC_API_VERSIONS, type ExecApiVersion, type ExecEnvVar } from '../../src/kube/kubeconfig.ts';
import { validateNodeName, validateAddress, validateApiServer } from '../../src/config/fields.ts';
import { parseCertificateBundle } from '../../src/pki/cert.ts';
import type { NodeAddress } from '../../src/manager/policy.ts';

export const NODE_CONFIG_API_VERSION = 'node.nodecred.io/v1alpha1';
export const NODE_CONFIG_KIND = 'NodeConfig';

export interface NodeConfig {
  clusterName: string;
  server: string;
  caPem: string;
  nodeName: string;
  addresses: NodeAddress[];
  exec: { command: string; args: string[]; env: ExecEnvVar[]; apiVersion: ExecApiVersion };
  kubeconfigPath: string;
  configPath: string;
  certDir: string;
  /** More NodeCredConfiguration fields (logLevel, recheckInterval, requestedLifetime, keyAlgorithm, ...). */
  extraConfig: Record<string, unknown>;
}

export interface ProvisionOverrides {
  nodeName?: string;
  nodeIps?: string[];
  kubeconfigPath?: string;
  configPath?: string;
}

type Obj = Record<string, unknown>;

/** Fields of the generated NodeCredConfiguration that the NodeConfig sets itself (so spec.nodecred.config may not). */
const OWNED = [
  'apiVersion',
  'kind',
  'nodeName',
  'kubeconfig',
  'certDir',
  'clientCredentials',
  'rotateCertificates',
  'rotateServerCertificates',
  'bootstrapKubeconfig',
  'discovery',
];

class Reader {
  readonly file: string;
  constructor(file: string) {
    this.file = file;
  }

  fail(at: string, message: string, fix: string): never {
    throw new UserError(message, { where: `${this.file}: ${at}`, fix, code: 'NODECONFIG_INVALID' });
  }

  obj(v: unknown, at: string, required = true): Obj | undefined {
    if (v === undefined || v === null) {
      if (required) this.fail(at, 'is missing', `add ${at} (see examples/eks/nodeconfig.yaml)`);
      return undefined;
    }
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(at, 'must be a mapping', 'write key: value pairs');
    return v as Obj;
  }

  known(o: Obj, at: string, keys: string[]): void {
    for (const k of Object.keys(o)) {
      if (!keys.includes(k))
        this.fail(at ? `${at}.${k}` : k, 'unknown field', `remove it; known fields here: ${keys.join(', ')}`);
    }
  }

  str(v: unknown, at: string, required = true): string | undefined {
    if (v === undefined || v === null) {
      if (required) this.fail(at, 'is missing', `set ${at}`);
      return undefined;
    }
    if (typeof v !== 'string' || v.trim() === '') this.fail(at, 'must be a non-empty string', 'quote the value');
    return v.trim();
  }

  list(v: unknown, at: string): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(at, 'must be a list', 'write a YAML list');
    return v;
  }
}

/** Parses and validates a NodeConfig document; `file` labels errors. */
export function parseNodeConfig(text: string, file: string, overrides: ProvisionOverrides = {}): NodeConfig {
  const r = new Reader(file);
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors[0])
    r.fail('(document)', `is not valid YAML: ${doc.errors[0].message.split('\n')[0]}`, 'fix the YAML syntax');
  const root = r.obj(doc.toJS({ maxAliasCount: 100 }), '(document)')!;
  if (root.apiVersion !== NODE_CONFIG_API_VERSION)
    r.fail('apiVersion', `must be ${NODE_CONFIG_API_VERSION}`, `set apiVersion: ${NODE_CONFIG_API_VERSION}`);
  if (root.kind !== NODE_CONFIG_KIND) r.fail('kind', `must be ${NODE_CONFIG_KIND}`, `set kind: ${NODE_CONFIG_KIND}`);
  r.known(root, '', ['apiVersion', 'kind', 'metadata', 'spec']);
  const spec = r.obj(root.spec, 'spec')!;
  r.known(spec, 'spec', ['cluster', 'node', 'credentials', 'nodecred']);

  const cluster = r.obj(spec.cluster, 'spec.cluster')!;
  r.known(cluster, 'spec.cluster', ['name', 'apiServerEndpoint', 'certificateAuthority']);
  const clusterName = r.str(cluster.name, 'spec.cluster.name')!;
  const endpoint = r.str(cluster.apiServerEndpoint, 'spec.cluster.apiServerEndpoint')!;
  if (!/^https:\/\//.test(endpoint))
    r.fail(
      'spec.cluster.apiServerEndpoint',
      `"${endpoint}" is not an https:// URL`,
      'use the endpoint from `aws eks describe-cluster --query cluster.endpoint`',
    );
  const server = validateApiServer(endpoint, `${file}: spec.cluster.apiServerEndpoint`);
  const caB64 = r.str(cluster.certificateAuthority, 'spec.cluster.certificateAuthority')!.replace(/\s+/g, '');
  const caFix =
    'set it to the base64 of the cluster CA PEM (`aws eks describe-cluster --query cluster.certificateAuthority.data`)';
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(caB64) || caB64.length % 4 !== 0)
    r.fail('spec.cluster.certificateAuthority', 'is not base64', caFix);
  const caPem = Buffer.from(caB64, 'base64').toString('utf8');
  if (!caPem.includes('-----BEGIN CERTIFICATE-----'))
    r.fail('spec.cluster.certificateAuthority', 'does not decode to a PEM certificate', caFix);
  try {
    parseCertificateBundle(caPem, 'cluster CA', `${file}: spec.cluster.certificateAuthority`);
  } catch (err) {
    if (isUserError(err))
      r.fail('spec.cluster.certificateAuthority', `is not a valid certificate: ${err.message}`, caFix);
    throw err;
  }

  const node = r.obj(spec.node, 'spec.node', false) ?? {};
  r.known(node, 'spec.node', ['name', 'addresses']);
  const nodeName = overrides.nodeName
    ? validateNodeName(overrides.nodeName, '--node-name')
    : validateNodeName(
        r.str(node.name, 'spec.node.name', false) ?? hostname().toLowerCase(),
        `${file}: spec.node.name`,
      );
  let addresses = r.list(node.addresses, 'spec.node.addresses').map((a, i) => {
    const at = `spec.node.addresses[${i}]`;
    const o = r.obj(a, at)!;
    r.known(o, at, ['type', 'address']);
    return validateAddress(
      r.str(o.type, `${at}.type`)!,
      r.str(o.address, `${at}.address`)!,
      `${file}: ${at}.address`,
      `${file}: ${at}.type`,
    );
  });
  if (overrides.nodeIps?.length)
    addresses = overrides.nodeIps.map((ip) => validateAddress('InternalIP', ip, '--node-ip'));

  const credentials = r.obj(spec.credentials, 'spec.credentials', false) ?? {};
  r.known(credentials, 'spec.credentials', ['exec']);
  const e = r.obj(credentials.exec, 'spec.credentials.exec', false);
  let exec: NodeConfig['exec'];
  if (e) {
    r.known(e, 'spec.credentials.exec', ['command', 'args', 'env', 'apiVersion']);
    const apiVersion =
      r.str(e.apiVersion, 'spec.credentials.exec.apiVersion', false) ?? 'client.authentication.k8s.io/v1beta1';
    if (!(EXEC_API_VERSIONS as readonly string[]).includes(apiVersion)) {
      r.fail(
        'spec.credentials.exec.apiVersion',
        `"${apiVersion}" is not supported`,
        `use one of ${EXEC_API_VERSIONS.join(', ')}`,
      );
    }
    exec = {
      command: r.str(e.command, 'spec.credentials.exec.command')!,
      args: r
        .list(e.args, 'spec.credentials.exec.args')
        .map((a, i): string =>
          typeof a === 'string'
            ? a
            : r.fail(`spec.credentials.exec.args[${i}]`, 'must be a string', 'quote every argument'),
        ),
      env: r.list(e.env, 'spec.credentials.exec.env').map((v, i) => {
        const at = `spec.credentials.exec.env[${i}]`;
        const o = r.obj(v, at)!;
        r.known(o, at, ['name', 'value']);
        return {
          name: r.str(o.name, `${at}.name`)!,
          value: typeof o.value === 'string' ? o.value : r.fail(`${at}.value`, 'must be a string', 'quote the value'),
        };
      }),
      apiVersion: apiVersion as ExecApiVersion,
    };
  } else {
    // What EKS nodes use: the IAM identity of the instance, mapped to system:node:<name> by the cluster.
    exec = {
      command: 'aws-iam-authenticator',
      args: ['token', '-i', clusterName],
      env: [],
      apiVersion: 'client.authentication.k8s.io/v1beta1',
    };
  }

  const nc = r.obj(spec.nodecred, 'spec.nodecred', false) ?? {};
  r.known(nc, 'spec.nodecred', ['kubeconfig', 'configFile', 'certDir', 'config']);
  const extraConfig = r.obj(nc.config, 'spec.nodecred.config', false) ?? {};
  for (const k of Object.keys(extraConfig)) {
    if (OWNED.includes(k))
      r.fail(
        `spec.nodecred.config.${k}`,
        'is set by the NodeConfig itself',
        'remove it; use spec.node.name, spec.nodecred.kubeconfig / certDir instead (client credentials are always ' +
          'external here)',
      );
  }
  return {
    clusterName,
    server,
    caPem: caPem.endsWith('\n') ? caPem : `${caPem}\n`,
    nodeName,
    addresses,
    exec,
    kubeconfigPath: resolve(
      overrides.kubeconfigPath ??
        r.str(nc.kubeconfig, 'spec.nodecred.kubeconfig', false) ??
        '/var/lib/kubelet/kubeconfig',
    ),
    configPath: resolve(
      overrides.configPath ?? r.str(nc.configFile, 'spec.nodecred.configFile', false) ?? '/etc/nodecred/config.yaml',
    ),
    certDir: resolve(r.str(nc.certDir, 'spec.nodecred.certDir', false) ?? '/var/lib/kubelet/pki'),
    extraConfig,
  };
}
