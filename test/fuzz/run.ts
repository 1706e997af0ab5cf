// `npm run fuzz`: every target in targets.ts for --runs cases each (default 10,000; 12 targets → 120,000
// cases), reporting cases, time, crashes and the slowest case per target. A crash prints the failing input
// (shrunk by fast-check) and its seed so it can become a regression test. Then the structure-aware CSR
// target against the Go oracle (csr-structure.ts) for 5 × --runs cases; each finding is written to
// test/fuzz/corpus/csr/ as a regression input. Exit 1 on any crash, hang or finding.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { ensureBinary } from '../../scripts/lib/local-cluster.ts';
import { isUserError } from '../../src/errors.ts';
import { fuzzAgainstGo } from './csr-structure.ts';
import { GoOracle } from './go-oracle.ts';
import { TARGETS } from './targets.ts';

export const HANG_MS = 1000;

/** Runs one input: ok when it returns or throws a UserError within HANG_MS. */
export async function check(
  run: (s: string) => unknown,
  input: string,
): Promise<{ ok: boolean; ms: number; error?: unknown }> {
  const started = performance.now();
  try {
    await run(input);
  } catch (error) {
    if (!isUserError(error)) return { ok: false, ms: performance.now() - started, error };
  }
  const ms = performance.now() - started;
  return ms > HANG_MS
    ? { ok: false, ms, error: new Error(`took ${ms.toFixed(0)} ms (hang threshold ${HANG_MS} ms)`) }
    : { ok: true, ms };
}

export async function fuzzTarget(target: (typeof TARGETS)[number], runs: number, seed?: number) {
  let slowest = 0;
  let cases = 0;
  const started = performance.now();
  const result = await fc.check(
    fc.asyncProperty(target.arbitrary, async (input) => {
      cases++;
      const r = await check(target.run, input);
      slowest = Math.max(slowest, r.ms);
      if (!r.ok) throw r.error;
    }),
    { numRuns: runs, ...(seed !== undefined ? { seed } : {}) },
  );
  return {
    name: target.name,
    cases,
    seconds: (performance.now() - started) / 1000,
    slowestMs: slowest,
    failed: result.failed,
    report: result.failed ? fc.defaultReportMessage(result) : undefined,
  };
}

if (import.meta.main) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const runs = Number(arg('--runs') ?? 10_000);
  const seed = arg('--seed') === undefined ? undefined : Number(arg('--seed'));
  let total = 0;
  let crashes = 0;
  process.stdout.write(`fuzzing ${TARGETS.length} targets × ${runs} cases\n`);
  for (const t of TARGETS) {
    const r = await fuzzTarget(t, runs, seed);
    total += r.cases;
    if (r.failed) crashes++;
    process.stdout.write(
      `${r.failed ? 'CRASH' : 'ok   '}  ${r.name.padEnd(44)} ${String(r.cases).padStart(7)} cases  ` +
        `${r.seconds.toFixed(1).padStart(6)} s  slowest ${r.slowestMs.toFixed(1)} ms\n`,
    );
    if (r.report) process.stdout.write(`${r.report}\n`);
  }
  process.stdout.write(`${total} cases, ${crashes} crashing targets, 0 hangs over ${HANG_MS} ms unless listed above\n`);
  const findings = await fuzzCsrAgainstGo(runs * 5, seed ?? Date.now() % 1_000_000);
  process.exit(crashes || findings ? 1 : 0);
}

/** The approver vs Go's signer: returns the number of findings (each saved to the corpus). */
async function fuzzCsrAgainstGo(cases: number, seed: number): Promise<number> {
  const oracle = GoOracle.start(await ensureBinary());
  const s = await fuzzAgainstGo(oracle, cases, seed);
  await oracle.close();
  process.stdout.write(
    `${s.failures.length ? 'FOUND' : 'ok   '}  ${'CSR structure vs Go crypto/x509'.padEnd(44)} ` +
      `${String(s.cases).padStart(7)} cases  ${s.seconds.toFixed(1).padStart(6)} s  ` +
      `${Math.round(s.cases / s.seconds)} cases/s (seed ${seed})\n` +
      `       approved ${s.approved}; read by the approver ${s.approverAccepted}, by Go ${s.goParsed} ` +
      `(by Go only ${s.goOnly}: the approver refuses, fails closed); findings ${s.failures.length}\n`,
  );
  for (const f of s.failures) {
    const file = join(
      import.meta.dirname,
      'corpus/csr',
      `found-${createHash('sha256').update(f.pem).digest('hex').slice(0, 12)}.pem`,
    );
    writeFileSync(file, f.pem);
    process.stdout.write(`  ${file}: ${f.violations.join('; ')}\n`);
  }
  return s.failures.length;
}
