// Where a request goes: the API server URL (its path, if any, is a prefix, as client-go treats it) joined with
// an API path and a query, and whether it goes through a proxy (kubeconfig proxy-url, else HTTPS_PROXY /
// NO_PROXY with Go's net/http/httpproxy rules, which the kubelet and kubectl follow). Pure.
import { BlockList, isIP } from 'node:net';

export type Query = Record<string, string | number | boolean | undefined>;

/** `server` + `path` + `query`; undefined query values are left out, the rest keep their order. */
export function apiUrl(server: string, path: string, query: Query = {}): URL {
  const base = new URL(server);
  const url = new URL(base.origin);
  url.pathname = `${base.pathname.replace(/\/+$/, '')}${path}`;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.append(k, String(v));
  url.search = params.toString();
  return url;
}

/** One path segment (an object name): never a separator or a dot-segment, whatever the name holds. */
export function segment(name: string): string {
  if (name === '' || name === '.' || name === '..') throw new Error(`invalid object name ${JSON.stringify(name)}`);
  return encodeURIComponent(name);
}

/** The port a URL's host is reached on. */
export function portOf(url: URL): number {
  if (url.port) return Number(url.port);
  return url.protocol === 'http:' ? 80 : 443;
}

/** The host as a socket wants it: an IPv6 literal without its brackets. */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

export interface ProxyEnv {
  HTTPS_PROXY?: string | undefined;
  https_proxy?: string | undefined;
  NO_PROXY?: string | undefined;
  no_proxy?: string | undefined;
}

/**
 * The proxy for a request to `target`, or undefined for a direct connection. A kubeconfig's proxy-url wins
 * (client-go: http.ProxyURL, no exceptions); otherwise HTTPS_PROXY (upper case first, as Go reads it) unless
 * NO_PROXY matches, and never for localhost or a loopback address (Go's httpproxy rule).
 */
export function proxyFor(target: URL, env: ProxyEnv, kubeconfigProxyUrl?: string): URL | undefined {
  if (kubeconfigProxyUrl) return parseProxyUrl(kubeconfigProxyUrl);
  const proxy = env.HTTPS_PROXY || env.https_proxy;
  if (!proxy) return undefined;
  const host = hostOf(target).toLowerCase();
  if (host === 'localhost' || isLoopback(host)) return undefined;
  // The first non-empty of NO_PROXY, no_proxy, as Go's httpproxy reads them: an empty NO_PROXY hides nothing.
  if (noProxyMatches(env.NO_PROXY || env.no_proxy || '', host, portOf(target))) return undefined;
  return parseProxyUrl(proxy);
}

/** "proxy:3128" means http://proxy:3128, as in Go. */
function parseProxyUrl(text: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  return new URL(withScheme);
}

function isLoopback(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * NO_PROXY as Go reads it: comma-separated entries; "*" matches everything; an IP or CIDR matches
 * addresses; "example.com" matches it and its subdomains, ".example.com" only subdomains; an entry may
 * carry ":port", and then only that port matches.
 */
export function noProxyMatches(noProxy: string, host: string, port: number): boolean {
  for (const raw of noProxy.split(',')) {
    let entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    if (entry.includes('/')) {
      if (isIP(host) && inCidr(host, entry)) return true;
      continue;
    }
    let entryPort: number | undefined;
    const m = /^(.*):(\d+)$/.exec(entry);
    if (m && !isIP(entry)) {
      entry = m[1]!;
      entryPort = Number(m[2]);
    }
    entry = entry.replace(/^\[(.*)\]$/, '$1');
    if (entryPort !== undefined && entryPort !== port) continue;
    if (isIP(entry)) {
      if (isIP(host) && sameAddress(entry, host)) return true;
      continue;
    }
    if (entry.startsWith('*.')) entry = entry.slice(1);
    if (entry.startsWith('.')) {
      if (host.endsWith(entry)) return true;
    } else if (host === entry || host.endsWith(`.${entry}`)) {
      return true;
    }
  }
  return false;
}

const family = (ip: string) => (isIP(ip) === 6 ? 'ipv6' : 'ipv4');

function sameAddress(a: string, b: string): boolean {
  const list = new BlockList();
  list.addAddress(a, family(a));
  return list.check(b, family(b));
}

function inCidr(ip: string, cidr: string): boolean {
  const [net, bitsText] = cidr.split('/') as [string, string];
  const bits = Number(bitsText);
  if (!isIP(net) || !Number.isInteger(bits)) return false;
  const list = new BlockList();
  try {
    list.addSubnet(net, bits, family(net));
  } catch {
    return false; // a prefix too long for the family: matches nothing, as in Go
  }
  return list.check(ip, family(ip));
}
