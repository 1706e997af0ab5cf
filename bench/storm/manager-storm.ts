// P5 subject: N simulated nodes bootstrapping at once in one process through nodecred's own
// CertificateManager + CertStore (one of each per node, own cert dir), exactly the code `nodecred
// bootstrap` runs after argument parsing. A failed attempt is retried with the daemon's backoff.
//
//   node bench/storm/manager-storm.ts --bootstrap-kubeconfig F --dir D --count N --prefix P
//        [--concurrency C] [--timeout-ms T]
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createNodeManager } from '../../src/node-manager.ts';
import { CertStore } from '../../src/store/cert-store.ts';
import { silentLogger } from '../../src/log.ts';
import { defaultConfig, type Config } from '../../src/config/schema.ts';
import { arg, Gate, peakRssKiB, report, Attempts } from './common.ts';
import { exitOnUncaught } from '../../src/cli/exit.ts';

// One line and a documented exit code for any failure, never a stack trace (src/cli/exit.ts).
exitOnUncaught('manager-storm');

const bootstrapKubeconfig = arg('--bootstrap-kubeconfig');
const dir = arg('--dir');
const count = Number(arg('--count'));
const prefix = arg('--prefix');
const concurrency = Number(arg('--concurrency', String(count)));
const timeoutMs = Number(arg('--timeout-ms', '600000'));
const log = silentLogger();

const gate = new Gate(concurrency);
const perNodeMs: number[] = [];
const attempts = new Attempts();

const cpu0 = process.cpuUsage();
const startedAt = Date.now();
const t0 = performance.now();
const deadline = startedAt + timeoutMs;

async function node(i: number): Promise<void> {
  const name = `${prefix}-${i}`;
  const config: Config = {
    ...defaultConfig(),
    nodeName: name,
    bootstrapKubeconfig,
    kubeconfig: join(dir, name, 'kubeconfig'),
    certDir: join(dir, name, 'pki'),
    healthListen: '',
    logLevel: 'error',
    timeoutMs,
  };
  await gate.run(async () => {
    const store = new CertStore(config.certDir);
    await store.prepare();
    const manager = createNodeManager({ config, store, log });
    if (await attempts.untilDone(name, deadline, () => manager.ensureClient({ deadline, rotate: false })))
      perNodeMs.push(performance.now() - t0);
  });
}

await Promise.all(Array.from({ length: count }, (_, i) => node(i)));
const allDoneMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
report({
  count,
  concurrency,
  allDoneMs,
  perNodeMs,
  failedAttempts: attempts.failed,
  nodesNotDone: attempts.nodesNotDone,
  firstErrors: attempts.firstErrors,
  startedAt,
  peakRssKiB: peakRssKiB(),
  cpuMs: (cpu.user + cpu.system) / 1000,
});
process.exit(0);
