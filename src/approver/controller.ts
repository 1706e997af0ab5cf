// The approver controller, run only while this instance leads: list + watch kubelet-serving CSRs (a
// Reflector: re-list on every reconnect, so nothing that happened while disconnected is missed), and for
// each pending one gather the facts (the request as Go reads it, the Node and other Nodes' claims from the
// informer, the API server's names, a SubjectAccessReview for the requester), ask the policy, and write
// the answer through the /approval subresource. The Event on the CSR is recorded afterwards, off the
// decision path: the condition already carries the reason and message. The condition's message is what
// the requesting node may read; the log line and the Event carry the detail (which other Node claims a
// name, where a reserved name comes from). Nodes cannot read Events (Node authorization and the default
// RBAC give them create/patch only), so the Event may say it.
//
// Decisions are written with the resourceVersion they were made on: if anyone changed the CSR meanwhile
// (another approver, a human with kubectl) the write fails with 409, and the CSR is re-read and re-judged.
import type { V1CertificateSigningRequest, V1CertificateSigningRequestCondition } from '@kubernetes/client-node';
import { errorLine } from '../errors.ts';
import { statusOf } from '../kube/api.ts';
import type { Logger } from '../log.ts';
import { retryDelayMs } from '../manager/policy.ts';
import { parseStrictCsr } from '../pki/strict-csr.ts';
import { describeApiError, type ApiSource } from './api.ts';
import { ClusterFacts } from './cluster-view.ts';
import { SERVING_SIGNER } from '../kube/csr-name.ts';
import { EventRecorder } from './events.ts';
import type { ApproverMetrics } from './metrics.ts';
import {
  APPROVED_REASON,
  applyAuthorization,
  decideServingCsr,
  inScope,
  nodeNameOf,
  type ApproverPolicy,
  type ClusterView,
  type CsrFacts,
  type Decision,
  type NodeFacts,
} from './policy.ts';
import { WorkQueue } from './queue.ts';
import { Reflector } from './reflector.ts';

const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
const FIELD_SELECTOR = `spec.signerName=${SERVING_SIGNER}`;
const BACKOFF = { initialMs: 500, maxMs: 60_000 };
const MAX_CONFLICT_RETRIES = 3;

interface ControllerOptions {
  source: ApiSource;
  policy: ApproverPolicy;
  log: Logger;
  metrics: ApproverMetrics;
  /** The Lease holder identity: Events name it as reportingInstance. */
  identity: string;
  /** Checked right before every write: a follower never writes a decision. */
  isLeader: () => boolean;
  /** Every watch ends after about this long, and the re-list re-judges CSRs left pending. */
  resyncIntervalMs: number;
  /** Decisions in flight at once (each waits on a SubjectAccessReview and a write). */
  workers?: number;
  random?: () => number;
}

type Csr = V1CertificateSigningRequest;

function isPending(csr: Csr): boolean {
  return !(csr.status?.conditions ?? []).some(
    (c) => ['Approved', 'Denied', 'Failed'].includes(c.type) && c.status === 'True',
  );
}

export class ApprovalController {
  private readonly o: ControllerOptions;
  private readonly cache = new Map<string, Csr>();
  private readonly queue = new WorkQueue();
  /** The last "left pending" outcome announced per CSR, so a resync does not repeat its Event and log line. */
  private readonly announced = new Map<string, string>();
  private readonly failures = new Map<string, number>();
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private readonly random: () => number;
  private readonly csrs: Reflector<Csr>;
  private readonly cluster: ClusterFacts;
  private readonly events: EventRecorder;

  constructor(options: ControllerOptions) {
    this.o = options;
    this.random = options.random ?? Math.random;
    const { source, log, metrics, resyncIntervalMs } = options;
    this.cluster = new ClusterFacts({ source, log, metrics, resyncIntervalMs, random: this.random });
    this.events = new EventRecorder({
      source,
      log,
      identity: options.identity,
      busy: () => this.queue.length > 0,
      failed: (err) => this.failed('event', err),
    });
    this.csrs = new Reflector<Csr>({
      resource: 'csr',
      source,
      log,
      metrics,
      resyncIntervalMs,
      random: this.random,
      list: (c) => c.certificates.listCertificateSigningRequest({ fieldSelector: FIELD_SELECTOR }),
      watchPath: CSR_PATH,
      watchQuery: { fieldSelector: FIELD_SELECTOR },
      replace: (items) => this.replaceCache(items),
      upsert: (csr) => this.observe(csr),
      remove: (csr) => this.forget(csr.metadata?.name ?? ''),
      // Every resync lists again, and each CSR still pending is judged again (a Node may exist by now).
      relistOnTimeout: true,
    });
  }

  /** Runs until `signal` aborts (leadership lost or shutdown); in-flight decisions check it before writing. */
  async run(signal: AbortSignal): Promise<void> {
    const started = performance.now();
    const reflectors = Promise.all([this.csrs.run(signal), this.cluster.run(signal)]);
    // No decision before every Node and the API server's names are known: a claim not yet seen cannot deny.
    // Nor can one be taken before the CSRs are listed; the line below says when deciding starts (after a
    // failover, a list of thousands of CSRs takes a second: CSRs created meanwhile wait for it).
    await Promise.race([
      Promise.all([this.cluster.synced(), this.csrs.synced]),
      new Promise((r) => signal.addEventListener('abort', r, { once: true })),
    ]);
    if (!signal.aborted) {
      const ms = Math.round(performance.now() - started);
      this.o.log.info(
        { csrs: this.cache.size, pending: this.queue.length, nodes: this.cluster.nodeCount, ms },
        'caches synced; deciding CSRs',
      );
    }
    const workers = Array.from({ length: this.o.workers ?? 8 }, () => this.worker(signal));
    try {
      await reflectors;
    } finally {
      for (const t of this.retryTimers) clearTimeout(t);
      this.retryTimers.clear();
      await Promise.all(workers);
      await this.events.drain();
    }
  }

  private replaceCache(items: Csr[]): void {
    const names = new Set(items.map((c) => c.metadata!.name!));
    for (const name of this.cache.keys()) {
      if (!names.has(name)) this.forget(name);
    }
    for (const csr of items) this.observe(csr);
  }

  private observe(csr: Csr): void {
    const name = csr.metadata?.name;
    if (!name) return;
    this.cache.set(name, csr);
    if (isPending(csr)) this.queue.add(name);
    else this.announced.delete(name);
  }

  private forget(name: string): void {
    this.cache.delete(name);
    this.announced.delete(name);
    this.failures.delete(name);
  }

  private async worker(signal: AbortSignal): Promise<void> {
    const { log } = this.o;
    for (;;) {
      const name = await this.queue.get(signal);
      if (name === undefined) return;
      try {
        await this.process(name, signal);
        this.failures.delete(name);
      } catch (err) {
        if (!signal.aborted) {
          const n = this.failures.get(name) ?? 0;
          this.failures.set(name, n + 1);
          const delay = retryDelayMs(n, BACKOFF, this.random);
          log.warn(
            { csr: name, err: errorLine(err, describeApiError), retryInMs: delay },
            'could not decide CSR; will retry',
          );
          const timer = setTimeout(() => {
            this.retryTimers.delete(timer);
            if (!signal.aborted && this.cache.has(name)) this.queue.add(name);
          }, delay);
          this.retryTimers.add(timer);
        }
      } finally {
        this.queue.done(name);
        this.events.pump();
      }
    }
  }

  private async process(name: string, signal: AbortSignal): Promise<void> {
    const { log, metrics, policy } = this.o;
    for (let attempt = 0; attempt <= MAX_CONFLICT_RETRIES; attempt++) {
      const csr = this.cache.get(name);
      if (!csr || !isPending(csr) || signal.aborted || !this.o.isLeader()) return;
      const started = performance.now();
      const ignored = inScope({ signerName: csr.spec.signerName, username: csr.spec.username ?? '' }, policy);
      if (ignored) {
        log.debug({ csr: name, reason: ignored.reason }, 'not ours; leaving it alone');
        return;
      }
      const facts = csrFacts(csr);
      const nodeName = nodeNameOf(facts.username);
      const node = nodeName === undefined ? null : await this.cluster.node(nodeName);
      // Where a slow decision spends its time (the log line carries both): the review, or the write.
      let reviewMs = 0;
      const decision = await decideWithReview(facts, node, policy, this.cluster, async () => {
        const asked = performance.now();
        const answer = await this.review(csr);
        reviewMs = performance.now() - asked;
        return answer;
      });
      if (decision.decision === 'skip') return this.leavePending(csr, decision);
      if (signal.aborted || !this.o.isLeader()) {
        log.info({ csr: name }, 'no longer leader; not writing the decision');
        return;
      }
      const writing = performance.now();
      const written = await this.write(csr, decision);
      const writeMs = performance.now() - writing;
      if (written === 'gone') return this.forget(name);
      if (written === 'conflict') {
        const fresh = await this.readCsr(name);
        if (!fresh) return this.forget(name);
        this.cache.set(name, fresh);
        if (!isPending(fresh)) {
          log.info(
            { csr: name, conditions: (fresh.status?.conditions ?? []).map((c) => c.type) },
            'CSR was decided by someone else meanwhile',
          );
          return;
        }
        continue;
      }
      const reason = decision.decision === 'approve' ? APPROVED_REASON : decision.reason;
      metrics.decisions.inc({ decision: decision.decision, reason });
      const ms = performance.now() - started;
      metrics.decisionDuration.observe({ decision: decision.decision }, ms / 1000);
      const detail = decision.decision === 'approve' ? decision.message : (decision.detail ?? decision.message);
      const tenths = (x: number) => Math.round(x * 10) / 10;
      const times = { ms: tenths(ms), reviewMs: tenths(reviewMs), writeMs: tenths(writeMs) };
      const fields = { csr: name, node: nodeName, reason, detail, ...times };
      if (decision.decision === 'approve') log.info(fields, 'approved CSR');
      else log.warn(fields, 'denied CSR');
      this.events.record(
        csr,
        decision.decision === 'approve' ? 'Normal' : 'Warning',
        reason,
        detail,
        decision.decision === 'approve' ? 'Approve' : 'Deny',
      );
      return;
    }
    throw new Error(`CSR ${name} kept changing under us (${MAX_CONFLICT_RETRIES + 1} conflicts)`);
  }

  private async leavePending(csr: Csr, decision: Extract<Decision, { decision: 'skip' }>): Promise<void> {
    const name = csr.metadata!.name!;
    const detail = decision.detail ?? decision.message;
    const key = `${decision.reason}: ${detail}`;
    if (this.announced.get(name) === key) {
      this.o.log.debug({ csr: name, reason: decision.reason }, 'still leaving CSR pending');
      return;
    }
    this.announced.set(name, key);
    this.o.metrics.decisions.inc({ decision: 'skip', reason: decision.reason });
    this.o.log.info({ csr: name, reason: decision.reason, detail }, 'left CSR pending');
    this.events.record(csr, 'Warning', decision.reason, `left pending: ${detail}`, 'LeavePending');
  }

  private async readCsr(name: string): Promise<Csr | null> {
    const { certificates } = await this.o.source.clients();
    try {
      return await certificates.readCertificateSigningRequest({ name });
    } catch (err) {
      if (statusOf(err) === 404) return null;
      this.failed('csr', err);
      throw err;
    }
  }

  /** May the requester create CSRs? Asked as the requester (user, groups, uid, extra from the CSR's spec). */
  private async review(csr: Csr): Promise<{ allowed: boolean; reason?: string | undefined }> {
    const { authorization } = await this.o.source.clients();
    try {
      const r = await authorization.createSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user: csr.spec.username ?? '',
            groups: csr.spec.groups ?? [],
            ...(csr.spec.uid ? { uid: csr.spec.uid } : {}),
            ...(csr.spec.extra ? { extra: csr.spec.extra } : {}),
            resourceAttributes: {
              group: 'certificates.k8s.io',
              resource: 'certificatesigningrequests',
              verb: 'create',
            },
          },
        },
      });
      return { allowed: r.status?.allowed === true, reason: r.status?.reason };
    } catch (err) {
      this.failed('review', err);
      throw err;
    }
  }

  private async write(
    csr: Csr,
    decision: Extract<Decision, { decision: 'approve' | 'deny' }>,
  ): Promise<'ok' | 'conflict' | 'gone'> {
    const { certificates } = await this.o.source.clients();
    const name = csr.metadata!.name!;
    const condition: V1CertificateSigningRequestCondition = {
      type: decision.decision === 'approve' ? 'Approved' : 'Denied',
      status: 'True',
      reason: decision.decision === 'approve' ? APPROVED_REASON : decision.reason,
      message: decision.message,
      lastUpdateTime: new Date(),
    };
    const body: Csr = {
      ...csr,
      status: { ...(csr.status ?? {}), conditions: [...(csr.status?.conditions ?? []), condition] },
    };
    try {
      this.cache.set(name, await certificates.replaceCertificateSigningRequestApproval({ name, body }));
      return 'ok';
    } catch (err) {
      const status = statusOf(err);
      if (status === 409) return 'conflict';
      if (status === 404) return 'gone';
      this.failed('approval', err);
      throw err;
    }
  }

  private failed(operation: string, err: unknown): void {
    this.o.metrics.apiErrors.inc({ operation });
    this.o.source.noteFailure(err);
  }
}

/**
 * One CSR's decision: the policy; for an approval, the SubjectAccessReview; and, since that review was a
 * round trip during which another Node may have claimed one of the names (or the requester's Node
 * changed), the policy once more on what the cluster view holds now, right before the approval is written.
 * A Node deleted meanwhile is judged as no Node (NodeNotFound, or left pending), never on its facts from before.
 */
export async function decideWithReview(
  facts: CsrFacts,
  node: NodeFacts,
  policy: ApproverPolicy,
  cluster: ClusterView & { node(name: string): Promise<NodeFacts> },
  review: () => Promise<{ allowed: boolean; reason?: string | undefined }>,
): Promise<Decision> {
  const judged = decideServingCsr(facts, node, policy, cluster);
  if (judged.decision !== 'approve') return judged;
  const authorized = applyAuthorization(judged, await review(), facts.username, policy);
  if (authorized.decision !== 'approve' || node === null) return authorized;
  // The cache, or on a miss one GET: a Node the watch dropped is either gone (404) or read fresh.
  return decideServingCsr(facts, await cluster.node(node.name), policy, cluster);
}

/** The policy's view of a CSR: its spec, and its request as Go reads it (or why it is refused). */
function csrFacts(csr: Csr): CsrFacts {
  const parsed = parseStrictCsr(Buffer.from(String(csr.spec.request ?? ''), 'base64'));
  return {
    signerName: csr.spec.signerName,
    username: csr.spec.username ?? '',
    groups: csr.spec.groups ?? [],
    usages: csr.spec.usages ?? [],
    expirationSeconds: csr.spec.expirationSeconds ?? undefined,
    request: parsed.ok ? parsed.csr : { refusal: parsed.reason, message: parsed.message },
  };
}
