// CertificateSigningRequest calls: get, create (idempotent under a deterministic name), delete, and a
// wait on one CSR that survives reconnects and silent half-open streams.
import { Watch, type V1CertificateSigningRequest } from '@kubernetes/client-node';
import { isUserError } from '../errors.ts';
import { clientsFor, explainApiError, statusOf, type ApiConnection } from './api.ts';

export interface CsrSubmission {
  name: string;
  requestPem: string;
  signerName: string;
  usages: string[];
  expirationSeconds?: number;
}

export async function getCsr(conn: ApiConnection, name: string): Promise<V1CertificateSigningRequest | null> {
  const { certificates } = await clientsFor(conn);
  try {
    return await certificates.readCertificateSigningRequest({ name });
  } catch (err) {
    if (statusOf(err) === 404) return null;
    // Bootstrap identities may create but not read CSRs by name in some clusters; the caller handles 403.
    throw explainApiError(err, conn, `read CSR ${name}`);
  }
}

/** Creates the CSR; returns null when one with that name already exists (the caller re-reads it). */
export async function createCsr(conn: ApiConnection, s: CsrSubmission): Promise<V1CertificateSigningRequest | null> {
  const { certificates } = await clientsFor(conn);
  try {
    return await certificates.createCertificateSigningRequest({
      body: {
        apiVersion: 'certificates.k8s.io/v1',
        kind: 'CertificateSigningRequest',
        metadata: { name: s.name, labels: { 'app.kubernetes.io/managed-by': 'nodecred' } },
        spec: {
          request: Buffer.from(s.requestPem).toString('base64'),
          signerName: s.signerName,
          usages: s.usages,
          ...(s.expirationSeconds ? { expirationSeconds: s.expirationSeconds } : {}),
        },
      },
    });
  } catch (err) {
    if (statusOf(err) === 409) return null;
    throw explainApiError(err, conn, `create CSR ${s.name}`);
  }
}

/** Deletes a CSR we abandoned; false when RBAC does not allow it (nodes may not delete CSRs by default). */
export async function deleteCsr(conn: ApiConnection, name: string): Promise<boolean> {
  const { certificates } = await clientsFor(conn);
  try {
    await certificates.deleteCertificateSigningRequest({ name });
    return true;
  } catch (err) {
    const status = statusOf(err);
    if (status === 404) return true;
    if (status === 403) return false;
    throw err;
  }
}

export type CsrOutcome =
  | { kind: 'issued'; certificatePem: string; csr: V1CertificateSigningRequest }
  | { kind: 'denied' | 'failed'; reason: string; message: string }
  | { kind: 'deleted' };

/** What a CSR object says right now; undefined while it is still pending. */
export function csrOutcome(csr: V1CertificateSigningRequest): CsrOutcome | undefined {
  for (const c of csr.status?.conditions ?? []) {
    if (c.status !== 'True') continue;
    if (c.type === 'Denied') return { kind: 'denied', reason: c.reason ?? '', message: c.message ?? '' };
    if (c.type === 'Failed') return { kind: 'failed', reason: c.reason ?? '', message: c.message ?? '' };
  }
  const cert = csr.status?.certificate as unknown;
  if (typeof cert === 'string' && cert.length > 0) {
    return { kind: 'issued', certificatePem: Buffer.from(cert, 'base64').toString('utf8'), csr };
  }
  return undefined;
}

export interface WaitOptions {
  /** Absolute deadline (ms since epoch). */
  deadline: number;
  /** Server-side watch timeout; the stream is re-opened after it. */
  watchTimeoutSeconds?: number;
  /** No byte for this long on an open watch means a half-open stream: reconnect. */
  idleTimeoutMs?: number;
  /** Called on every (re)connect and event, for logs and metrics. */
  onProgress?: (event: { what: 'reconnect' | 'event' | 'error'; detail: string }) => void;
  signal?: AbortSignal;
  /** Backoff between reconnects after errors. */
  retryDelayMs?: (attempt: number) => number;
  /** The CSR as just created or read: the first round watches from it instead of reading it again. */
  initial?: V1CertificateSigningRequest;
}

/** setTimeout's largest delay; longer ones fire immediately. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class WaitTimeout extends Error {
  override name = 'WaitTimeout';
}

/**
 * Waits until the named CSR is issued, denied, failed or deleted. Each round re-reads the CSR (so nothing
 * that happened while disconnected is missed), then watches it from that resourceVersion. Transport errors
 * are retried until the deadline; user-fixable API errors (401/403) are thrown at once.
 */
export async function waitForCsr(conn: ApiConnection, name: string, opts: WaitOptions): Promise<CsrOutcome> {
  const watchTimeoutSeconds = opts.watchTimeoutSeconds ?? 60;
  // The server ends the stream after timeoutSeconds; silence well past that means nobody is there.
  const idleTimeoutMs = opts.idleTimeoutMs ?? Math.round(watchTimeoutSeconds * 1250 + 1000);
  const delay = opts.retryDelayMs ?? ((n: number) => Math.min(30_000, 500 * 2 ** n));
  let failures = 0;
  let known = opts.initial;
  for (;;) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    if (Date.now() >= opts.deadline) throw new WaitTimeout(`CSR ${name} still pending at the deadline`);
    try {
      // Every later round re-reads: whatever happened while no watch was open is seen.
      const csr = known ?? (await getCsr(conn, name));
      known = undefined;
      if (!csr) return { kind: 'deleted' };
      const now = csrOutcome(csr);
      if (now) return now;
      failures = 0;
      const result = await watchOnce(
        conn,
        name,
        csr.metadata?.resourceVersion ?? '',
        watchTimeoutSeconds,
        idleTimeoutMs,
        opts,
      );
      if (result) return result;
      opts.onProgress?.({ what: 'reconnect', detail: 'watch closed; re-reading the CSR' });
    } catch (err) {
      if (isUserError(err)) throw err;
      if (opts.signal?.aborted) throw opts.signal.reason;
      opts.onProgress?.({ what: 'error', detail: (err as Error).message ?? String(err) });
      const wait = Math.min(delay(failures++), Math.max(0, opts.deadline - Date.now()));
      await sleep(wait, opts.signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, Math.min(MAX_TIMER_MS, ms));
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** One watch stream: resolves with an outcome, or undefined when the stream ended without one. */
async function watchOnce(
  conn: ApiConnection,
  name: string,
  resourceVersion: string,
  timeoutSeconds: number,
  idleTimeoutMs: number,
  opts: WaitOptions,
): Promise<CsrOutcome | undefined> {
  const { kubeConfig } = await clientsFor(conn);
  const watch = new Watch(kubeConfig);
  // client-node's own inactivity timer aborts a silent stream; set it to our half-open guard.
  (watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = idleTimeoutMs;
  return new Promise((resolve, reject) => {
    let settled = false;
    let controller: AbortController | undefined;
    const remaining = opts.deadline - Date.now();
    // Clamped: setTimeout fires at once for delays past 2^31-1 ms; the outer loop re-checks the deadline.
    const deadlineTimer = setTimeout(() => finish(undefined), Math.min(MAX_TIMER_MS, Math.max(0, remaining)));
    const onAbort = () => finish(undefined);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    function finish(outcome: CsrOutcome | undefined, err?: unknown) {
      if (settled) return;
      settled = true;
      clearTimeout(deadlineTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      controller?.abort();
      if (err) reject(err);
      else resolve(outcome);
    }
    watch
      .watch(
        '/apis/certificates.k8s.io/v1/certificatesigningrequests',
        { fieldSelector: `metadata.name=${name}`, resourceVersion, timeoutSeconds, allowWatchBookmarks: true },
        (type: string, obj: V1CertificateSigningRequest) => {
          opts.onProgress?.({ what: 'event', detail: type });
          if (type === 'DELETED') return finish({ kind: 'deleted' });
          if (type === 'BOOKMARK') return;
          if (type === 'ERROR')
            return finish(undefined, new Error(`watch error: ${(obj as { message?: string }).message ?? 'unknown'}`));
          if (type === 'ADDED' || type === 'MODIFIED') {
            const outcome = csrOutcome(obj);
            if (outcome) finish(outcome);
          }
        },
        (err: unknown) => {
          if (!err) return finish(undefined);
          const status = (err as { statusCode?: number }).statusCode;
          if (status === 401 || status === 403) {
            return finish(undefined, explainApiError(err, conn, `watch CSR ${name}`));
          }
          finish(undefined, err);
        },
      )
      .then(
        (c) => {
          controller = c;
          if (settled) c.abort();
        },
        (err: unknown) => finish(undefined, err),
      );
  });
}
