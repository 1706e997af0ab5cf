// One P6 round: start an approver (or rely on kube-controller-manager's own), have every node create one
// CSR — all at once (20 in flight, as the nodes would) or paced at a fixed rate — and watch for the
// decisions and the certificates. Latency is measured from the create's answer (the approver's share) and
// from sending it (the node's view, 429 retries included).
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { ChildProcess } from 'node:child_process';
import {
  CertificatesV1Api,
  Watch,
  type KubeConfig,
  type V1CertificateSigningRequest,
  type V1CertificateSigningRequestSpec,
} from '@kubernetes/client-node';
import { summarize, type Summary } from './stats.ts';
import { pool, retry, type NodeId } from './node-identities.ts';

interface RoundOptions {
  label: string;
  signer: string;
  nodes: NodeId[];
  csrFor(node: NodeId): Promise<V1CertificateSigningRequestSpec>;
  /** Starts the approver under test; undefined: kube-controller-manager's csrapproving controller decides. */
  approver?: () => Promise<ChildProcess>;
  /** Create the CSRs at this rate instead of all at once. */
  perSecond?: number;
}

export interface RoundResult {
  seconds: number;
  decisionsPerSecond: number;
  latencyMs: Summary;
  fromSentMs: Summary;
  approved: number;
  denied: number;
  /** The signer's pace in this round: certificates issued per second, first to last. */
  issuedPerSecond: number;
  /** The slowest decisions (create answered → decision seen), with when the create was sent in the round. */
  slowest: Array<{ sentAtMs: number; latencyMs: number }>;
  /** This process's longest event-loop delay during the round (it timestamps creates and decisions). */
  benchLoopDelayMaxMs: number;
}

const DEADLINE_MS = 10 * 60_000;
const SLOWEST = 5;

export async function runRound(admin: KubeConfig, o: RoundOptions): Promise<RoundResult> {
  const sent = new Map<string, number>();
  const created = new Map<string, number>();
  const decided = new Map<string, { at: number; type: string }>();
  const issued = new Map<string, number>();
  const prefix = `p6-${o.label}-${randomBytes(2).toString('hex')}-`;
  const specs = await Promise.all(o.nodes.map((n) => o.csrFor(n)));
  const child = o.approver ? await o.approver() : undefined;
  // Decisions are seen on a watch from the current resourceVersion: opened without one, the API server
  // would first replay every CSR of the signer (thousands, left by earlier rounds) as ADDED events, and
  // this process would be parsing them while it timestamps the round's first creates and decisions. A
  // watch the server ends is replaced after a full list (CSRs decided meanwhile carry their conditions).
  let stopped = false;
  let controller: AbortController | undefined;
  const certificates = admin.makeApiClient(CertificatesV1Api);
  const fieldSelector = `spec.signerName=${o.signer}`;
  const onCsr = (csr: V1CertificateSigningRequest) => {
    const name = csr.metadata?.name ?? '';
    if (!name.startsWith(prefix)) return;
    const c = csr.status?.conditions?.find((x) => x.type === 'Approved' || x.type === 'Denied');
    if (c && !decided.has(name)) decided.set(name, { at: performance.now(), type: c.type });
    if (csr.status?.certificate && !issued.has(name)) issued.set(name, performance.now());
  };
  const openWatch = async (full: boolean): Promise<void> => {
    if (stopped) return;
    // limit 1: only the list's resourceVersion is wanted, not the CSRs of earlier rounds.
    const list = await retry(() =>
      certificates.listCertificateSigningRequest({ fieldSelector, ...(full ? {} : { limit: 1 }) }),
    );
    if (full) for (const csr of list.items) onCsr(csr);
    const watch = new Watch(admin);
    (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = 600_000;
    controller = await watch.watch(
      '/apis/certificates.k8s.io/v1/certificatesigningrequests',
      { fieldSelector, resourceVersion: list.metadata?.resourceVersion },
      (_type: string, csr: V1CertificateSigningRequest) => onCsr(csr),
      () => void openWatch(true),
    );
  };
  await openWatch(false);
  // This process's own event-loop delay during the round: a stalled bench would see decisions late.
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const create = async (node: NodeId, i: number) => {
    const name = `${prefix}${i}`;
    sent.set(name, performance.now());
    const asNode = node.kc.makeApiClient(CertificatesV1Api);
    await retry(() => asNode.createCertificateSigningRequest({ body: { metadata: { name }, spec: specs[i]! } }));
    created.set(name, performance.now());
  };
  const t0 = performance.now();
  if (o.perSecond === undefined) await pool(o.nodes, 20, create);
  else {
    const interval = 1000 / o.perSecond;
    await Promise.all(
      o.nodes.map((node, i) => new Promise((r) => setTimeout(r, i * interval)).then(() => create(node, i))),
    );
  }
  const deadline = Date.now() + DEADLINE_MS;
  let reported = Date.now();
  while (decided.size < o.nodes.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    if (Date.now() - reported >= 10_000) {
      reported = Date.now();
      const s = Math.round((performance.now() - t0) / 1000);
      process.stderr.write(`P6 ${o.label}: ${decided.size}/${o.nodes.length} decided after ${s} s\n`);
    }
  }
  stopped = true;
  controller?.abort();
  loop.disable();
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  if (decided.size < o.nodes.length) throw new Error(`${o.label}: only ${decided.size}/${o.nodes.length} decided`);
  const last = Math.max(...[...decided.values()].map((d) => d.at));
  const issuedAt = [...issued.values()];
  const issuedSpan = (Math.max(...issuedAt) - Math.min(...issuedAt)) / 1000;
  return {
    seconds: (last - t0) / 1000,
    decisionsPerSecond: o.nodes.length / ((last - t0) / 1000),
    latencyMs: summarize([...decided].map(([name, d]) => d.at - created.get(name)!)),
    fromSentMs: summarize([...decided].map(([name, d]) => d.at - sent.get(name)!)),
    approved: [...decided.values()].filter((d) => d.type === 'Approved').length,
    denied: [...decided.values()].filter((d) => d.type === 'Denied').length,
    issuedPerSecond: issuedAt.length > 1 && issuedSpan > 0 ? (issuedAt.length - 1) / issuedSpan : NaN,
    slowest: [...decided]
      .map(([name, d]) => ({ sentAtMs: sent.get(name)! - t0, latencyMs: d.at - created.get(name)! }))
      .sort((a, b) => b.latencyMs - a.latencyMs)
      .slice(0, SLOWEST)
      .map((x) => ({ sentAtMs: Math.round(x.sentAtMs), latencyMs: Math.round(x.latencyMs) })),
    benchLoopDelayMaxMs: Math.round(loop.max / 1e6),
  };
}
