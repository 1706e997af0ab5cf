// Throwaway PKI for the pki tests: CAs and certificates made in memory for each run, so no private key is
// ever committed. Certificates are made with @peculiar/x509 so tests can shape exactly the wrong
// certificate a broken signer might return (missing EKU, extra SAN, expired, ...).

import { x509 } from '../../helpers/x509.ts';
import { spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' };
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' };
const HOUR_MS = 60 * 60 * 1000;

export interface TestCa {
  name: string;
  certificatePem: string;
  privateKey: KeyObject;
}

export interface CaOptions {
  /** Sign this CA with another (an intermediate) instead of self-signing. */
  issuer?: TestCa;
  notBefore?: Date;
  notAfter?: Date;
  /** Reuse a key, e.g. to make a same-name CA with a different key, or a renewed CA with the same key. */
  privateKey?: KeyObject;
}

export function newEcKey(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

export async function makeCa(name: string, options: CaOptions = {}): Promise<TestCa> {
  const keys = options.privateKey === undefined ? newEcKey() : { privateKey: options.privateKey };
  const publicKey = spki(keys.privateKey);
  const signer = options.issuer ?? { name, privateKey: keys.privateKey };
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: `CN=${name}`,
      issuer: `CN=${signer.name}`,
      notBefore: options.notBefore ?? new Date(Date.now() - HOUR_MS),
      notAfter: options.notAfter ?? new Date(Date.now() + 24 * HOUR_MS),
      publicKey,
      signingKey: signingKey(signer.privateKey),
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
      ],
    },
    webcrypto,
  );
  return { name, certificatePem: `${certificate.toString('pem')}\n`, privateKey: keys.privateKey };
}

export interface LeafOptions {
  publicKey: KeyObject;
  commonName?: string;
  organizations?: string[];
  /** OIDs or names understood by @peculiar/x509 ("1.3.6.1.5.5.7.3.2"); null leaves the extension out. */
  extendedKeyUsages?: string[] | null;
  keyUsages?: number | null;
  dnsNames?: string[];
  ipAddresses?: string[];
  emailAddresses?: string[];
  notBefore?: Date;
  notAfter?: Date;
  /** The whole subject, in this order (overrides commonName and organizations), e.g. two CNs. */
  subject?: x509.JsonName;
}

export const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
export const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

/** A leaf certificate shaped like kube-controller-manager's csrsigning output, unless told otherwise. */
export async function issueLeaf(ca: TestCa, options: LeafOptions): Promise<string> {
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(false, undefined, true)];
  const keyUsages = options.keyUsages === undefined ? x509.KeyUsageFlags.digitalSignature : options.keyUsages;
  if (keyUsages !== null) extensions.push(new x509.KeyUsagesExtension(keyUsages, true));
  const ekus = options.extendedKeyUsages === undefined ? [CLIENT_AUTH] : options.extendedKeyUsages;
  if (ekus !== null) extensions.push(new x509.ExtendedKeyUsageExtension(ekus));
  const sans = subjectAltNames(options);
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans));
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: options.subject ?? subjectName(options),
      // The CA certificate's own subject bytes: Go matches issuers by raw DN, so a re-encoded name would not chain.
      issuer: new x509.X509Certificate(ca.certificatePem).subjectName,
      notBefore: options.notBefore ?? new Date(Date.now() - 5 * 60 * 1000),
      notAfter: options.notAfter ?? new Date(Date.now() + 24 * HOUR_MS),
      publicKey: spki(options.publicKey),
      signingKey: signingKey(ca.privateKey),
      signingAlgorithm: ECDSA_SHA256,
      extensions,
    },
    webcrypto,
  );
  return `${certificate.toString('pem')}\n`;
}

function subjectName(options: LeafOptions): x509.JsonName {
  const name: x509.JsonName = [];
  const organizations = options.organizations ?? ['system:nodes'];
  if (organizations.length > 0) name.push({ O: organizations });
  name.push({ CN: [options.commonName ?? 'system:node:node-1'] });
  return name;
}

function subjectAltNames(options: LeafOptions): x509.JsonGeneralNames {
  return [
    ...(options.dnsNames ?? []).map((value): x509.JsonGeneralName => ({ type: 'dns', value })),
    ...(options.ipAddresses ?? []).map((value): x509.JsonGeneralName => ({ type: 'ip', value })),
    ...(options.emailAddresses ?? []).map((value): x509.JsonGeneralName => ({ type: 'email', value })),
  ];
}

function spki(key: KeyObject): Buffer {
  return (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });
}

function signingKey(privateKey: KeyObject): webcrypto.CryptoKey {
  return privateKey.toCryptoKey(ECDSA_P256, false, ['sign']);
}

function randomSerial(): string {
  // Positive: the high bit clear, as RFC 5280 wants.
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

/** A serving certificate from `ca` for these names, shaped as an API server's, and its key (PKCS#8 PEM). */
export async function issueServingPair(
  ca: TestCa,
  dnsNames: string[],
  ipAddresses: string[],
): Promise<{ cert: string; key: string }> {
  const { privateKey, publicKey } = newEcKey();
  const cert = await issueLeaf(ca, {
    publicKey,
    commonName: 'kube-apiserver',
    organizations: [],
    extendedKeyUsages: [SERVER_AUTH],
    dnsNames,
    ipAddresses,
  });
  return { cert, key: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

/**
 * A TLS listener on `host` serving a server certificate `ca` issued for `dnsNames` and `ipAddresses`, as an
 * API server would (it closes every connection once the handshake is done).
 */
export async function serveCertificate(
  ca: TestCa,
  host: string,
  dnsNames: string[],
  ipAddresses: string[],
): Promise<{ server: TlsServer; port: number }> {
  const { cert, key } = await issueServingPair(ca, dnsNames, ipAddresses);
  const server = createTlsServer({ cert, key }, (socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Runs openssl with `files` written to a temporary directory; "{name}" in args becomes that file's path. */
export function openssl(args: string[], files: Record<string, string> = {}): string {
  return withFiles(files, (path) => run('openssl', args.map(path)));
}

/** A shell pipeline (the pin hash recipe is one), with "{name}" placeholders as in openssl(). */
export function shell(command: string, files: Record<string, string> = {}): string {
  return withFiles(files, (path) => run('sh', ['-c', path(command)]));
}

function withFiles(files: Record<string, string>, use: (path: (text: string) => string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'nodecred-pki-test-'));
  try {
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    return use((text) => text.replace(/\{([\w.-]+)\}/g, (_, name: string) => join(dir, name)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** stdout and stderr together (openssl reports "verify OK" on stderr); throws on a non-zero exit. */
function run(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.error !== undefined) throw result.error;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return result.stdout + result.stderr;
}
