// What `nodecred status` and `nodecred check` say about certificate files: pure functions of file contents,
// the clock and the expectations, so the exit codes are tested without a daemon.
import { loadCertificates, type LoadedCertificate } from '../pki/cert.ts';
import { findPathToCa } from '../pki/verify.ts';
import { canonicalIp, dnsSanCovers } from '../pki/san.ts';
import { formatDuration } from '../config/duration.ts';
import type { RotationWindow } from '../manager/policy.ts';

type CertState = 'ok' | 'expiring' | 'expired' | 'not-yet-valid' | 'missing' | 'invalid';

export interface CertRow {
  name: string;
  path: string;
  state: CertState;
  subject?: string;
  issuer?: string;
  sans?: string[];
  notBefore?: string;
  notAfter?: string;
  secondsLeft?: number;
  /** kubelet-style rotation window [70 %, 90 %) of the lifetime, for managed certificates. */
  rotationWindow?: { from: string; to: string };
  problems: string[];
}

export interface Expectations {
  now: Date;
  minValidMs: number;
  /** PEM bundle the certificate must chain to. */
  caPem?: string;
  /** SANs (DNS names or IPs) the certificate must cover. */
  expectSans?: string[];
  rotationWindow?: RotationWindow;
}

function covers(sans: { dnsNames: string[]; ipAddresses: string[] }, wanted: string): boolean {
  const ip = canonicalIp(wanted);
  if (ip) return sans.ipAddresses.includes(ip);
  return sans.dnsNames.some((san) => dnsSanCovers(san, wanted));
}

/** Assesses one certificate file's text (null when the file is missing). */
export function assessCertificate(name: string, path: string, text: string | null, e: Expectations): CertRow {
  if (text === null) return { name, path, state: 'missing', problems: ['file not found'] };
  let certs: LoadedCertificate[];
  try {
    certs = loadCertificates(text, 'certificate', path);
  } catch (err) {
    return { name, path, state: 'invalid', problems: [(err as Error).message] };
  }
  const leaf = certs[0]!;
  const s = leaf.summary;
  const left = s.notAfter.getTime() - e.now.getTime();
  const row: CertRow = {
    name,
    path,
    state: 'ok',
    subject: [s.subjectCommonName && `CN=${s.subjectCommonName}`, ...s.subjectOrganizations.map((o) => `O=${o}`)]
      .filter(Boolean)
      .join(', '),
    ...(s.issuerCommonName ? { issuer: s.issuerCommonName } : {}),
    sans: [...s.dnsNames.map((d) => `DNS:${d}`), ...s.ipAddresses.map((i) => `IP:${i}`)],
    notBefore: s.notBefore.toISOString(),
    notAfter: s.notAfter.toISOString(),
    secondsLeft: Math.floor(left / 1000),
    problems: [],
  };
  if (e.rotationWindow) {
    const life = s.notAfter.getTime() - s.notBefore.getTime();
    row.rotationWindow = {
      from: new Date(s.notBefore.getTime() + life * e.rotationWindow.from).toISOString(),
      to: new Date(s.notBefore.getTime() + life * e.rotationWindow.to).toISOString(),
    };
  }
  if (e.caPem) {
    try {
      if (!findPathToCa(leaf, certs.slice(1), loadCertificates(e.caPem, 'CA bundle')))
        row.problems.push('does not chain to the given CA');
    } catch (err) {
      row.problems.push(`CA unreadable: ${(err as Error).message}`);
    }
  }
  for (const want of e.expectSans ?? []) {
    if (!covers(s, want)) row.problems.push(`SAN ${want} missing`);
  }
  if (left <= 0) {
    row.state = 'expired';
    row.problems.unshift(`expired ${formatDuration(-left)} ago`);
  } else if (s.notBefore.getTime() > e.now.getTime()) {
    row.state = 'not-yet-valid';
    row.problems.unshift(`not valid before ${row.notBefore}`);
  } else if (left < e.minValidMs) {
    row.state = 'expiring';
    row.problems.unshift(`expires in ${formatDuration(left)}, less than ${formatDuration(e.minValidMs)}`);
  }
  if (row.state === 'ok' && row.problems.length) row.state = 'invalid';
  return row;
}

export function healthy(rows: CertRow[]): boolean {
  return rows.every((r) => r.state === 'ok');
}

/** An RFC 3339 time as the table shows it: `2026-11-30 15:04 UTC`. */
export function utcMinute(iso: string): string {
  return iso.replace('T', ' ').replace(/:\d{2}\.\d{3}Z$/, ' UTC');
}

/** A table in the spirit of `kubeadm certs check-expiration`. */
export function renderTable(rows: CertRow[], now: Date): string {
  const header = ['CERTIFICATE', 'EXPIRES', 'RESIDUAL TIME', 'ISSUER', 'ROTATION WINDOW', 'STATE'];
  const fmt = (iso?: string) => (iso ? utcMinute(iso) : '-');
  const body = rows.map((r) => [
    r.name,
    fmt(r.notAfter),
    r.notAfter ? formatDuration(new Date(r.notAfter).getTime() - now.getTime()) : '-',
    r.issuer ?? '-',
    r.rotationWindow ? `${fmt(r.rotationWindow.from)} – ${fmt(r.rotationWindow.to)}` : '-',
    r.state + (r.problems.length && r.state !== 'missing' ? ` (${r.problems.join('; ')})` : ''),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  return `${[header, ...body]
    .map((cols) => cols.map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i]!))).join('   '))
    .join('\n')}\n`;
}
