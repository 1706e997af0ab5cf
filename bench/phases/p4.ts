// P4: API requests per bootstrap and per rotation (audit log) against the floor script.
import { describeRequests, type AuditRequest } from '../lib/audit.ts';
import { summarize, ratio, type Summary } from '../lib/stats.ts';
import { createTokens } from '../lib/cluster.ts';
import { type Ctx, ms, parseLogLines, progress, row } from '../lib/bench-context.ts';
import { FLOWS, type Flow, interleavedBootstraps, of } from '../lib/flows.ts';
import { startDaemon } from './p3.ts';

export async function p4(ctx: Ctx): Promise<void> {
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
