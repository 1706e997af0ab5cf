// The request the approver (or a policy, or the signer) denied, one record per certificate kind, kept on disk
// beside the certificates:
//   <cert-dir>/nodecred-<kind>-denied.json   0600, written atomically, removed once a certificate of that kind
//                                            is installed or a reload forgets the denial
// Two readers: the daemon after a restart (so a crash loop or a reboot does not resubmit a denied request at
// once, and the backoff keeps doubling), and `nodecred status`, which reads only files. This module owns the
// format and checks its form; whether a record still holds back a request is policy (manager/policy.ts).
import { readFile, rm } from 'node:fs/promises';
import { UserError, errnoError, quote } from '../errors.ts';
import { writeFileAtomic } from './atomic.ts';

/** The certificate a record is about (cert-store.ts CertKind; not imported, cert-store imports this module). */
export type DenialKind = 'client' | 'server';

/** The decision on the CSR, as the API server gave it in its Denied or Failed condition. */
export interface CsrCondition {
  type: 'Denied' | 'Failed';
  reason: string;
  message: string;
}

/** A denied request, remembered (policy.ts Denial: what holds it back, and until when). */
export interface DenialRecord {
  /** What was requested (policy.ts requestIdentity): the same request is held back, a different one is not. */
  request: string;
  /** The CSR that was denied. */
  csr: string;
  condition: CsrCondition;
  /** The denial as the user sees it (the CSR, its reason and message). */
  message: string;
  at: number;
  /** Consecutive denials of this same request. */
  count: number;
  /** Not resubmitted before. */
  retryAt: number;
}

/** The record's file name in the cert dir, beside `nodecred-<kind>-pending.key`. */
export function denialFile(kind: DenialKind): string {
  return `nodecred-${kind}-denied.json`;
}

const KIND = 'RequestDenial';
const VERSION = 1;
/** How the record, its errors and `nodecred status` name the certificate (kubelet's names: client, serving). */
export const DENIAL_LABEL = { client: 'client', server: 'serving' } as const satisfies Record<DenialKind, string>;
export type DenialLabel = (typeof DENIAL_LABEL)[DenialKind];
/** Far above any record nodecred writes (the condition message is the largest part); a bigger file is not ours. */
const MAX_BYTES = 64 * 1024;

export function serializeDenial(kind: DenialKind, d: DenialRecord): string {
  const record = {
    kind: KIND,
    version: VERSION,
    certificate: DENIAL_LABEL[kind],
    csr: d.csr,
    condition: d.condition,
    message: d.message,
    deniedAt: new Date(d.at).toISOString(),
    count: d.count,
    retryAt: new Date(d.retryAt).toISOString(),
    request: d.request,
  };
  return `${JSON.stringify(record, null, 2)}\n`;
}

/**
 * Parses a record serializeDenial wrote for `kind`; anything else (another kind's record included) is one
 * UserError naming the file and the field.
 */
export function parseDenial(kind: DenialKind, text: string, path: string): DenialRecord {
  const fix =
    `remove it: the daemon then submits the ${DENIAL_LABEL[kind]} request at its next pass ` +
    '(and records a new denial)';
  const invalid = (path: string, what: string) =>
    new UserError(`unreadable denial record: ${what}`, { where: path, fix, code: 'DENIAL_RECORD_INVALID' });
  if (text.length > MAX_BYTES) throw invalid(path, `larger than ${MAX_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(path, 'not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(path, 'not a JSON object');
  const o = value as Record<string, unknown>;
  if (o.kind !== KIND || o.version !== VERSION)
    throw invalid(
      path,
      `kind/version ${quote(String(o.kind))}/${quote(String(o.version))}, expected ${KIND}/${VERSION}`,
    );
  // A record copied or renamed from the other kind must not hold this kind's request back.
  if (o.certificate !== DENIAL_LABEL[kind])
    throw invalid(path, `certificate ${quote(String(o.certificate))}, expected ${quote(DENIAL_LABEL[kind])}`);
  const str = (field: string, v: unknown, optional = false): string => {
    if (typeof v === 'string' && (optional || v.length > 0)) return v;
    throw invalid(path, `${field} must be a${optional ? '' : ' non-empty'} string`);
  };
  const time = (field: string, v: unknown): number => {
    const ms = typeof v === 'string' ? Date.parse(v) : Number.NaN;
    if (Number.isFinite(ms)) return ms;
    throw invalid(path, `${field} must be an RFC 3339 time`);
  };
  const c = o.condition as Record<string, unknown> | null;
  if (typeof c !== 'object' || c === null) throw invalid(path, 'condition must be an object');
  if (c.type !== 'Denied' && c.type !== 'Failed') throw invalid(path, 'condition.type must be Denied or Failed');
  if (typeof o.count !== 'number' || !Number.isSafeInteger(o.count) || o.count < 1)
    throw invalid(path, 'count must be a positive integer');
  const at = time('deniedAt', o.deniedAt);
  const retryAt = time('retryAt', o.retryAt);
  if (retryAt < at) throw invalid(path, 'retryAt is before deniedAt');
  return {
    request: str('request', o.request),
    csr: str('csr', o.csr),
    condition: {
      type: c.type,
      reason: str('condition.reason', c.reason, true),
      message: str('condition.message', c.message, true),
    },
    message: str('message', o.message),
    at,
    count: o.count,
    retryAt,
  };
}

/** The record at `path`; null when there is none; a UserError naming the file when it cannot be read as one. */
export async function readDenialFile(kind: DenialKind, path: string): Promise<DenialRecord | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    // Permissions, I/O: the errno and its fix (removing the file is not the answer to those).
    throw errnoError(err, { action: 'read', path }) ?? err;
  }
  return parseDenial(kind, text, path);
}

/** Writes the record atomically (0600), or removes the file when no denial stands. */
export async function writeDenialFile(kind: DenialKind, path: string, denial: DenialRecord | null): Promise<void> {
  if (denial === null) await rm(path, { force: true });
  else await writeFileAtomic(path, serializeDenial(kind, denial), 0o600);
}
