// Connections to API servers, shared by every request to the same server with the same TLS identity (as
// client-go's transport cache does): one HTTP/2 session carries many requests and watches; when the server
// only speaks HTTP/1.1, each request gets its own connection. A session nobody uses is unreferenced (it never
// keeps the process alive) and closed after a while; one that looks dead (a request or watch went silent)
// takes no new requests and is PINGed, then destroyed if the PING is not answered.
import { createHash } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import { connect as http2Connect, constants, type ClientHttp2Session } from 'node:http2';
import type { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { connectTls, negotiated, type TlsTarget } from './connect.ts';
import { hostOf, portOf } from './url.ts';

// Not `import … from 'node:http'`: an ES module namespace of node:http reads every export, and its lazy
// WebSocket getter loads Node's internal undici (+13 MiB RSS, bench/imports.ts). The CommonJS object does not.
const { request: http1Request } = process.getBuiltinModule('node:http');

export interface Exchange {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: string;
}

export interface OpenResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
  protocol: 'h2' | 'http/1.1';
  /** Ends the exchange early (a watch the caller is done with) and frees its stream or connection. */
  close(): void;
  /** The connection went silent: it takes no new requests, and it is PINGed and dropped if dead. */
  suspect(): void;
}

interface PoolOptions {
  /** A session without requests for this long is closed. */
  idleCloseMs?: number;
  /** A suspect session whose PING is not answered within this is destroyed. */
  pingTimeoutMs?: number;
  /** How long establishing one connection (TCP, proxy, TLS, HTTP/2 settings) may take. */
  connectTimeoutMs?: number;
}

const STALE_SESSION = new Set(['ERR_HTTP2_INVALID_SESSION', 'ERR_HTTP2_GOAWAY_SESSION']);
/** A request the server refused unprocessed (REFUSED_STREAM): retried once, on another session. */
const REFUSED = 'REFUSED_STREAM';

/** Streams per session when the server has not said (its SETTINGS frame arrives with the connection). */
const DEFAULT_STREAM_LIMIT = 100;

class H2Connection {
  readonly session: ClientHttp2Session;
  active = 0;
  usable = true;
  private idle: NodeJS.Timeout | undefined;
  private readonly opts: Required<PoolOptions>;

  constructor(session: ClientHttp2Session, opts: Required<PoolOptions>) {
    this.session = session;
    this.opts = opts;
    const gone = () => {
      this.usable = false;
    };
    session.on('goaway', gone);
    session.on('close', gone);
    session.on('error', gone);
    this.release();
  }

  get full(): boolean {
    return this.active >= (this.session.remoteSettings.maxConcurrentStreams ?? DEFAULT_STREAM_LIMIT);
  }

  request(ex: Exchange, signal: AbortSignal): Promise<OpenResponse> {
    const stream = this.session.request(
      { ':method': ex.method, ':path': `${ex.url.pathname}${ex.url.search}`, ...ex.headers },
      { endStream: ex.body === undefined },
    );
    this.take();
    stream.once('close', () => this.release());
    if (ex.body !== undefined) stream.end(ex.body);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        stream.close(constants.NGHTTP2_CANCEL);
        // A missed deadline (not a caller's abort) is the sign of a connection that stopped answering.
        if ((signal.reason as { code?: unknown } | undefined)?.code === 'ETIMEDOUT') this.suspect();
        fail(signal.reason);
      };
      const fail = (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        // RST_STREAM(REFUSED_STREAM), or a stream above a GOAWAY's last stream id (nghttp2 closes those with the
        // same code): the server did not process it (RFC 9113 §8.7), so any request may go again elsewhere.
        if (stream.rstCode === constants.NGHTTP2_REFUSED_STREAM) {
          this.usable = false;
          reject(Object.assign(new Error('HTTP/2 stream refused by the server, not processed'), { code: REFUSED }));
          return;
        }
        reject(err);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      stream.once('error', fail);
      stream.once('close', () => fail(Object.assign(new Error('HTTP/2 stream closed'), { code: 'ECONNRESET' })));
      stream.once('response', (headers) => {
        signal.removeEventListener('abort', onAbort);
        stream.off('error', fail);
        resolve({
          status: Number(headers[':status']),
          headers: headers as OpenResponse['headers'],
          body: stream,
          protocol: 'h2',
          close: () => stream.close(constants.NGHTTP2_CANCEL),
          suspect: () => this.suspect(),
        });
      });
    });
  }

  private take(): void {
    if (this.active++ === 0) {
      clearTimeout(this.idle);
      this.session.ref();
    }
  }

  private release(): void {
    if (this.active > 0) this.active--;
    if (this.active > 0) return;
    this.session.unref();
    if (!this.usable) {
      this.session.close();
      return;
    }
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      this.usable = false;
      this.session.close();
    }, this.opts.idleCloseMs);
    this.idle.unref();
  }

  /** No new requests here; destroyed unless the server answers a PING in time. */
  suspect(): void {
    if (this.session.destroyed) return;
    this.usable = false;
    const timer = setTimeout(() => this.session.destroy(), this.opts.pingTimeoutMs);
    timer.unref();
    try {
      const sent = this.session.ping((err) => {
        clearTimeout(timer);
        if (err) this.session.destroy();
        else if (this.active === 0) this.session.close();
      });
      if (!sent) throw new Error('PING not sent');
    } catch {
      clearTimeout(timer);
      this.session.destroy();
    }
  }
}

type Connected = { h2: H2Connection } | { socket: TLSSocket };

interface Origin {
  sessions: H2Connection[];
  /** One connection being made for everyone who needs one, so a burst of requests opens one session. */
  connecting: Promise<Connected> | undefined;
}

export class ConnectionPool {
  private readonly origins = new Map<string, Origin>();
  /** What this pool opened: HTTP/2 sessions, and HTTP/1.1 requests (one connection each). */
  readonly stats = { h2Sessions: 0, http1Requests: 0 };
  private readonly opts: Required<PoolOptions>;

  constructor(opts: PoolOptions = {}) {
    this.opts = {
      idleCloseMs: opts.idleCloseMs ?? 60_000,
      pingTimeoutMs: opts.pingTimeoutMs ?? 10_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 30_000,
    };
  }

  /** Sends the request; resolves once the response headers are in. `signal` bounds only that part. */
  async open(target: TlsTarget, ex: Exchange, signal: AbortSignal): Promise<OpenResponse> {
    const key = targetKey(target);
    let origin = this.origins.get(key);
    if (!origin) {
      origin = { sessions: [], connecting: undefined };
      this.origins.set(key, origin);
    }
    let refusals = 0;
    for (;;) {
      signal.throwIfAborted();
      origin.sessions = origin.sessions.filter((s) => s.usable && !s.session.destroyed && !s.session.closed);
      const ready = origin.sessions.find((s) => !s.full);
      if (ready) {
        try {
          return await ready.request(ex, signal);
        } catch (err) {
          // Closed between the check and the request: nothing was sent, so another session may take it. Refused
          // unprocessed: once more, on another session (the refusing one takes no new requests).
          const code = (err as { code?: string }).code ?? '';
          if (!STALE_SESSION.has(code) && !(code === REFUSED && refusals++ === 0)) throw err;
          ready.usable = false;
          continue;
        }
      }
      origin.connecting ??= this.connect(target, key, origin);
      const got = await abortable(origin.connecting, signal);
      if ('h2' in got) continue;
      // The server chose HTTP/1.1: a connection per request. The one just made serves the first taker.
      const socket = takeOnce(got) ?? (await connectTls(target, signal));
      if (negotiated(socket) === 'h2') {
        origin.sessions.push(await this.session(socket, target, key, origin));
        continue;
      }
      this.stats.http1Requests++;
      return http1(socket, ex, signal);
    }
  }

  /** Closes every session (tests; a process exits fine without it, idle sessions are unreferenced). */
  close(): void {
    for (const o of this.origins.values()) for (const s of o.sessions) s.session.close();
    this.origins.clear();
  }

  private async connect(target: TlsTarget, key: string, origin: Origin): Promise<Connected> {
    const timeout = new AbortController();
    const timer = setTimeout(
      () =>
        timeout.abort(
          Object.assign(new Error(`no connection within ${this.opts.connectTimeoutMs} ms`), { code: 'ETIMEDOUT' }),
        ),
      this.opts.connectTimeoutMs,
    );
    try {
      const socket = await connectTls(target, timeout.signal);
      if (negotiated(socket) !== 'h2') return offered(socket);
      const h2 = await this.session(socket, target, key, origin, timeout.signal);
      origin.sessions.push(h2);
      return { h2 };
    } finally {
      clearTimeout(timer);
      origin.connecting = undefined;
    }
  }

  /** An HTTP/2 session on a negotiated socket, once the server's SETTINGS (its stream limit) are in. */
  private session(
    socket: TLSSocket,
    target: TlsTarget,
    key: string,
    origin: Origin,
    signal?: AbortSignal,
  ): Promise<H2Connection> {
    const session = http2Connect(target.server.origin, { createConnection: () => socket });
    this.stats.h2Sessions++;
    session.on('error', () => {}); // surfaces on the streams; the session is dropped from the pool on close
    return new Promise((resolve, reject) => {
      const fail = (err: unknown) => {
        session.destroy();
        reject(err);
      };
      signal?.addEventListener('abort', () => fail(signal.reason), { once: true });
      session.once('error', fail);
      session.once('close', () => fail(Object.assign(new Error('HTTP/2 session closed'), { code: 'ECONNRESET' })));
      session.once('remoteSettings', () => {
        session.off('error', fail);
        const h2 = new H2Connection(session, this.opts);
        // A closed session leaves the pool, and an identity without sessions leaves the map: every certificate
        // rotation is a new identity, and a long-running daemon must not collect the old ones.
        session.once('close', () => {
          origin.sessions = origin.sessions.filter((x) => x !== h2);
          if (!origin.sessions.length && !origin.connecting && this.origins.get(key) === origin)
            this.origins.delete(key);
        });
        resolve(h2);
      });
    });
  }
}

/** The HTTP/1.1 request on its own connection; the connection ends with the response. */
function http1(socket: TLSSocket, ex: Exchange, signal: AbortSignal): Promise<OpenResponse> {
  const headers: OutgoingHttpHeaders = { ...ex.headers, connection: 'close' };
  if (ex.body !== undefined) headers['content-length'] = Buffer.byteLength(ex.body);
  const req = http1Request({
    method: ex.method,
    host: hostOf(ex.url),
    port: portOf(ex.url),
    path: `${ex.url.pathname}${ex.url.search}`,
    headers,
    createConnection: () => socket,
  });
  req.end(ex.body);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      req.destroy();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    req.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      reject(err);
    });
    req.once('response', (res) => {
      signal.removeEventListener('abort', onAbort);
      res.once('close', () => socket.destroy());
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: res,
        protocol: 'http/1.1',
        close: () => req.destroy(),
        suspect: () => req.destroy(),
      });
    });
  });
}

const taken = new WeakSet<object>();

/**
 * An HTTP/1.1 connection for the first waiter to take (takeOnce). The waiters resume on microtasks once the
 * connection is made; if every one of them gave up meanwhile, nobody ever will: close it then. And it is never
 * without an error listener, or the server's reset would be an uncaught ECONNRESET that ends the process.
 */
function offered(socket: TLSSocket): { socket: TLSSocket } {
  const got = { socket };
  socket.on('error', () => socket.destroy());
  setImmediate(() => {
    if (takeOnce(got)) socket.destroy();
  });
  return got;
}

function takeOnce(got: { socket: TLSSocket }): TLSSocket | undefined {
  if (taken.has(got)) return undefined;
  taken.add(got);
  return got.socket;
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Everything that decides which server a connection reaches and as whom, hashed (it includes a key). */
function targetKey(t: TlsTarget): string {
  const parts = [t.server.origin, t.ca, t.tlsServerName, t.cert, t.key, t.proxy?.href, t.alpn.join(',')];
  return createHash('sha256')
    .update(parts.map((p) => p ?? '').join('\0'))
    .digest('hex');
}
