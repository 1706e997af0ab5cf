import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMetrics } from '../../../src/health/metrics.ts';
import type { CertificateManager } from '../../../src/manager/manager.ts';
import type { CertificateState } from '../../../src/manager/state.ts';

/** The sample lines of one metric family in the text exposition. */
async function samples(metrics: ReturnType<typeof createMetrics>, name: string): Promise<string[]> {
  const text = await metrics.registry.metrics();
  return text.split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

test('per-certificate gauges: one sample per certificate that has the value, labelled client or serving', async () => {
  const now = new Date('2026-01-10T00:00:00Z');
  const states: Record<'client' | 'server', CertificateState> = {
    client: {
      kind: 'client',
      path: '/c',
      notAfter: new Date('2026-02-01T00:00:00Z'),
      rotationDeadline: new Date('2026-01-20T00:00:00Z'),
      pendingCsr: 'node-csr-1',
      pendingSince: new Date('2026-01-09T23:59:00Z'),
    },
    server: { kind: 'server', path: '/s', notAfter: new Date('2026-03-01T00:00:00Z') },
  };
  const manager = { states } as unknown as CertificateManager;
  const metrics = createMetrics(
    () => manager,
    () => now,
  );
  const seconds = (iso: string) => new Date(iso).getTime() / 1000;
  assert.deepEqual(await samples(metrics, 'nodecred_certificate_expiration_timestamp_seconds'), [
    `nodecred_certificate_expiration_timestamp_seconds{certificate="client"} ${seconds('2026-02-01T00:00:00Z')}`,
    `nodecred_certificate_expiration_timestamp_seconds{certificate="serving"} ${seconds('2026-03-01T00:00:00Z')}`,
  ]);
  assert.deepEqual(await samples(metrics, 'nodecred_certificate_rotation_deadline_timestamp_seconds'), [
    `nodecred_certificate_rotation_deadline_timestamp_seconds{certificate="client"} ${seconds('2026-01-20T00:00:00Z')}`,
  ]);
  assert.deepEqual(await samples(metrics, 'nodecred_pending_csr_age_seconds'), [
    'nodecred_pending_csr_age_seconds{certificate="client"} 60',
  ]);

  // The CSR was issued: the pending age disappears at the next scrape instead of keeping its last value.
  states.client.pendingCsr = undefined;
  assert.deepEqual(await samples(metrics, 'nodecred_pending_csr_age_seconds'), []);
  assert.deepEqual(
    await samples(
      createMetrics(() => undefined),
      'nodecred_certificate_expiration_timestamp_seconds',
    ),
    [],
  );
});
