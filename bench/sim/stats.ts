// What the simulated API server counts: requests over time (the year's curve, the peak second of each
// minute, and every second of the half hour after each API outage: the reconnect herd), throttling,
// decisions, CSRs per node, and how soon each node that noticed an outage came back after it.
import type { CertKind as Kind } from '../../src/store/cert-store.ts';
import type { Interval } from './timeline.ts';

const MINUTE = 60_000;

/** Requests over time: per minute (the year's curve), the peak second of each minute, and the herds. */
export class ClusterStats {
  start = 0;
  perMinute = new Uint32Array(0);
  peakSecondOfMinute = new Uint16Array(0);
  private second = -1;
  private inSecond = 0;
  requests = 0;
  throttled = 0;
  denied = 0;
  issued = 0;
  badIssued = 0;
  /** CSRs created, per node and kind ("client"/"server" → counts by node). */
  readonly csrsByNode: Record<Kind, Uint32Array> = { client: new Uint32Array(0), server: new Uint32Array(0) };
  /** Per second for 30 minutes after each API outage ends: the reconnect herd. */
  herds: Array<{ end: number; perSecond: Uint32Array }> = [];

  init(start: number, days: number, apiOutages: readonly Interval[], nodes = 0): void {
    this.start = start;
    this.perMinute = new Uint32Array(days * 1440 + 1);
    this.peakSecondOfMinute = new Uint16Array(days * 1440 + 1);
    this.herds = apiOutages.map((o) => ({ end: o.end, perSecond: new Uint32Array(30 * 60) }));
    if (nodes) this.sizeNodes(nodes);
  }

  sizeNodes(nodes: number): void {
    this.csrsByNode.client = new Uint32Array(nodes);
    this.csrsByNode.server = new Uint32Array(nodes);
  }

  /** Counts a request; returns how many arrived in the current second so far. */
  request(now: number, _node: number): number {
    this.requests++;
    const offset = now - this.start;
    const minute = Math.floor(offset / MINUTE);
    if (minute >= 0 && minute < this.perMinute.length) this.perMinute[minute]!++;
    const second = Math.floor(offset / 1000);
    if (second !== this.second) {
      this.second = second;
      this.inSecond = 0;
    }
    this.inSecond++;
    if (minute >= 0 && minute < this.peakSecondOfMinute.length && this.inSecond > this.peakSecondOfMinute[minute]!)
      this.peakSecondOfMinute[minute] = Math.min(this.inSecond, 65_535);
    for (const herd of this.herds) {
      const i = Math.floor((now - herd.end) / 1000);
      if (i >= 0 && i < herd.perSecond.length) herd.perSecond[i]!++;
    }
    return this.inSecond;
  }

  /** Nodes refused during the current API outage, then those not yet back after it ended. */
  readonly failedInOutage = new Set<number>();
  private readonly awaiting = new Map<number, number>();
  /** How long after an API outage ended each node that had noticed it reached the API server again (ms). */
  readonly recoveries: number[] = [];

  outageEnded(end: number, isOn: (node: number) => boolean): void {
    for (const node of this.failedInOutage) if (isOn(node)) this.awaiting.set(node, end);
    this.failedInOutage.clear();
  }

  reached(node: number, now: number): void {
    const end = this.awaiting.get(node);
    if (end === undefined) return;
    this.awaiting.delete(node);
    this.recoveries.push(now - end);
  }

  /** A node powered off is not expected back until it is on again. */
  forget(node: number): void {
    this.awaiting.delete(node);
    this.failedInOutage.delete(node);
  }

  /** Nodes that noticed an outage and had not reached the API server again when the simulation ended. */
  get notRecovered(): number {
    return this.awaiting.size;
  }

  /** Told of every CSR created (the invariant checks count them per rotation). */
  onCsrCreated: ((node: number, kind: Kind, at: number) => void) | undefined;

  csrCreated(node: number, kind: Kind, at: number): void {
    if (node < this.csrsByNode[kind].length) this.csrsByNode[kind][node]!++;
    this.onCsrCreated?.(node, kind, at);
  }
}
