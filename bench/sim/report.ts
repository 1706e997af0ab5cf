// Merging the shards of one policy's run into the figures the README reports, and the invariants the
// simulation checks on every node.
import { percentile, round } from '../lib/stats.ts';
import { DEFAULT_BACKOFF } from '../../src/manager/policy.ts';
import type { Policy, ShardResult } from './fleet.ts';
import { dayOf, formatHours } from './ledger.ts';
import type { Scenario, Trace } from './trace.ts';

const HOUR = 3_600_000;
/** Seconds of the reconnect herd kept for the plot and the JSON. */
export const HERD_SECONDS = 900;

export interface Herd {
  outage: string;
  /** Peak requests in one second after the API server came back. */
  peakPerSecond: number;
  /** Seconds after the end of the outage at which the peak came. */
  peakAtSecond: number;
  /** Requests in the first ten minutes. */
  firstTenMinutes: number;
  perSecond: number[];
}

export interface PolicySummary {
  policy: Policy;
  nodes: number;
  cpuSeconds: number;
  wallSeconds: number;
  timers: number;
  requests: { total: number; perNodePerDay: number; medianPerSecond: number; throttled: number };
  herds: Herd[];
  csrs: {
    total: number;
    installs: number;
    perRotation: number;
    maxPerRotation: number;
    maxPerOutage: Record<string, number>;
  };
  expiries: {
    total: number;
    /** Expiries with nothing to blame but the policy (see Ledger.close). */
    policyFailures: number;
    byCause: Record<string, number>;
    examples: Array<{ node: string; kind: string; day: number; hours: number; causes: string[] }>;
  };
  badInstalls: { total: number; byWhy: Record<string, number> };
  recovery: { nodes: number; maxSeconds: number; p99Seconds: number; notRecovered: number };
  firstReadySeconds: { p50: number; p99: number; max: number };
  validShare: { min: number; mean: number };
  /** Hour by hour, for the plot: requests per second (mean over the hour) and the valid share. */
  hourly: { requestsPerSecond: number[]; validShare: number[] };
  deniedCsrs: number;
  wronglyIssued: number;
}

function sum<T>(shards: ShardResult[], f: (s: ShardResult) => T[] | ArrayLike<number>, length: number): number[] {
  const out = new Array<number>(length).fill(0);
  for (const s of shards) {
    const values = f(s) as ArrayLike<number>;
    for (let i = 0; i < length && i < values.length; i++) out[i]! += values[i]!;
  }
  return out;
}

function count(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

export function summarize(policy: Policy, shards: ShardResult[], s: Scenario, trace: Trace): PolicySummary {
  const total = <K extends keyof ShardResult>(k: K) => shards.reduce((a, r) => a + (r[k] as number), 0);
  const minutes = s.days * 1440;
  const perMinute = sum(shards, (r) => r.perMinute, minutes);
  const hours = s.days * 24;
  const requestsPerSecond = Array.from({ length: hours }, (_, h) => {
    let n = 0;
    for (let m = h * 60; m < (h + 1) * 60; m++) n += perMinute[m]!;
    return round(n / 3600, 2);
  });
  const onCount = sum(shards, (r) => r.onCount, hours);
  const validCount = Array.from({ length: hours }, (_, h) =>
    shards.reduce((a, r) => a + r.validShare[h]! * r.onCount[h]!, 0),
  );
  const validShare = validCount.map((v, h) => (onCount[h] ? round(v / onCount[h]!, 5) : 1));
  const apiOutages = trace.outages.api;
  const herds = apiOutages.map((o, i): Herd => {
    const perSecond = sum(shards, (r) => r.herds[i]!.perSecond, HERD_SECONDS);
    const peak = Math.max(...perSecond);
    return {
      outage: `${formatHours(o.end - o.start)} API outage on day ${dayOf(o.start, s.start)}`,
      peakPerSecond: peak,
      peakAtSecond: perSecond.indexOf(peak),
      firstTenMinutes: perSecond.slice(0, 600).reduce((a, b) => a + b, 0),
      perSecond,
    };
  });
  const maxPerOutage: Record<string, number> = {};
  for (const r of shards)
    for (const [k, v] of Object.entries(r.maxCsrsPerOutage)) maxPerOutage[k] = Math.max(maxPerOutage[k] ?? 0, v);
  const expiries = shards.flatMap((r) => r.expiries);
  const failures = expiries.filter((e) => e.causes.length === 0);
  const recoveries = shards.flatMap((r) => r.recoveries).sort((a, b) => a - b);
  const ready = shards.flatMap((r) => r.firstReadyMs).sort((a, b) => a - b);
  const installs = total('installs');
  const csrs = total('csrs');
  const activeNodeDays = onCount.reduce((a, b) => a + b, 0) / 24;
  const sortedMinutes = [...perMinute].sort((a, b) => a - b);
  return {
    policy,
    nodes: total('nodes'),
    cpuSeconds: round(total('cpuMs') / 1000, 1),
    wallSeconds: round(Math.max(...shards.map((r) => r.wallMs)) / 1000, 1),
    timers: total('timers'),
    requests: {
      total: total('requests'),
      perNodePerDay: round(total('requests') / Math.max(1, activeNodeDays), 1),
      medianPerSecond: round(percentile(sortedMinutes, 0.5) / 60, 2),
      throttled: total('throttled'),
    },
    herds,
    csrs: {
      total: csrs,
      installs,
      perRotation: round(csrs / Math.max(1, installs), 4),
      maxPerRotation: Math.max(...shards.map((r) => r.maxCsrsPerRotation)),
      maxPerOutage,
    },
    expiries: {
      total: expiries.length,
      policyFailures: failures.length,
      byCause: count(expiries.flatMap((e) => (e.causes.length ? e.causes : ['(none: the policy)']))),
      examples: [...failures, ...expiries.filter((e) => e.causes.length)].slice(0, 10).map((e) => ({
        node: e.node,
        kind: e.kind,
        day: dayOf(e.from, s.start),
        hours: round((e.to - e.from) / HOUR, 1),
        causes: e.causes,
      })),
    },
    badInstalls: {
      total: shards.reduce((a, r) => a + r.badInstalls.length, 0),
      byWhy: count(shards.flatMap((r) => r.badInstalls.map((b) => b.why))),
    },
    recovery: {
      nodes: recoveries.length,
      maxSeconds: round((recoveries.at(-1) ?? 0) / 1000, 1),
      p99Seconds: round(percentile(recoveries, 0.99) / 1000 || 0, 1),
      notRecovered: total('notRecovered'),
    },
    firstReadySeconds: {
      p50: round(percentile(ready, 0.5) / 1000, 1),
      p99: round(percentile(ready, 0.99) / 1000, 1),
      max: round((ready.at(-1) ?? 0) / 1000, 1),
    },
    validShare: {
      min: Math.min(...validShare),
      mean: round(validShare.reduce((a, b) => a + b, 0) / Math.max(1, validShare.length), 5),
    },
    hourly: { requestsPerSecond, validShare },
    deniedCsrs: total('denied'),
    wronglyIssued: total('badIssued'),
  };
}

export interface Invariant {
  name: string;
  ok: boolean;
  detail: string;
}

/**
 * The most requests one nodecred pass makes when it finds a certificate due: GET Node (serving SANs), POST
 * the CSR, open its watch, and a re-read of the CSR.
 */
const REQUESTS_PER_PASS = 4;

/**
 * The reconnect herd's bound. After an outage longer than the backoff cap, a node's next attempt comes a
 * jittered delay in [cap/2, cap] after its last one, so the time from the end of the outage to its return is
 * the residual of those delays: its density is at most 1 / (mean delay), whenever the node last failed. So
 * the fleet returns at no more than N / (0.75 · cap) nodes per second on average; the bound allows each node
 * REQUESTS_PER_PASS requests and a Poisson-like fluctuation of four standard deviations (plus four, for
 * small fleets). Nodes retrying in step (no jitter) would exceed it many times over.
 */
export function herdBound(nodes: number): number {
  const perSecond = nodes / ((0.75 * DEFAULT_BACKOFF.maxMs) / 1000);
  return Math.ceil(REQUESTS_PER_PASS * (perSecond + 4 * Math.sqrt(perSecond) + 4));
}

/** What the issue asks nodecred to guarantee on every node. */
export function invariants(r: PolicySummary): Invariant[] {
  const backoffS = DEFAULT_BACKOFF.maxMs / 1000;
  const bound = herdBound(r.nodes);
  const peak = Math.max(0, ...r.herds.map((h) => h.peakPerSecond));
  return [
    {
      name: 'no expiry while the control plane was reachable for a full rotation window',
      ok: r.expiries.policyFailures === 0,
      detail: `${r.expiries.policyFailures} such expiries (${r.expiries.total} in all, each with its cause)`,
    },
    {
      name: 'CSRs per rotation ≤ 1.05',
      ok: r.csrs.perRotation <= 1.05,
      detail: `${r.csrs.perRotation} (${r.csrs.total} CSRs for ${r.csrs.installs} certificates)`,
    },
    {
      name: 'no expired or unverified certificate installed',
      ok: r.badInstalls.total === 0,
      detail: `${r.badInstalls.total} (${r.wronglyIssued} wrongly issued certificates were offered)`,
    },
    {
      name: `recovery within one backoff period (${backoffS} s) after an API outage`,
      ok: r.recovery.maxSeconds <= backoffS && r.recovery.notRecovered === 0,
      detail:
        `${r.recovery.nodes} nodes noticed an outage; slowest back after ${r.recovery.maxSeconds} s ` +
        `(p99 ${r.recovery.p99Seconds} s); ${r.recovery.notRecovered} never`,
    },
    {
      name: `reconnect herd spread by the jittered backoff: ≤ ${bound} requests/s after any API outage`,
      ok: peak <= bound,
      detail: `peak ${peak} requests/s (${r.herds.map((h) => `${h.peakPerSecond} after the ${h.outage}`).join(', ')})`,
    },
  ];
}
