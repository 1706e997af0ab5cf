// `npm test`: unit tests, then integration tests against one real control plane started for this run and
// shared by every integration test file (test/helpers/cluster.ts reads NODECRED_TEST_CLUSTER).
// `npm run test:unit`: unit tests only, no control plane. Extra arguments are passed to `node --test`,
// except test files: `npm test -- test/integration/approver.test.ts` runs just those, on a fresh control plane.
import { runMain } from '../src/cli/exit.ts';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { up, down, ensureBinary } from './lib/local-cluster.ts';

const UNIT = 'test/unit/**/*.test.ts';
const INTEGRATION = 'test/integration/**/*.test.ts';

function phase(name: string, startedAt: number): void {
  process.stderr.write(`test: ${name} took ${((Date.now() - startedAt) / 1000).toFixed(1)} s\n`);
}

// Secrets must never reach a log line: the whole suite's output (every test, every daemon log a test
// prints) is scanned for private keys, certificate bodies and bearer tokens (JWTs).
const SECRET_PATTERNS: Array<[string, RegExp]> = [
  ['a private key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/],
  ['a certificate body', /-----BEGIN CERTIFICATE-----/],
  ['a bearer token (JWT)', /eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\./],
];

/** The whole run's deadline: far above a normal run (≈ 8 min), far below CI's 90. */
const SUITE_DEADLINE_MIN = Number(process.env.NODECRED_TEST_DEADLINE_MIN ?? 45);

function nodeTest(patterns: string[], env: NodeJS.ProcessEnv, extra: string[]): Promise<number> {
  // One `node --test` run for all files, so the runner prints one summary for the whole suite. A per-test
  // timeout turns a hung test into a failure instead of eating the CI budget.
  // Not --test-force-exit: with process isolation it can drop the last verdicts of a file, failures
  // included, and still report success (nodejs/node#64833; we saw 3 passing tests vanish). A file that
  // never exits (a leaked handle) is caught by the suite deadline below instead.
  const args = ['--test', '--test-timeout=300000', '--test-reporter=spec', ...extra, ...patterns];
  return new Promise((resolve) => {
    // Its own process group, so the deadline can stop every file and whatever they started.
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env, detached: true });
    let combined = '';
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      process.stderr.write(
        `test: the suite did not finish within ${SUITE_DEADLINE_MIN} min; stopping it. A test file that never exits ` +
          `(a leaked handle: a server, a child process, a timer) is the usual cause; the output above ends where it ` +
          `stuck\n`,
      );
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, SUITE_DEADLINE_MIN * 60_000);
    const tee = (to: NodeJS.WriteStream) => (d: Buffer) => {
      to.write(d);
      combined += d.toString();
    };
    child.stdout.on('data', tee(process.stdout));
    child.stderr.on('data', tee(process.stderr));
    child.on('exit', (code, signal) => {
      clearTimeout(deadline);
      const leaks = SECRET_PATTERNS.filter(([, re]) => re.test(combined)).map(([what]) => what);
      if (leaks.length)
        process.stderr.write(`test: the suite's output contains ${leaks.join(', ')}: secrets must never be printed\n`);
      resolve(leaks.length || timedOut ? 1 : (code ?? (signal ? 1 : 0)));
    });
  });
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const unitOnly = args.includes('--unit');
  const files = args.filter((a) => a.endsWith('.test.ts'));
  const extra = args.filter((a) => a !== '--unit' && !files.includes(a));
  if (unitOnly) return nodeTest(files.length ? files : [UNIT], process.env, extra);

  let started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const deps = spawn(new URL('./install-test-deps', import.meta.url).pathname, [], { stdio: 'inherit' });
    deps.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error('scripts/install-test-deps failed (see above)')),
    );
  });
  phase('test tools (Debian packages)', started);

  started = Date.now();
  const binary = await ensureBinary();
  phase('control-plane build (cached after the first)', started);

  started = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-test-cluster-'));
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await down(dir).catch((err: Error) => process.stderr.write(`test: stopping the control plane: ${err.message}\n`));
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => void stop().then(() => process.exit(130)));
  }
  // The audit log lets integration tests count the API requests a behaviour causes (test/integration/security.test.ts).
  await up({ dir, binary, audit: true, log: (l) => process.stderr.write(`test: ${l}\n`) });
  phase('control-plane start', started);

  started = Date.now();
  const code = await nodeTest(
    files.length ? files : [UNIT, INTEGRATION],
    { ...process.env, NODECRED_TEST_CLUSTER: dir, NODECRED_CLUSTER_BINARY: binary },
    extra,
  );
  phase('tests', started);
  await stop();
  if (code === 0) await rm(dir, { recursive: true, force: true });
  else process.stderr.write(`test: failures; control-plane logs kept in ${join(dir, 'logs')}\n`);
  return code;
}

runMain('test', main, { exit: true });
