// What `nodecred status` says about a client or serving request that was denied and that the daemon holds
// back: pure functions of the record the daemon keeps in the cert dir (store/denial-record.ts) and the clock.
import { formatDuration } from '../config/duration.ts';
import { quote } from '../errors.ts';
import { believableDenial } from '../manager/policy.ts';
import { DENIAL_LABEL, type DenialKind, type DenialLabel, type DenialRecord } from '../store/denial-record.ts';
import { utcMinute } from './report.ts';

/** A held-back request in status --json (`deniedRequests.client`, `.serving`; null when none is recorded). */
export interface DeniedRequestRow {
  /** client or serving, as the certificate rows name them. */
  certificate: DenialLabel;
  /** The record it was read from. */
  file: string;
  csr: string;
  /** The CSR's condition as the API server gave it: Denied (an approver, kubectl) or Failed (the signer). */
  condition: 'Denied' | 'Failed';
  reason: string;
  message: string;
  deniedAt: string;
  /** Consecutive denials of this same request. */
  attempts: number;
  /** The daemon does not submit the same request again before this time. */
  retryAt: string;
  /** retryAt has passed: a running daemon submits the request at its next pass. */
  retryDue: boolean;
}

export function deniedRequestRow(kind: DenialKind, record: DenialRecord, file: string, now: Date): DeniedRequestRow {
  return {
    certificate: DENIAL_LABEL[kind],
    file,
    csr: record.csr,
    condition: record.condition.type,
    reason: record.condition.reason,
    message: record.condition.message,
    deniedAt: new Date(record.at).toISOString(),
    attempts: record.count,
    retryAt: new Date(record.retryAt).toISOString(),
    // A retry further ahead than any hold-back nodecred draws (a clock stepped back since): the daemon does
    // not believe it either and submits at its next pass.
    retryDue: record.retryAt <= now.getTime() || !believableDenial(record, now.getTime()),
  };
}

/** What else makes the daemon submit at once (managed.ts, client.ts: a different request is not held back). */
const SOONER: Record<DenialLabel, string> = {
  client: 'new bootstrap credentials or ',
  serving: 'new node addresses or ',
};

/**
 * The lines under the table. The reason and message come from whoever decided the CSR (an approver, kubectl,
 * the signer): quoted, so a newline or escape sequence in them cannot forge a line of this report.
 */
export function renderDeniedRequest(row: DeniedRequestRow, now: Date): string {
  const why = [row.reason && `reason ${quote(row.reason)}`, row.message && `message ${quote(row.message)}`]
    .filter(Boolean)
    .join(', ');
  const times = row.attempts === 1 ? 'once' : `${row.attempts} times in a row`;
  const left = new Date(row.retryAt).getTime() - now.getTime();
  const retry = row.retryDue
    ? `retry due since ${utcMinute(row.retryAt)}: a running daemon submits it at its next pass`
    : `the daemon submits the same request again at ${utcMinute(row.retryAt)} (in ${formatDuration(left)})`;
  return (
    `\n${row.certificate} request held back: CSR ${row.csr} ${row.condition === 'Denied' ? 'denied' : 'failed'} ` +
    `${times}, last at ${utcMinute(row.deniedAt)}${why ? ` (${why})` : ''}\n` +
    `  ${retry}; ${SOONER[row.certificate]}a reload (systemctl reload nodecred) submit it at once\n`
  );
}
