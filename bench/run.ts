// nodecred benchmarks (issue 6). One entry point; every figure is a ratio to a baseline measured in the same
// run, interleaved with it, against a real control plane this script starts (with an audit log) and stops.
//
//   node bench/run.ts [--only P1,P3] [--quick] [--storm-nodes N] [--storm-concurrency C] [--storm-rounds R]
//                     [--keep-tmp]
//
// P1 bootstrap latency (nodecred bootstrap vs floor script vs polling shell), P2 issued → files fsynced
// (audit log + nodecred's own log; plus an in-process install microbenchmark), P3 idle RSS/CPU/API requests
// of `nodecred run` vs a bare node process, P4 API requests per bootstrap and per rotation (audit log), P5
// 1,000 simultaneous bootstraps through CertificateManager vs a bare CSR driver.
// Results: bench/results/<timestamp>.json and bench/results/latest.json, and a markdown table on stdout.
import { runMain } from '../src/cli/exit.ts';
import { mkdtemp, mkdir, writeFile, readFile, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir, totalmem, cpus, availableParallelism, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { up, down, kubectl, type ClusterState } from '../scripts/lib/local-cluster.ts';
import { AuditLog } from './lib/audit.ts';
import { round } from './lib/stats.ts';
import { killAll, CLK_TCK } from './lib/proc.ts';
import { admin as adminClients, ensureBootstrapRbac } from './lib/cluster.ts';
import { type Ctx, NODE, type Options, PHASES, type Phase, RESULTS, type Row, progress } from './lib/bench-context.ts';
import { buildBundles } from './lib/flows.ts';
import { p1 } from './phases/p1.ts';
import { p2 } from './phases/p2.ts';
import { p3 } from './phases/p3.ts';
import { p4 } from './phases/p4.ts';
import { p5 } from './phases/p5.ts';

function parseOptions(argv: string[]): Options {
  const value = (name: string) => {
    const i = argv.indexOf(name);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
    return v;
  };
  const num = (name: string, fallback: number) => {
    const v = value(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
    return n;
  };
  const known = new Set([
    '--only',
    '--quick',
    '--storm-nodes',
    '--storm-concurrency',
    '--storm-rounds',
    '--keep-tmp',
    '--no-bundle',
    '--runs',
    '--idle-seconds',
    '--help',
    '-h',
  ]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) continue;
    if (!known.has(a)) throw new Error(`unknown option ${a} (see --help)`);
  }
  const only = value('--only');
  const selected = new Set<Phase>();
  for (const p of (only ?? PHASES.join(','))
    .split(',')
    .map((s) => s.trim().toUpperCase())
    .filter(Boolean)) {
    if (!(PHASES as readonly string[]).includes(p))
      throw new Error(`--only: unknown phase ${p} (use ${PHASES.join(',')})`);
    selected.add(p as Phase);
  }
  const quick = argv.includes('--quick');
  const stormNodes = num('--storm-nodes', quick ? 100 : 1000);
  return {
    only: selected,
    quick,
    p1Runs: num('--runs', quick ? 5 : 20),
    idleSeconds: num('--idle-seconds', quick ? 15 : 60),
    rotations: quick ? 1 : 3,
    installs: quick ? 50 : 200,
    stormNodes,
    stormConcurrency: num('--storm-concurrency', stormNodes),
    stormRounds: num('--storm-rounds', quick ? 2 : 1),
    keepTmp: argv.includes('--keep-tmp'),
    noBundle: argv.includes('--no-bundle'),
  };
}

const HELP = `usage: node bench/run.ts [--only P1,P2,P3,P4,P5] [--quick] [--runs N] [--idle-seconds S]
                         [--storm-nodes N] [--storm-concurrency C] [--storm-rounds R] [--keep-tmp] [--no-bundle]

Starts its own control plane (audit log on) in a temporary directory, runs the selected phases, stops it.
  P1  bootstrap latency: nodecred bootstrap vs floor script vs polling shell vs the kubelet's own TLS
      bootstrap (N runs each, interleaved)
  P2  certificate issued in the API → files fsynced (audit log + nodecred log), install microbenchmark
  P3  idle RSS / CPU / API requests of nodecred run vs a bare node process (S seconds)
  P4  API requests per bootstrap and per rotation (audit log) vs the floor script
  P5  N simultaneous bootstraps through CertificateManager vs a bare CSR driver
Besides bin/nodecred, P1–P3 also measure nodecred bundled with esbuild as \`npm run build\` does (from the
current sources, into the temp dir) against floor.ts bundled the same way, and P3 the single executable
(npm run build:sea); --no-bundle skips both.
--quick: N=5, S=15, 100 storm nodes, 50 installs. Results: bench/results/<timestamp>.json, and latest.json
(with --only, the phases run replace theirs there and the others are kept).
`;

// --------------------------------------------------------------------------------------------- report

export function machine(state: ClusterState | undefined, k8sVersion: string | undefined) {
  let clkTck = CLK_TCK;
  try {
    clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  } catch {
    /* keep the Linux default */
  }
  return {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    kernel: release(),
    node: process.version,
    nodeBinary: NODE,
    kubernetes: k8sVersion ?? 'unknown',
    clkTck,
    apiserver: state?.apiserver,
  };
}

function table(rows: Row[]): string {
  const esc = (s: string) => s.replaceAll('|', '\\|');
  const lines = [
    '| phase | figure | subject | value | baseline | baseline value | ratio |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  const x = (v: number | null | undefined, note?: string) =>
    v === null || v === undefined ? (note ?? 'n/a') : `${v}×`;
  for (const r of rows) {
    const cell = r.ratio95 !== undefined ? `${x(r.ratio)} / ${x(r.ratio95)}` : x(r.ratio, r.note);
    const cells = [r.phase, r.figure, r.who ?? 'nodecred', r.subject, r.baseline, r.baselineValue, cell];
    lines.push(`| ${cells.map(esc).join(' | ')} |`);
  }
  return lines.join('\n');
}

// ----------------------------------------------------------------------------------------------- main

export async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  const opts = parseOptions(argv);
  const tmp = await mkdtemp(join(tmpdir(), 'nodecred-bench-'));
  const clusterDir = join(tmp, 'cluster');
  let state: ClusterState | undefined;
  let stopping = false;
  let cleaning: Promise<void> | undefined;
  // Idempotent: a signal and main's finally may both ask for it.
  const cleanup = () =>
    (cleaning ??= (async () => {
      killAll();
      if (state) await down(clusterDir).catch((err: Error) => progress(`control plane down failed: ${err.message}`));
      if (!opts.keepTmp) await rm(tmp, { recursive: true, force: true });
    })());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      if (stopping) return;
      stopping = true;
      progress(`${sig}: stopping every process started and the control plane`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  const startedAt = new Date();
  try {
    progress(`starting a control plane with audit logging in ${clusterDir}`);
    state = await up({ dir: clusterDir, audit: true, log: (l) => progress(l) });
    const k8s = (JSON.parse(await kubectl(state, ['get', '--raw', '/version'])) as { gitVersion: string }).gitVersion;
    const a = adminClients(state);
    await ensureBootstrapRbac(a);
    const ctx: Ctx = { opts, state, admin: a, audit: new AuditLog(state.auditLog!), tmp, rows: [], results: {} };
    if (!opts.noBundle && (['P1', 'P2', 'P3', 'P4'] as const).some((p) => opts.only.has(p))) {
      await buildBundles(join(tmp, 'bundle'));
    }
    const phaseInfo: Record<string, { seconds: number; loadavgBefore: number[]; loadavgAfter: number[] }> = {};
    const phases: Record<Phase, (c: Ctx) => Promise<void>> = { P1: p1, P2: p2, P3: p3, P4: p4, P5: p5 };
    for (const p of PHASES) {
      if (!opts.only.has(p)) continue;
      const t0 = performance.now();
      const before = loadavg();
      await phases[p](ctx);
      phaseInfo[p] = {
        seconds: round((performance.now() - t0) / 1000, 1),
        loadavgBefore: before.map((v) => round(v, 2)),
        loadavgAfter: loadavg().map((v) => round(v, 2)),
      };
      progress(`${p} done in ${phaseInfo[p].seconds} s (load average ${phaseInfo[p].loadavgAfter.join(' ')})`);
    }
    const m = machine(state, k8s);
    const doc = {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine: m,
      options: { ...opts, only: [...opts.only] },
      phases: phaseInfo,
      rows: ctx.rows,
      results: ctx.results,
    };
    await mkdir(RESULTS, { recursive: true });
    const stamp = startedAt
      .toISOString()
      .replace(/\.\d+Z$/, 'Z')
      .replaceAll(':', '-');
    const text = `${JSON.stringify(doc, null, 1)}\n`;
    await writeFile(join(RESULTS, `${stamp}.json`), text);
    await writeFile(join(RESULTS, 'latest.json'), await mergeIntoLatest(doc, [...opts.only]));
    const header =
      `Machine: ${m.nproc} cores (${m.cpuModel}), ${m.memoryGiB} GiB RAM, Linux ${m.kernel}, Node ${m.node}, ` +
      `Kubernetes ${m.kubernetes} (local control plane, audit log on)` +
      `${opts.quick ? ', --quick' : ''}; load average during the run: ${Object.entries(phaseInfo)
        .map(([p, i]) => `${p} ${i.loadavgAfter[0]}`)
        .join(', ')}`;
    const sorted = [...ctx.rows].sort((x, y) => x.phase.localeCompare(y.phase));
    process.stdout.write(
      `\n${header}\n\n${table(sorted)}\n\nresults: ${join(RESULTS, `${stamp}.json`)} (and latest.json)\n`,
    );
    return 0;
  } finally {
    await cleanup();
  }
}

/**
 * latest.json holds the newest figures of every phase: a run of some phases (--only) replaces those
 * phases' rows and results and keeps the others, noting which run each came from.
 */
async function mergeIntoLatest(
  doc: { startedAt: string; phases: Record<string, unknown>; rows: Row[]; results: Record<string, unknown> } & Record<
    string,
    unknown
  >,
  ran: string[],
): Promise<string> {
  const all = PHASES.every((p) => ran.includes(p));
  const old = all
    ? undefined
    : await readFile(join(RESULTS, 'latest.json'), 'utf8').then(
        (t) => JSON.parse(t) as typeof doc,
        () => undefined,
      );
  if (!old) {
    const phaseRuns = Object.fromEntries(ran.map((p) => [p, doc.startedAt]));
    return `${JSON.stringify({ ...doc, phaseRuns }, null, 1)}\n`;
  }
  const keep = (p: string) => !ran.includes(p);
  const merged = {
    ...doc,
    phases: { ...Object.fromEntries(Object.entries(old.phases).filter(([p]) => keep(p))), ...doc.phases },
    rows: [...old.rows.filter((r) => keep(r.phase)), ...doc.rows],
    results: { ...Object.fromEntries(Object.entries(old.results).filter(([p]) => keep(p))), ...doc.results },
    phaseRuns: {
      ...((old.phaseRuns as Record<string, string> | undefined) ??
        Object.fromEntries(Object.keys(old.phases).map((p) => [p, old.startedAt]))),
      ...Object.fromEntries(ran.map((p) => [p, doc.startedAt])),
    },
  };
  return `${JSON.stringify(merged, null, 1)}\n`;
}

runMain('bench', main, { exit: true });
