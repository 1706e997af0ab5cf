// The approver controller, run only while this instance leads: list + watch kubelet-serving CSRs (re-list
// on every reconnect, so nothing that happened while disconnected is missed), and for each pending one
// gather the facts (parsed request, the Node's addresses, a SubjectAccessReview for the requester), ask
// the policy, and write the answer through the /approval subresource with an Event on the CSR.
//
// Decisions are written with the resourceVersion they were made on: if anyone changed the CSR meanwhile
// (another approver, a human with kubectl) the write fails with 409, and the CSR is re-read and re-judged.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { V1CertificateSigningRequest, V1CertificateSigningRequestCondition } from '@kubernetes/client-node';
import { isUserError } from '../errors.ts';
import { statusOf } from '../kube/api.ts';
import { idleGuardedWatch } from '../kube/client-node.ts';
import type { Logger } from '../log.ts';
import { parseCsrPem } from '../pki/csr.ts';
import type { NodeAddress } from '../manager/policy.ts';
import { retryDelayMs } from '../manager/policy.ts';
import { describeApiError, type ApiSource } from './api.ts';
import { sleep } from './leader.ts';
import type { ApproverMetrics } from './metrics.ts';
import {
  APPROVED_REASON,
  KUBELET_SERVING_SIGNER,
  applyAuthorization,
  decideServingCsr,
  inScope,
  nodeNameOf,
  type ApproverPolicy,
  type CsrFacts,
  type Decision,
  type NodeFacts,
} from './policy.ts';
import { WorkQueue } from './queue.ts';

const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
const FIELD_SELECTOR = `spec.signerName=${KUBELET_SERVING_SIGNER}`;
export const EVENT_NAMESPACE = 'default';
export const REPORTING_COMPONENT = 'nodecred-approver';
const BACKOFF = { initialMs: 500, maxMs: 60_000 };
const MAX_CONFLICT_RETRIES = 3;

export interface ControllerOptions {
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
  workers?: number;
  random?: () => number;
}

type Csr = V1CertificateSigningRequest;

export function isPending(csr: Csr): boolean {
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

  constructor(options: ControllerOptions) {
    this.o = options;
    this.random = options.random ?? Math.random;
  }

  /** Runs until `signal` aborts (leadership lost or shutdown); in-flight decisions check it before writing. */
  async run(signal: AbortSignal): Promise<void> {
    const workers = Array.from({ length: this.o.workers ?? 4 }, () => this.worker(signal));
    try {
      await this.listAndWatch(signal);
    } finally {
      for (const t of this.retryTimers) clearTimeout(t);
      this.retryTimers.clear();
      await Promise.all(workers);
    }
  }

  private async listAndWatch(signal: AbortSignal): Promise<void> {
    const { log, metrics, source } = this.o;
    let failures = 0;
    while (!signal.aborted) {
      let operation = 'list';
      try {
        const { certificates } = await source.clients();
        const list = await certificates.listCertificateSigningRequest({ fieldSelector: FIELD_SELECTOR });
        this.replaceCache(list.items);
        failures = 0;
        log.debug(
          { csrs: list.items.length, pending: list.items.filter(isPending).length },
          'listed kubelet-serving CSRs',
        );
        operation = 'watch';
        await this.watchOnce(list.metadata?.resourceVersion ?? '', signal);
      } catch (err) {
        if (signal.aborted) break;
        metrics.apiErrors.inc({ operation });
        source.noteFailure(err);
        const delay = retryDelayMs(failures++, BACKOFF, this.random);
        log.warn({ operation, err: describeApiError(err), retryInMs: delay }, `CSR ${operation} failed; re-listing`);
        await sleep(delay, signal);
      }
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
    const name = csr.metadata!.name!;
    this.cache.set(name, csr);
    if (isPending(csr)) this.queue.add(name);
    else this.announced.delete(name);
  }

  private forget(name: string): void {
    this.cache.delete(name);
    this.announced.delete(name);
    this.failures.delete(name);
  }

  /** One watch stream from `resourceVersion`; resolves when it ends (timeout, 410 Gone), rejects on errors. */
  private async watchOnce(resourceVersion: string, signal: AbortSignal): Promise<void> {
    const { source, log } = this.o;
    const { kubeConfig } = await source.clients();
    const timeoutSeconds = Math.max(1, Math.round((this.o.resyncIntervalMs / 1000) * (0.9 + 0.2 * this.random())));
    // A stream silent for this long is taken as half-open and aborted.
    const watch = idleGuardedWatch(kubeConfig, timeoutSeconds * 1000 + 30_000);
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      let controller: AbortController | undefined;
      const onAbort = () => finish();
      signal.addEventListener('abort', onAbort, { once: true });
      function finish(err?: unknown) {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        controller?.abort();
        if (err) reject(err);
        else resolve();
      }
      const onEvent = (type: string, obj: unknown) => {
        // client-node swallows exceptions thrown here, which would silently stop us handling events.
        try {
          if (settled) return;
          if (type === 'ERROR') {
            const status = obj as { code?: number; message?: string };
            if (status.code === 410) {
              log.debug('watch expired (410 Gone); re-listing');
              return finish();
            }
            return finish(
              Object.assign(new Error(`watch error: ${status.message ?? 'unknown'}`), { statusCode: status.code }),
            );
          }
          if (type === 'BOOKMARK') return;
          const csr = obj as Csr;
          const name = csr.metadata?.name;
          if (!name) return;
          if (type === 'DELETED') this.forget(name);
          else if (type === 'ADDED' || type === 'MODIFIED') this.observe(csr);
        } catch (err) {
          log.error({ err: (err as Error).stack ?? String(err) }, 'watch event handler failed; re-listing');
          finish();
        }
      };
      watch
        .watch(
          CSR_PATH,
          { fieldSelector: FIELD_SELECTOR, resourceVersion, timeoutSeconds, allowWatchBookmarks: true },
          onEvent,
          (err: unknown) => finish(err ?? undefined),
        )
        .then(
          (c) => {
            controller = c;
            if (settled) c.abort();
          },
          (err: unknown) => finish(err),
        );
    });
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
            { csr: name, err: isUserError(err) ? err.oneLine() : describeApiError(err), retryInMs: delay },
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
      const facts = await csrFacts(csr);
      const nodeName = nodeNameOf(facts.username);
      const node = nodeName === undefined ? null : await this.readNode(nodeName);
      const judged = decideServingCsr(facts, node, policy);
      const decision: Decision =
        judged.decision === 'approve'
          ? applyAuthorization(judged, await this.review(csr), facts.username, policy)
          : judged;
      if (decision.decision === 'skip') return this.leavePending(csr, decision);
      if (signal.aborted || !this.o.isLeader()) {
        log.info({ csr: name }, 'no longer leader; not writing the decision');
        return;
      }
      const written = await this.write(csr, decision);
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
      metrics.decisionDuration.observe({ decision: decision.decision }, (performance.now() - started) / 1000);
      const fields = { csr: name, node: nodeName, reason, detail: decision.message };
      if (decision.decision === 'approve') log.info(fields, 'approved CSR');
      else log.warn(fields, 'denied CSR');
      await this.event(
        csr,
        decision.decision === 'approve' ? 'Normal' : 'Warning',
        reason,
        decision.message,
        decision.decision === 'approve' ? 'Approve' : 'Deny',
      );
      return;
    }
    throw new Error(`CSR ${name} kept changing under us (${MAX_CONFLICT_RETRIES + 1} conflicts)`);
  }

  private async leavePending(csr: Csr, decision: Extract<Decision, { decision: 'skip' }>): Promise<void> {
    const name = csr.metadata!.name!;
    const key = `${decision.reason}: ${decision.message}`;
    if (this.announced.get(name) === key) {
      this.o.log.debug({ csr: name, reason: decision.reason }, 'still leaving CSR pending');
      return;
    }
    this.announced.set(name, key);
    this.o.metrics.decisions.inc({ decision: 'skip', reason: decision.reason });
    this.o.log.info({ csr: name, reason: decision.reason, detail: decision.message }, 'left CSR pending');
    await this.event(csr, 'Warning', decision.reason, `left pending: ${decision.message}`, 'LeavePending');
  }

  private async readNode(name: string): Promise<NodeFacts> {
    const { core } = await this.o.source.clients();
    try {
      const node = await core.readNode({ name });
      const addresses: NodeAddress[] = (node.status?.addresses ?? []).map((a) => ({
        type: a.type,
        address: a.address,
      }));
      return { name, addresses };
    } catch (err) {
      if (statusOf(err) === 404) return null;
      this.failed('node', err);
      throw err;
    }
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

  /** A core/v1 Event on the CSR (cluster-scoped objects' Events live in "default", as client-go puts them). */
  private async event(
    csr: Csr,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    action: string,
  ): Promise<void> {
    const name = csr.metadata!.name!;
    const now = new Date();
    try {
      const { core } = await this.o.source.clients();
      await core.createNamespacedEvent({
        namespace: EVENT_NAMESPACE,
        body: {
          metadata: { name: `${name.slice(0, 236)}.${randomBytes(8).toString('hex')}`, namespace: EVENT_NAMESPACE },
          involvedObject: {
            apiVersion: 'certificates.k8s.io/v1',
            kind: 'CertificateSigningRequest',
            name,
            ...(csr.metadata?.uid ? { uid: csr.metadata.uid } : {}),
          },
          type,
          reason,
          message: message.slice(0, 1024),
          action,
          source: { component: REPORTING_COMPONENT, host: hostname() },
          reportingComponent: REPORTING_COMPONENT,
          reportingInstance: this.o.identity.slice(0, 128),
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (err) {
      this.failed('event', err);
      this.o.log.warn({ csr: name, err: describeApiError(err) }, 'could not record the Event (the decision stands)');
    }
  }

  private failed(operation: string, err: unknown): void {
    this.o.metrics.apiErrors.inc({ operation });
    this.o.source.noteFailure(err);
  }
}

/** The policy's view of a CSR: its spec, and its request parsed (or why it does not parse). */
export async function csrFacts(csr: Csr): Promise<CsrFacts> {
  const name = csr.metadata?.name ?? '(unnamed)';
  let request: CsrFacts['request'];
  try {
    const pem = Buffer.from(String(csr.spec.request ?? ''), 'base64').toString('utf8');
    request = await parseCsrPem(pem, `certificatesigningrequest/${name}`);
  } catch (err) {
    request = { error: isUserError(err) ? err.message : ((err as Error).message ?? String(err)) };
  }
  return {
    signerName: csr.spec.signerName,
    username: csr.spec.username ?? '',
    groups: csr.spec.groups ?? [],
    usages: csr.spec.usages ?? [],
    expirationSeconds: csr.spec.expirationSeconds ?? undefined,
    request,
  };
}
