// P6 approver throughput and latency, on a control plane of its own, against two baselines measured in
// the same run:
//  - bare: bench/baselines/bare-approver.ts, approve every pending kubelet-serving CSR with no checks;
//  - kcm: kube-controller-manager's own csrapproving controller (a SubjectAccessReview per node-client CSR),
//    deciding client-certificate renewals from the same N node identities.
// Burst rounds: N nodes each create one CSR at once (20 in flight); rounds alternate bare/nodecred (ABBA),
// and KCM's round follows each pair. Paced rounds: CSRs arrive at the signer's own pace (certificates issued
// per second, measured in the burst rounds), the situation in which a decision should take milliseconds.
// `nodecred approve` runs with every check on: strict request reading, name policy (allowedCidrs), other
// Nodes' claims, the API server's names, SubjectAccessReview, Events.
// Usage: node bench/approver.ts [--nodes 1000] [--rounds 1] [--paced 200]
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';
import { up, down, type ClusterState } from '../scripts/lib/local-cluster.ts';
import { admin as adminClients, ensureBootstrapRbac } from './lib/cluster.ts';
import { clientCsr, makeNodes, NODE_NETWORK, servingCsr } from './lib/node-identities.ts';
import { runRound, type RoundResult } from './lib/p6-round.ts';
import { ratio, round, summarize } from './lib/stats.ts';
import { exitOnUncaught } from '../src/cli/exit.ts';

// One line and a documented exit code for any failure, never a stack trace (src/cli/exit.ts).
exitOnUncaught('bench');

const REPO = resolve(import.meta.dirname, '..');
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('--nodes', 1000);
const ROUNDS = arg('--rounds', 1);
const PACED = Math.min(N, arg('--paced', 200));
const SERVING = 'kubernetes.io/kubelet-serving';
const CLIENT = 'kubernetes.io/kube-apiserver-client-kubelet';
/** The goals of issue 11 (P6). */
const GOALS = { vsBare: 0.9, vsKcm: 5, pacedP50Ms: 50 };

/** Starts a process and resolves with it and the first line of its stdout that matches `ready`. */
function startUntil(cmd: string, args: string[], ready: RegExp): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((res, rej) => {
    createInterface(child.stdout!).on('line', (line) => {
      if (ready.test(line)) res({ child, line });
    });
    child.on('exit', (code) => rej(new Error(`${cmd} exited ${code} before it was ready`)));
  });
}

/** Median; for an even number, the mean of the middle two. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function summary(rs: RoundResult[]) {
  const m = (f: (r: RoundResult) => number) => round(median(rs.map(f)));
  return {
    decisionsPerSecond: m((r) => r.decisionsPerSecond),
    p50Ms: m((r) => r.latencyMs.p50),
    p95Ms: m((r) => r.latencyMs.p95),
    sentP50Ms: m((r) => r.fromSentMs.p50),
    sentP95Ms: m((r) => r.fromSentMs.p95),
    issuedPerSecond: m((r) => r.issuedPerSecond),
    approved: rs[0]!.approved,
    denied: rs[0]!.denied,
  };
}

const dir = await mkdtemp(join(tmpdir(), 'nodecred-bench-p6-'));
let state: ClusterState | undefined;
try {
  process.stderr.write(`P6: starting a control plane, ${N} Nodes and node identities\n`);
  state = await up({ dir: join(dir, 'cluster'), log: () => {} });
  const s = state;
  const admin = new KubeConfig();
  admin.loadFromFile(s.kubeconfig);
  // kube-controller-manager approves a node's client-certificate renewal only with this binding (kubeadm's).
  await ensureBootstrapRbac(adminClients(s));
  const nodes = await makeNodes(s, admin, randomBytes(2).toString('hex'), N);
  const config = join(dir, 'approver.yaml');
  await writeFile(
    config,
    // "*": each CSR carries the node's own single-label name (bench/lib/node-identities.ts).
    `apiVersion: nodecred.io/v1alpha1\nkind: ApproverConfiguration\n` +
      `allowedCidrs: [${NODE_NETWORK}]\ndnsPatterns: ["*"]\n`,
  );

  // Each arm's round starts once its approver can decide: the bare script once it has listed and watches,
  // nodecred once it holds the Lease and has listed CSRs, Nodes and the API server's names ("caches synced").
  // Until 2026-11-30 nodecred's rounds started at "became leader", so the first paced CSRs waited for its
  // list (≈ 1 s of CSRs left by earlier rounds) and the bare script's did not.
  const bare = async () =>
    (
      await startUntil(
        join(REPO, 'node_modules/.bin/node'),
        [join(REPO, 'bench/baselines/bare-approver.ts'), s.kubeconfig],
        /^ready$/,
      )
    ).child;
  // Collects the approver's own decision time (dequeue → condition written, its log's ms) and its start-up
  // (Lease held → caches synced, with how many CSRs it listed).
  const inside: Record<string, number[]> = {};
  const startup: Record<string, { ms: number; csrs: number }> = {};
  const nodecred = (label: string) => async () => {
    const { child, line } = await startUntil(
      join(REPO, 'bin/nodecred'),
      ['approve', '--kubeconfig', s.kubeconfig, '--config', config, '--metrics-listen', 'off'],
      /"msg":"caches synced; deciding CSRs"/,
    );
    const synced = JSON.parse(line) as { ms: number; csrs: number };
    startup[label] = { ms: synced.ms, csrs: synced.csrs };
    const samples: number[] = [];
    inside[label] = samples;
    createInterface(child.stdout!).on('line', (l) => {
      const m = /"msg":"(?:approved|denied) CSR"/.test(l) ? /"ms":([\d.]+)/.exec(l) : null;
      if (m) samples.push(Number(m[1]));
    });
    return child;
  };
  const serving = { signer: SERVING, nodes, csrFor: servingCsr };
  const results: Record<'bare' | 'nodecred' | 'kcm' | 'pacedBare' | 'pacedNodecred', RoundResult[]> = {
    bare: [],
    nodecred: [],
    kcm: [],
    pacedBare: [],
    pacedNodecred: [],
  };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? (['bare', 'nodecred'] as const) : (['nodecred', 'bare'] as const);
    for (const which of order) {
      process.stderr.write(`P6 round ${r + 1}: ${which}, ${N} serving CSRs at once\n`);
      results[which].push(
        await runRound(admin, {
          ...serving,
          label: which,
          approver: which === 'bare' ? bare : nodecred(`${which}${r}`),
        }),
      );
    }
    process.stderr.write(`P6 round ${r + 1}: kube-controller-manager, ${N} client CSRs at once\n`);
    results.kcm.push(await runRound(admin, { label: 'kcm', signer: CLIENT, nodes, csrFor: clientCsr }));
  }
  // The signer's pace: certificates issued per second while it had a backlog (the serving burst rounds).
  const signerRate = median([...results.bare, ...results.nodecred].map((x) => x.issuedPerSecond));
  const perSecond = Number.isFinite(signerRate) && signerRate > 0 ? signerRate : 10;
  const pacedNodes = nodes.slice(0, PACED);
  for (let r = 0; r < ROUNDS; r++) {
    for (const which of r % 2 === 0
      ? (['pacedBare', 'pacedNodecred'] as const)
      : (['pacedNodecred', 'pacedBare'] as const)) {
      process.stderr.write(`P6 paced round ${r + 1}: ${which}, ${PACED} CSRs at ${perSecond.toFixed(1)}/s\n`);
      results[which].push(
        await runRound(admin, {
          ...serving,
          nodes: pacedNodes,
          label: which.toLowerCase(),
          perSecond,
          approver: which === 'pacedBare' ? bare : nodecred(`${which}${r}`),
        }),
      );
    }
  }

  const t = {
    nodecred: summary(results.nodecred),
    bare: summary(results.bare),
    kcm: summary(results.kcm),
    pacedNodecred: summary(results.pacedNodecred),
    pacedBare: summary(results.pacedBare),
  };
  const insideP50 = (prefix: string) =>
    round(
      median(
        Object.entries(inside)
          .filter(([k]) => k.startsWith(prefix))
          .map(([, v]) => summarize(v).p50),
      ),
    );
  const starts = Object.values(startup);
  const approverMs = {
    burstP50: insideP50('nodecred'),
    pacedP50: insideP50('pacedNodecred'),
    startupMedian: round(median(starts.map((x) => x.ms))),
    startupMax: Math.max(...starts.map((x) => x.ms)),
    startupCsrs: [Math.min(...starts.map((x) => x.csrs)), Math.max(...starts.map((x) => x.csrs))],
  };
  const pacedRounds = [...results.pacedNodecred, ...results.pacedBare];
  const benchLoopDelayMaxMs = Math.max(...pacedRounds.map((x) => x.benchLoopDelayMaxMs));
  const ratios = {
    vsBare: ratio(t.nodecred.decisionsPerSecond, t.bare.decisionsPerSecond),
    vsKcm: ratio(t.nodecred.decisionsPerSecond, t.kcm.decisionsPerSecond),
  };
  const goals = {
    vsBare: (ratios.vsBare ?? 0) >= GOALS.vsBare,
    vsKcm: (ratios.vsKcm ?? 0) >= GOALS.vsKcm,
    pacedP50: t.pacedNodecred.p50Ms <= GOALS.pacedP50Ms,
  };
  const paced = { csrs: PACED, perSecond: round(perSecond) };
  const out = { nodes: N, rounds: ROUNDS, paced, ...t, approverMs, benchLoopDelayMaxMs, ratios, goals, raw: results };
  await mkdir(join(REPO, 'bench/results'), { recursive: true });
  await writeFile(join(REPO, 'bench/results/p6-latest.json'), `${JSON.stringify(out, null, 2)}\n`);
  const met = (ok: boolean, goal: string) => `${ok ? 'met' : 'NOT met'} (goal ${goal})`;
  const ms = (x: { p50Ms: number; p95Ms: number }) => `${x.p50Ms} / ${x.p95Ms} ms`;
  const rows = [
    ['phase', 'figure', 'nodecred approve', 'baseline', 'ratio'],
    ['---', '---', '---', '---', '---'],
    [
      'P6',
      `decisions/s, ${N} serving CSRs at once (median of ${ROUNDS})`,
      t.nodecred.decisionsPerSecond,
      `bare approve-everything script: ${t.bare.decisionsPerSecond}`,
      `${ratios.vsBare}× — ${met(goals.vsBare, `≥ ${GOALS.vsBare}×`)}`,
    ],
    [
      'P6',
      `decisions/s vs kube-controller-manager's csrapproving (${N} client CSRs at once, a SAR each)`,
      t.nodecred.decisionsPerSecond,
      `KCM: ${t.kcm.decisionsPerSecond}`,
      `${ratios.vsKcm}× — ${met(goals.vsKcm, `≥ ${GOALS.vsKcm}×`)}`,
    ],
    [
      'P6',
      'burst: create answered → decision seen, p50 / p95',
      ms(t.nodecred),
      `bare: ${ms(t.bare)}; KCM: ${ms(t.kcm)}`,
      `${ratio(t.nodecred.p50Ms, t.bare.p50Ms)}× (p50 vs bare)`,
    ],
    [
      'P6',
      "burst: create sent → decision seen (the node's view), p50",
      `${t.nodecred.sentP50Ms} ms`,
      `bare: ${t.bare.sentP50Ms} ms`,
      `${ratio(t.nodecred.sentP50Ms, t.bare.sentP50Ms)}×`,
    ],
    [
      'P6',
      `paced at the signer's pace (${paced.perSecond}/s, ${PACED} CSRs): create answered → decision seen, p50 / p95`,
      ms(t.pacedNodecred),
      `bare: ${ms(t.pacedBare)}`,
      met(goals.pacedP50, `p50 ≤ ${GOALS.pacedP50Ms} ms`),
    ],
    [
      'P6',
      "inside the approver: dequeue → condition written (its log's ms), p50 burst / paced",
      `${approverMs.burstP50} / ${approverMs.pacedP50} ms`,
      '',
      '',
    ],
    [
      'P6',
      `approver start-up: Lease held → caches synced (${approverMs.startupCsrs.join('–')} CSRs listed), median / max`,
      `${approverMs.startupMedian} / ${approverMs.startupMax} ms`,
      `this bench's own event-loop delay in the paced rounds, max: ${benchLoopDelayMaxMs} ms`,
      '',
    ],
    [
      'P6',
      'decisions (burst)',
      `${t.nodecred.approved} approved, ${t.nodecred.denied} denied`,
      `KCM: ${t.kcm.approved}`,
      '',
    ],
  ];
  process.stdout.write(`${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n`);
} finally {
  if (state) await down(join(dir, 'cluster')).catch(() => {});
  await rm(dir, { recursive: true, force: true });
}
