// P5: N simultaneous bootstraps through CertificateManager against a bare CSR driver.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describeRequests } from '../lib/audit.ts';
import { summarize, ratio, round, type Summary } from '../lib/stats.ts';
import { run } from '../lib/proc.ts';
import { createTokens, writeBootstrapKubeconfig, uniq } from '../lib/cluster.ts';
import { type Ctx, NODE, REPO, mib, ms, progress, row } from '../lib/bench-context.ts';

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

export async function p5(ctx: Ctx): Promise<void> {
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
      `P5 ${kind.padEnd(7)} ${n} nodes: all done in ${ms(out.allDoneMs)} (${out.failedAttempts} failed attempts, ` +
        `${out.nodesNotDone} not done, ${out.apiRequests} API requests)`,
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
