// List + watch one kind of object into a caller's cache, as client-go's reflector does: list, then watch
// from the list's resourceVersion; when the watch times out, watch on from the last resourceVersion seen
// (or, with relistOnTimeout, list again: the CSR controller re-judges pending CSRs that way); after 410
// Gone, an error or a silent connection, list again, so nothing that happened meanwhile is missed.
// client-node's Watch has no reconnect, swallows exceptions thrown in its callback and, without a request
// timeout, would wait on a dead connection forever; all three are handled here. A watch the server ends at once
// (410 Gone every time, or no error at all) is paced like a failure, as the node side's CSR wait does, or the
// loop would list and watch with no pause. Used for CSRs, Nodes and the API server's EndpointSlices.
import { systemClock, type Clock } from '../clock.ts';
import { idleGuardedWatch } from '../kube/client-node.ts';
import type { Logger } from '../log.ts';
import { healthyWatchMs, retryDelayMs } from '../manager/policy.ts';
import { describeApiError, type ApiSource, type ApproverClients } from './api.ts';
import type { ApproverMetrics } from './metrics.ts';

const BACKOFF = { initialMs: 500, maxMs: 60_000 };

/** The part of client-node's Watch used here: one stream; the resolved controller ends it. */
export interface WatchStream {
  watch(
    path: string,
    query: Record<string, unknown>,
    onEvent: (type: string, obj: unknown) => void,
    onDone: (err?: unknown) => void,
  ): Promise<{ abort(): void }>;
}

interface ReflectorOptions<T> {
  /** Names the resource in logs and in the apiErrors metric ("csr" → operations csr-list, csr-watch). */
  resource: string;
  source: ApiSource;
  log: Logger;
  metrics: ApproverMetrics;
  /** Every watch ends after about this long (±10 %), and the next list re-reads everything. */
  resyncIntervalMs: number;
  random?: () => number;
  /** Time for the pause between rounds; the system clock unless a test simulates it. */
  clock?: Clock;
  /** Opens watch streams; client-node's Watch with an idle guard unless a test fakes the server. */
  openWatch?: (clients: ApproverClients, idleTimeoutMs: number) => WatchStream;
  list(clients: ApproverClients): Promise<{ items: T[]; metadata?: { resourceVersion?: string } }>;
  /** The API path to watch and its query (fieldSelector, labelSelector). */
  watchPath: string;
  watchQuery?: Record<string, string>;
  /** After every list: the complete set of objects. */
  replace(items: T[]): void;
  /** ADDED and MODIFIED events. */
  upsert(item: T): void;
  /** DELETED events. */
  remove(item: T): void;
  /** List again whenever a watch times out (every ~resyncIntervalMs), not only after errors and 410s. */
  relistOnTimeout?: boolean;
}

type WatchEnd = { relist: boolean; resourceVersion: string; timeoutSeconds: number };

export class Reflector<T> {
  private readonly o: ReflectorOptions<T>;
  private readonly random: () => number;
  private readonly clock: Clock;
  private readonly openWatch: (clients: ApproverClients, idleTimeoutMs: number) => WatchStream;
  private markSynced!: () => void;
  /** Resolves after the first complete list: until then the cache is not a view of the cluster. */
  readonly synced = new Promise<void>((resolve) => (this.markSynced = resolve));

  constructor(options: ReflectorOptions<T>) {
    this.o = options;
    this.random = options.random ?? Math.random;
    this.clock = options.clock ?? systemClock;
    this.openWatch = options.openWatch ?? ((clients, ms) => idleGuardedWatch(clients.kubeConfig, ms));
  }

  /** Lists and watches until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { log, metrics, source, resource } = this.o;
    let failures = 0;
    let resume: string | undefined;
    while (!signal.aborted) {
      let operation = `${resource}-list`;
      try {
        const clients = await source.clients();
        let resourceVersion = resume;
        if (resourceVersion === undefined) {
          const list = await this.o.list(clients);
          this.o.replace(list.items);
          this.markSynced();
          log.debug({ resource, items: list.items.length }, 'listed');
          resourceVersion = list.metadata?.resourceVersion ?? '';
        }
        resume = undefined;
        operation = `${resource}-watch`;
        const opened = this.clock.now();
        const end = await this.watchOnce(clients, resourceVersion, signal);
        if (!end.relist && !this.o.relistOnTimeout) resume = end.resourceVersion;
        // Only a watch that stayed open resets the backoff: a list that succeeds proves nothing.
        const lastedMs = this.clock.now() - opened;
        if (lastedMs >= healthyWatchMs(end.timeoutSeconds)) failures = 0;
        else if (!signal.aborted) {
          const delay = retryDelayMs(failures++, BACKOFF, this.random);
          log.info({ operation, lastedMs, retryInMs: delay }, `${operation} ended at once; pausing`);
          await this.clock.sleep(delay, signal);
        }
      } catch (err) {
        if (signal.aborted) break;
        metrics.apiErrors.inc({ operation });
        source.noteFailure(err);
        const delay = retryDelayMs(failures++, BACKOFF, this.random);
        log.warn({ operation, err: describeApiError(err), retryInMs: delay }, `${operation} failed; re-listing`);
        await this.clock.sleep(delay, signal);
      }
    }
  }

  /** One watch stream from `resourceVersion`; resolves when it ends (timeout, 410 Gone), rejects on errors. */
  private async watchOnce(clients: ApproverClients, resourceVersion: string, signal: AbortSignal): Promise<WatchEnd> {
    const { log, resource } = this.o;
    const timeoutSeconds = Math.max(1, Math.round((this.o.resyncIntervalMs / 1000) * (0.9 + 0.2 * this.random())));
    // A stream silent for this long is taken as half-open and aborted.
    const watch = this.openWatch(clients, timeoutSeconds * 1000 + 30_000);
    let last = resourceVersion;
    /** 410 Gone, or an event the handler failed on: the next round lists, or that event would be skipped. */
    let relist = false;
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      let controller: { abort(): void } | undefined;
      const onAbort = () => finish();
      signal.addEventListener('abort', onAbort, { once: true });
      function finish(err?: unknown) {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        controller?.abort();
        if (err) reject(err);
        else resolve();
      }
      const onEvent = (type: string, obj: unknown) => {
        // client-node swallows exceptions thrown here, which would silently stop us handling events.
        try {
          if (settled) return;
          if (type === 'ERROR') {
            const status = obj as { code?: number; message?: string };
            if (status.code === 410) {
              log.debug({ resource }, 'watch expired (410 Gone); re-listing');
              relist = true;
              return finish();
            }
            return finish(
              Object.assign(new Error(`watch error: ${status.message ?? 'unknown'}`), { statusCode: status.code }),
            );
          }
          last = (obj as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion ?? last;
          if (type === 'DELETED') this.o.remove(obj as T);
          else if (type === 'ADDED' || type === 'MODIFIED') this.o.upsert(obj as T);
        } catch (err) {
          log.error({ resource, err: (err as Error).stack ?? String(err) }, 'watch event handler failed; re-listing');
          relist = true;
          finish();
        }
      };
      watch
        .watch(
          this.o.watchPath,
          { ...this.o.watchQuery, resourceVersion, timeoutSeconds, allowWatchBookmarks: true },
          onEvent,
          (err: unknown) => finish(err ?? undefined),
        )
        .then(
          (c) => {
            controller = c;
            if (settled) c.abort();
          },
          (err: unknown) => finish(err),
        );
    });
    return { relist: relist || signal.aborted, resourceVersion: last, timeoutSeconds };
  }
}
