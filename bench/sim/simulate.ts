// Running a whole simulation: draw the trace once, run every policy over it shard by shard (in worker
// threads when asked: shards are independent, and their number, not the number of workers, fixes the
// result), merge, check nodecred's invariants, and render the side-by-side table.
import { Worker } from 'node:worker_threads';
import { DEFAULT_CLUSTER, type ClusterParams, type Component } from './cluster.ts';
import type { Interval } from './timeline.ts';
import { runShard, type Policy, type ShardResult, type ShardRun } from './fleet.ts';
import { invariants, summarize, type Invariant, type PolicySummary } from './report.ts';
import { drawTrace, type Scenario } from './trace.ts';

export interface SimulationOptions {
  scenario: Scenario;
  cluster?: ClusterParams;
  policies?: Policy[];
  /** Independent parts of the fleet, each with its share of the control plane; part of the result. */
  shards?: number;
  /** Worker threads running shards in parallel (0: in this thread); does not change the result. */
  workers?: number;
  /** Progress lines on stderr. */
  progress?: boolean;
}

export interface SimulationResult {
  scenario: Omit<Scenario, 'start'> & { start: string };
  cluster: ClusterParams;
  shards: number;
  outages: Record<string, Array<{ day: number; hours: number }>>;
  /** The same outages as true-time intervals (for the plot). */
  outageIntervals: Record<Component, Interval[]>;
  results: PolicySummary[];
  invariants: Invariant[];
}

function inWorker(run: ShardRun): Promise<ShardResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./worker.ts', import.meta.url), { workerData: run });
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => code !== 0 && reject(new Error(`simulation worker exited with ${code}`)));
  });
}

/** Runs `jobs` with at most `parallel` at a time, keeping their order. */
async function pool<T>(jobs: Array<() => Promise<T>>, parallel: number): Promise<T[]> {
  const results = new Array<T>(jobs.length);
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, parallel) }, async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]!();
    }
  });
  await Promise.all(lanes);
  return results;
}

export async function simulate(o: SimulationOptions): Promise<SimulationResult> {
  const scenario = o.scenario;
  const cluster = o.cluster ?? DEFAULT_CLUSTER;
  const policies = o.policies ?? ['nodecred', 'kubelet'];
  const shards = o.shards ?? 1;
  const trace = drawTrace(scenario);
  const runs = policies.flatMap((policy) =>
    Array.from(
      { length: shards },
      (_, shard): ShardRun => ({ scenario, cluster, trace, policy, shard, shards, progress: o.progress ?? false }),
    ),
  );
  const workers = o.workers ?? 0;
  const done = await pool(
    runs.map((run) => () => (workers > 0 ? inWorker(run) : runShard(run))),
    workers > 0 ? workers : 1,
  );
  const results = policies.map((policy) =>
    summarize(
      policy,
      done.filter((d) => d.policy === policy),
      scenario,
      trace,
    ),
  );
  const nodecred = results.find((r) => r.policy === 'nodecred');
  const DAY = 86_400_000;
  return {
    scenario: { ...scenario, start: new Date(scenario.start).toISOString() },
    cluster,
    shards,
    outages: Object.fromEntries(
      Object.entries(trace.outages).map(([c, list]) => [
        c,
        list.map((i) => ({ day: Math.floor((i.start - scenario.start) / DAY), hours: (i.end - i.start) / 3_600_000 })),
      ]),
    ),
    outageIntervals: trace.outages,
    results,
    invariants: nodecred ? invariants(nodecred) : [],
  };
}
