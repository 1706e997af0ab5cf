// Exec credential plugins (client.authentication.k8s.io ExecCredential): parse their output strictly,
// run them the way client-go does, and cache what they return until it is about to expire.
// Nothing here ever puts a token or key into an error message.

import { execFile } from 'node:child_process';
import { quote, UserError } from '../errors.ts';
import { redactSecrets } from '../redact.ts';
import { EXEC_API_VERSIONS, type ExecCredentialSpec } from './kubeconfig.ts';

export interface ExecCredential {
  token?: string;
  /** PEM. */
  clientCertificateData?: string;
  /** PEM. */
  clientKeyData?: string;
  expirationTimestamp?: Date;
}

interface ParseExecCredentialOptions {
  /** Names the plugin in errors, e.g. 'exec plugin "aws"'. */
  source?: string;
  /** The apiVersion the plugin was asked to speak; the output must use the same one (client-go rule). */
  expectedApiVersion?: string;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

// RFC 3339 as metav1.Time accepts it.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function parseRfc3339(s: string): Date | undefined {
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const [, _y, mo, d, h, mi, sec] = m.map(Number) as number[];
  if (mo! < 1 || mo! > 12 || d! < 1 || d! > 31 || h! > 23 || mi! > 59 || sec! > 60) return undefined;
  const date = new Date(s);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Parse and validate the stdout of an exec credential plugin. Every problem is a UserError. */
export function parseExecCredential(stdout: string, opts: ParseExecCredentialOptions = {}): ExecCredential {
  const source = opts.source ?? 'exec credential plugin';
  const fail = (field: string, message: string, fix = 'fix or update the credential plugin'): never => {
    throw new UserError(message, {
      where: field ? `${source} output: ${field}` : `${source} output`,
      fix,
      code: 'EXEC_CREDENTIAL_INVALID',
    });
  };
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    // Not even a fragment of the output: it may be a token.
    fail(
      '',
      `is not JSON (${stdout.length} bytes)`,
      'make the plugin print only the ExecCredential JSON on stdout (logs go to stderr)',
    );
  }
  if (!isObj(doc)) return fail('', `must be a JSON object, got ${typeName(doc)}`);
  if (doc.kind !== 'ExecCredential')
    fail('kind', `must be "ExecCredential"${typeof doc.kind === 'string' ? `, got ${quote(doc.kind)}` : ''}`);
  const apiVersion = doc.apiVersion;
  if (typeof apiVersion !== 'string' || !(EXEC_API_VERSIONS as readonly string[]).includes(apiVersion)) {
    const got = typeof apiVersion === 'string' ? `, got ${quote(apiVersion)}` : '';
    fail('apiVersion', `must be one of ${EXEC_API_VERSIONS.join(', ')}${got}`);
  }
  if (opts.expectedApiVersion !== undefined && apiVersion !== opts.expectedApiVersion) {
    fail(
      'apiVersion',
      `is ${quote(String(apiVersion))} but the plugin was asked for ${quote(opts.expectedApiVersion)}`,
      'set users[].user.exec.apiVersion to the version the plugin speaks',
    );
  }
  const status = doc.status;
  if (status === undefined || status === null) return fail('status', 'is missing');
  if (!isObj(status)) return fail('status', `must be an object, got ${typeName(status)}`);

  const str = (key: string): string | undefined => {
    const v = status[key];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') fail(`status.${key}`, `must be a string, got ${typeName(v)}`);
    return v as string;
  };
  const token = str('token');
  const cert = str('clientCertificateData');
  const key = str('clientKeyData');
  const exp = str('expirationTimestamp');

  if (!token && !cert && !key) fail('status', 'has no token and no clientCertificateData/clientKeyData');
  if (Boolean(cert) !== Boolean(key)) {
    fail(
      cert ? 'status.clientKeyData' : 'status.clientCertificateData',
      'is missing: the plugin returned only one of certificate and key',
    );
  }
  if (token !== undefined && /[\s]/.test(token)) fail('status.token', 'contains whitespace');
  if (cert !== undefined && !cert.includes('-----BEGIN CERTIFICATE-----'))
    fail('status.clientCertificateData', 'is not a PEM certificate');
  if (key !== undefined && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key))
    fail('status.clientKeyData', 'is not a PEM private key');

  const out: ExecCredential = {};
  if (token !== undefined) out.token = token;
  if (cert !== undefined) out.clientCertificateData = cert;
  if (key !== undefined) out.clientKeyData = key;
  if (exp !== undefined) {
    const date = parseRfc3339(exp);
    if (!date) fail('status.expirationTimestamp', `${quote(exp)} is not an RFC 3339 timestamp`);
    out.expirationTimestamp = date;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Running a plugin

interface ExecClusterInfo {
  server: string;
  /** PEM of the cluster CA. */
  caData?: string;
  tlsServerName?: string;
  proxyUrl?: string;
}

interface RunExecPluginOptions {
  timeoutMs: number;
  /** Passed in KUBERNETES_EXEC_INFO spec.cluster when the kubeconfig sets provideClusterInfo. */
  clusterInfo?: ExecClusterInfo;
  /** Defaults to process.env. */
  baseEnv?: NodeJS.ProcessEnv;
}

const STDERR_LIMIT = 1000;
const STDOUT_LIMIT = 4 * 1024 * 1024;

/** The KUBERNETES_EXEC_INFO value client-go sets for a non-interactive plugin run. */
function execInfoEnv(
  spec: Pick<ExecCredentialSpec, 'apiVersion' | 'provideClusterInfo'>,
  clusterInfo?: ExecClusterInfo,
): string {
  const execSpec: Obj = { interactive: false };
  if (spec.provideClusterInfo && clusterInfo) {
    const cluster: Obj = { server: clusterInfo.server };
    if (clusterInfo.tlsServerName) cluster['tls-server-name'] = clusterInfo.tlsServerName;
    if (clusterInfo.caData)
      cluster['certificate-authority-data'] = Buffer.from(clusterInfo.caData, 'utf8').toString('base64');
    if (clusterInfo.proxyUrl) cluster['proxy-url'] = clusterInfo.proxyUrl;
    execSpec.cluster = cluster;
  }
  return JSON.stringify({ apiVersion: spec.apiVersion, kind: 'ExecCredential', spec: execSpec });
}

function oneLine(s: string, limit: number): string {
  const flat = s.trim().replace(/\s*\n\s*/g, ' | ');
  return flat.length > limit ? `${flat.slice(0, limit)}… (${flat.length - limit} more chars)` : flat;
}

/** Run an exec credential plugin once and parse its output. Failures are UserErrors naming the command. */
export function runExecPlugin(spec: ExecCredentialSpec, opts: RunExecPluginOptions): Promise<ExecCredential> {
  if (spec.provideClusterInfo && !opts.clusterInfo) {
    throw new Error('runExecPlugin: provideClusterInfo is set but no clusterInfo was given');
  }
  const env: NodeJS.ProcessEnv = { ...(opts.baseEnv ?? process.env) };
  for (const { name, value } of spec.env) env[name] = value;
  env.KUBERNETES_EXEC_INFO = execInfoEnv(spec, opts.clusterInfo);
  const label = `exec plugin ${quote(spec.command)}`;
  // Like client-go, the install hint is shown only when the command is missing.
  const hintFix = spec.installHint ? spec.installHint.trim() : undefined;

  return new Promise((resolve, reject) => {
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const child = execFile(
      spec.command,
      spec.args,
      { env, maxBuffer: STDOUT_LIMIT, encoding: 'utf8', windowsHide: true },
      (err, stdout, stderr) => {
        clearTimeout(timer);
        if (!err && !timedOut) {
          try {
            resolve(parseExecCredential(stdout, { source: label, expectedApiVersion: spec.apiVersion }));
          } catch (parseErr) {
            reject(parseErr);
          }
          return;
        }
        const e = (err ?? {}) as Partial<NodeJS.ErrnoException> & {
          signal?: NodeJS.Signals | null;
          code?: string | number | null;
        };
        // The plugin's stderr says why it failed, but it may echo what it was handling (a token, a key): only
        // its redacted form goes into the error, which reaches the log and /healthz.
        const tail = stderr ? `: ${oneLine(redactSecrets(stderr), STDERR_LIMIT)}` : '';
        const fail = (message: string, fix: string, code: string): void =>
          // No cause: Node puts the raw stderr into the message of the error execFile reports.
          reject(new UserError(message, { where: spec.where, fix, code }));
        if (timedOut) {
          fail(
            `${label} did not finish within ${opts.timeoutMs} ms${tail}`,
            'check that the plugin can reach its identity provider without prompting',
            'EXEC_PLUGIN_TIMEOUT',
          );
        } else if (e.code === 'ENOENT') {
          fail(
            `${label} was not found`,
            hintFix ?? `install it, or set ${spec.where.split(': ').pop()}.command to its full path`,
            'EXEC_PLUGIN_NOT_FOUND',
          );
        } else if (e.code === 'EACCES') {
          fail(`${label} is not executable`, `chmod +x ${spec.command}`, 'EXEC_PLUGIN_NOT_FOUND');
        } else if (e.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
          fail(
            `${label} printed more than ${STDOUT_LIMIT} bytes`,
            'make the plugin print only the ExecCredential JSON on stdout',
            'EXEC_PLUGIN_FAILED',
          );
        } else if (typeof e.code === 'number') {
          fail(
            `${label} exited with code ${e.code}${tail}`,
            'run the command by hand to see why it fails',
            'EXEC_PLUGIN_FAILED',
          );
        } else if (e.signal) {
          fail(
            `${label} was killed by ${e.signal}${tail}`,
            'run the command by hand to see why it fails',
            'EXEC_PLUGIN_FAILED',
          );
        } else {
          fail(
            `${label} could not be run: ${e.message ?? 'unknown error'}`,
            'check the command and its permissions',
            'EXEC_PLUGIN_FAILED',
          );
        }
      },
    );
    // Non-interactive: the plugin reads EOF on stdin instead of waiting for a user.
    child.stdin?.on('error', () => {});
    child.stdin?.end();
    // Not execFile's own timeout: it only signals the child, and a grandchild still holding stdout (a shell
    // wrapper's `sleep`, say) would keep the callback pending. Closing our ends of the pipes lets it fire.
    timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
      child.stdout?.destroy();
      child.stderr?.destroy();
    }, opts.timeoutMs);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Caching

/** A credential is reusable until expirationTimestamp − margin; one without an expiry is reusable forever. */
export function credentialIsFresh(cred: ExecCredential, nowMs: number, marginMs: number): boolean {
  return cred.expirationTimestamp === undefined || cred.expirationTimestamp.getTime() - marginMs > nowMs;
}

interface ExecCredentialCacheOptions {
  /** Refresh this long before expirationTimestamp. Default 60 s. */
  marginMs?: number;
  now?: () => number;
}

/**
 * Reuses the last credential while it is fresh and shares one in-flight fetch between concurrent callers.
 * Failures are not cached. Call invalidate() after a 401 (client-go re-runs the plugin then; client-node
 * does not).
 */
export class ExecCredentialCache {
  readonly #fetch: () => Promise<ExecCredential>;
  readonly #marginMs: number;
  readonly #now: () => number;
  #cached: ExecCredential | undefined;
  #inflight: Promise<ExecCredential> | undefined;
  #generation = 0;

  constructor(fetch: () => Promise<ExecCredential>, opts: ExecCredentialCacheOptions = {}) {
    this.#fetch = fetch;
    this.#marginMs = opts.marginMs ?? 60_000;
    this.#now = opts.now ?? Date.now;
  }

  get(): Promise<ExecCredential> {
    if (this.#cached && credentialIsFresh(this.#cached, this.#now(), this.#marginMs))
      return Promise.resolve(this.#cached);
    if (this.#inflight) return this.#inflight;
    const generation = this.#generation;
    const p = this.#fetch().then(
      (cred) => {
        if (generation === this.#generation) {
          this.#cached = cred;
          this.#inflight = undefined;
        }
        return cred;
      },
      (err: unknown) => {
        if (generation === this.#generation) this.#inflight = undefined;
        throw err;
      },
    );
    this.#inflight = p;
    return p;
  }

  invalidate(): void {
    this.#generation++;
    this.#cached = undefined;
    this.#inflight = undefined;
  }
}
