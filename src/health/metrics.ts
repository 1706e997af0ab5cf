// Prometheus metrics. kubelet's certificate-manager names are kept so existing dashboards and alerts
// (e.g. on kubelet_certificate_manager_client_ttl_seconds) work unchanged; nodecred's own add what kubelet
// does not say: pending CSR age, rotations by result, last success, bootstrap duration, build info.
import { Registry, Gauge, Counter, Histogram, collectDefaultMetrics } from 'prom-client';
import { VERSION } from '../version.ts';
import type { CertificateManager, ManagerEvents } from '../manager/manager.ts';
import type { CertificateState } from '../manager/state.ts';
import type { CertKind } from '../store/cert-store.ts';

const KUBELET_TTL: Record<CertKind, string> = {
  client: 'kubelet_certificate_manager_client_ttl_seconds',
  server: 'kubelet_certificate_manager_server_ttl_seconds',
};
const KIND_LABEL: Record<CertKind, string> = { client: 'client', server: 'serving' };

interface Metrics {
  registry: Registry;
  events: ManagerEvents;
  bootstrapDuration: Histogram;
}

export function createMetrics(
  getManager: () => CertificateManager | undefined,
  now: () => Date = () => new Date(),
): Metrics {
  const registry = new Registry();
  // Event-loop lag sampled every 10 s, not every 10 ms: each sample is a timer wake-up, and wake-ups were most
  // of the idle daemon's CPU (bench P3: ≤ 10 ms a minute is the goal). A credential daemon's loop lag needs no
  // finer view; a blocked loop still shows as a large sample, and /livez watches the manager loop itself.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10_000 });

  const ttl = (kind: CertKind) => () => {
    const s = getManager()?.states[kind];
    return s?.notAfter ? (s.notAfter.getTime() - now().getTime()) / 1000 : Infinity;
  };
  new Gauge({
    name: KUBELET_TTL.client,
    help: 'Seconds until the client certificate expires (+Inf when there is none), as kubelet reports it.',
    registers: [registry],
    collect() {
      this.set(ttl('client')());
    },
  });
  new Gauge({
    name: KUBELET_TTL.server,
    help: 'Seconds until the serving certificate expires (+Inf when there is none), as kubelet reports it.',
    registers: [registry],
    collect() {
      this.set(ttl('server')());
    },
  });
  const clientRenewErrors = new Counter({
    name: 'kubelet_certificate_manager_client_expiration_renew_errors',
    help: 'Errors renewing the client certificate.',
    registers: [registry],
  });
  const serverRenewErrors = new Counter({
    name: 'kubelet_server_expiration_renew_errors',
    help: 'Errors renewing the serving certificate.',
    registers: [registry],
  });
  const serverRotation = new Histogram({
    name: 'kubelet_certificate_manager_server_rotation_seconds',
    help: 'How long the previous serving certificate lived before it was rotated.',
    buckets: [600, 1800, 3600, 14400, 86400, 604800, 2592000, 7776000, 15552000, 31104000],
    registers: [registry],
  });

  const rotations = new Counter({
    name: 'nodecred_certificate_rotations_total',
    help: 'Certificate installs and failed attempts, by certificate and result.',
    labelNames: ['certificate', 'result'],
    registers: [registry],
  });
  const lastSuccess = new Gauge({
    name: 'nodecred_certificate_last_success_timestamp_seconds',
    help: 'When a certificate was last installed.',
    labelNames: ['certificate'],
    registers: [registry],
  });
  /** A gauge labelled by certificate, set at each scrape from that certificate's state (absent: no value). */
  const perCertificate = (name: string, help: string, read: (s: CertificateState) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['certificate'],
      registers: [registry],
      collect() {
        this.reset();
        for (const kind of ['client', 'server'] as const) {
          const s = getManager()?.states[kind];
          const value = s === undefined ? undefined : read(s);
          if (value !== undefined) this.set({ certificate: KIND_LABEL[kind] }, value);
        }
      },
    });
  perCertificate('nodecred_certificate_expiration_timestamp_seconds', 'NotAfter of the installed certificate.', (s) =>
    s.notAfter ? s.notAfter.getTime() / 1000 : undefined,
  );
  perCertificate(
    'nodecred_certificate_rotation_deadline_timestamp_seconds',
    'When nodecred will start rotating the installed certificate.',
    (s) => (s.rotationDeadline ? s.rotationDeadline.getTime() / 1000 : undefined),
  );
  perCertificate(
    'nodecred_pending_csr_age_seconds',
    'How long the current CSR has been pending (absent when none is).',
    (s) => (s.pendingCsr && s.pendingSince ? (now().getTime() - s.pendingSince.getTime()) / 1000 : undefined),
  );
  perCertificate(
    'nodecred_csr_denied_retry_timestamp_seconds',
    'The last request was denied: when the same request may be submitted again (absent otherwise).',
    (s) => (s.denied ? s.denied.retryAt / 1000 : undefined),
  );
  const bootstrapDuration = new Histogram({
    name: 'nodecred_bootstrap_duration_seconds',
    help: 'From process start to the first valid client certificate on disk.',
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers: [registry],
  });
  new Gauge({
    name: 'nodecred_build_info',
    help: 'nodecred build information.',
    labelNames: ['version', 'node_version'],
    registers: [registry],
  }).set({ version: VERSION, node_version: process.version }, 1);

  const events: ManagerEvents = {
    installed(kind, state, previous) {
      rotations.inc({ certificate: KIND_LABEL[kind], result: 'success' });
      lastSuccess.set({ certificate: KIND_LABEL[kind] }, (state.lastSuccess ?? now()).getTime() / 1000);
      if (kind === 'server' && previous?.notBefore)
        serverRotation.observe((now().getTime() - previous.notBefore.getTime()) / 1000);
    },
    failed(kind) {
      rotations.inc({ certificate: KIND_LABEL[kind], result: 'failure' });
      (kind === 'client' ? clientRenewErrors : serverRenewErrors).inc();
    },
  };
  return { registry, events, bootstrapDuration };
}
