// P2: certificate issued in the API → files fsynced, and the in-process install microbenchmark.
import { mkdir, writeFile, readFile, open, readdir, rename } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { summarize, ratio, round, type Summary } from '../lib/stats.ts';
import { CertStore } from '../../src/store/cert-store.ts';
import { writeFileAtomic } from '../../src/store/atomic.ts';
import { renderNodeKubeconfig } from '../../src/kube/kubeconfig-render.ts';
import { type Ctx, progress, rotate, row } from '../lib/bench-context.ts';
import { FLOWS, FLOW_LABEL, type Flow, comparisons, interleavedBootstraps, of, pp, subjectsOf } from '../lib/flows.ts';

export async function p2(ctx: Ctx): Promise<void> {
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
    method: [
      "issuedAt = stageTimestamp of the signer's update of certificatesigningrequests/<name>/status (audit log, µs).",
      'nodecred: time of its "wrote node kubeconfig" log line (after the pair, the symlink and the kubeconfig are',
      'fsynced; ms). floor: when its watch delivered the certificate (nothing written). shell: `date` after its',
      'files are written (no fsync). getDeliveredSplit: only for runs whose certificate came back from a GET',
      '(audit gives the response time), filesAt − that response.',
    ].join(' '),
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
