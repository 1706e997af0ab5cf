// The node side's /metrics text, checked by an outside parser: promtool (Prometheus' own) must parse every
// line; its only remarks may be the two kubelet counter names kept without "_total" for compatibility.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { MetricsRegistry } from '../../../src/health/exposition.ts';
import { createMetrics } from '../../../src/health/metrics.ts';
import type { CertificateManager } from '../../../src/manager/manager.ts';

const KUBELET_NAMES = [
  'kubelet_certificate_manager_client_expiration_renew_errors',
  'kubelet_server_expiration_renew_errors',
];

function promtool(text: string): string[] {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(r.error, undefined, 'promtool runs (Debian package prometheus, scripts/install-test-deps)');
  return `${r.stdout}${r.stderr}`.split('\n').filter((line) => line.trim() !== '');
}

test("the daemon's metrics parse with promtool, with the values the manager state and events give", async () => {
  const now = new Date('2026-06-01T00:00:00Z');
  const manager = {
    states: {
      client: {
        notAfter: new Date('2026-06-02T00:00:00Z'),
        rotationDeadline: new Date('2026-06-01T18:00:00Z'),
        lastSuccess: now,
      },
      server: { pendingCsr: 'csr-x', pendingSince: new Date('2026-05-31T23:59:30Z') },
    },
  } as unknown as CertificateManager;
  const metrics = createMetrics(
    () => manager,
    () => now,
  );
  metrics.events.installed?.('client', manager.states.client, null);
  metrics.events.failed?.('server', new Error('denied'));
  metrics.bootstrapDuration.observe(0.3);
  const text = await metrics.registry.metrics();
  const remarks = promtool(text);
  assert.deepEqual(
    remarks.filter((line) => !KUBELET_NAMES.some((name) => line.startsWith(`${name} counter metrics should have`))),
    [],
  );
  for (const line of [
    'kubelet_certificate_manager_client_ttl_seconds 86400',
    'kubelet_certificate_manager_server_ttl_seconds +Inf',
    'kubelet_server_expiration_renew_errors 1',
    'kubelet_certificate_manager_client_expiration_renew_errors 0',
    'nodecred_certificate_rotations_total{certificate="client",result="success"} 1',
    'nodecred_certificate_rotations_total{certificate="serving",result="failure"} 1',
    `nodecred_certificate_expiration_timestamp_seconds{certificate="client"} ${Date.parse('2026-06-02T00:00Z') / 1000}`,
    'nodecred_pending_csr_age_seconds{certificate="serving"} 30',
    'nodecred_bootstrap_duration_seconds_bucket{le="0.25"} 0',
    'nodecred_bootstrap_duration_seconds_bucket{le="0.5"} 1',
    'nodecred_bootstrap_duration_seconds_bucket{le="+Inf"} 1',
    'nodecred_bootstrap_duration_seconds_count 1',
    '# TYPE process_cpu_seconds_total counter',
  ])
    assert.ok(text.split('\n').includes(line), `missing: ${line}`);
  assert.doesNotMatch(text, /nodecred_pending_csr_age_seconds\{certificate="client"\}/, 'absent when none is pending');
  assert.match(text, /^process_resident_memory_bytes \d+$/m);
});

test('label values and help texts are escaped as the text format says; promtool reads them back', async () => {
  const registry = new MetricsRegistry();
  registry
    .gauge('odd_values', 'a help text with a \\ and a\nnewline')
    .set(1, { value: 'quote " backslash \\ newline \n end' });
  registry.counter('events_total', 'labelled: no series before the first event', true);
  const text = await registry.metrics();
  assert.deepEqual(promtool(text), []);
  assert.ok(text.includes('odd_values{value="quote \\" backslash \\\\ newline \\n end"} 1'));
  assert.ok(text.includes('# HELP odd_values a help text with a \\\\ and a\\nnewline'));
  assert.doesNotMatch(text, /^events_total/m);
  assert.equal(registry.contentType, 'text/plain; version=0.0.4; charset=utf-8');
});
