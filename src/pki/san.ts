// Canonical forms for subject alternative names, so that "2001:DB8:0::1" requested and "2001:db8::1"
// issued compare equal, as they do for Go's net.IP.Equal in kubelet and the API server.

import { isIP } from 'node:net';

const IPV4_MAPPED_PREFIX = '::ffff:';

/**
 * The canonical text of an IP address, or undefined if `text` is not a plain IPv4/IPv6 address (zones,
 * CIDR suffixes and IPv4 with leading zeros are rejected: none of them can appear in a certificate).
 * IPv4-mapped IPv6 addresses become dotted IPv4, because Go encodes and prints them that way.
 */
export function canonicalIp(text: string): string | undefined {
  const family = isIP(text);
  if (family === 4) return text;
  if (family !== 6) return undefined;
  const compressed = compressIpv6(text);
  if (compressed === undefined) return undefined;
  return ipv4FromMapped(compressed) ?? compressed;
}

/**
 * The form two spellings of one DNS name share: lower case, without the root's trailing dot ("Node-1.Example."
 * and "node-1.example" are one host). For comparing and keying names only: whether a name may appear in a
 * certificate at all is a separate question (a SAN never carries the trailing dot; see isDnsSanName).
 */
export function canonicalDnsName(name: string): string {
  const lower = name.toLowerCase();
  return lower.length > 1 && lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * Whether a certificate's DNS SAN covers `name` the way TLS clients match (RFC 6125 6.4.3, Go's
 * crypto/x509, OpenSSL): the same name, or "*.<domain>" standing for exactly one label under <domain>.
 * Case-insensitive; a trailing root dot is ignored.
 */
export function dnsSanCovers(san: string, name: string): boolean {
  const pattern = canonicalDnsName(san);
  const host = canonicalDnsName(name);
  if (!pattern.startsWith('*.')) return pattern === host;
  const dot = host.indexOf('.');
  return dot > 0 && host.slice(dot) === pattern.slice(1);
}

// Letters, digits, hyphens and underscores in dot-separated labels: what Node status addresses hold.
const DNS_LABEL = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const DNS_NAME = new RegExp(`^(?=.{1,253}$)${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

/** True when `name` can be put in a certificate as a DNS SAN (the CSR builder and the config agree on this). */
export function isDnsSanName(name: string): boolean {
  return DNS_NAME.test(name);
}

function compressIpv6(text: string): string | undefined {
  try {
    // The WHATWG URL parser implements RFC 5952 compression, which Node has no other public API for.
    const hostname = new URL(`http://[${text}]/`).hostname;
    return hostname.slice(1, -1);
  } catch {
    return undefined; // e.g. a zone suffix ("fe80::1%eth0"), which isIP accepts but a SAN cannot hold
  }
}

function ipv4FromMapped(ipv6: string): string | undefined {
  if (!ipv6.startsWith(IPV4_MAPPED_PREFIX)) return undefined;
  const groups = ipv6.slice(IPV4_MAPPED_PREFIX.length).split(':');
  if (groups.length !== 2) return undefined;
  const [high, low] = groups.map((group) => Number.parseInt(group, 16)) as [number, number];
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}
