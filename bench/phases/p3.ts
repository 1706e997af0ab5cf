// P3: idle RSS, CPU and API requests of `nodecred run` (each build) against a bare node process.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { describeRequests } from '../lib/audit.ts';
import { ratio, round } from '../lib/stats.ts';
import { run, start, sampleProc, CLK_TCK, type ProcSample, type Background } from '../lib/proc.ts';
import { createTokens, writeBootstrapKubeconfig, uniq, type Token } from '../lib/cluster.ts';
import { type Ctx, NODE, NODECRED, mib, ms, progress, rotate, row, sleepUntil } from '../lib/bench-context.ts';
import { BUNDLES, FLOW_LABEL } from '../lib/flows.ts';

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

export async function startDaemon(
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

export async function p3(ctx: Ctx): Promise<void> {
  const seconds = ctx.opts.idleSeconds;
  const builds = `${BUNDLES.nodecred ? ', bundle' : ''}${BUNDLES.sea ? ', single executable' : ''}`;
  progress(
    `P3: idle ${seconds} s — nodecred run (unprobed), nodecred run (/readyz probed every 5 s)${builds}, ` +
      'bare node, sampled together',
  );
  const tokens = await createTokens(ctx.admin, 4);
  // bin/nodecred keeps `run`'s compiled modules in its compile cache from its first start on (bench/README.md
  // P3); a cold cache would measure the TypeScript stripper, which only that first start holds.
  await run(NODECRED, ['run', '--help'], { timeoutMs: 120_000 });
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
