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
import { mkdtemp, mkdir, writeFile, readFile, rm, open, readdir, rename } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { tmpdir, totalmem, cpus, availableParallelism, loadavg, release } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { request as httpRequest } from 'node:http';
import { up, down, kubectl, freePort, type ClusterState } from '../scripts/lib/local-cluster.ts';
import { kubeletBootstrap } from './baselines/kubelet-bootstrap.ts';
import { AuditLog, describeRequests, type AuditRequest } from './lib/audit.ts';
import { summarize, ratio, round, type Summary } from './lib/stats.ts';
import { run, start, killAll, sampleProc, CLK_TCK, type ProcSample, type Background } from './lib/proc.ts';
import { bundleNodecred } from '../scripts/lib/bundle.ts';
import { buildSingleExecutable } from '../scripts/lib/sea.ts';
import {
  admin as adminClients,
  createTokens,
  ensureBootstrapRbac,
  writeBootstrapKubeconfig,
  uniq,
  type Admin,
  type Token,
} from './lib/cluster.ts';
import { CertStore } from '../src/store/cert-store.ts';
import { writeFileAtomic } from '../src/store/atomic.ts';
import { renderNodeKubeconfig } from '../src/kube/kubeconfig-render.ts';

const REPO = resolve(import.meta.dirname, '..');
const NODE = join(REPO, 'node_modules/.bin/node');
const NODECRED = join(REPO, 'bin/nodecred');
const FLOOR = join(REPO, 'bench/baselines/floor.ts');
const SHELL = join(REPO, 'bench/baselines/poll-shell.sh');
const RESULTS = join(REPO, 'bench/results');
const PHASES = ['P1', 'P2', 'P3', 'P4', 'P5'] as const;
type Phase = (typeof PHASES)[number];

// ---------------------------------------------------------------------------------------------- options

interface Options {
  only: Set<Phase>;
  quick: boolean;
  p1Runs: number;
  idleSeconds: number;
  rotations: number;
  installs: number;
  stormNodes: number;
  stormConcurrency: number;
  stormRounds: number;
  keepTmp: boolean;
  noBundle: boolean;
}

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

// -------------------------------------------------------------------------------------------- utilities

const progress = (s: string) => process.stderr.write(`bench: ${s}\n`);
const ms = (v: number) => (Number.isFinite(v) ? `${Math.round(v)} ms` : 'n/a');
const mib = (kib: number) => `${round(kib / 1024, 1)} MiB`;

interface LogLine {
  time: number;
  msg: string;
  [k: string]: unknown;
}

function parseLogLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (typeof o.time === 'string' && typeof o.msg === 'string')
        out.push({ ...o, time: Date.parse(o.time), msg: o.msg });
    } catch {
      /* not a log line */
    }
  }
  return out;
}

/** Rotates the list by k: interleaving order changes every iteration so no flow always goes first. */
const rotate = <T>(xs: readonly T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);

const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));

interface Row {
  phase: string;
  figure: string;
  /** Who was measured; default "nodecred". */
  who?: string;
  subject: string;
  baseline: string;
  baselineValue: string;
  ratio: number | null;
  /** For "p50 / p95" rows: the p95 ratio. */
  ratio95?: number | null;
  /** Shown instead of "n/a" when there is no ratio (e.g. a baseline of 0). */
  note?: string;
}

interface Ctx {
  opts: Options;
  state: ClusterState;
  admin: Admin;
  audit: AuditLog;
  tmp: string;
  rows: Row[];
  results: Record<string, unknown>;
  /** Filled by P1 and reused by P2/P4. */
  bootstrapRuns?: FlowRun[];
}

function row(ctx: Ctx, r: Row): void {
  ctx.rows.push(r);
}

// ------------------------------------------------------------------------------ one bootstrap per flow

type Flow = 'nodecred' | 'bundle' | 'sea' | 'floor' | 'floorBundle' | 'shell' | 'kubelet';
/**
 * Besides bin/nodecred (sources run by Node's type stripping), the shipped form: one esbuild bundle as
 * `npm run build` makes it, built from the current sources into the run's temp dir, with the floor script
 * bundled the same way as its like-for-like baseline; for P3 also the single executable (`npm run
 * build:sea`). Set by main() once the bundles are built.
 */
const BUNDLES: { nodecred?: string; floor?: string; sea?: string } = {};
let FLOWS: readonly Flow[] = ['floor', 'shell', 'kubelet', 'nodecred'];
const FLOW_LABEL: Record<Flow, string> = {
  nodecred: 'nodecred (bin/nodecred)',
  bundle: 'nodecred (esbuild bundle)',
  sea: 'nodecred (single executable)',
  floor: 'floor.ts',
  floorBundle: 'floor.ts (esbuild bundle)',
  shell: 'poll-shell.sh',
  kubelet: "kubelet's own TLS bootstrap",
};
/** Which baselines each subject is compared with. */
const COMPARISONS: Array<[Flow, Flow]> = [
  ['nodecred', 'floor'],
  ['nodecred', 'shell'],
  ['bundle', 'floorBundle'],
  ['bundle', 'shell'],
  ['sea', 'floorBundle'],
  ['sea', 'shell'],
  ['nodecred', 'kubelet'],
  ['bundle', 'kubelet'],
  ['sea', 'kubelet'],
];

interface FlowRun {
  flow: Flow;
  iteration: number;
  nodeName: string;
  tokenUser: string;
  startedAt: number;
  wallMs: number;
  csr: string;
  /** When the flow had its files (nodecred: kubeconfig fsynced; shell: files written; floor: certificate seen). */
  filesAt: number;
  /** Process start → first own timestamp (nodecred: first log line; floor: imports done). */
  startupMs?: number;
  issuedAt?: number;
  issuedToFilesMs?: number;
  /** nodecred: when its request returned the certificate (get: response sent; watch: ≈ issuedAt). */
  seenAt?: number;
  seenToFilesMs?: number;
  requests?: number;
  requestKinds?: Record<string, number>;
}

async function runFlow(ctx: Ctx, flow: Flow, token: Token, iteration: number, tag: string): Promise<FlowRun> {
  const nodeName = `${tag}-${flow.slice(0, 2)}-${iteration}-${randomBytes(2).toString('hex')}`;
  const dir = join(ctx.tmp, tag, `${flow}-${iteration}`);
  await mkdir(dir, { recursive: true });
  const bk = await writeBootstrapKubeconfig(join(dir, 'bootstrap.conf'), ctx.state, token.token);
  const base = { flow, iteration, nodeName, tokenUser: token.user };
  if (flow === 'nodecred' || flow === 'bundle' || flow === 'sea') {
    const certDir = join(dir, 'pki');
    const kubeconfig = join(dir, 'kubeconfig');
    const [cmd, pre] =
      flow === 'nodecred' ? [NODECRED, []] : flow === 'sea' ? [BUNDLES.sea!, []] : [NODE, [BUNDLES.nodecred!]];
    const r = await run(
      cmd,
      [
        ...pre,
        'bootstrap',
        '--bootstrap-kubeconfig',
        bk,
        '--node-name',
        nodeName,
        '--cert-dir',
        certDir,
        '--kubeconfig',
        kubeconfig,
        '--log-level',
        'debug',
      ],
      { timeoutMs: 120_000 },
    );
    if (r.code !== 0)
      throw new Error(`${flow} bootstrap exited ${r.code}: ${r.stderr.slice(-800)}${r.stdout.slice(-800)}`);
    const logs = parseLogLines(r.stdout);
    const csr = logs.find((l) => l.msg === 'submitted CSR')?.csr as string | undefined;
    const wrote = logs.find((l) => l.msg === 'wrote node kubeconfig');
    if (!csr || !wrote)
      throw new Error(
        `nodecred bootstrap log lacks 'submitted CSR' or 'wrote node kubeconfig':\n${r.stdout.slice(-1500)}`,
      );
    await verifyNodeKubeconfig(ctx, kubeconfig, nodeName);
    return {
      ...base,
      startedAt: r.startedAt,
      wallMs: r.wallMs,
      csr,
      filesAt: wrote.time,
      startupMs: logs[0]!.time - r.startedAt,
    };
  }
  if (flow === 'kubelet') return { ...base, ...(await kubeletFlow(ctx, dir, nodeName, bk, token)) };
  if (flow === 'floor' || flow === 'floorBundle') {
    const r = await run(
      NODE,
      [flow === 'floor' ? FLOOR : BUNDLES.floor!, '--kubeconfig', bk, '--node-name', nodeName],
      { timeoutMs: 120_000 },
    );
    if (r.code !== 0) throw new Error(`floor exited ${r.code}: ${r.stderr.slice(-800)}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      csr: string;
      importedAt: number;
      issuedSeenAt: number;
    };
    return {
      ...base,
      startedAt: r.startedAt,
      wallMs: r.wallMs,
      csr: out.csr,
      filesAt: out.issuedSeenAt,
      startupMs: out.importedAt - r.startedAt,
    };
  }
  const r = await run('bash', [SHELL], {
    timeoutMs: 180_000,
    env: {
      ...process.env,
      KUBECTL: ctx.state.kubectl,
      BOOTSTRAP_KUBECONFIG: bk,
      NODE_NAME: nodeName,
      OUT_DIR: join(dir, 'out'),
      APISERVER: ctx.state.apiserver,
      CA_FILE: ctx.state.caFile,
    },
  });
  if (r.code !== 0) throw new Error(`poll-shell exited ${r.code}: ${r.stderr.slice(-800)}`);
  const m = /csr=(\S+) done=(\d+)\.(\d+)/.exec(r.stdout);
  if (!m) throw new Error(`poll-shell printed no result: ${r.stdout}`);
  return {
    ...base,
    startedAt: r.startedAt,
    wallMs: r.wallMs,
    csr: m[1]!,
    filesAt: Number(m[2]) * 1000 + Number(`0.${m[3]}`) * 1000,
  };
}

/**
 * The kubelet's own bootstrap (baselines/kubelet-bootstrap.ts). Its figure ends when its kubeconfig appears:
 * it keeps running (to its runtime check), so process exit means nothing. The CSR is found by its requester.
 */
async function kubeletFlow(ctx: Ctx, dir: string, nodeName: string, bk: string, token: Token) {
  const k = await kubeletBootstrap({
    binary: ctx.state.binary,
    dir,
    nodeName,
    bootstrapKubeconfig: bk,
    port: await freePort(),
    timeoutMs: 120_000,
  });
  await verifyNodeKubeconfig(ctx, k.kubeconfig, nodeName);
  const csrs = JSON.parse(await kubectl(ctx.state, ['get', 'csr', '-o', 'json'])) as {
    items: Array<{ metadata: { name: string }; spec: { username: string } }>;
  };
  const csr = csrs.items.find((x) => x.spec.username === token.user)?.metadata.name;
  if (!csr) throw new Error(`no CSR by ${token.user} for the kubelet's bootstrap of ${nodeName}`);
  const wallMs = k.kubeconfigAt - k.startedAt;
  return { startedAt: k.startedAt, wallMs, csr, filesAt: k.kubeconfigAt };
}

/** Outside the timed part: the kubeconfig points at a certificate for this node, issued by the cluster CA. */
async function verifyNodeKubeconfig(ctx: Ctx, kubeconfig: string, nodeName: string): Promise<void> {
  const text = await readFile(kubeconfig, 'utf8');
  const certPath = /client-certificate:\s*(\S+)/.exec(text)?.[1];
  if (!certPath) throw new Error(`${kubeconfig}: no client-certificate`);
  const cert = new X509Certificate(await readFile(certPath));
  const ca = new X509Certificate(await readFile(ctx.state.caFile));
  if (!cert.subject.includes(`CN=system:node:${nodeName}`) || !cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    throw new Error(`${certPath}: not a certificate for ${nodeName} issued by the cluster CA (${cert.subject})`);
  }
}

/** Fills issuedAt / issuedToFilesMs / requests from the audit log. */
async function attachAudit(ctx: Ctx, runs: FlowRun[]): Promise<void> {
  await ctx.audit.waitFor(
    'issuance of every CSR',
    () => (runs.every((r) => ctx.audit.issuedAt(r.csr) !== undefined) ? true : undefined),
    20_000,
  );
  for (const r of runs) {
    r.issuedAt = ctx.audit.issuedAt(r.csr);
    r.issuedToFilesMs = r.issuedAt === undefined ? undefined : r.filesAt - r.issuedAt;
    const reqs = ctx.audit.by(
      [r.tokenUser, `system:node:${r.nodeName}`],
      r.startedAt - 1000,
      r.startedAt + r.wallMs + 1000,
    );
    r.requests = reqs.length;
    r.requestKinds = describeRequests(reqs);
    if ((r.flow === 'nodecred' || r.flow === 'bundle' || r.flow === 'sea') && r.issuedAt !== undefined) {
      // The request that brought the certificate: nodecred re-reads the CSR (get) before it watches.
      const last = reqs
        .filter(
          (q) =>
            q.resource === 'certificatesigningrequests' && (q.verb === 'get' || q.verb === 'watch') && q.code === 200,
        )
        .pop();
      r.seenAt = last?.verb === 'get' ? last.completed : r.issuedAt;
      r.seenToFilesMs = r.filesAt - r.seenAt;
    }
  }
}

/** Interleaved runs of the given flows, order rotated each iteration, one fresh token per run. */
async function interleavedBootstraps(ctx: Ctx, flows: readonly Flow[], n: number, tag: string): Promise<FlowRun[]> {
  const tokens = await createTokens(ctx.admin, n * flows.length);
  const runs: FlowRun[] = [];
  for (let i = 0; i < n; i++) {
    for (const flow of rotate(flows, i % flows.length)) {
      const r = await runFlow(ctx, flow, tokens.pop()!, i, tag);
      runs.push(r);
      progress(`${tag} ${i + 1}/${n} ${flow.padEnd(8)} ${ms(r.wallMs)}`);
    }
  }
  await attachAudit(ctx, runs);
  return runs;
}

const of = (runs: FlowRun[], flow: Flow, f: (r: FlowRun) => number | undefined) =>
  runs
    .filter((r) => r.flow === flow)
    .map(f)
    .filter((v): v is number => typeof v === 'number');

/** Per-iteration ratios subject/baseline (paired: same iteration, adjacent in time). */
function pairedRatios(runs: FlowRun[], subject: Flow, baseline: Flow, f: (r: FlowRun) => number | undefined): Summary {
  const out: number[] = [];
  for (const s of runs.filter((r) => r.flow === subject)) {
    const b = runs.find((r) => r.flow === baseline && r.iteration === s.iteration);
    const sv = f(s);
    const bv = b ? f(b) : undefined;
    if (sv !== undefined && bv !== undefined && bv > 0) out.push(sv / bv);
  }
  return summarize(out);
}

// ------------------------------------------------------------------------------------------------- P1

const pp = (v: Summary) => `${ms(v.p50)} / ${ms(v.p95)}`;
const subjectsOf = () => FLOWS.filter((f) => f === 'nodecred' || f === 'bundle' || f === 'sea');
const comparisons = () => COMPARISONS.filter(([a, b]) => FLOWS.includes(a) && FLOWS.includes(b));

async function p1(ctx: Ctx): Promise<void> {
  progress(`P1: ${ctx.opts.p1Runs} interleaved runs each of ${FLOWS.map((f) => FLOW_LABEL[f]).join(', ')}`);
  const runs = await interleavedBootstraps(ctx, FLOWS, ctx.opts.p1Runs, 'p1');
  ctx.bootstrapRuns = runs;
  const wall = Object.fromEntries(FLOWS.map((f) => [f, summarize(of(runs, f, (r) => r.wallMs))])) as Record<
    Flow,
    Summary
  >;
  const startup = Object.fromEntries(FLOWS.map((f) => [f, summarize(of(runs, f, (r) => r.startupMs))])) as Record<
    Flow,
    Summary
  >;
  const paired = Object.fromEntries(
    comparisons().map(([a, b]) => [`${a}/${b}`, pairedRatios(runs, a, b, (r) => r.wallMs)]),
  );
  ctx.results.P1 = { wallMs: wall, startupMs: startup, pairedRatio: paired, bundles: BUNDLES, runs };
  // The kubelet runs on after its bootstrap, so its figure is start → kubeconfig on disk; so is nodecred's there.
  for (const [a, b] of comparisons().filter(([, b]) => b !== 'kubelet')) {
    row(ctx, {
      phase: 'P1',
      figure: 'bootstrap: process start → verified kubeconfig on disk, p50 / p95',
      who: FLOW_LABEL[a],
      subject: pp(wall[a]),
      baseline: FLOW_LABEL[b],
      baselineValue: pp(wall[b]),
      ratio: ratio(wall[a].p50, wall[b].p50),
      ratio95: ratio(wall[a].p95, wall[b].p95),
    });
  }
  for (const [a, b] of comparisons().filter(([, b]) => b === 'kubelet')) {
    const toKubeconfig = (f: Flow) => summarize(of(runs, f, (r) => r.filesAt - r.startedAt));
    const [sa, sb] = [toKubeconfig(a), toKubeconfig(b)];
    row(ctx, {
      phase: 'P1',
      figure: 'bootstrap: process start → kubeconfig on disk, p50 / p95',
      who: FLOW_LABEL[a],
      subject: pp(sa),
      baseline: `${FLOW_LABEL[b]} (kubelet --bootstrap-kubeconfig, rotateCertificates: false; no fsync)`,
      baselineValue: pp(sb),
      ratio: ratio(sa.p50, sb.p50),
      ratio95: ratio(sa.p95, sb.p95),
    });
  }
  for (const [a, b] of comparisons().filter(([, b]) => b !== 'shell' && b !== 'kubelet')) {
    row(ctx, {
      phase: 'P1',
      figure: 'of which: process start → first own timestamp (node start + imports), p50 / p95',
      who: FLOW_LABEL[a],
      subject: pp(startup[a]),
      baseline: `${FLOW_LABEL[b]}, imports done`,
      baselineValue: pp(startup[b]),
      ratio: ratio(startup[a].p50, startup[b].p50),
      ratio95: ratio(startup[a].p95, startup[b].p95),
    });
  }
}

// ------------------------------------------------------------------------------------------------- P2

async function p2(ctx: Ctx): Promise<void> {
  let runs = ctx.bootstrapRuns;
  if (!runs) {
    const n = ctx.opts.quick ? 3 : 10;
    progress(`P2: ${n} interleaved bootstraps each (no P1 in this run)`);
    runs = await interleavedBootstraps(ctx, FLOWS, n, 'p2');
    ctx.bootstrapRuns = runs;
  }
  const lat = Object.fromEntries(FLOWS.map((f) => [f, summarize(of(runs!, f, (r) => r.issuedToFilesMs))])) as Record<
    Flow,
    Summary
  >;
  const split = Object.fromEntries(
    subjectsOf().map((f) => [
      f,
      {
        getDeliveredRuns: of(runs!, f, (r) => r.seenToFilesMs).length,
        seenToFilesMs: summarize(
          of(runs!, f, (r) => (r.seenAt !== undefined && r.seenAt !== r.issuedAt ? r.seenToFilesMs : undefined)),
        ),
      },
    ]),
  );
  ctx.results.P2 = {
    issuedToFilesMs: lat,
    getDeliveredSplit: split,
    method:
      'issuedAt = stageTimestamp of the signer\'s update of certificatesigningrequests/<name>/status (audit log, µs). nodecred: time of its "wrote node kubeconfig" log line (after the pair, the symlink and the kubeconfig are fsynced; ms). floor: when its watch delivered the certificate (nothing written). shell: `date` after its files are written (no fsync). getDeliveredSplit: only for runs whose certificate came back from a GET (audit gives the response time), filesAt − that response.',
  };
  for (const [a, b] of comparisons()) {
    const bl =
      b === 'shell'
        ? 'poll-shell.sh (1 s poll; files written, no fsync)'
        : b === 'kubelet'
          ? `${FLOW_LABEL[b]} (pair and kubeconfig written, no fsync)`
          : `${FLOW_LABEL[b]} (watch event seen, nothing written)`;
    row(ctx, {
      phase: 'P2',
      figure: 'bootstrap: certificate in the API → files fsynced, p50 / p95',
      who: FLOW_LABEL[a],
      subject: pp(lat[a]),
      baseline: bl,
      baselineValue: pp(lat[b]),
      ratio: ratio(lat[a].p50, lat[b].p50),
      ratio95: ratio(lat[a].p95, lat[b].p95),
    });
  }
  await installMicrobench(ctx);
}

/**
 * In-process: what nodecred does with an issued certificate (CertStore.install: parse/check the pair, write
 * timestamped file + fsync, symlink swap + dir fsync, GC; then the kubeconfig by writeFileAtomic) against
 * two baselines writing the same bytes: plain writeFile, and writeFile + fsync of each file.
 */
async function installMicrobench(ctx: Ctx): Promise<Record<string, Summary>> {
  const n = ctx.opts.installs;
  const dir = join(ctx.tmp, 'p2-install');
  await mkdir(dir, { recursive: true });
  // A real certificate/key pair to install: a self-signed node-like certificate from openssl.
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      '/O=system:nodes/CN=system:node:bench',
      '-days',
      '1',
      '-keyout',
      join(dir, 'k.pem'),
      '-out',
      join(dir, 'c.pem'),
    ],
    { stdio: 'ignore' },
  );
  const chainPem = await readFile(join(dir, 'c.pem'), 'utf8');
  const keyPem = await readFile(join(dir, 'k.pem'), 'utf8');
  const key = createPrivateKey(keyPem);
  const store = new CertStore(join(dir, 'nodecred', 'pki'));
  await store.prepare();
  const kubeconfigPath = join(dir, 'nodecred', 'kubeconfig');
  const caPem = readFileSync(ctx.state.caFile, 'utf8');
  const kubeconfigText = renderNodeKubeconfig({
    server: ctx.state.apiserver,
    caData: caPem,
    certPath: store.currentPath('client'),
    keyPath: store.currentPath('client'),
  });
  const plainDir = join(dir, 'plain');
  const syncDir = join(dir, 'fsync');
  const atomicDir = join(dir, 'atomic');
  for (const d of [plainDir, syncDir, atomicDir]) await mkdir(d, { recursive: true });
  const pairText = chainPem + keyPem;
  const writeSynced = async (path: string, data: string) => {
    const fh = await open(path, 'w', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  };
  // The least a crash-safe writer does: temporary file, fsync, rename over the target, fsync the directory.
  const writeAtomic = async (path: string, data: string) => {
    const temp = `${path}.tmp`;
    await writeSynced(temp, data);
    await rename(temp, path);
    const dh = await open(atomicDir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  };
  const variants: Record<string, (i: number) => Promise<void>> = {
    nodecred: async (i) => {
      // A different second per install: a new timestamped file each time, as real rotations produce.
      await store.install('client', chainPem, key, new Date(Date.UTC(2030, 0, 1) + i * 1000));
      await writeFileAtomic(kubeconfigPath, kubeconfigText, 0o600);
    },
    writeFile: async () => {
      await writeFile(join(plainDir, 'pair.pem'), pairText, { mode: 0o600 });
      await writeFile(join(plainDir, 'kubeconfig'), kubeconfigText, { mode: 0o600 });
    },
    'writeFile+fsync': async () => {
      await writeSynced(join(syncDir, 'pair.pem'), pairText);
      await writeSynced(join(syncDir, 'kubeconfig'), kubeconfigText);
    },
    'atomic (tmp+fsync+rename+dir fsync)': async () => {
      await writeAtomic(join(atomicDir, 'pair.pem'), pairText);
      await writeAtomic(join(atomicDir, 'kubeconfig'), kubeconfigText);
    },
  };
  const names = Object.keys(variants);
  const times: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
  progress(`P2: ${n} interleaved installs each: ${names.join(', ')}`);
  for (let i = 0; i < n; i++) {
    for (const name of rotate(names, i % names.length)) {
      const t0 = performance.now();
      await variants[name]!(i);
      times[name]!.push(performance.now() - t0);
    }
  }
  const left = (await readdir(store.dir)).filter((f) => f.endsWith('.pem')).length;
  const s = Object.fromEntries(names.map((k) => [k, summarize(times[k]!)])) as Record<string, Summary>;
  (ctx.results.P2 as Record<string, unknown>).installMicrobench = { installs: n, ms: s, filesLeftAfterGc: left };
  const pp2 = (v: Summary) => `${round(v.p50, 1)} / ${round(v.p95, 1)} ms`;
  for (const b of names.filter((x) => x !== 'nodecred')) {
    row(ctx, {
      phase: 'P2',
      figure: `in-process, warm: CertStore.install + kubeconfig write (${n}×), p50 / p95`,
      subject: pp2(s.nodecred!),
      baseline: `${b}, same bytes`,
      baselineValue: pp2(s[b]!),
      ratio: ratio(s.nodecred!.p50, s[b]!.p50),
      ratio95: ratio(s.nodecred!.p95, s[b]!.p95),
    });
  }
  return s;
}

// ------------------------------------------------------------------------------------------------- P3

async function writeNodeConfig(
  _ctx: Ctx,
  dir: string,
  nodeName: string,
  bootstrapKubeconfig: string,
  extra: string[] = [],
): Promise<string> {
  const path = join(dir, 'config.yaml');
  await writeFile(
    path,
    [
      'apiVersion: nodecred.io/v1alpha1',
      'kind: NodeCredConfiguration',
      `nodeName: ${nodeName}`,
      `bootstrapKubeconfig: ${bootstrapKubeconfig}`,
      `kubeconfig: ${join(dir, 'kubeconfig')}`,
      `certDir: ${join(dir, 'pki')}`,
      // Port 0: no clash with anything else on this machine; the daemon logs the port it got.
      'healthListen: 127.0.0.1:0',
      'logLevel: debug',
      ...extra,
      '',
    ].join('\n'),
  );
  return path;
}

type Build = 'sources' | 'bundle' | 'sea';

async function startDaemon(
  ctx: Ctx,
  tag: string,
  token: Token,
  extra: string[] = [],
  build: Build = 'sources',
): Promise<{ d: Background; nodeName: string; dir: string }> {
  const nodeName = uniq(tag);
  const dir = join(ctx.tmp, nodeName);
  await mkdir(dir, { recursive: true });
  const bk = await writeBootstrapKubeconfig(join(dir, 'bootstrap.conf'), ctx.state, token.token);
  const config = await writeNodeConfig(ctx, dir, nodeName, bk, extra);
  const args = ['run', '--config', config];
  const d =
    build === 'bundle'
      ? start(NODE, [BUNDLES.nodecred!, ...args])
      : build === 'sea'
        ? start(BUNDLES.sea!, args)
        : start(NODECRED, args);
  return { d, nodeName, dir };
}

function httpGetLocal(port: number, path: string): Promise<number> {
  return new Promise((res, rej) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, timeout: 5000 }, (r) => {
      r.resume();
      r.on('end', () => res(r.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end();
  });
}

async function p3(ctx: Ctx): Promise<void> {
  const seconds = ctx.opts.idleSeconds;
  progress(
    `P3: idle ${seconds} s — nodecred run (unprobed), nodecred run (/readyz probed every 5 s)${BUNDLES.nodecred ? ', bundle' : ''}${BUNDLES.sea ? ', single executable' : ''}, bare node, sampled together`,
  );
  const tokens = await createTokens(ctx.admin, 4);
  const daemons: Record<string, { d: Background; nodeName: string; dir: string; token: Token }> = {};
  const bare = start(NODE, ['-e', 'setInterval(() => {}, 1e6)']);
  try {
    daemons.nodecred = { ...(await startDaemon(ctx, 'p3-idle', tokens[0]!)), token: tokens[0]! };
    daemons['nodecred (probed)'] = { ...(await startDaemon(ctx, 'p3-probed', tokens[1]!)), token: tokens[1]! };
    if (BUNDLES.nodecred)
      daemons.bundle = { ...(await startDaemon(ctx, 'p3-bundle', tokens[2]!, [], 'bundle')), token: tokens[2]! };
    if (BUNDLES.sea) daemons.sea = { ...(await startDaemon(ctx, 'p3-sea', tokens[3]!, [], 'sea')), token: tokens[3]! };
    await Promise.all(Object.values(daemons).map((x) => x.d.waitForLine(/credentials in place; ready/, 120_000)));
    const probed = daemons['nodecred (probed)']!;
    const port = Number(
      /"address":"127\.0\.0\.1:(\d+)"/.exec(
        (await probed.d.waitForLine(/health and metrics listening/, 5000)).line,
      )?.[1],
    );
    const procs: Record<string, number> = {
      ...Object.fromEntries(Object.entries(daemons).map(([k, v]) => [k, v.d.pid])),
      'bare node': bare.pid,
    };
    const names = Object.keys(procs);
    const samples: Record<string, ProcSample[]> = Object.fromEntries(names.map((n) => [n, []]));
    const probes: number[] = [];
    const windowStart = Date.now();
    for (let k = 0; k <= seconds; k++) {
      await sleepUntil(windowStart + k * 1000);
      for (const n of rotate(names, k % names.length)) samples[n]!.push(sampleProc(procs[n]!));
      if (k % 5 === 0 && k < seconds) probes.push(await httpGetLocal(port, '/readyz').catch(() => 0));
    }
    const windowEnd = Date.now();
    await Promise.all([...Object.values(daemons).map((x) => x.d.stop()), bare.stop()]);
    await ctx.audit.refresh();
    const per = (n: string) => {
      const s = samples[n]!;
      const first = s[0]!;
      const last = s[s.length - 1]!;
      const mid = s[Math.floor(s.length / 2)]!;
      return {
        rssStartKiB: first.rssKiB,
        rssEndKiB: last.rssKiB,
        rssAnonEndKiB: last.rssAnonKiB,
        rssFileEndKiB: last.rssFileKiB,
        rssMaxKiB: Math.max(...s.map((x) => x.rssKiB)),
        cpuTicks: last.cpuTicks - first.cpuTicks,
        cpuMs: ((last.cpuTicks - first.cpuTicks) * 1000) / CLK_TCK,
        cpuMsSecondHalf: ((last.cpuTicks - mid.cpuTicks) * 1000) / CLK_TCK,
        cpuPercentOfOneCore: ((last.cpuTicks - first.cpuTicks) / CLK_TCK / ((last.at - first.at) / 1000)) * 100,
      };
    };
    const stats = Object.fromEntries(names.map((n) => [n, per(n)])) as Record<string, ReturnType<typeof per>>;
    const requests = Object.fromEntries(
      Object.entries(daemons).map(([k, v]) => {
        const rs = ctx.audit.by([`system:node:${v.nodeName}`, v.token.user], windowStart, windowEnd);
        return [k, { count: rs.length, kinds: describeRequests(rs) }];
      }),
    );
    ctx.results.P3 = {
      idleSeconds: seconds,
      windowStart,
      windowEnd,
      clkTck: CLK_TCK,
      stats,
      apiRequests: requests,
      readyzProbes: probes,
      samples,
    };
    const z = stats['bare node']!;
    const cpuRatio = (ms_: number, base: number): { ratio: number | null; note?: string } =>
      base > 0
        ? { ratio: ratio(ms_, base) }
        : { ratio: null, note: ms_ > 0 ? `≥ ${round(ms_ / (1000 / CLK_TCK), 0)}× (baseline < 1 tick)` : 'both 0' };
    const label = (k: string) =>
      k === 'bundle'
        ? FLOW_LABEL.bundle
        : k === 'sea'
          ? 'nodecred (single executable)'
          : k === 'nodecred'
            ? FLOW_LABEL.nodecred
            : `${FLOW_LABEL.nodecred}, /readyz every 5 s`;
    for (const k of Object.keys(daemons)) {
      const n = stats[k]!;
      row(ctx, {
        phase: 'P3',
        figure: `idle ${seconds} s after bootstrap: RSS at end`,
        who: label(k),
        subject: mib(n.rssEndKiB),
        baseline: 'bare node -e setInterval',
        baselineValue: mib(z.rssEndKiB),
        ratio: ratio(n.rssEndKiB, z.rssEndKiB),
      });
      row(ctx, {
        phase: 'P3',
        figure: 'idle: of which RssAnon (own memory) / RssFile (pages of the binary and files)',
        who: label(k),
        subject: `${mib(n.rssAnonEndKiB)} / ${mib(n.rssFileEndKiB)}`,
        baseline: 'bare node -e setInterval',
        baselineValue: `${mib(z.rssAnonEndKiB)} / ${mib(z.rssFileEndKiB)}`,
        ratio: ratio(n.rssAnonEndKiB, z.rssAnonEndKiB),
      });
      row(ctx, {
        phase: 'P3',
        figure: `idle: CPU utime+stime over the window`,
        who: label(k),
        subject: ms(n.cpuMs),
        baseline: 'bare node -e setInterval',
        baselineValue: ms(z.cpuMs),
        ...cpuRatio(n.cpuMs, z.cpuMs),
      });
    }
    const main = stats.nodecred!;
    row(ctx, {
      phase: 'P3',
      figure: 'idle: RSS max during the window',
      subject: mib(main.rssMaxKiB),
      baseline: 'bare node -e setInterval',
      baselineValue: mib(z.rssMaxKiB),
      ratio: ratio(main.rssMaxKiB, z.rssMaxKiB),
    });
    row(ctx, {
      phase: 'P3',
      figure: 'idle: CPU over the second half of the window',
      subject: ms(main.cpuMsSecondHalf),
      baseline: 'bare node -e setInterval',
      baselineValue: ms(z.cpuMsSecondHalf),
      ...cpuRatio(main.cpuMsSecondHalf, z.cpuMsSecondHalf),
    });
    const expected = Math.ceil(seconds / 30);
    for (const k of Object.keys(daemons)) {
      const probedOne = k === 'nodecred (probed)';
      row(ctx, {
        phase: 'P3',
        figure: `idle: API requests in ${seconds} s (audit, node + bootstrap user)`,
        who: label(k),
        subject: String(requests[k]!.count),
        baseline: probedOne
          ? 'health checks: 1 SelfSubjectReview per 30 s cache'
          : 'goal: nothing due, no health checks → 0',
        baselineValue: String(probedOne ? expected : 0),
        ...(probedOne
          ? { ratio: ratio(requests[k]!.count, expected) }
          : { ratio: null, note: requests[k]!.count === 0 ? 'goal met' : 'goal missed' }),
      });
    }
  } finally {
    await Promise.all([...Object.values(daemons).map((x) => x.d.stop()), bare.stop()]);
  }
}

// ------------------------------------------------------------------------------------------------- P4

async function p4(ctx: Ctx): Promise<void> {
  let runs = ctx.bootstrapRuns;
  if (!runs) {
    const n = ctx.opts.quick ? 1 : 3;
    progress(`P4: ${n} interleaved bootstraps each (no P1 in this run)`);
    runs = await interleavedBootstraps(ctx, FLOWS, n, 'p4');
  }
  const counts = Object.fromEntries(FLOWS.map((f) => [f, summarize(of(runs!, f, (r) => r.requests))])) as Record<
    Flow,
    Summary
  >;
  const kinds = Object.fromEntries(
    FLOWS.map((f) => [f, runs!.filter((r) => r.flow === f).map((r) => r.requestKinds)]),
  ) as Record<Flow, unknown>;

  // Rotation: a daemon whose certificate is due 6–15 s after issuance (lifetime 10 min, window 34–35 %).
  const rotations = ctx.opts.rotations;
  progress(`P4: nodecred run with requestedLifetime 10m, rotation 0.34–0.35: waiting for ${rotations} rotation(s)`);
  const [token] = await createTokens(ctx.admin, 1);
  const d = await startDaemon(ctx, 'p4-rot', token!, ['requestedLifetime: 10m', 'rotation: {from: 0.34, to: 0.35}']);
  const installs: Array<{ at: number; csr: string }> = [];
  try {
    let after = 0;
    for (let k = 0; k <= rotations; k++) {
      const { line, index } = await d.d.waitForLine(/"msg":"installed client certificate"/, 90_000, after);
      after = index + 1;
      const l = parseLogLines(line)[0]!;
      installs.push({ at: l.time, csr: String(l.csr) });
    }
  } finally {
    await d.d.stop();
  }
  const users = [`system:node:${d.nodeName}`, token!.user];
  await ctx.audit.waitFor(
    'issuance of the rotation CSRs',
    () => (installs.every((i) => ctx.audit.issuedAt(i.csr) !== undefined) ? true : undefined),
    20_000,
  );
  const perRotation: Array<{
    requests: number;
    kinds: Record<string, number>;
    issuedToInstalledMs: number | undefined;
    secondsAfterPreviousInstall: number;
  }> = [];
  for (let k = 1; k < installs.length; k++) {
    const rs: AuditRequest[] = ctx.audit.by(users, installs[k - 1]!.at, installs[k]!.at);
    const issued = ctx.audit.issuedAt(installs[k]!.csr);
    perRotation.push({
      requests: rs.length,
      kinds: describeRequests(rs),
      issuedToInstalledMs: issued === undefined ? undefined : installs[k]!.at - issued,
      secondsAfterPreviousInstall: (installs[k]!.at - installs[k - 1]!.at) / 1000,
    });
  }
  const rot = summarize(perRotation.map((r) => r.requests));
  ctx.results.P4 = { bootstrap: { requests: counts, kinds }, rotation: { perRotation, installs } };
  const mr = (v: Summary) => `${v.p50} (${v.min}–${v.max})`;
  row(ctx, {
    phase: 'P4',
    figure: `API requests per bootstrap, median (range) of ${counts.nodecred.n}`,
    subject: mr(counts.nodecred),
    baseline: 'floor.ts (create + watch)',
    baselineValue: mr(counts.floor),
    ratio: ratio(counts.nodecred.p50, counts.floor.p50),
  });
  row(ctx, {
    phase: 'P4',
    figure: `API requests per bootstrap, median (range) of ${counts.nodecred.n}`,
    subject: mr(counts.nodecred),
    baseline: 'poll-shell.sh (kubectl: discovery + create + polls)',
    baselineValue: mr(counts.shell),
    ratio: ratio(counts.nodecred.p50, counts.shell.p50),
  });
  row(ctx, {
    phase: 'P4',
    figure: `API requests per rotation, median (range) of ${perRotation.length}`,
    subject: mr(rot),
    baseline: 'floor.ts, one bootstrap',
    baselineValue: mr(counts.floor),
    ratio: ratio(rot.p50, counts.floor.p50),
  });
  const rotLat = summarize(perRotation.map((r) => r.issuedToInstalledMs ?? NaN));
  (ctx.results.P4 as Record<string, unknown>).rotationIssuedToInstalledMs = rotLat;
  const floorLat = summarize(of(runs, 'floor', (r) => r.issuedToFilesMs));
  row(ctx, {
    phase: 'P2',
    figure: `rotation (nodecred run, warm): certificate in the API → installed, median (range) of ${rotLat.n}`,
    subject: `${ms(rotLat.p50)} (${Math.round(rotLat.min)}–${Math.round(rotLat.max)})`,
    baseline: 'floor.ts (watch event seen), p50',
    baselineValue: ms(floorLat.p50),
    ratio: ratio(rotLat.p50, floorLat.p50),
  });
}

// ------------------------------------------------------------------------------------------------- P5

interface StormOut {
  kind: 'manager' | 'driver';
  round: number;
  tokenUser: string;
  count: number;
  concurrency: number;
  allDoneMs: number;
  perNode: Summary;
  failedAttempts: number;
  nodesNotDone: number;
  firstErrors: string[];
  peakRssKiB: number;
  cpuMs: number;
  wallMs: number;
  startedAt: number;
  apiRequests: number;
  apiRequestKinds: Record<string, number>;
  /** From the audit log: the run's first CSR create → its last CSR issued. */
  apiFirstCreateToLastIssuedMs: number;
  apiLastIssuedAfterStartMs: number;
}

async function p5(ctx: Ctx): Promise<void> {
  const { stormNodes: n, stormConcurrency: c, stormRounds: rounds } = ctx.opts;
  progress(
    `P5: storm of ${n} nodes (concurrency ${c}), ${rounds} round(s), order ABBA: driver, manager, manager, driver…`,
  );
  const order: Array<'driver' | 'manager'> = [];
  for (let r = 0; r < rounds; r++)
    order.push(...(r % 2 === 0 ? (['driver', 'manager'] as const) : (['manager', 'driver'] as const)));
  const tokens = await createTokens(ctx.admin, order.length);
  const outs: StormOut[] = [];
  for (let i = 0; i < order.length; i++) {
    const kind = order[i]!;
    const token = tokens[i]!;
    const prefix = uniq(`p5${kind[0]}${i}`);
    const dir = join(ctx.tmp, prefix);
    await mkdir(dir, { recursive: true });
    const bk = await writeBootstrapKubeconfig(join(dir, 'bootstrap.conf'), ctx.state, token.token);
    const script = join(REPO, 'bench/storm', kind === 'manager' ? 'manager-storm.ts' : 'driver-storm.ts');
    const args = [
      script,
      '--bootstrap-kubeconfig',
      bk,
      '--count',
      String(n),
      '--prefix',
      prefix,
      '--concurrency',
      String(c),
      '--timeout-ms',
      String(900_000),
    ];
    if (kind === 'manager') args.push('--dir', join(dir, 'nodes'));
    const r = await run(NODE, args, { timeoutMs: 960_000 });
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (r.code !== 0 || !line) throw new Error(`${kind} storm exited ${r.code}: ${r.stderr.slice(-1500)}`);
    const res = JSON.parse(line.slice('RESULT '.length)) as {
      allDoneMs: number;
      perNodeMs: number[];
      failedAttempts: number;
      nodesNotDone: number;
      firstErrors: string[];
      peakRssKiB: number;
      cpuMs: number;
      startedAt: number;
      count: number;
      concurrency: number;
    };
    await ctx.audit.refresh();
    const reqs = ctx.audit.by([token.user, ...Array.from({ length: n }, (_, k) => `system:node:${prefix}-${k}`)]);
    const created = new Set(
      reqs.filter((q) => q.verb === 'create' && q.resource === 'certificatesigningrequests').map((q) => q.name),
    );
    await ctx.audit
      .waitFor(
        'issuance of the storm CSRs',
        () => ([...created].every((name) => ctx.audit.issuedAt(name) !== undefined) ? true : undefined),
        30_000,
      )
      .catch(() => undefined);
    const issued = [...created].map((name) => ctx.audit.issuedAt(name)).filter((v): v is number => v !== undefined);
    const firstCreate = Math.min(...reqs.filter((q) => q.verb === 'create').map((q) => q.received));
    const out: StormOut = {
      kind,
      round: i,
      tokenUser: token.user,
      count: res.count,
      concurrency: res.concurrency,
      allDoneMs: res.allDoneMs,
      perNode: summarize(res.perNodeMs),
      failedAttempts: res.failedAttempts,
      nodesNotDone: res.nodesNotDone,
      firstErrors: res.firstErrors,
      peakRssKiB: res.peakRssKiB,
      cpuMs: res.cpuMs,
      wallMs: r.wallMs,
      startedAt: res.startedAt,
      apiRequests: reqs.length,
      apiRequestKinds: describeRequests(reqs),
      apiFirstCreateToLastIssuedMs: Math.max(...issued) - firstCreate,
      apiLastIssuedAfterStartMs: Math.max(...issued) - res.startedAt,
    };
    outs.push(out);
    progress(
      `P5 ${kind.padEnd(7)} ${n} nodes: all done in ${ms(out.allDoneMs)} (${out.failedAttempts} failed attempts, ${out.nodesNotDone} not done, ${out.apiRequests} API requests)`,
    );
    await rm(dir, { recursive: true, force: true });
  }
  const med = (kind: 'manager' | 'driver', f: (o: StormOut) => number) =>
    summarize(outs.filter((o) => o.kind === kind).map(f)).p50;
  const pairs: number[] = [];
  for (let i = 0; i + 1 < outs.length; i += 2) {
    const m = outs.slice(i, i + 2).find((o) => o.kind === 'manager');
    const d = outs.slice(i, i + 2).find((o) => o.kind === 'driver');
    if (m && d) pairs.push(m.allDoneMs / d.allDoneMs);
  }
  ctx.results.P5 = { nodes: n, concurrency: c, rounds, order, runs: outs, pairedRatio: summarize(pairs) };
  const label = `${n} nodes at once${c < n ? ` (≤${c} in flight)` : ''}`;
  row(ctx, {
    phase: 'P5',
    figure: `storm: start → all ${n} certificates (manager: installed; driver: issued)`,
    subject: ms(med('manager', (o) => o.allDoneMs)),
    baseline: `bare CSR driver, ${label}`,
    baselineValue: ms(med('driver', (o) => o.allDoneMs)),
    ratio: ratio(
      med('manager', (o) => o.allDoneMs),
      med('driver', (o) => o.allDoneMs),
    ),
  });
  row(ctx, {
    phase: 'P5',
    figure: 'storm: per-node time to certificate, p95',
    subject: ms(med('manager', (o) => o.perNode.p95)),
    baseline: 'bare CSR driver',
    baselineValue: ms(med('driver', (o) => o.perNode.p95)),
    ratio: ratio(
      med('manager', (o) => o.perNode.p95),
      med('driver', (o) => o.perNode.p95),
    ),
  });
  row(ctx, {
    phase: 'P5',
    figure: 'storm: API side, first create → last issued (audit)',
    subject: ms(med('manager', (o) => o.apiFirstCreateToLastIssuedMs)),
    baseline: 'bare CSR driver',
    baselineValue: ms(med('driver', (o) => o.apiFirstCreateToLastIssuedMs)),
    ratio: ratio(
      med('manager', (o) => o.apiFirstCreateToLastIssuedMs),
      med('driver', (o) => o.apiFirstCreateToLastIssuedMs),
    ),
  });
  row(ctx, {
    phase: 'P5',
    figure: 'storm: API requests per node',
    subject: String(
      round(
        med('manager', (o) => o.apiRequests / o.count),
        2,
      ),
    ),
    baseline: 'bare CSR driver (1 create each + list/watch)',
    baselineValue: String(
      round(
        med('driver', (o) => o.apiRequests / o.count),
        2,
      ),
    ),
    ratio: ratio(
      med('manager', (o) => o.apiRequests / o.count),
      med('driver', (o) => o.apiRequests / o.count),
    ),
  });
  row(ctx, {
    phase: 'P5',
    figure: 'storm: CPU (user+system) of the storm process',
    subject: ms(med('manager', (o) => o.cpuMs)),
    baseline: 'bare CSR driver',
    baselineValue: ms(med('driver', (o) => o.cpuMs)),
    ratio: ratio(
      med('manager', (o) => o.cpuMs),
      med('driver', (o) => o.cpuMs),
    ),
  });
  row(ctx, {
    phase: 'P5',
    figure: 'storm: peak RSS (VmHWM) of the storm process',
    subject: mib(med('manager', (o) => o.peakRssKiB)),
    baseline: 'bare CSR driver',
    baselineValue: mib(med('driver', (o) => o.peakRssKiB)),
    ratio: ratio(
      med('manager', (o) => o.peakRssKiB),
      med('driver', (o) => o.peakRssKiB),
    ),
  });
  row(ctx, {
    phase: 'P5',
    figure: 'storm: failed attempts retried (429 from API priority & fairness etc.)',
    subject: String(med('manager', (o) => o.failedAttempts)),
    baseline: 'bare CSR driver',
    baselineValue: String(med('driver', (o) => o.failedAttempts)),
    ratio: ratio(
      med('manager', (o) => o.failedAttempts),
      med('driver', (o) => o.failedAttempts),
    ),
  });
}

// --------------------------------------------------------------------------------------------- report

function machine(state: ClusterState | undefined, k8sVersion: string | undefined) {
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
    lines.push(
      `| ${r.phase} | ${esc(r.figure)} | ${esc(r.who ?? 'nodecred')} | ${esc(r.subject)} | ${esc(r.baseline)} | ${esc(r.baselineValue)} | ${esc(cell)} |`,
    );
  }
  return lines.join('\n');
}

// ----------------------------------------------------------------------------------------------- main

async function main(): Promise<number> {
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
      try {
        BUNDLES.nodecred = await bundleNodecred(join(REPO, 'src/cli/main.ts'), join(tmp, 'bundle', 'nodecred.mjs'), {
          format: 'esm',
          legalComments: 'none',
        });
        BUNDLES.floor = await bundleNodecred(FLOOR, join(tmp, 'bundle', 'floor.mjs'), {
          format: 'esm',
          legalComments: 'none',
        });
        FLOWS = ['floor', 'floorBundle', 'shell', 'kubelet', 'nodecred', 'bundle'];
        progress(`bundled nodecred and floor.ts with esbuild into ${join(tmp, 'bundle')}`);
        BUNDLES.sea = join(tmp, 'bundle', 'nodecred');
        await buildSingleExecutable(join(REPO, 'src/cli/main.ts'), BUNDLES.sea);
        // A file just written sits in the page cache in large folios, and a process mapping it then counts
        // ~15 MiB more RssFile than for the same file read back from disk, as an installed one is (issue 13).
        execFileSync('dd', [`if=${BUNDLES.sea}`, 'iflag=nocache', 'count=0', 'status=none']);
        FLOWS = [...FLOWS, 'sea'];
        progress(`built the single executable into ${BUNDLES.sea}`);
      } catch (err) {
        progress(`esbuild bundles unavailable, measuring bin/nodecred only: ${(err as Error).message}`);
      }
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
      `Machine: ${m.nproc} cores (${m.cpuModel}), ${m.memoryGiB} GiB RAM, Linux ${m.kernel}, Node ${m.node}, Kubernetes ${m.kubernetes} (local control plane, audit log on)` +
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
  if (!old)
    return `${JSON.stringify({ ...doc, phaseRuns: Object.fromEntries(ran.map((p) => [p, doc.startedAt])) }, null, 1)}\n`;
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
