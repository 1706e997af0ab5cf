// The approver's Prometheus metrics, in a registry of their own (plus the process defaults), served by
// http.ts on /metrics.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ApproverMetrics {
  registry: Registry;
  /** Every decision written or left pending: decision = approve | deny | skip, reason = condition/Event reason. */
  decisions: Counter<'decision' | 'reason'>;
  /** From taking a CSR off the queue to its condition written (Node lookup and SubjectAccessReview included). */
  decisionDuration: Histogram<'decision'>;
  /** 1 while this instance holds the Lease and decides. */
  leader: Gauge;
  /**
   * Failed API requests by operation: csr-list, csr-watch, node-list, node-watch, node-get,
   * endpointslice-list, endpointslice-watch, csr (re-read), review, approval, event.
   */
  apiErrors: Counter<'operation'>;
}

export function createApproverMetrics(): ApproverMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics: ApproverMetrics = {
    registry,
    decisions: new Counter({
      name: 'nodecred_approver_decisions_total',
      help: 'kubelet-serving CSR decisions by decision (approve, deny, skip = left pending) and reason',
      labelNames: ['decision', 'reason'],
      registers: [registry],
    }),
    decisionDuration: new Histogram({
      name: 'nodecred_approver_decision_duration_seconds',
      help: 'Time to decide one CSR, from dequeue to the approval condition written',
      labelNames: ['decision'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'nodecred_approver_leader',
      help: '1 while this instance holds the leader Lease and decides CSRs',
      registers: [registry],
    }),
    apiErrors: new Counter({
      name: 'nodecred_approver_api_errors_total',
      help: 'Failed API requests of the approver by operation',
      labelNames: ['operation'],
      registers: [registry],
    }),
  };
  metrics.leader.set(0);
  return metrics;
}
