// Prometheus metrics. kubelet's certificate-manager names are kept so existing dashboards and alerts
// (e.g. on kubelet_certificate_manager_client_ttl_seconds) work unchanged; nodecred's own add what kubelet
// does not say: pending CSR age, rotations by result, last success, bootstrap duration, build info; and the
// standard process_* series. Rendered by our own small registry (exposition.ts), not prom-client.
import { readdirSync } from 'node:fs';
import { VERSION } from '../version.ts';
import type { CertificateManager, ManagerEvents } from '../manager/manager.ts';
import type { CertificateState } from '../manager/state.ts';
import type { CertKind } from '../store/cert-store.ts';
import { MetricsRegistry, type Gauge, type Histogram } from './exposition.ts';

const KUBELET_TTL: Record<CertKind, string> = {
  client: 'kubelet_certificate_manager_client_ttl_seconds',
  server: 'kubelet_certificate_manager_server_ttl_seconds',
};
const KIND_LABEL: Record<CertKind, string> = { client: 'client', server: 'serving' };
const KINDS = ['client', 'server'] as const;

interface Metrics {
  registry: MetricsRegistry;
  events: ManagerEvents;
  bootstrapDuration: Histogram;
}

export function createMetrics(
  getManager: () => CertificateManager | undefined,
  now: () => Date = () => new Date(),
): Metrics {
  const registry = new MetricsRegistry();
  const state = (kind: CertKind) => getManager()?.states[kind];
  for (const kind of KINDS) {
    registry.gauge(
      KUBELET_TTL[kind],
      `Seconds until the ${KIND_LABEL[kind]} certificate expires (+Inf when there is none), as kubelet reports it.`,
      (g) => {
        const notAfter = state(kind)?.notAfter;
        g.set(notAfter ? (notAfter.getTime() - now().getTime()) / 1000 : Infinity);
      },
    );
  }
  const clientRenewErrors = registry.counter(
    'kubelet_certificate_manager_client_expiration_renew_errors',
    'Errors renewing the client certificate.',
  );
  const serverRenewErrors = registry.counter(
    'kubelet_server_expiration_renew_errors',
    'Errors renewing the serving certificate.',
  );
  const serverRotation = registry.histogram(
    'kubelet_certificate_manager_server_rotation_seconds',
    'How long the previous serving certificate lived before it was rotated.',
    [600, 1800, 3600, 14400, 86400, 604800, 2592000, 7776000, 15552000, 31104000],
  );
  const rotations = registry.counter(
    'nodecred_certificate_rotations_total',
    'Certificate installs and failed attempts, by certificate and result.',
    true,
  );
  const lastSuccess = registry.gauge(
    'nodecred_certificate_last_success_timestamp_seconds',
    'When a certificate was last installed.',
  );
  /** A gauge labelled by certificate, set at each scrape from that certificate's state (absent: no value). */
  const perCertificate = (name: string, help: string, read: (s: CertificateState) => number | undefined) =>
    registry.gauge(name, help, (g: Gauge) => {
      g.reset();
      for (const kind of KINDS) {
        const s = state(kind);
        const value = s === undefined ? undefined : read(s);
        if (value !== undefined) g.set(value, { certificate: KIND_LABEL[kind] });
      }
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
  const bootstrapDuration = registry.histogram(
    'nodecred_bootstrap_duration_seconds',
    'From process start to the first valid client certificate on disk.',
    [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
  );
  registry
    .gauge('nodecred_build_info', 'nodecred build information.')
    .set(1, { version: VERSION, node_version: process.version });
  addProcessMetrics(registry);

  const events: ManagerEvents = {
    installed(kind, state, previous) {
      rotations.inc({ certificate: KIND_LABEL[kind], result: 'success' });
      lastSuccess.set((state.lastSuccess ?? now()).getTime() / 1000, { certificate: KIND_LABEL[kind] });
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

/** The standard process series (the names every Prometheus client library uses), read at scrape time. */
function addProcessMetrics(registry: MetricsRegistry): void {
  const startSeconds = Math.round(Date.now() / 1000 - process.uptime());
  const cpu = () => process.cpuUsage();
  registry.counterOf('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', () => cpu().user / 1e6);
  registry.counterOf(
    'process_cpu_system_seconds_total',
    'Total system CPU time spent in seconds.',
    () => cpu().system / 1e6,
  );
  registry.counterOf('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', () => {
    const { user, system } = cpu();
    return (user + system) / 1e6;
  });
  registry.gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', (g) =>
    g.set(startSeconds),
  );
  registry.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', (g) =>
    g.set(process.memoryUsage.rss()),
  );
  registry.gauge('process_open_fds', 'Number of open file descriptors.', (g) => {
    try {
      g.set(readdirSync('/proc/self/fd').length - 1); // minus the descriptor readdir itself holds
    } catch {
      g.reset(); // not Linux: leave the series out
    }
  });
  registry.gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', (g) =>
    g.set(process.memoryUsage().heapUsed),
  );
}
