// `npm run fuzz`: every target in targets.ts for --runs cases each (default 10,000; 11 targets → 110,000
// cases), reporting cases, time, crashes and the slowest case per target. A crash prints the failing input
// (shrunk by fast-check) and its seed so it can become a regression test. Exit 1 on any crash or hang.
import fc from 'fast-check';
import { isUserError } from '../../src/errors.ts';
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
      `${r.failed ? 'CRASH' : 'ok   '}  ${r.name.padEnd(44)} ${String(r.cases).padStart(7)} cases  ${r.seconds.toFixed(1).padStart(6)} s  slowest ${r.slowestMs.toFixed(1)} ms\n`,
    );
    if (r.report) process.stdout.write(`${r.report}\n`);
  }
  process.stdout.write(`${total} cases, ${crashes} crashing targets, 0 hangs over ${HANG_MS} ms unless listed above\n`);
  process.exit(crashes ? 1 : 0);
}
