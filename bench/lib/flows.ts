// One bootstrap per flow (nodecred as sources, bundle or single executable; floor.ts; the polling shell;
// the kubelet's own TLS bootstrap), the interleaving of flows, and their paired comparisons (P1, P2, P4).
import { mkdir, readFile } from 'node:fs/promises';
import { X509Certificate, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { bundleNodecred } from '../../scripts/lib/bundle.ts';
import { buildSingleExecutable } from '../../scripts/lib/sea.ts';
import { kubectl, freePort } from '../../scripts/lib/local-cluster.ts';
import { kubeletBootstrap } from '../baselines/kubelet-bootstrap.ts';
import { describeRequests } from './audit.ts';
import { summarize, type Summary } from './stats.ts';
import { run } from './proc.ts';
import { createTokens, writeBootstrapKubeconfig, type Token } from './cluster.ts';
import { type Ctx, FLOOR, NODE, NODECRED, REPO, SHELL, ms, parseLogLines, progress, rotate } from './bench-context.ts';

export type Flow = 'nodecred' | 'bundle' | 'sea' | 'floor' | 'floorBundle' | 'shell' | 'kubelet';
/**
 * Besides bin/nodecred (sources run by Node's type stripping), the shipped form: one esbuild bundle as
 * `npm run build` makes it, built from the current sources into the run's temp dir, with the floor script
 * bundled the same way as its like-for-like baseline; for P3 also the single executable (`npm run
 * build:sea`). Set by main() once the bundles are built.
 */
export const BUNDLES: { nodecred?: string; floor?: string; sea?: string } = {};
export let FLOWS: readonly Flow[] = ['floor', 'shell', 'kubelet', 'nodecred'];
export const FLOW_LABEL: Record<Flow, string> = {
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

export interface FlowRun {
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
export async function interleavedBootstraps(
  ctx: Ctx,
  flows: readonly Flow[],
  n: number,
  tag: string,
): Promise<FlowRun[]> {
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

export const of = (runs: FlowRun[], flow: Flow, f: (r: FlowRun) => number | undefined) =>
  runs
    .filter((r) => r.flow === flow)
    .map(f)
    .filter((v): v is number => typeof v === 'number');

/** Per-iteration ratios subject/baseline (paired: same iteration, adjacent in time). */
export function pairedRatios(
  runs: FlowRun[],
  subject: Flow,
  baseline: Flow,
  f: (r: FlowRun) => number | undefined,
): Summary {
  const out: number[] = [];
  for (const s of runs.filter((r) => r.flow === subject)) {
    const b = runs.find((r) => r.flow === baseline && r.iteration === s.iteration);
    const sv = f(s);
    const bv = b ? f(b) : undefined;
    if (sv !== undefined && bv !== undefined && bv > 0) out.push(sv / bv);
  }
  return summarize(out);
}

export const pp = (v: Summary) => `${ms(v.p50)} / ${ms(v.p95)}`;
export const subjectsOf = () => FLOWS.filter((f) => f === 'nodecred' || f === 'bundle' || f === 'sea');
export const comparisons = () => COMPARISONS.filter(([a, b]) => FLOWS.includes(a) && FLOWS.includes(b));

/**
 * Builds nodecred and floor.ts as esbuild bundles and nodecred as a single executable into `dir`, and adds
 * their flows; when that fails, the run measures bin/nodecred only.
 */
export async function buildBundles(dir: string): Promise<void> {
  try {
    BUNDLES.nodecred = await bundleNodecred(join(REPO, 'src/cli/main.ts'), join(dir, 'nodecred.mjs'), {
      format: 'esm',
      legalComments: 'none',
    });
    BUNDLES.floor = await bundleNodecred(FLOOR, join(dir, 'floor.mjs'), {
      format: 'esm',
      legalComments: 'none',
    });
    FLOWS = ['floor', 'floorBundle', 'shell', 'kubelet', 'nodecred', 'bundle'];
    progress(`bundled nodecred and floor.ts with esbuild into ${dir}`);
    BUNDLES.sea = join(dir, 'nodecred');
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
