// One watch request, streamed: events are framed (watch-lines.ts) and handed to `onEvent` until it returns
// an end. The stream also ends when the server closes it (its timeoutSeconds: 'timeout'), when no byte
// arrives for idleTimeoutMs (a half-open connection: 'idle', and the connection is suspected), when the
// signal aborts ('aborted'), or with HTTP 410 before the first byte ('expired', as an ERROR event with code
// 410 would say). Other statuses reject with the HttpStatusError; transport failures with their error.
import type { WatchEnd } from '../node-api.ts';
import type { TlsTarget } from './connect.ts';
import type { ConnectionPool, Exchange, OpenResponse } from './pool.ts';
import { HttpStatusError, parseStatus } from './status.ts';
import { WatchLineDecoder, type WatchEvent } from './watch-lines.ts';

interface WatchStreamOptions {
  pool: ConnectionPool;
  target: TlsTarget;
  exchange: Exchange;
  /** Until the response headers: the contract's request deadline. */
  headersTimeoutMs: number;
  idleTimeoutMs: number;
  signal: AbortSignal;
  /** The error a missed headers deadline rejects with. */
  timeout: (ms: number) => Error;
  /** An end settles the watch; undefined consumes the event; a throw rejects the watch with it. */
  onEvent: (event: WatchEvent) => WatchEnd | undefined;
}

const ABORTED: WatchEnd = { kind: 'closed', why: 'aborted' };

export async function watchStream(o: WatchStreamOptions): Promise<WatchEnd> {
  if (o.signal.aborted) return ABORTED;
  const headers = new AbortController();
  const timer = setTimeout(() => headers.abort(o.timeout(o.headersTimeoutMs)), o.headersTimeoutMs);
  const onAbort = () => headers.abort(ABORTED);
  o.signal.addEventListener('abort', onAbort, { once: true });
  let res: OpenResponse;
  try {
    res = await o.pool.open(o.target, o.exchange, headers.signal);
  } catch (err) {
    if (err === ABORTED) return ABORTED;
    throw err;
  } finally {
    clearTimeout(timer);
    o.signal.removeEventListener('abort', onAbort);
  }
  if (res.status !== 200) return failed(res);
  if (o.signal.aborted) {
    res.close();
    return ABORTED;
  }
  return follow(res, o);
}

/** A watch refused before it started: 410 means "re-read and watch again"; anything else is an error. */
async function failed(res: OpenResponse): Promise<WatchEnd> {
  if (res.status === 410) {
    res.close();
    return { kind: 'closed', why: 'expired' };
  }
  let text = '';
  try {
    for await (const chunk of res.body) {
      text += String(chunk);
      if (text.length > 65536) break;
    }
  } catch {
    /* the status says enough */
  } finally {
    res.close();
  }
  throw new HttpStatusError(res.status, parseStatus(text));
}

function follow(res: OpenResponse, o: WatchStreamOptions): Promise<WatchEnd> {
  const decoder = new WatchLineDecoder();
  return new Promise((resolve, reject) => {
    let idle: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (end: WatchEnd | undefined, err?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(idle);
      o.signal.removeEventListener('abort', onAbort);
      res.body.off('data', onData);
      res.close();
      if (err !== undefined) reject(err);
      else resolve(end!);
    };
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        res.suspect();
        finish({ kind: 'closed', why: 'idle' });
      }, o.idleTimeoutMs);
    };
    const handle = (events: WatchEvent[]) => {
      for (const e of events) {
        const end = o.onEvent(e);
        if (end) return finish(end);
      }
    };
    const onData = (chunk: Buffer) => {
      arm();
      try {
        handle(decoder.push(chunk));
      } catch (err) {
        finish(undefined, err);
      }
    };
    const onAbort = () => finish(ABORTED);
    o.signal.addEventListener('abort', onAbort, { once: true });
    res.body.on('data', onData);
    res.body.once('end', () => {
      try {
        handle(decoder.end());
        finish({ kind: 'closed', why: 'timeout' });
      } catch (err) {
        finish(undefined, err);
      }
    });
    res.body.once('error', (err) => finish(undefined, err));
    res.body.once('close', () =>
      finish(undefined, Object.assign(new Error('watch connection closed'), { code: 'ECONNRESET' })),
    );
    arm();
  });
}
