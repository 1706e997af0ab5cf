// The simulated cluster's PKI, synchronous and fast: a real ECDSA P-256 cluster CA, PKCS#10 requests built
// and read with node:crypto, and certificates signed the way kube-controller-manager's csrsigning signs
// them (subject and SANs from the request, NotBefore backdated 5 minutes). The node side verifies every one
// with nodecred's own verification (src/pki/verify.ts), exactly as on a real node.
import { createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { encodePem, pemBlocksLabelled } from '../../src/pki/pem.ts';
import { canonicalIp } from '../../src/pki/san.ts';
import { PLACEHOLDER_ORGANIZATION } from '../../src/pki/self-signed.ts';
import type { CsrRequest } from '../../src/pki/csr.ts';
import {
  bits,
  bool,
  children,
  explicit,
  integer,
  octets,
  oid,
  read,
  readOid,
  seq,
  set,
  time,
  tlv,
  utf8,
} from './der.ts';
import type { Node } from './der.ts';

const OID = {
  ecdsaSha256: '1.2.840.10045.4.3.2',
  rsaSha256: '1.2.840.113549.1.1.11',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectAltName: '2.5.29.17',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  basicConstraints: '2.5.29.19',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
};

function signatureAlgorithm(key: KeyObject): Buffer {
  return key.asymmetricKeyType === 'rsa' ? seq(oid(OID.rsaSha256), Buffer.from([5, 0])) : seq(oid(OID.ecdsaSha256));
}

function signed(tbs: Buffer, key: KeyObject): Buffer {
  return seq(tbs, signatureAlgorithm(key), bits(sign('sha256', tbs, key)));
}

/** O before CN, one RDN each, as Go's pkix.Name marshals them. */
function name(commonName: string, organizations: readonly string[] = []): Buffer {
  const rdn = (type: string, value: string) => set(seq(oid(type), utf8(value)));
  return seq(...organizations.map((o) => rdn(OID.organization, o)), rdn(OID.commonName, commonName));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const groups = (s: string) => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const h = groups(head);
  const t = groups(tail);
  const all = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill(0), ...t] : h;
  return Buffer.from(all.flatMap((g: number) => [g >> 8, g & 0xff]));
}

function generalNames(dnsNames: readonly string[], ipAddresses: readonly string[]): Buffer {
  return seq(
    ...dnsNames.map((d) => Buffer.concat([Buffer.from([0x82, d.length]), Buffer.from(d, 'ascii')])),
    ...ipAddresses.map((ip) => {
      const b = ipBytes(ip);
      return Buffer.concat([Buffer.from([0x87, b.length]), b]);
    }),
  );
}

const extension = (id: string, critical: boolean, value: Buffer) =>
  seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

const spki = (key: KeyObject) => createPublicKey(key).export({ format: 'der', type: 'spki' });

/** A PKCS#10 request, as pki/csr.ts buildCsrPem makes it: SANs in an extensionRequest, none when empty. */
export function buildCsr(key: KeyObject, request: CsrRequest): string {
  return build(key, request, spki(key));
}

function build(key: KeyObject, request: CsrRequest, keyInfo: Buffer): string {
  const sans = [...(request.dnsNames ?? []), ...(request.ipAddresses ?? [])];
  const sanExtension = () =>
    extension(OID.subjectAltName, false, generalNames(request.dnsNames ?? [], request.ipAddresses ?? []));
  const attributes = sans.length ? seq(oid(OID.extensionRequest), set(seq(sanExtension()))) : Buffer.alloc(0);
  const info = seq(integer(0), name(request.commonName, request.organizations), keyInfo, tlv(0xa0, attributes));
  return encodePem('CERTIFICATE REQUEST', signed(info, key));
}

/**
 * What the simulated API server will read from requests built here, recorded as they are built: reading
 * back (DER parse, public key import, signature check) a request this module just signed would cost the
 * fleet simulation more than building it. Taken out when the request is submitted; bounded, because a
 * request built during an outage may never be.
 */
const built = new Map<string, ReadCsr>();
const BUILT_MAX = 100_000;

/** buildCsr, remembering what the request says for readSubmittedCsr (test/unit/sim/pki.test.ts: the same). */
export function buildKnownCsr(key: KeyObject, request: CsrRequest): string {
  const keyInfo = spki(key);
  const pem = build(key, request, keyInfo);
  if (built.size >= BUILT_MAX) built.clear();
  let publicKey: KeyObject | undefined;
  built.set(pem, {
    get publicKey() {
      publicKey ??= createPublicKey(key);
      return publicKey;
    },
    spki: keyInfo,
    keyType: key.asymmetricKeyType,
    commonName: request.commonName,
    organizations: [...request.organizations],
    dnsNames: [...(request.dnsNames ?? [])],
    ipAddresses: (request.ipAddresses ?? []).map((ip) => canonicalIp(ip) ?? ip),
    signatureValid: true,
  });
  return pem;
}

/** A submitted request as the API server reads it: recorded by buildKnownCsr, else parsed (readCsr). */
export function readSubmittedCsr(pem: string): ReadCsr {
  const known = built.get(pem);
  if (!known) return readCsr(pem);
  built.delete(pem);
  return known;
}

export interface ReadCsr {
  publicKey: KeyObject;
  spki: Buffer;
  /** 'ec', 'rsa', …: what the signer's key usages depend on. */
  keyType: string | undefined;
  commonName: string | undefined;
  organizations: string[];
  dnsNames: string[];
  ipAddresses: string[];
  /** The request is signed by the key it carries (proof of possession), as the API server requires. */
  signatureValid: boolean;
}

function text(node: Node): string {
  return node.value.toString('utf8');
}

export function readCsr(pem: string): ReadCsr {
  const der = pemBlocksLabelled(pem, 'CERTIFICATE REQUEST', 'certificate signing request')[0]!.der;
  const [info, , signature] = children(read(der).value) as [Node, Node, Node];
  const [, subject, keyInfo, attributes] = children(info.value) as [Node, Node, Node, Node | undefined];
  const fields = children(subject.value).map((rdn) => {
    const [type, value] = children(children(rdn.value)[0]!.value) as [Node, Node];
    return { type: readOid(type), value: text(value) };
  });
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const attribute of attributes ? children(attributes.value) : []) {
    const [type, values] = children(attribute.value) as [Node, Node];
    if (readOid(type) !== OID.extensionRequest) continue;
    for (const ext of children(children(values.value)[0]!.value)) {
      const parts = children(ext.value);
      if (readOid(parts[0]!) !== OID.subjectAltName) continue;
      for (const general of children(read(parts.at(-1)!.value).value)) {
        if (general.tag === 0x82) dnsNames.push(general.value.toString('ascii'));
        if (general.tag === 0x87) ipAddresses.push(ipText(general.value));
      }
    }
  }
  const publicKey = createPublicKey({ key: keyInfo.raw, format: 'der', type: 'spki' });
  return {
    publicKey,
    spki: Buffer.from(keyInfo.raw),
    keyType: publicKey.asymmetricKeyType,
    commonName: fields.find((f) => f.type === OID.commonName)?.value,
    organizations: fields.filter((f) => f.type === OID.organization).map((f) => f.value),
    dnsNames,
    ipAddresses,
    signatureValid: verify('sha256', info.raw, publicKey, signature.value.subarray(1)),
  };
}

function ipText(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return canonicalIp(groups.join(':')) ?? groups.join(':');
}

/** The first-boot placeholder, as src/pki/self-signed.ts makes it (the same subject, usages and SAN). */
export function selfSignedServing(nodeName: string, now: Date): { chainPem: string; key: KeyObject } {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const subject = name(nodeName, [PLACEHOLDER_ORGANIZATION]);
  const tbs = seq(
    explicit(0, integer(2)),
    integer(1),
    signatureAlgorithm(key),
    subject,
    seq(time(new Date(now.getTime() - 60_000)), time(new Date(now.getTime() + 365 * 86_400_000))),
    subject,
    spki(key),
    explicit(
      3,
      seq(
        extension(OID.basicConstraints, true, seq()),
        extension(OID.keyUsage, true, Buffer.from([0x03, 0x02, 0x07, 0x80])),
        extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
        extension(OID.subjectAltName, false, generalNames([nodeName], [])),
      ),
    ),
  );
  return { chainPem: encodePem('CERTIFICATE', signed(tbs, key)), key };
}

export interface Issue {
  serial: number;
  commonName: string;
  organizations: string[];
  /** The key the certificate certifies (DER SubjectPublicKeyInfo), and its type ('ec', 'rsa'). */
  spki: Buffer;
  keyType: string | undefined;
  dnsNames: string[];
  ipAddresses: string[];
  usage: 'client' | 'server';
  notBefore: Date;
  notAfter: Date;
}

export class SimCa {
  readonly key: KeyObject;
  readonly pem: string;
  readonly commonName: string;

  constructor(commonName = 'kubernetes', notBefore = new Date(0), notAfter = new Date(Date.UTC(2099, 0))) {
    this.commonName = commonName;
    this.key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const caUsages = Buffer.from([0x03, 0x02, 0x01, 0x86]); // digitalSignature, keyCertSign, cRLSign
    const tbs = seq(
      explicit(0, integer(2)),
      integer(1),
      signatureAlgorithm(this.key),
      name(commonName),
      seq(time(notBefore), time(notAfter)),
      name(commonName),
      spki(this.key),
      explicit(3, seq(extension(OID.basicConstraints, true, seq(bool(true))), extension(OID.keyUsage, true, caUsages))),
    );
    this.pem = encodePem('CERTIFICATE', signed(tbs, this.key));
  }

  /** A leaf certificate as csrsigning issues it, PEM. */
  issue(o: Issue): string {
    const rsa = o.keyType === 'rsa';
    // digitalSignature (+ keyEncipherment for RSA), as kubelet asks.
    const keyUsage = rsa ? Buffer.from([0x03, 0x02, 0x05, 0xa0]) : Buffer.from([0x03, 0x02, 0x07, 0x80]);
    const sans = o.dnsNames.length + o.ipAddresses.length;
    const extensions = [
      extension(OID.keyUsage, true, keyUsage),
      extension(OID.extKeyUsage, false, seq(oid(o.usage === 'client' ? OID.clientAuth : OID.serverAuth))),
      extension(OID.basicConstraints, true, seq()),
      ...(sans ? [extension(OID.subjectAltName, false, generalNames(o.dnsNames, o.ipAddresses))] : []),
    ];
    const tbs = seq(
      explicit(0, integer(2)),
      integer(o.serial),
      signatureAlgorithm(this.key),
      name(this.commonName),
      seq(time(o.notBefore), time(o.notAfter)),
      name(o.commonName, o.organizations),
      o.spki,
      explicit(3, seq(...extensions)),
    );
    return encodePem('CERTIFICATE', signed(tbs, this.key));
  }
}
