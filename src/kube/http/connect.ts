// One verified TLS connection to the API server, directly or through an HTTP(S) proxy's CONNECT tunnel,
// offering HTTP/2 and HTTP/1.1 by ALPN (the server picks). Verification is never optional: the endpoint's
// CA (or the system roots) and the server's name, or the kubeconfig's tls-server-name instead of the URL's
// host, as client-go does.
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { UserError } from '../../errors.ts';
import { hostOf, portOf } from './url.ts';

export interface TlsTarget {
  /** The API server's URL (only its origin matters here). */
  server: URL;
  /** PEM bundle; undefined means the system roots. */
  ca: string | undefined;
  /** The name the certificate must carry instead of the URL's host (kubeconfig tls-server-name). */
  tlsServerName: string | undefined;
  /** A client certificate (PEM chain) and its key, for certificate authentication. */
  cert?: string;
  key?: string;
  /** An http:// or https:// proxy to tunnel through. */
  proxy: URL | undefined;
  /** ALPN protocols offered, in order of preference. */
  alpn: string[];
}

/** The protocol the server chose: 'h2', or 'http/1.1' (also when it spoke no ALPN at all). */
export function negotiated(socket: TLSSocket): 'h2' | 'http/1.1' {
  return socket.alpnProtocol === 'h2' ? 'h2' : 'http/1.1';
}

/**
 * A CONNECT the proxy refused (407 is a UserError instead): no `code`, so the contract's classification quotes
 * this message rather than an errno.
 */
export class ProxyConnectError extends Error {
  override name = 'ProxyConnectError';
  readonly proxyStatus: number;
  constructor(message: string, proxyStatus: number) {
    super(message);
    this.proxyStatus = proxyStatus;
  }
}

/** A verified TLS connection to `t.server`; rejects with the TLS or socket error, or the signal's reason. */
export async function connectTls(t: TlsTarget, signal: AbortSignal): Promise<TLSSocket> {
  signal.throwIfAborted();
  // '' would be taken as "no CA" by Node, i.e. the system roots: callers validate CA files (api.ts readCaFile).
  if (t.ca !== undefined && !t.ca.includes('-----BEGIN CERTIFICATE-----'))
    throw new Error('connectTls: the CA bundle holds no PEM certificate');
  const host = hostOf(t.server);
  const port = portOf(t.server);
  const tunnel = t.proxy ? await tunnelThrough(t.proxy, host, port, signal) : undefined;
  const name = t.tlsServerName ?? host;
  const options: ConnectionOptions = {
    ...(tunnel ? { socket: tunnel } : { host, port }),
    // SNI carries names only (RFC 6066); the identity check below still covers an IP.
    ...(isIP(name) ? {} : { servername: name }),
    checkServerIdentity: verifyIdentityAs(name),
    ALPNProtocols: t.alpn,
    rejectUnauthorized: true,
    ...(t.ca !== undefined ? { ca: t.ca } : {}),
    ...(t.cert && t.key ? { cert: t.cert, key: t.key } : {}),
  };
  return settle(tlsConnect(options), 'secureConnect', signal);
}

/**
 * The certificate check against `name`, always explicit: over a tunnel, or for an IP (no SNI), Node would
 * otherwise check against whatever host it can find (the proxy's, or "localhost").
 */
export function verifyIdentityAs(name: string): ConnectionOptions['checkServerIdentity'] {
  return (_host, cert) => checkServerIdentity(name, cert);
}

/** Resolves with `socket` once it emits `ready`; destroys it on error or abort. */
function settle<S extends Socket>(socket: S, ready: string, signal: AbortSignal): Promise<S> {
  return new Promise((resolve, reject) => {
    const onAbort = () => fail(signal.reason);
    const fail = (err: unknown) => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const ok = () => {
      cleanup();
      resolve(socket);
    };
    const cleanup = () => {
      signal.removeEventListener('abort', onAbort);
      socket.off('error', fail);
      socket.off(ready, ok);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', fail);
    socket.once(ready, ok);
  });
}

/** A byte stream to host:port through the proxy's CONNECT (RFC 9110 §9.3.6). */
export async function tunnelThrough(proxy: URL, host: string, port: number, signal: AbortSignal): Promise<Socket> {
  const where = `proxy ${proxy.protocol}//${proxy.host}`;
  let socket: Socket;
  if (proxy.protocol === 'http:') {
    socket = await settle(netConnect(portOf(proxy), hostOf(proxy)), 'connect', signal);
  } else if (proxy.protocol === 'https:') {
    const name = hostOf(proxy);
    socket = await settle(
      tlsConnect({ host: name, port: portOf(proxy), ...(isIP(name) ? {} : { servername: name }) }),
      'secureConnect',
      signal,
    );
  } else {
    throw new UserError(`${where}: only http:// and https:// proxies are supported`, {
      where: 'HTTPS_PROXY or the kubeconfig proxy-url',
      fix: 'use an HTTP proxy that supports CONNECT',
      code: 'PROXY_UNSUPPORTED',
    });
  }
  const authority = `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
  const auth = proxy.username
    ? `Proxy-Authorization: Basic ${Buffer.from(
        `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`,
      ).toString('base64')}\r\n`
    : '';
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth}\r\n`);
  const status = await readConnectStatus(socket, signal);
  if (status === 200) return socket;
  socket.destroy();
  if (status === 407) {
    throw new UserError(`${where} requires authentication (HTTP 407)`, {
      where: 'HTTPS_PROXY or the kubeconfig proxy-url',
      fix: 'put the proxy credentials in the proxy URL: http://user:password@proxy:port',
      code: 'PROXY_AUTH',
    });
  }
  throw new ProxyConnectError(`${where} refused CONNECT ${authority}: HTTP ${status}`, status);
}

/** Reads the proxy's answer to CONNECT up to the blank line; bytes after it belong to the tunnel. */
function readConnectStatus(socket: Socket, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    const onAbort = () => done(signal.reason);
    const onClose = () => done(new Error('proxy closed the connection during CONNECT'));
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16384) done(new Error('proxy answer to CONNECT is too long'));
        return;
      }
      const rest = head.subarray(end + 4);
      if (rest.length) socket.unshift(rest);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head.subarray(0, end).toString('latin1'));
      done(m ? undefined : new Error('proxy answered CONNECT with something other than HTTP'), Number(m?.[1]));
    };
    const done = (err: unknown, status?: number) => {
      socket.off('data', onData);
      socket.off('error', done);
      socket.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      if (err === undefined) {
        socket.pause();
        resolve(status!);
      } else {
        socket.destroy();
        reject(err);
      }
    };
    socket.on('data', onData);
    socket.once('error', done);
    socket.once('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
