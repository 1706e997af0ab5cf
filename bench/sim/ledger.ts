// What happened to every node, kept as it happens and judged at the end: each install (was the certificate
// issued by the cluster, correct, unexpired?), each CSR, each stretch of time a node's certificate was
// expired and why, and the fleet's share of valid certificates hour by hour.
import type { Component, IssuedRecord, Kind } from './cluster.ts';
import type { Interval, Timeline } from './timeline.ts';

const HOUR = 3_600_000;
export const KINDS: Kind[] = ['client', 'server'];

export interface Expiry {
  node: number;
  kind: Kind;
  from: number;
  to: number;
  /** What was wrong during the certificate's last rotation window; empty means the policy failed. */
  causes: string[];
}

export interface BadInstall {
  node: number;
  kind: Kind;
  at: number;
  why: string;
}

interface Current {
  notBefore: number;
  notAfter: number;
  installedAt: number;
  id: unknown;
}

export class Ledger {
  private readonly nodes: number;
  private readonly start: number;
  private readonly end: number;
  private readonly windowShare: number;
  private readonly current: Record<Kind, Array<Current | undefined>>;
  private readonly csrsSinceInstall: Record<Kind, Uint16Array>;
  /** Per node: powered on now. */
  readonly on: Uint8Array;
  readonly expiries: Expiry[] = [];
  readonly badInstalls: BadInstall[] = [];
  installs = 0;
  reinstalls = 0;
  csrs = 0;
  /** CSRs one node needed for one certificate, the most seen, and the most for a rotation during each outage. */
  maxCsrsPerRotation = 0;
  readonly maxCsrsPerOutage = new Map<string, number>();
  /** Time from joining to the first pair of certificates, per node (ms). */
  readonly firstReady: Float64Array;
  /** Hour by hour: the share of powered-on nodes with a valid client and serving certificate. */
  readonly validShare: Float32Array;
  private readonly outages: Array<{ label: string } & Interval>;

  constructor(o: {
    nodes: number;
    start: number;
    days: number;
    /** The rotation window's share of a lifetime (0.2 for 70–90 %). */
    windowShare: number;
    outages: Record<Component, readonly Interval[]>;
  }) {
    this.nodes = o.nodes;
    this.start = o.start;
    this.end = o.start + o.days * 24 * HOUR;
    this.windowShare = o.windowShare;
    this.current = { client: new Array(o.nodes), server: new Array(o.nodes) };
    this.csrsSinceInstall = { client: new Uint16Array(o.nodes), server: new Uint16Array(o.nodes) };
    this.on = new Uint8Array(o.nodes);
    this.firstReady = new Float64Array(o.nodes).fill(Number.NaN);
    this.validShare = new Float32Array(o.days * 24);
    this.outages = (Object.entries(o.outages) as Array<[Component, Interval[]]>).flatMap(([c, list]) =>
      list.map((i) => ({ label: `${c} ${formatHours(i.end - i.start)} on day ${dayOf(i.start, o.start)}`, ...i })),
    );
  }

  csrCreated(node: number, kind: Kind): void {
    this.csrs++;
    const n = this.csrsSinceInstall[kind];
    if (n[node]! < 65_535) n[node]!++;
  }

  /**
   * A certificate became current on `node`. `record` is what the cluster issued under it (undefined: not
   * issued by the cluster at all); `id` tells a re-install of the same certificate from a new one.
   */
  installed(node: number, kind: Kind, at: number, record: IssuedRecord | undefined, id: unknown, joinedAt: number) {
    const previous = this.current[kind][node];
    if (previous?.id === id) {
      this.reinstalls++;
      return;
    }
    if (!record) this.badInstalls.push({ node, kind, at, why: 'a certificate the cluster never issued' });
    else if (!record.good)
      this.badInstalls.push({ node, kind, at, why: `a wrongly issued certificate (${record.why})` });
    else if (at >= record.notAfter) this.badInstalls.push({ node, kind, at, why: 'an expired certificate' });
    this.installs++;
    const csrs = this.csrsSinceInstall[kind][node]!;
    this.csrsSinceInstall[kind][node] = 0;
    this.maxCsrsPerRotation = Math.max(this.maxCsrsPerRotation, csrs);
    const since = previous?.installedAt ?? joinedAt;
    for (const o of this.outages) {
      if (o.start < at && o.end > since)
        this.maxCsrsPerOutage.set(o.label, Math.max(this.maxCsrsPerOutage.get(o.label) ?? 0, csrs));
    }
    if (previous && previous.notAfter < at) this.expired(node, kind, previous, at);
    if (record)
      this.current[kind][node] = { notBefore: record.notBefore, notAfter: record.notAfter, installedAt: at, id };
    const other = this.current[kind === 'client' ? 'server' : 'client'][node];
    if (Number.isNaN(this.firstReady[node]!) && other) this.firstReady[node] = at - joinedAt;
  }

  private pendingExpiries: Array<{ node: number; kind: Kind; cert: Current; to: number }> = [];

  private expired(node: number, kind: Kind, cert: Current, to: number): void {
    this.pendingExpiries.push({ node, kind, cert, to });
  }

  /** Samples the fleet (call once an hour of simulated time). */
  sample(now: number): void {
    const hour = Math.floor((now - this.start) / HOUR);
    if (hour < 0 || hour >= this.validShare.length) return;
    let on = 0;
    let valid = 0;
    for (let node = 0; node < this.nodes; node++) {
      if (!this.on[node]) continue;
      on++;
      const c = this.current.client[node];
      const s = this.current.server[node];
      if (c && s && c.notBefore <= now && now < c.notAfter && s.notBefore <= now && now < s.notAfter) valid++;
    }
    this.validShare[hour] = on ? valid / on : 1;
  }

  /**
   * Closes the books: certificates still expired at the end count too, and each expiry is attributed to what
   * was wrong during its last rotation window: the API server, the approver (serving) or controller-manager
   * down, the node off, its disk full, or its clock beyond the tolerance. An expiry with none is a failure
   * of the policy.
   */
  close(o: {
    timeline: Timeline<Component>;
    off: (node: number) => readonly Interval[];
    diskFull: (node: number) => readonly Interval[];
    badClock: (node: number) => boolean;
  }): void {
    for (const kind of KINDS) {
      this.current[kind].forEach((cert, node) => {
        if (cert && cert.notAfter < this.end) this.expired(node, kind, cert, this.end);
      });
    }
    for (const { node, kind, cert, to } of this.pendingExpiries) {
      const window = this.windowShare * (cert.notAfter - cert.notBefore);
      const from = cert.notAfter - window;
      const overlaps = (list: readonly Interval[]) => list.some((i) => i.start < cert.notAfter && i.end > from);
      const causes: string[] = [];
      if (!o.timeline.upThroughout('api', from, cert.notAfter)) causes.push('API server down');
      if (kind === 'server' && !o.timeline.upThroughout('approver', from, cert.notAfter)) causes.push('approver down');
      if (!o.timeline.upThroughout('controllerManager', from, cert.notAfter)) causes.push('controller-manager down');
      if (overlaps(o.off(node))) causes.push('node powered off');
      if (overlaps(o.diskFull(node))) causes.push('disk full');
      if (o.badClock(node)) causes.push('clock skew beyond tolerance');
      this.expiries.push({ node, kind, from: cert.notAfter, to, causes });
    }
    this.pendingExpiries = [];
  }
}

export function formatHours(ms: number): string {
  return ms >= HOUR ? `${Math.round(ms / HOUR)} h` : `${Math.round(ms / 60_000)} min`;
}

export function dayOf(t: number, start: number): number {
  return Math.floor((t - start) / (24 * HOUR));
}
