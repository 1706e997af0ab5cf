// P1: bootstrap latency of each nodecred build against its baselines, interleaved (bench/run.ts).
import { summarize, ratio, type Summary } from '../lib/stats.ts';
import { type Ctx, progress, row } from '../lib/bench-context.ts';
import {
  BUNDLES,
  FLOWS,
  FLOW_LABEL,
  type Flow,
  comparisons,
  interleavedBootstraps,
  of,
  pairedRatios,
  pp,
} from '../lib/flows.ts';

export async function p1(ctx: Ctx): Promise<void> {
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
