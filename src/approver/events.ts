// Events on CSRs (`kubectl describe csr`), written after the decision they report and never in its way:
// the Approved/Denied condition already holds the reason and message, so an Event waits its turn in a
// queue, one at a time while CSRs still wait for a decision, a few at a time otherwise, in order.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { V1CertificateSigningRequest } from '@kubernetes/client-node';
import type { Logger } from '../log.ts';
import { describeApiError, type ApiSource } from './api.ts';

/** Cluster-scoped objects' Events live in "default", where client-go puts them and kubectl looks. */
const EVENT_NAMESPACE = 'default';
const REPORTING_COMPONENT = 'nodecred-approver';
const CONCURRENCY = 4;

interface EventRecorderOptions {
  source: ApiSource;
  log: Logger;
  /** The Lease holder identity: Events name it as reportingInstance. */
  identity: string;
  /** Whether decisions are waiting: then Events are written one at a time. */
  busy: () => boolean;
  /** Called with every failed write (metrics, credential refresh). */
  failed: (err: unknown) => void;
}

export class EventRecorder {
  private readonly o: EventRecorderOptions;
  private readonly queue: Array<() => Promise<void>> = [];
  private inFlight = 0;
  private drained: (() => void) | undefined;

  constructor(options: EventRecorderOptions) {
    this.o = options;
  }

  record(
    csr: V1CertificateSigningRequest,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    action: string,
  ): void {
    this.queue.push(() => this.write(csr, type, reason, message, action));
    this.pump();
  }

  /** Starts queued writes the current load allows; call again when decisions are done. */
  pump(): void {
    const limit = this.o.busy() ? 1 : CONCURRENCY;
    while (this.inFlight < limit && this.queue.length > 0) {
      const write = this.queue.shift()!;
      this.inFlight++;
      void write().finally(() => {
        this.inFlight--;
        this.pump();
        if (this.inFlight === 0 && this.queue.length === 0) this.drained?.();
      });
    }
  }

  /** Waits for every queued Event (on shutdown: a decision's Event is not lost because leadership ended). */
  drain(): Promise<void> {
    if (this.inFlight === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => (this.drained = resolve));
  }

  private async write(
    csr: V1CertificateSigningRequest,
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
      this.o.failed(err);
      this.o.log.warn({ csr: name, err: describeApiError(err) }, 'could not record the Event (the decision stands)');
    }
  }
}
