// P6 baseline: the least an approver can do — list + watch kubelet-serving CSRs and approve every pending
// one at once, with no checks (no Node lookup, no SubjectAccessReview, no Event, no leader election).
// Usage: node bench/baselines/bare-approver.ts <admin kubeconfig>
import { KubeConfig, CertificatesV1Api, Watch, type V1CertificateSigningRequest } from '@kubernetes/client-node';
import { exitOnUncaught } from '../../src/cli/exit.ts';

// One line and a documented exit code for any failure, never a stack trace (src/cli/exit.ts).
exitOnUncaught('bare-approver');

const kc = new KubeConfig();
kc.loadFromFile(process.argv[2]!);
const certs = kc.makeApiClient(CertificatesV1Api);
const SIGNER = 'kubernetes.io/kubelet-serving';
const seen = new Set<string>();

// No give-up: at 1,000 CSRs a burst of concurrent approvals meets the API server's 429s (priority and
// fairness), and a baseline that dropped CSRs after a few retries stalled the whole benchmark.
async function approve(csr: V1CertificateSigningRequest): Promise<void> {
  const name = csr.metadata!.name!;
  if (seen.has(name) || csr.spec.signerName !== SIGNER || csr.status?.conditions?.length) return;
  seen.add(name);
  for (let attempt = 0; ; attempt++) {
    csr.status = {
      ...(csr.status ?? {}),
      conditions: [
        {
          type: 'Approved',
          status: 'True',
          reason: 'BareApprover',
          message: 'bench baseline',
          lastUpdateTime: new Date(),
        },
      ],
    };
    try {
      await certs.replaceCertificateSigningRequestApproval({ name, body: csr });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * (attempt + 1))));
      const fresh = await certs.readCertificateSigningRequest({ name }).catch(() => undefined);
      if (fresh === undefined) continue;
      if (fresh.status?.conditions?.length) return;
      csr = fresh;
    }
  }
}

// List, then watch from the list's resourceVersion; when the watch ends (server timeout, 410 Gone), list
// again. Long silences between bursts are normal here; client-node's 30 s inactivity abort is not wanted.
let ready = false;
async function listAndWatch(): Promise<void> {
  const list = await certs.listCertificateSigningRequest({ fieldSelector: `spec.signerName=${SIGNER}` });
  for (const csr of list.items) void approve(csr);
  const watch = new Watch(kc);
  (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = 3_600_000;
  await watch.watch(
    '/apis/certificates.k8s.io/v1/certificatesigningrequests',
    {
      fieldSelector: `spec.signerName=${SIGNER}`,
      resourceVersion: list.metadata?.resourceVersion,
      allowWatchBookmarks: true,
    },
    (type: string, obj: V1CertificateSigningRequest) => {
      if (type === 'ADDED' || type === 'MODIFIED') void approve(obj);
    },
    () => {
      setTimeout(() => void listAndWatch().catch(() => process.exit(1)), 200);
    },
  );
  if (!ready) {
    ready = true;
    process.stdout.write('ready\n');
  }
}
await listAndWatch();
