// Waiting for one CSR to be decided, on any NodeApi and any Clock: read it, watch it from that
// resourceVersion, and when the stream ends re-read before watching again, so nothing that happened while no
// watch was open is missed. Survives reconnects, half-open streams (the watch's idle guard) and 410 Gone.
import { isUserError } from '../errors.ts';
import { deadlineSignal, type Clock } from '../clock.ts';
import type { Csr, CsrDecision, NodeApi, WatchEnd } from '../kube/node-api.ts';
import { retryDelayMs, type Backoff } from './policy.ts';

type CsrOutcome = CsrDecision | { kind: 'deleted' };

export interface WaitOptions {
  /** Absolute deadline, on the clock's time (ms since the epoch). */
  deadline: number;
  /** Server-side watch timeout; the stream is re-opened (after a re-read) when it ends. */
  watchTimeoutSeconds?: number;
  /** No byte for this long on an open watch means a half-open stream: reconnect. */
  idleTimeoutMs?: number;
  /** Called on every reconnect and error, for logs. */
  onProgress?: (event: { what: 'reconnect' | 'error'; detail: string }) => void;
  signal?: AbortSignal;
  /** The CSR as just created or read: the first round watches from it instead of reading it again. */
  initial?: Csr;
}

/** Between reconnects after errors: jittered, so watchers cut off together do not come back together. */
const RECONNECT_BACKOFF: Backoff = { initialMs: 500, maxMs: 30_000 };

/**
 * A watch that stayed open this long (or half its server timeout, when that is shorter) was a healthy
 * round: the backoff starts over. A read that succeeds proves nothing (a watch failing right after it would
 * otherwise retry every 250–500 ms for ever), and a watch the server ends at once without an error is
 * treated like a failure, or the loop would spin with no pause at all.
 */
const HEALTHY_WATCH_MS = 10_000;

export class WaitTimeout extends Error {
  override name = 'WaitTimeout';
}

/**
 * Waits until the named CSR is issued, denied, failed or deleted. Transport errors are retried with
 * RECONNECT_BACKOFF until the deadline (then WaitTimeout); what the user must fix (UserError: 401/403) is
 * thrown at once; an aborted signal throws its reason.
 */
export async function waitForCsr(api: NodeApi, clock: Clock, name: string, opts: WaitOptions): Promise<CsrOutcome> {
  const watchTimeoutSeconds = opts.watchTimeoutSeconds ?? 60;
  // The server ends the stream after timeoutSeconds; silence well past that means nobody is there.
  const idleTimeoutMs = opts.idleTimeoutMs ?? Math.round(watchTimeoutSeconds * 1250 + 1000);
  const healthyWatchMs = Math.min(HEALTHY_WATCH_MS, watchTimeoutSeconds * 500);
  let failures = 0;
  let deadline = opts.deadline;
  const pause = async (why: string) => {
    opts.onProgress?.({ what: 'error', detail: why });
    const wait = retryDelayMs(failures++, RECONNECT_BACKOFF, () => clock.random());
    await clock.sleep(Math.min(wait, Math.max(0, deadline - clock.now())), opts.signal);
  };
  let known = opts.initial;
  let last = clock.now();
  for (;;) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    // A wall clock stepped back (NTP) does not move the deadline hours away: the time left stays what it was.
    const now = clock.now();
    if (now < last) deadline -= last - now;
    last = now;
    const left = deadline - now;
    if (left <= 0) throw new WaitTimeout(`CSR ${name} still pending at the deadline`);
    try {
      // Every later round re-reads: whatever happened while no watch was open is seen.
      const csr = known ?? (await api.getCsr(name));
      known = undefined;
      if (!csr) return { kind: 'deleted' };
      if (csr.decision) return csr.decision;
      // The stream may not outlive the deadline: it is aborted then, and the loop reports the timeout.
      const until = deadlineSignal(clock, left, opts.signal);
      const opened = clock.now();
      let end: WatchEnd;
      try {
        end = await api.watchCsr(name, csr.resourceVersion, {
          timeoutSeconds: watchTimeoutSeconds,
          idleTimeoutMs,
          signal: until.signal,
        });
      } finally {
        until.release();
      }
      if (end.kind !== 'closed') return end;
      if (end.why === 'aborted') continue;
      if (clock.now() - opened >= healthyWatchMs) {
        failures = 0;
        opts.onProgress?.({ what: 'reconnect', detail: `watch ${end.why}; re-reading` });
      } else {
        await pause(`watch ${end.why} after ${clock.now() - opened} ms; re-reading after a pause`);
      }
    } catch (err) {
      if (isUserError(err)) throw err;
      if (opts.signal?.aborted) throw opts.signal.reason;
      await pause((err as Error).message ?? String(err));
    }
  }
}
