// The year a fleet lives through, drawn once from the seed and replayed identically for every policy:
// control-plane outages, nodes powered off for weeks, full disks, clock skew and changed addresses.
import { merge, type Interval } from './timeline.ts';
import { Rng } from './rng.ts';
import type { Component } from './cluster.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export interface Scenario {
  seed: number;
  nodes: number;
  days: number;
  /** The simulated year starts here (true time, ms since the epoch). */
  start: number;
  /** requestedLifetime: spec.expirationSeconds of every CSR. */
  lifetimeMs: number;
  /** recheckInterval of the simulated nodes (see the README for why it is longer than the default). */
  recheckMs: number;
  /** Nodes join during this long at the start (a new cluster's first bootstrap). */
  joinSpreadMs: number;
  /** Outage lengths per component; each starts at a random time. */
  outages: Record<Component, number[]>;
  /** Share of nodes powered off once, and for how long (uniform in this range). */
  powerOff: { share: number; minMs: number; maxMs: number };
  /** Share of nodes whose disk fills up once, and for how long (log-uniform in this range). */
  diskFull: { share: number; minMs: number; maxMs: number };
  /** Clock skew: σ of the normal skew every node has, and the share with a larger one (within / beyond tolerance). */
  skew: {
    sigmaMs: number;
    smallShare: number;
    smallMaxMs: number;
    badShare: number;
    badMinMs: number;
    badMaxMs: number;
  };
  /** Share of nodes whose InternalIP changes once (a new serving certificate is needed). */
  addressChangeShare: number;
}

export const DEFAULT_SCENARIO: Scenario = {
  seed: 1,
  nodes: 10_000,
  days: 365,
  start: Date.UTC(2030, 0, 1),
  lifetimeMs: 30 * DAY,
  recheckMs: 12 * HOUR,
  joinSpreadMs: 10 * MINUTE,
  outages: {
    api: [24 * HOUR, 4 * HOUR, HOUR, 20 * MINUTE, 5 * MINUTE],
    approver: [24 * HOUR, 6 * HOUR, HOUR],
    controllerManager: [12 * HOUR, 2 * HOUR],
  },
  powerOff: { share: 0.03, minMs: DAY, maxMs: 42 * DAY },
  diskFull: { share: 0.01, minMs: HOUR, maxMs: 7 * DAY },
  skew: {
    sigmaMs: 20_000,
    smallShare: 0.01,
    smallMaxMs: 4 * MINUTE,
    badShare: 0.002,
    badMinMs: 10 * MINUTE,
    badMaxMs: 20 * MINUTE,
  },
  addressChangeShare: 0.02,
};

export interface NodeTrace {
  name: string;
  joinAt: number;
  skewMs: number;
  off: Interval[];
  diskFull: Interval[];
  /** When the Node's InternalIP changes, if it does. */
  addressChangeAt?: number;
}

export interface Trace {
  outages: Record<Component, Interval[]>;
  nodes: NodeTrace[];
}

/** Outages start after the first week and end a week before the end, so every one is followed and seen. */
export function drawTrace(s: Scenario): Trace {
  const rng = new Rng(s.seed, 0x7ace);
  const end = s.start + s.days * DAY;
  const window = (length: number) => {
    const from = s.start + Math.min(7 * DAY, (s.days * DAY) / 4);
    const to = Math.max(from, end - Math.min(7 * DAY, (s.days * DAY) / 4) - length);
    const start = Math.round(rng.between(from, to));
    return { start, end: start + length };
  };
  const outages = Object.fromEntries(
    (Object.keys(s.outages) as Component[]).map((c) => [c, merge(s.outages[c].map(window))]),
  ) as Record<Component, Interval[]>;
  const nodes: NodeTrace[] = [];
  for (let i = 0; i < s.nodes; i++) {
    const node: NodeTrace = {
      name: `node-${String(i).padStart(5, '0')}`,
      joinAt: s.start + Math.round(rng.between(0, s.joinSpreadMs)),
      skewMs: Math.round(rng.normal() * s.skew.sigmaMs),
      off: [],
      diskFull: [],
    };
    if (rng.chance(s.skew.smallShare)) node.skewMs = Math.round(rng.between(-1, 1) * s.skew.smallMaxMs);
    else if (rng.chance(s.skew.badShare)) node.skewMs = -Math.round(rng.between(s.skew.badMinMs, s.skew.badMaxMs));
    if (rng.chance(s.powerOff.share)) {
      const at = rng.between(s.start + DAY, end);
      node.off.push({ start: Math.round(at), end: Math.round(at + rng.between(s.powerOff.minMs, s.powerOff.maxMs)) });
    }
    if (rng.chance(s.diskFull.share)) {
      const at = rng.between(s.start + DAY, end);
      const length = s.diskFull.minMs * (s.diskFull.maxMs / s.diskFull.minMs) ** rng.next();
      node.diskFull.push({ start: Math.round(at), end: Math.round(at + length) });
    }
    if (rng.chance(s.addressChangeShare)) node.addressChangeAt = Math.round(rng.between(s.start + DAY, end));
    nodes.push(node);
  }
  return { outages, nodes };
}

/** The Node's addresses before and after its change. */
export function addressesOf(index: number, name: string, changed: boolean): Array<{ type: string; address: string }> {
  const ip = `10.${changed ? 200 : 100}.${index >> 8}.${index & 255}`;
  return [
    { type: 'InternalIP', address: ip },
    { type: 'Hostname', address: name },
  ];
}
