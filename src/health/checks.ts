// Health checks as pure functions of what the manager knows and the clock, rendered the way
// kube-apiserver renders /livez and /readyz ("[+]name ok", ?verbose, ?exclude=), so the same probes and
// habits work.
import type { CertificateState } from '../manager/manager.ts';
import { formatDuration } from '../config/duration.ts';

export interface CheckResult {
  name: string;
  ok: boolean;
  message: string;
}

export interface ApiAuthResult {
  ok: boolean;
  message: string;
  checkedAt: Date;
}

export interface HealthInput {
  now: Date;
  client: CertificateState;
  server: CertificateState;
  clientManaged: boolean;
  servingEnabled: boolean;
  /** A certificate expiring sooner than this makes readiness fail. */
  expiryThresholdMs: number;
  /** When the manager loop last completed a pass (or started one). */
  loopHeartbeat: Date | undefined;
  /** A loop silent for longer than this is considered stuck. */
  loopStaleMs: number;
  apiAuth: ApiAuthResult | undefined;
}

function certificateCheck(name: string, s: CertificateState, now: Date, thresholdMs: number): CheckResult {
  if (!s.notAfter)
    return {
      name,
      ok: false,
      message: `no certificate at ${s.path}${s.pendingCsr ? ` (waiting for CSR ${s.pendingCsr})` : ''}`,
    };
  if (s.verified === false)
    return {
      name,
      ok: false,
      message: `certificate at ${s.path} failed verification: ${(s.problems ?? []).join('; ')}`,
    };
  const left = s.notAfter.getTime() - now.getTime();
  if (left <= 0) return { name, ok: false, message: `certificate expired ${formatDuration(-left)} ago` };
  if (left < thresholdMs)
    return {
      name,
      ok: false,
      message: `certificate expires in ${formatDuration(left)} (threshold ${formatDuration(thresholdMs)})`,
    };
  return { name, ok: true, message: `valid for ${formatDuration(left)}` };
}

export function livezChecks(input: HealthInput): CheckResult[] {
  const beat = input.loopHeartbeat;
  const age = beat ? input.now.getTime() - beat.getTime() : Infinity;
  return [
    { name: 'ping', ok: true, message: 'ok' },
    {
      name: 'manager-loop',
      ok: age <= input.loopStaleMs,
      message: beat ? `last pass ${formatDuration(age)} ago` : 'manager loop has not started',
    },
  ];
}

export function readyzChecks(input: HealthInput): CheckResult[] {
  const checks: CheckResult[] = [];
  if (input.clientManaged)
    checks.push(certificateCheck('client-cert', input.client, input.now, input.expiryThresholdMs));
  if (input.servingEnabled)
    checks.push(certificateCheck('server-cert', input.server, input.now, input.expiryThresholdMs));
  const auth = input.apiAuth;
  checks.push(
    auth
      ? { name: 'apiserver-auth', ok: auth.ok, message: auth.message }
      : { name: 'apiserver-auth', ok: false, message: 'not checked yet' },
  );
  return checks;
}

interface RenderOptions {
  verbose: boolean;
  exclude: string[];
  endpoint: 'livez' | 'readyz' | 'healthz';
}

/** kube-apiserver's text format; returns the HTTP status and body. */
export function renderChecks(checks: CheckResult[], opts: RenderOptions): { status: number; body: string } {
  const unknown = opts.exclude.filter((e) => !checks.some((c) => c.name === e));
  const considered = checks.filter((c) => !opts.exclude.includes(c.name));
  const ok = considered.every((c) => c.ok);
  if (ok && !opts.verbose) return { status: 200, body: 'ok' };
  const lines = considered.map((c) => (c.ok ? `[+]${c.name} ok` : `[-]${c.name} failed: ${c.message}`));
  for (const name of opts.exclude.filter((e) => !unknown.includes(e))) lines.push(`[+]${name} excluded: ok`);
  if (unknown.length)
    lines.push(`warn: some health checks cannot be excluded: no matches for ${unknown.map((u) => `"${u}"`).join(',')}`);
  lines.push(`${opts.endpoint} check ${ok ? 'passed' : 'failed'}`);
  return { status: ok ? 200 : 500, body: `${lines.join('\n')}\n` };
}

interface CertificateReport {
  path: string;
  subject?: string;
  issuer?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  notBefore?: string;
  notAfter?: string;
  secondsLeft?: number;
  rotationDeadline?: string;
  pendingCsr?: string;
  lastError?: string;
  lastSuccess?: string;
  /** The last request was denied: the same one is not submitted before this time. */
  deniedRetryAt?: string;
}

export function certificateReport(s: CertificateState, now: Date): CertificateReport {
  const iso = (d: Date | undefined) => d?.toISOString();
  return Object.fromEntries(
    Object.entries({
      path: s.path,
      subject: s.subject,
      issuer: s.issuer,
      dnsNames: s.dnsNames,
      ipAddresses: s.ipAddresses,
      notBefore: iso(s.notBefore),
      notAfter: iso(s.notAfter),
      secondsLeft: s.notAfter ? Math.floor((s.notAfter.getTime() - now.getTime()) / 1000) : undefined,
      rotationDeadline: iso(s.rotationDeadline),
      pendingCsr: s.pendingCsr,
      lastError: s.lastError,
      lastSuccess: iso(s.lastSuccess),
      deniedRetryAt: s.denied ? iso(new Date(s.denied.retryAt)) : undefined,
    }).filter(([, v]) => v !== undefined),
  ) as unknown as CertificateReport;
}
