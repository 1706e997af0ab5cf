// P5 baseline: a bare driver with the same client library creating N node client CSRs (distinct keys and
// names) as fast as it can and waiting, through ONE watch on a label, until all are issued. No files, no
// verification. Same concurrency gate and retry backoff as the manager storm.
//
//   node bench/storm/driver-storm.ts --bootstrap-kubeconfig F --count N --prefix P [--concurrency C] [--timeout-ms T]
import { generateKeyPair, webcrypto, createPublicKey, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { performance } from 'node:perf_hooks';
import { x509 } from '../../test/helpers/x509.ts';
import { KubeConfig, CertificatesV1Api, Watch, type V1CertificateSigningRequest } from '@kubernetes/client-node';
import { arg, Gate, peakRssKiB, report, Attempts } from './common.ts';
import { exitOnUncaught } from '../../src/cli/exit.ts';

// One line and a documented exit code for any failure, never a stack trace (src/cli/exit.ts).
exitOnUncaught('driver-storm');

const bootstrapKubeconfig = arg('--bootstrap-kubeconfig');
const count = Number(arg('--count'));
const prefix = arg('--prefix');
const concurrency = Number(arg('--concurrency', String(count)));
const timeoutMs = Number(arg('--timeout-ms', '600000'));

const kc = new KubeConfig();
kc.loadFromFile(bootstrapKubeconfig);
const api = kc.makeApiClient(CertificatesV1Api);
const label = `bench-storm=${prefix}`;
const gen = promisify(generateKeyPair);
const alg = { name: 'ECDSA', namedCurve: 'P-256' };

const gate = new Gate(concurrency);
const perNodeMs: number[] = [];
const attempts = new Attempts();
/** CSR name → resolve when issued. */
const waiters = new Map<string, () => void>();
const issued = new Set<string>();

const cpu0 = process.cpuUsage();
const startedAt = Date.now();
const t0 = performance.now();
const deadline = startedAt + timeoutMs;

function markIssued(o: V1CertificateSigningRequest): void {
  const name = o.metadata?.name;
  if (!name || issued.has(name) || !(typeof o.status?.certificate === 'string' && o.status.certificate.length > 0))
    return;
  issued.add(name);
  waiters.get(name)?.();
}

// One watch for the whole storm, re-listed and re-opened when the server closes it (bounded).
let stopWatching = false;
let controller: AbortController | undefined;
async function watchLoop(): Promise<void> {
  for (let round = 0; round < 1000 && !stopWatching && Date.now() < deadline; round++) {
    const list = await api.listCertificateSigningRequest({ labelSelector: label });
    for (const o of list.items) markIssued(o);
    await new Promise<void>((resolve) => {
      new Watch(kc)
        .watch(
          '/apis/certificates.k8s.io/v1/certificatesigningrequests',
          { labelSelector: label, resourceVersion: list.metadata?.resourceVersion ?? '', timeoutSeconds: 60 },
          (type: string, o: V1CertificateSigningRequest) => {
            if (type === 'ADDED' || type === 'MODIFIED') markIssued(o);
          },
          () => resolve(),
        )
        .then(
          (c) => (controller = c),
          () => resolve(),
        );
    });
  }
}
const watching = watchLoop();

async function node(i: number): Promise<void> {
  const name = `${prefix}-${i}`;
  await gate.run(async () => {
    const { privateKey } = (await gen('ec', { namedCurve: 'P-256' })) as { privateKey: KeyObject };
    const csr = await x509.Pkcs10CertificateRequestGenerator.create(
      {
        name: [{ O: ['system:nodes'] }, { CN: [`system:node:${name}`] }],
        keys: {
          privateKey: privateKey.toCryptoKey(alg, false, ['sign']),
          publicKey: createPublicKey(privateKey).toCryptoKey(alg, true, ['verify']),
        },
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      },
      webcrypto,
    );
    const done = new Promise<void>((r) => waiters.set(name, r));
    if (issued.has(name)) waiters.get(name)!();
    const created = await attempts.untilDone(name, deadline, async () => {
      try {
        await api.createCertificateSigningRequest({
          body: {
            apiVersion: 'certificates.k8s.io/v1',
            kind: 'CertificateSigningRequest',
            metadata: { name, labels: { 'bench-storm': prefix } },
            spec: {
              request: Buffer.from(csr.toString('pem')).toString('base64'),
              signerName: 'kubernetes.io/kube-apiserver-client-kubelet',
              usages: ['digital signature', 'client auth'],
            },
          },
        });
      } catch (err) {
        if ((err as { code?: number }).code !== 409) throw err; // 409: a retried create that had gone through
      }
    });
    if (!created) return;
    const left = deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      done.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(0, left)))),
    ]);
    clearTimeout(timer);
    if (ok) perNodeMs.push(performance.now() - t0);
    else attempts.nodesNotDone++;
  });
}

await Promise.all(Array.from({ length: count }, (_, i) => node(i)));
const allDoneMs = performance.now() - t0;
stopWatching = true;
controller?.abort();
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
void watching;
process.exit(0);
