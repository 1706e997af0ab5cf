// One policy, one shard of the fleet, one simulated year: the cluster, the nodes (nodecred for real, or the
// kubelet model), the trace's events, and the ledger that judges it all. bench/sim/run.ts runs the shards (in
// worker threads when asked) and merges them.
import { performance } from 'node:perf_hooks';
import { isPlaceholder } from '../../src/manager/placeholder.ts';
import { SimCluster, type ClusterParams, type Kind } from './cluster.ts';
import { KubeletNode } from './kubelet.ts';
import { Ledger } from './ledger.ts';
import { SimNode } from './node.ts';
import { Rng } from './rng.ts';
import { Scheduler, SimClock } from './scheduler.ts';
import { addressesOf, type Scenario, type Trace } from './trace.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export type Policy = 'nodecred' | 'kubelet';

export interface ShardRun {
  scenario: Scenario;
  cluster: ClusterParams;
  trace: Trace;
  policy: Policy;
  shard: number;
  shards: number;
  /** Print a line to stderr every 30 simulated days (the CLI; tests stay quiet). */
  progress?: boolean;
}

export interface ShardResult {
  policy: Policy;
  nodes: number;
  /** CPU of the thread that ran the shard (V8's helper threads, garbage collection among them, not included). */
  cpuMs: number;
  wallMs: number;
  timers: number;
  requests: number;
  throttled: number;
  denied: number;
  badIssued: number;
  perMinute: Uint32Array;
  peakSecondOfMinute: Uint16Array;
  herds: Array<{ end: number; perSecond: Uint32Array }>;
  recoveries: number[];
  notRecovered: number;
  installs: number;
  reinstalls: number;
  csrs: number;
  maxCsrsPerRotation: number;
  maxCsrsPerOutage: Record<string, number>;
  expiries: Array<{ node: string; kind: Kind; from: number; to: number; causes: string[] }>;
  badInstalls: Array<{ node: string; kind: Kind; at: number; why: string }>;
  firstReadyMs: number[];
  /** Hourly: powered-on nodes of this shard, and those with both certificates valid. */
  validShare: Float32Array;
  onCount: Uint32Array;
}

/** The shard's share of the control plane's capacity: shards split the fleet and the capacity alike. */
function shardParams(p: ClusterParams, shards: number): ClusterParams {
  return {
    ...p,
    approverRate: p.approverRate / shards,
    controllerRate: p.controllerRate / shards,
    capacityPerSecond: p.capacityPerSecond / shards,
  };
}

export async function runShard(run: ShardRun): Promise<ShardResult> {
  const { scenario: s, trace } = run;
  // This thread's CPU (a shard may run in a worker thread; process.cpuUsage() would count every thread).
  const cpu0 = process.threadCpuUsage();
  const wall0 = performance.now();
  const members = trace.nodes.map((_, i) => i).filter((i) => i % run.shards === run.shard);
  const traces = members.map((i) => trace.nodes[i]!);
  const scheduler = new Scheduler(s.start);
  const ledger = new Ledger({
    nodes: members.length,
    start: s.start,
    days: s.days,
    windowShare: 0.2,
    outages: trace.outages,
  });
  const cluster = new SimCluster({
    scheduler,
    seed: s.seed + run.shard,
    params: shardParams({ ...run.cluster, signingDurationMs: s.lifetimeMs }, run.shards),
    outages: trace.outages,
    nodeNames: traces.map((t) => t.name),
    start: s.start,
    days: s.days,
    isOn: (node) => ledger.on[node] === 1,
  });
  cluster.stats.onCsrCreated = (node, kind) => ledger.csrCreated(node, kind);

  const nodes = traces.map((t, node) => {
    cluster.setAddresses(node, addressesOf(members[node]!, t.name, false));
    if (run.policy === 'kubelet') {
      const clock = new SimClock(scheduler, new Rng(s.seed, members[node]! + 1), t.skewMs);
      return new KubeletNode({ index: node, cluster, clock, ledger, joinedAt: t.joinAt });
    }
    const simNode = new SimNode({
      index: node,
      name: t.name,
      scheduler,
      cluster,
      seed: s.seed,
      skewMs: t.skewMs,
      config: { requestedLifetimeMs: s.lifetimeMs, recheckIntervalMs: s.recheckMs },
    });
    simNode.store.onInstall = (kind, pair) =>
      // The first-boot placeholder (self-signed, until the Node exists) is not a certificate from the cluster.
      isPlaceholder(pair) ||
      ledger.installed(
        node,
        kind,
        scheduler.now,
        cluster.issuedRecord(pair.chainPem),
        pair.certificates[0]!.summary.sha256Fingerprint,
        t.joinAt,
      );
    return simNode;
  });

  const power = (node: number, on: boolean) => {
    ledger.on[node] = on ? 1 : 0;
    if (on) nodes[node]!.powerOn();
    else {
      cluster.stats.forget(node);
      void nodes[node]!.powerOff();
    }
  };
  const setDiskFull = (node: number, full: boolean) => {
    const n = nodes[node]!;
    if (n instanceof SimNode) n.disk.full = full;
    else n.diskFull = full;
  };
  traces.forEach((t, node) => {
    scheduler.at(t.joinAt, () => power(node, true));
    for (const off of t.off) {
      scheduler.at(off.start, () => power(node, false));
      scheduler.at(off.end, () => power(node, true));
    }
    for (const full of t.diskFull) {
      scheduler.at(full.start, () => setDiskFull(node, true));
      scheduler.at(full.end, () => setDiskFull(node, false));
    }
    if (t.addressChangeAt !== undefined) {
      scheduler.at(t.addressChangeAt, () => {
        cluster.setAddresses(node, addressesOf(members[node]!, t.name, true));
        const n = nodes[node]!;
        if (n instanceof KubeletNode) n.addressesChanged();
      });
    }
  });
  const end = s.start + s.days * DAY;
  const onCount = new Uint32Array(s.days * 24);
  for (let t = s.start + HOUR; t <= end; t += HOUR) {
    scheduler.at(t - 1, () => {
      ledger.sample(scheduler.now);
      const hour = Math.floor((scheduler.now - s.start) / HOUR);
      if (hour < onCount.length) onCount[hour] = ledger.on.reduce((a, b) => a + b, 0);
      if ((t - s.start) % DAY === 0) cluster.forgetExpired();
      const day = (t - s.start) / DAY;
      if (run.progress && day % 30 === 0) {
        const used = process.threadCpuUsage(cpu0);
        process.stderr.write(
          `simulate: ${run.policy} shard ${run.shard + 1}/${run.shards}: day ${day} of ${s.days}, ` +
            `${Math.round((used.user + used.system) / 1e6)} s CPU\n`,
        );
      }
    });
  }

  // Error objects are made by the hundred thousand here (every refused request during an outage); their
  // stack traces would be most of the cost and are never read.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    await scheduler.runUntil(end);
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  nodes.forEach((n) => {
    if (n instanceof SimNode) void n.powerOff();
    else n.powerOff();
  });
  await scheduler.settle();

  ledger.close({
    timeline: cluster.timeline,
    off: (node) => traces[node]!.off,
    diskFull: (node) => traces[node]!.diskFull,
    badClock: (node) => Math.abs(traces[node]!.skewMs) > 5 * 60_000,
  });
  const cpu = process.threadCpuUsage(cpu0);
  const name = (node: number) => traces[node]!.name;
  return {
    policy: run.policy,
    nodes: members.length,
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs: performance.now() - wall0,
    timers: scheduler.fired,
    requests: cluster.stats.requests,
    throttled: cluster.stats.throttled,
    denied: cluster.stats.denied,
    badIssued: cluster.stats.badIssued,
    perMinute: cluster.stats.perMinute,
    peakSecondOfMinute: cluster.stats.peakSecondOfMinute,
    herds: cluster.stats.herds,
    recoveries: cluster.stats.recoveries,
    notRecovered: cluster.stats.notRecovered,
    installs: ledger.installs,
    reinstalls: ledger.reinstalls,
    csrs: ledger.csrs,
    maxCsrsPerRotation: ledger.maxCsrsPerRotation,
    maxCsrsPerOutage: Object.fromEntries(ledger.maxCsrsPerOutage),
    expiries: ledger.expiries.map((e) => ({ ...e, node: name(e.node) })),
    badInstalls: ledger.badInstalls.map((b) => ({ ...b, node: name(b.node) })),
    firstReadyMs: [...ledger.firstReady].filter((v) => !Number.isNaN(v)),
    validShare: ledger.validShare,
    onCount,
  };
}
