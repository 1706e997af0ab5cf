// Rotation and request policy: pure functions of data, a clock value and a random source, so every rule
// is tested without I/O. The driver (manager.ts) decides when to call them.
import { canonicalDnsName, canonicalIp } from '../pki/san.ts';
import type { CsrCondition, DenialRecord } from '../store/denial-record.ts';
import type { RequestSpec } from './request.ts';

/** A random number in [0, 1): Math.random in production, a fixed sequence in tests. */
type Random = () => number;

export interface RotationWindow {
  /** Fraction of the lifetime after which rotation may start; kubelet uses 0.7. */
  from: number;
  /** Fraction before which it must have started; kubelet uses 0.9. */
  to: number;
}

export const KUBELET_ROTATION_WINDOW: RotationWindow = { from: 0.7, to: 0.9 };

/**
 * When to start rotating a certificate: NotBefore + uniform[from, to) of its lifetime, as kubelet does, so
 * a fleet issued at the same moment does not renew at the same moment.
 */
export function rotationDeadline(notBefore: Date, notAfter: Date, window: RotationWindow, random: Random): Date {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  const fraction = window.from + (window.to - window.from) * random();
  // Whole milliseconds after NotBefore, kept below the end of the window: adding a fractional offset to an
  // epoch value rounds, and could land exactly on `to` (e.g. 10-minute certificates), which [from, to) excludes.
  const last = Math.max(Math.ceil(lifetime * window.to) - 1, Math.round(lifetime * window.from));
  return new Date(notBefore.getTime() + Math.min(Math.round(lifetime * fraction), last));
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 1_000, maxMs: 5 * 60_000 };

/**
 * Until the kubelet has registered the Node (whose addresses the serving certificate names), look again
 * soon: 1 s, doubling to 10 s. One GET per look; it stops once the Node is there.
 */
const NODE_WAIT_BACKOFF: Backoff = { initialMs: 1_000, maxMs: 10_000 };

/**
 * Delay before retry number `attempt` (0-based): exponential, capped, with "equal jitter" (uniform in
 * [cap/2, cap]) so nodes that failed together do not retry together but none retries instantly.
 */
export function retryDelayMs(attempt: number, backoff: Backoff, random: Random): number {
  const cap = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + (cap / 2) * random());
}

/**
 * A watch that stayed open this long was a healthy round, and the caller's backoff starts over: 10 s, or half
 * the server-side timeout when that is shorter. A read or list that succeeds proves nothing (a watch failing
 * right after it would otherwise be retried at the first backoff step for ever), and a watch the server ends
 * at once without an error is paced like a failure, or the loop would spin with no pause at all.
 */
export function healthyWatchMs(watchTimeoutSeconds: number): number {
  return Math.min(10_000, watchTimeoutSeconds * 500);
}

export interface NodeAddress {
  type: string;
  address: string;
}

export interface SubjectAltNames {
  dnsNames: string[];
  ipAddresses: string[];
}

/**
 * The serving certificate's SANs from a Node's status.addresses, following kubelet: Hostname is an IP if it
 * parses as one, else a DNS name; InternalIP/ExternalIP are IPs; InternalDNS/ExternalDNS are DNS names.
 * Other types are ignored. De-duplicated and sorted, so the same addresses always give the same request.
 */
export function servingSansFromAddresses(addresses: readonly NodeAddress[]): SubjectAltNames {
  const dns = new Set<string>();
  const ips = new Set<string>();
  for (const { type, address } of addresses) {
    const value = address.trim();
    if (!value) continue;
    // canonicalIp, not isIP: isIP accepts zoned IPv6 ("fe80::1%eth0"), which no certificate can hold.
    const ip = canonicalIp(value);
    switch (type) {
      case 'Hostname':
        if (ip !== undefined) ips.add(ip);
        else dns.add(canonicalDnsName(value));
        break;
      case 'InternalIP':
      case 'ExternalIP':
        if (ip !== undefined) ips.add(ip);
        break;
      case 'InternalDNS':
      case 'ExternalDNS':
        dns.add(canonicalDnsName(value));
        break;
      default:
        break;
    }
  }
  return { dnsNames: [...dns].sort(), ipAddresses: [...ips].sort() };
}

/** Set equality: DNS names case-insensitively, IPs by canonical form, order and duplicates ignored. */
export function sameSans(a: SubjectAltNames, b: SubjectAltNames): boolean {
  const set = (values: string[]) => [...new Set(values)].sort();
  const key = (s: SubjectAltNames) =>
    JSON.stringify([set(s.dnsNames.map(canonicalDnsName)), set(s.ipAddresses.map((ip) => canonicalIp(ip) ?? ip))]);
  return key(a) === key(b);
}

/**
 * Where an installed certificate stands, as the manager decides it on every pass: `missing` (nothing
 * installed), `unusable` (failed verification: not ours, wrong CA or subject or SANs, expired or not yet
 * valid beyond the clock skew — the validity rule lives in pki/verify.ts), `due` (verified, at or past its
 * rotation deadline) or `valid`. Everything but `valid` means: request a new certificate.
 */
export type Standing = 'missing' | 'unusable' | 'due' | 'valid';

export function standingOf(verified: boolean | undefined, deadline: Date | undefined, now: Date): Standing {
  if (verified === undefined) return 'missing';
  if (!verified) return 'unusable';
  return deadline !== undefined && now.getTime() >= deadline.getTime() ? 'due' : 'valid';
}

/**
 * When the daemon runs its next pass. After a failure: the capped jittered backoff, which a wake-up must
 * not cut short (a failing pass must not become a tight loop). After a pass that ended still waiting on a
 * CSR: at once, so the next pass re-attaches and the watch stays open (the wait itself lasts a whole
 * recheck interval). While the Node is not registered yet: soon (NODE_WAIT_BACKOFF). Otherwise: at the
 * earliest rotation deadline still ahead, and no later than the recheck interval, jittered by ±10 % so that
 * nodes started together (a new cluster, a mass reboot) do not poll the API server together for ever.
 */
export function nextPass(o: {
  now: number;
  consecutiveFailures: number;
  /** The last pass ended with a CSR still pending. */
  pending: boolean;
  /** Consecutive passes that found no Node yet (first boot: the kubelet is about to register it). */
  nodeWaits?: number;
  deadlines: readonly number[];
  recheckIntervalMs: number;
  backoff: Backoff;
  random: Random;
}): { at: number; backoffUntil: number } {
  if (o.consecutiveFailures > 0) {
    const at = o.now + retryDelayMs(o.consecutiveFailures - 1, o.backoff, o.random);
    return { at, backoffUntil: at };
  }
  if (o.pending) return { at: o.now, backoffUntil: o.now };
  if (o.nodeWaits)
    return { at: o.now + retryDelayMs(o.nodeWaits - 1, NODE_WAIT_BACKOFF, o.random), backoffUntil: o.now };
  const ahead = o.deadlines.filter((d) => d > o.now);
  const recheck = Math.round(o.recheckIntervalMs * (0.9 + 0.2 * o.random()));
  return { at: Math.min(o.now + recheck, ...ahead), backoffUntil: o.now };
}

/**
 * A request the approver denied (or the signer failed), remembered so that the same request is not sent
 * again at every backoff step: nothing the node can change makes the answer different, and a fleet-wide
 * approver misconfiguration would otherwise become a CSR flood. The same request is retried on a long
 * schedule (the approver's configuration may be fixed meanwhile), a different one (new SANs, new config) at once.
 * It is kept on disk (store/denial-record.ts), so a restart neither resubmits it nor restarts the backoff.
 */
export type Denial = DenialRecord;

/** 1 h doubling to 8 h, jittered: ≤ 9 CSRs the first day, 3–6 a day after, for a request always denied. */
export const DENIED_RETRY_BACKOFF: Backoff = { initialMs: 60 * 60_000, maxMs: 8 * 60 * 60_000 };

/** Identifies a request by everything that could change an approver's answer. */
export function requestIdentity(r: RequestSpec & { keyAlgorithm: string }): string {
  const sorted = (v: readonly string[]) => [...v].sort();
  return JSON.stringify([
    r.signerName,
    r.commonName,
    sorted(r.organizations),
    sorted(r.dnsNames.map(canonicalDnsName)),
    sorted(r.ipAddresses.map((ip) => canonicalIp(ip) ?? ip)),
    r.expirationSeconds ?? null,
    r.keyAlgorithm,
  ]);
}

export function recordDenial(
  previous: Denial | undefined,
  o: { request: string; csr: string; condition: CsrCondition; message: string; now: number; random: Random },
): Denial {
  const count = previous?.request === o.request ? previous.count + 1 : 1;
  return {
    request: o.request,
    csr: o.csr,
    condition: o.condition,
    message: o.message,
    // Whole milliseconds, as the record on disk keeps them: a restarted daemon reads back the same times.
    at: Math.round(o.now),
    count,
    retryAt: Math.round(o.now + retryDelayMs(count - 1, DENIED_RETRY_BACKOFF, o.random)),
  };
}

/**
 * A denial read back from disk is believed only if its wait is one recordDenial could have drawn from `now`
 * on: a record from a clock stepped back, or edited by hand, must not hold a request back for days.
 */
export function believableDenial(denial: Denial, now: number): boolean {
  return denial.retryAt <= now + DENIED_RETRY_BACKOFF.maxMs;
}

/**
 * The remembered denial still stands for `request`: do not submit it again yet. Only while it is believable:
 * a wall clock stepped back while the daemon runs (NTP correcting a clock that was ahead) would otherwise
 * stretch the hold-back by the size of the step, as a restart reading the record back already refuses to.
 */
export function denialStands(denial: Denial | undefined, request: string, now: number): denial is Denial {
  return denial !== undefined && denial.request === request && now < denial.retryAt && believableDenial(denial, now);
}

/** The API server refused the node's own client certificate (401): which one, since when, how often in a row. */
export interface Refusal {
  fingerprint: string;
  since: number;
  count: number;
}

/**
 * A 401 can be brief: an API server restarting during a client-CA rotation with the old --client-ca-file, one
 * member of an HA pair not yet updated, an SSL-terminating proxy (client-go counts a 401 as "server healthy"
 * for this reason). Seen this many times in a row, for at least the grace period (config unauthorizedGrace,
 * 5 minutes by default), with no success between, it is the server's answer, and the node bootstraps again
 * instead of waiting for the rotation deadline.
 */
export const REFUSALS_IN_A_ROW = 3;

export function noteRefusal(previous: Refusal | undefined, fingerprint: string, now: number): Refusal {
  if (previous?.fingerprint === fingerprint) return { ...previous, count: previous.count + 1 };
  return { fingerprint, since: now, count: 1 };
}

export function refusedForGood(
  r: Refusal | undefined,
  fingerprint: string | undefined,
  now: number,
  graceMs: number,
): boolean {
  return r !== undefined && r.fingerprint === fingerprint && r.count >= REFUSALS_IN_A_ROW && now - r.since >= graceMs;
}
