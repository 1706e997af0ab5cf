// Parsing kubeconfig files (writing them: kubeconfig-render.ts). Parsing is pure: paths are resolved (kubectl
// semantics) but never read, so the caller decides when to touch the disk and the same function serves the
// bootstrap kubeconfig, the node kubeconfig and the cluster-info kubeconfig of token discovery.

import path from 'node:path';
import { quote } from '../errors.ts';
import {
  decodePemData,
  fail,
  isObj,
  loadRoot,
  lookup,
  makeCtx,
  namedList,
  optBool,
  optList,
  optObj,
  optString,
  own,
  resolvePath,
  typeName,
  type Ctx,
  type Named,
  type Obj,
} from './kubeconfig-reader.ts';

export const EXEC_API_VERSIONS = ['client.authentication.k8s.io/v1beta1', 'client.authentication.k8s.io/v1'] as const;
export type ExecApiVersion = (typeof EXEC_API_VERSIONS)[number];

export interface ExecEnvVar {
  name: string;
  value: string;
}

export interface ExecCredentialSpec {
  kind: 'exec';
  /** As written, or resolved against the kubeconfig's directory when it contains a path separator. */
  command: string;
  args: string[];
  env: ExecEnvVar[];
  apiVersion: ExecApiVersion;
  installHint: string | undefined;
  provideClusterInfo: boolean;
  /** "<file>: users[i].user.exec", for error messages about the plugin. */
  where: string;
}

/** Exactly one of token / tokenPath is set. */
type TokenCredential =
  | { kind: 'token'; token: string; tokenPath?: undefined }
  | { kind: 'token'; tokenPath: string; token?: undefined };

type CertSide = { certPath: string; certData?: undefined } | { certData: string; certPath?: undefined };
type KeySide = { keyPath: string; keyData?: undefined } | { keyData: string; keyPath?: undefined };
/** Exactly one of certPath / certData and one of keyPath / keyData is set; data is PEM text. */
type ClientCertCredential = { kind: 'clientCert' } & CertSide & KeySide;

type UserCredential = TokenCredential | ClientCertCredential | ExecCredentialSpec;

interface KubeconfigCluster {
  name: string;
  server: string;
  /** PEM, decoded from certificate-authority-data. At most one of caData / caPath; neither: system roots. */
  caData?: string;
  /** Absolute path from certificate-authority. */
  caPath?: string;
  tlsServerName?: string;
  proxyUrl?: string;
}

export interface KubeconfigConnection {
  /** Absolute path of the kubeconfig (or the label it was parsed under). */
  file: string;
  contextName: string;
  userName: string;
  namespace?: string;
  cluster: KubeconfigCluster;
  credential: UserCredential;
}

interface ParseKubeconfigOptions {
  /** Use this context instead of current-context. */
  context?: string;
}

function parseCluster(ctx: Ctx, entry: Named): KubeconfigCluster {
  const at = `clusters[${entry.index}].cluster`;
  const c = entry.body;
  const server = optString(ctx, c, 'server', at);
  if (server === undefined || server.trim() === '') {
    fail(ctx, `${at}.server`, 'is missing', 'set server to the API server URL, e.g. https://10.0.0.1:6443');
  }
  let url: URL;
  try {
    url = new URL(server.trim());
  } catch {
    fail(
      ctx,
      `${at}.server`,
      `${quote(server)} is not a URL`,
      'set server to the API server URL, e.g. https://10.0.0.1:6443',
    );
  }
  if (url.protocol !== 'https:') {
    fail(
      ctx,
      `${at}.server`,
      `${quote(server)} is not an https:// URL; nodecred only talks to the API server over verified TLS`,
      'use the https:// URL of the API server, e.g. https://10.0.0.1:6443',
    );
  }
  if (optBool(ctx, c, 'insecure-skip-tls-verify', at) === true) {
    fail(
      ctx,
      `${at}.insecure-skip-tls-verify`,
      'is true; nodecred never disables TLS verification',
      'remove insecure-skip-tls-verify and set certificate-authority-data (or certificate-authority) to the cluster CA',
      'KUBECONFIG_INSECURE',
    );
  }
  const out: KubeconfigCluster = { name: entry.name, server: server.trim() };
  const caB64 = optString(ctx, c, 'certificate-authority-data', at);
  const caFile = optString(ctx, c, 'certificate-authority', at);
  if (caB64 && caFile) {
    fail(
      ctx,
      at,
      'sets both certificate-authority-data and certificate-authority',
      'keep only one of certificate-authority-data and certificate-authority',
    );
  }
  if (caB64) out.caData = decodePemData(ctx, caB64, `${at}.certificate-authority-data`, 'certificate');
  if (caFile) out.caPath = resolvePath(ctx, caFile);
  const tlsServerName = optString(ctx, c, 'tls-server-name', at);
  if (tlsServerName) out.tlsServerName = tlsServerName;
  const proxyUrl = optString(ctx, c, 'proxy-url', at);
  if (proxyUrl) out.proxyUrl = proxyUrl;
  return out;
}

function parseExec(ctx: Ctx, e: Obj, at: string): ExecCredentialSpec {
  const command = optString(ctx, e, 'command', at);
  if (!command)
    fail(
      ctx,
      `${at}.command`,
      'is missing',
      'set command to the credential plugin executable, e.g. aws or /usr/local/bin/plugin',
    );
  const apiVersion = optString(ctx, e, 'apiVersion', at);
  if (!apiVersion)
    fail(
      ctx,
      `${at}.apiVersion`,
      'is missing',
      'set apiVersion: client.authentication.k8s.io/v1beta1 (or v1, if the plugin supports it)',
    );
  if (!(EXEC_API_VERSIONS as readonly string[]).includes(apiVersion)) {
    fail(
      ctx,
      `${at}.apiVersion`,
      `${quote(apiVersion)} is not supported (supported: ${EXEC_API_VERSIONS.join(', ')})`,
      'set apiVersion: client.authentication.k8s.io/v1beta1 and update the plugin if it only speaks v1alpha1',
    );
  }
  const args = optList(ctx, e, 'args', at).map((a, i) => {
    if (typeof a !== 'string')
      fail(ctx, `${at}.args[${i}]`, `must be a string, got a ${typeName(a)}`, 'quote every argument');
    return a;
  });
  const env = optList(ctx, e, 'env', at).map((item, i): ExecEnvVar => {
    const eat = `${at}.env[${i}]`;
    if (!isObj(item))
      fail(
        ctx,
        eat,
        `must be a mapping with name and value, got a ${typeName(item)}`,
        'write env entries as {name: X, value: Y}',
      );
    const name = optString(ctx, item, 'name', eat);
    if (!name) fail(ctx, `${eat}.name`, 'is missing', 'give every env entry a name');
    return { name, value: optString(ctx, item, 'value', eat) ?? '' };
  });
  const interactiveMode = optString(ctx, e, 'interactiveMode', at);
  if (interactiveMode !== undefined && !['Never', 'IfAvailable', 'Always'].includes(interactiveMode)) {
    fail(
      ctx,
      `${at}.interactiveMode`,
      `${quote(interactiveMode)} is not one of Never, IfAvailable, Always`,
      'set interactiveMode: Never',
    );
  }
  if (interactiveMode === 'Always') {
    fail(
      ctx,
      `${at}.interactiveMode`,
      'is Always, but nodecred runs without a terminal',
      'set interactiveMode: Never and configure the plugin to authenticate non-interactively',
    );
  }
  const provideClusterInfo = optBool(ctx, e, 'provideClusterInfo', at) ?? false;
  // kubectl semantics: a bare name is looked up on PATH; anything with a separator is a path relative to the
  // kubeconfig (client-node would resolve it against the cwd, hence we do it here).
  const resolved = command.includes(path.sep) && !path.isAbsolute(command) ? resolvePath(ctx, command) : command;
  return {
    kind: 'exec',
    command: resolved,
    args,
    env,
    apiVersion: apiVersion as ExecApiVersion,
    installHint: optString(ctx, e, 'installHint', at) || undefined,
    provideClusterInfo,
    where: `${ctx.file}: ${at}`,
  };
}

function parseUser(ctx: Ctx, entry: Named): UserCredential {
  const at = `users[${entry.index}].user`;
  const u = entry.body;
  const oneMethod = 'keep exactly one of: token / tokenFile, client-certificate(-data) + client-key(-data), exec';

  if (own(u, 'auth-provider') != null) {
    fail(
      ctx,
      `${at}.auth-provider`,
      'auth-provider plugins were removed from Kubernetes',
      'use an exec credential plugin (users[].user.exec) instead',
    );
  }
  if (own(u, 'username') != null || own(u, 'password') != null) {
    fail(
      ctx,
      at,
      'uses username/password (basic auth), which Kubernetes no longer supports',
      'use a bootstrap token, a client certificate or an exec plugin',
    );
  }
  for (const k of ['as', 'as-uid', 'as-groups', 'as-user-extra']) {
    if (own(u, k) != null) fail(ctx, `${at}.${k}`, 'impersonation is not supported by nodecred', `remove ${k}`);
  }

  const token = optString(ctx, u, 'token', at) || undefined;
  const tokenFile = optString(ctx, u, 'tokenFile', at) || undefined;
  const certFile = optString(ctx, u, 'client-certificate', at) || undefined;
  const certB64 = optString(ctx, u, 'client-certificate-data', at) || undefined;
  const keyFile = optString(ctx, u, 'client-key', at) || undefined;
  const keyB64 = optString(ctx, u, 'client-key-data', at) || undefined;
  const exec = optObj(ctx, u, 'exec', at);

  const methods: string[] = [];
  if (token || tokenFile) methods.push('token');
  if (certFile || certB64 || keyFile || keyB64) methods.push('client certificate');
  if (exec) methods.push('exec');
  if (methods.length === 0) {
    fail(
      ctx,
      at,
      `user ${quote(entry.name)} has no credentials`,
      'set token or tokenFile (bootstrap), client-certificate + client-key, or exec',
    );
  }
  if (methods.length > 1) fail(ctx, at, `has more than one credential (${methods.join(', ')})`, oneMethod);

  if (exec) return parseExec(ctx, exec, `${at}.exec`);
  if (token || tokenFile) {
    if (token && tokenFile) fail(ctx, at, 'sets both token and tokenFile', 'keep only one of token and tokenFile');
    if (token) {
      const t = token.trim();
      if (t === '' || /\s/.test(t))
        fail(
          ctx,
          `${at}.token`,
          t === '' ? 'is blank' : 'contains whitespace',
          'set token to the bare token, e.g. abcdef.0123456789abcdef',
        );
      return { kind: 'token', token: t };
    }
    return { kind: 'token', tokenPath: resolvePath(ctx, tokenFile as string) };
  }
  if (certFile && certB64)
    fail(
      ctx,
      at,
      'sets both client-certificate and client-certificate-data',
      'keep only one of client-certificate and client-certificate-data',
    );
  if (keyFile && keyB64)
    fail(ctx, at, 'sets both client-key and client-key-data', 'keep only one of client-key and client-key-data');
  if (!certFile && !certB64)
    fail(
      ctx,
      `${at}.client-certificate`,
      'is missing (a client key is set but no certificate)',
      'set client-certificate or client-certificate-data',
    );
  if (!keyFile && !keyB64)
    fail(
      ctx,
      `${at}.client-key`,
      'is missing (a client certificate is set but no key)',
      'set client-key or client-key-data',
    );
  const cert: CertSide = certFile
    ? { certPath: resolvePath(ctx, certFile) }
    : { certData: decodePemData(ctx, certB64 as string, `${at}.client-certificate-data`, 'certificate') };
  const key: KeySide = keyFile
    ? { keyPath: resolvePath(ctx, keyFile) }
    : { keyData: decodePemData(ctx, keyB64 as string, `${at}.client-key-data`, 'private key') };
  return { kind: 'clientCert', ...cert, ...key };
}

/**
 * Parse a kubeconfig and resolve its current-context (or opts.context) into a connection. `file` is the
 * kubeconfig's path: it labels errors and anchors relative paths. Every problem is a UserError.
 */
export function parseKubeconfig(text: string, file: string, opts: ParseKubeconfigOptions = {}): KubeconfigConnection {
  const ctx = makeCtx(file);
  const root = loadRoot(text, ctx);
  const clusters = namedList(ctx, root, 'clusters', 'cluster');
  const contexts = namedList(ctx, root, 'contexts', 'context');
  const users = namedList(ctx, root, 'users', 'user');

  let contextName = opts.context;
  let contextAt = 'current-context';
  if (contextName === undefined) {
    contextName = optString(ctx, root, 'current-context', '');
    if (!contextName) {
      const have = contexts.map((c) => `${quote(c.name)}`).join(', ') || 'none';
      fail(
        ctx,
        'current-context',
        `is not set (contexts: ${have})`,
        'set current-context to the context nodecred should use',
      );
    }
  } else {
    contextAt = '';
  }
  const context = lookup(ctx, contexts, contextName, contextAt, 'context', 'contexts');
  const cat = `contexts[${context.index}].context`;
  const clusterName = optString(ctx, context.body, 'cluster', cat);
  if (!clusterName)
    fail(ctx, `${cat}.cluster`, 'is missing', "set the context's cluster to one of the clusters entries");
  const userName = optString(ctx, context.body, 'user', cat);
  if (!userName) fail(ctx, `${cat}.user`, 'is missing', "set the context's user to one of the users entries");
  const cluster = parseCluster(ctx, lookup(ctx, clusters, clusterName, `${cat}.cluster`, 'cluster', 'clusters'));
  const credential = parseUser(ctx, lookup(ctx, users, userName, `${cat}.user`, 'user', 'users'));
  const namespace = optString(ctx, context.body, 'namespace', cat);
  const out: KubeconfigConnection = { file: ctx.file, contextName, userName, cluster, credential };
  if (namespace) out.namespace = namespace;
  return out;
}

/**
 * The cluster of a kubeconfig that may have no users or contexts (kube-public/cluster-info): the current
 * context's cluster if current-context is set, else the only cluster. `label` names the source in errors.
 */
export function parseKubeconfigCluster(text: string, label: string): KubeconfigCluster {
  const ctx: Ctx = { file: label, dir: path.resolve(path.dirname(label)) };
  const root = loadRoot(text, ctx);
  const clusters = namedList(ctx, root, 'clusters', 'cluster');
  const current = optString(ctx, root, 'current-context', '');
  if (current) {
    const contexts = namedList(ctx, root, 'contexts', 'context');
    const context = lookup(ctx, contexts, current, 'current-context', 'context', 'contexts');
    const cat = `contexts[${context.index}].context`;
    const clusterName = optString(ctx, context.body, 'cluster', cat);
    if (!clusterName)
      fail(ctx, `${cat}.cluster`, 'is missing', "set the context's cluster to one of the clusters entries");
    return parseCluster(ctx, lookup(ctx, clusters, clusterName, `${cat}.cluster`, 'cluster', 'clusters'));
  }
  const [only, ...rest] = clusters;
  if (!only)
    fail(ctx, 'clusters', 'defines no cluster', 'add a clusters entry with server and certificate-authority-data');
  if (rest.length > 0)
    fail(
      ctx,
      'current-context',
      `is not set and there are ${clusters.length} clusters`,
      'set current-context, or keep a single cluster',
    );
  return parseCluster(ctx, only);
}
