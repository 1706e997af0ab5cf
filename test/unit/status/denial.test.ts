// `nodecred status` on a client or serving request the daemon holds back after a denial: which CSR, why, when.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deniedRequestRow, renderDeniedRequest } from '../../../src/status/denial.ts';
import type { DenialRecord } from '../../../src/store/denial-record.ts';

const RECORD: DenialRecord = {
  request: '[]',
  csr: 'csr-serving-abc',
  condition: { type: 'Denied', reason: 'NotAllowed', message: 'IP 10.9.9.9 is outside allowedCidrs' },
  message: 'CSR csr-serving-abc was denied: NotAllowed: IP 10.9.9.9 is outside allowedCidrs',
  at: Date.UTC(2030, 0, 1, 12, 0),
  count: 1,
  retryAt: Date.UTC(2030, 0, 1, 12, 52, 30),
};
const FILE = '/var/lib/kubelet/pki/nodecred-server-denied.json';

test('the JSON row: the CSR, its condition as the API gave it, the attempts and the retry time', () => {
  const now = new Date(Date.UTC(2030, 0, 1, 12, 10));
  assert.deepEqual(deniedRequestRow('server', RECORD, FILE, now), {
    certificate: 'serving',
    file: FILE,
    csr: 'csr-serving-abc',
    condition: 'Denied',
    reason: 'NotAllowed',
    message: 'IP 10.9.9.9 is outside allowedCidrs',
    deniedAt: '2030-01-01T12:00:00.000Z',
    attempts: 1,
    retryAt: '2030-01-01T12:52:30.000Z',
    retryDue: false,
  });
  assert.equal(deniedRequestRow('server', RECORD, FILE, new Date(RECORD.retryAt)).retryDue, true);
  // The clock went back a day since the denial: the daemon ignores a retry that far ahead, and so does status.
  assert.equal(deniedRequestRow('server', RECORD, FILE, new Date(RECORD.retryAt - 24 * 3_600_000)).retryDue, true);
});

test('the lines under the table: which CSR, why, when the daemon retries, and how to retry now', () => {
  const now = new Date(Date.UTC(2030, 0, 1, 12, 10));
  const text = renderDeniedRequest(deniedRequestRow('server', RECORD, FILE, now), now);
  assert.equal(
    text,
    '\nserving request held back: CSR csr-serving-abc denied once, last at 2030-01-01 12:00 UTC ' +
      '(reason "NotAllowed", message "IP 10.9.9.9 is outside allowedCidrs")\n' +
      '  the daemon submits the same request again at 2030-01-01 12:52 UTC (in 42m30s); ' +
      'new node addresses or a reload (systemctl reload nodecred) submit it at once\n',
  );
  const later = new Date(Date.UTC(2030, 0, 1, 13));
  const failed = deniedRequestRow(
    'server',
    { ...RECORD, count: 3, condition: { ...RECORD.condition, type: 'Failed' } },
    FILE,
    later,
  );
  const due = renderDeniedRequest(failed, later);
  assert.match(due, /CSR csr-serving-abc failed 3 times in a row/);
  assert.match(due, /retry due since 2030-01-01 12:52 UTC: a running daemon submits it at its next pass/);
});

test('a reason or message with a newline cannot forge a line of the report; empty ones are left out', () => {
  const now = new Date(RECORD.at);
  const forged = { ...RECORD, condition: { type: 'Denied' as const, reason: '', message: 'x\nserving: ok' } };
  const text = renderDeniedRequest(deniedRequestRow('server', forged, FILE, now), now);
  assert.equal(text.split('\n').length, 4, text);
  assert.match(text, /\(message "x\\nserving: ok"\)/);
  const bare = { ...RECORD, condition: { type: 'Denied' as const, reason: '', message: '' } };
  assert.match(
    renderDeniedRequest(deniedRequestRow('server', bare, FILE, now), now),
    /denied once, last at 2030-01-01 12:00 UTC\n/,
  );
});

test('a client request held back says so, and what submits it at once for a client certificate', () => {
  const now = new Date(Date.UTC(2030, 0, 1, 12, 10));
  const client: DenialRecord = {
    ...RECORD,
    csr: 'node-csr-abc',
    condition: { type: 'Denied', reason: 'AttestationFailed', message: 'TPM quote does not match' },
  };
  const row = deniedRequestRow('client', client, '/var/lib/kubelet/pki/nodecred-client-denied.json', now);
  assert.equal(row.certificate, 'client');
  assert.equal(
    renderDeniedRequest(row, now),
    '\nclient request held back: CSR node-csr-abc denied once, last at 2030-01-01 12:00 UTC ' +
      '(reason "AttestationFailed", message "TPM quote does not match")\n' +
      '  the daemon submits the same request again at 2030-01-01 12:52 UTC (in 42m30s); ' +
      'new bootstrap credentials or a reload (systemctl reload nodecred) submit it at once\n',
  );
});
