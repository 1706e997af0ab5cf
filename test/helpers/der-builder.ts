// Hand-made PKCS#10 requests at the DER level, for the tests and the fuzz target that attack the approver's
// reading of a CSR: a tree of elements that can be encoded with quirks (long-form lengths, non-minimal OIDs),
// and a signer that signs whatever certificationRequestInfo it is given with a real key, so a malformed
// request still carries a valid proof of possession and only its encoding is under test.
import { createPublicKey, sign, type KeyObject } from 'node:crypto';
import { encodePem } from '../../src/pki/pem.ts';

export type DerNode = {
  tag: number;
  /** Encode the length in this many bytes (long form), even when it is not needed. */
  lengthBytes?: number;
} & ({ children: DerNode[] } | { contents: Buffer });

export function encodeNode(node: DerNode): Buffer {
  const contents = 'children' in node ? Buffer.concat(node.children.map(encodeNode)) : node.contents;
  return Buffer.concat([Buffer.from([node.tag]), encodeLength(contents.length, node.lengthBytes), contents]);
}

function encodeLength(n: number, lengthBytes?: number): Buffer {
  if (lengthBytes === undefined && n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  while (lengthBytes !== undefined && bytes.length < lengthBytes) bytes.unshift(0);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Parses DER (leniently: any definite length) into a tree; constructed elements get children. */
export function decodeNode(der: Buffer): DerNode {
  const [node, used] = decodeAt(der, 0);
  if (used !== der.length) throw new Error('trailing bytes');
  return node;
}

function decodeAt(buf: Buffer, offset: number): [DerNode, number] {
  const tag = buf[offset]!;
  let length = buf[offset + 1]!;
  let header = 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    length = buf.readUIntBE(offset + 2, count);
    header += count;
  }
  const contents = buf.subarray(offset + header, offset + header + length);
  if (contents.length !== length) throw new Error('truncated');
  if ((tag & 0x20) === 0) return [{ tag, contents: Buffer.from(contents) }, header + length];
  const children: DerNode[] = [];
  for (let at = 0; at < contents.length; ) {
    const [child, used] = decodeAt(contents, at);
    children.push(child);
    at += used;
  }
  return [{ tag, children }, header + length];
}

export const prim = (tag: number, contents: Buffer | number[] | string): DerNode => ({
  tag,
  contents: typeof contents === 'string' ? Buffer.from(contents, 'utf8') : Buffer.from(contents),
});
export const cons = (tag: number, ...children: DerNode[]): DerNode => ({ tag, children });
export const seq = (...children: DerNode[]) => cons(0x30, ...children);
export const set = (...children: DerNode[]) => cons(0x31, ...children);

/** An OID; `padArc` (an index) prefixes that arc with a redundant 0x80 byte, as a lenient parser accepts. */
export function oid(dotted: string, padArc?: number): DerNode {
  const arcs = dotted.split('.').map(BigInt);
  const bytes: number[] = [];
  [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)].forEach((arc, i) => {
    const groups = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) groups.unshift(Number(v & 0x7fn) | 0x80);
    if (i === padArc) groups.unshift(0x80);
    bytes.push(...groups);
  });
  return prim(0x06, bytes);
}

export const OIDS = {
  cn: '2.5.4.3',
  o: '2.5.4.10',
  ou: '2.5.4.11',
  extensionRequest: '1.2.840.113549.1.9.14',
  challengePassword: '1.2.840.113549.1.9.7',
  san: '2.5.29.17',
  keyUsage: '2.5.29.15',
  ecdsaSha256: '1.2.840.10045.4.3.2',
};

export const utf8 = (s: string) => prim(0x0c, s);
export const rdn = (type: string, value: DerNode) => set(seq(oid(type), value));
export const nodeName = (node: string) =>
  seq(rdn(OIDS.o, utf8('system:nodes')), rdn(OIDS.cn, utf8(`system:node:${node}`)));

export type San = { dns: string } | { ip: string } | { email: string } | { uri: string };

export function generalNames(sans: San[]): DerNode {
  return seq(
    ...sans.map((s) => {
      if ('dns' in s) return prim(0x82, s.dns);
      if ('email' in s) return prim(0x81, s.email);
      if ('uri' in s) return prim(0x86, s.uri);
      return prim(0x87, ipBytes(s.ip));
    }),
  );
}

function ipBytes(ip: string): Buffer {
  if (!ip.includes(':')) return Buffer.from(ip.split('.').map(Number));
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (v4) {
    const [a, b, c, d] = v4[2]!.split('.').map(Number) as [number, number, number, number];
    return ipBytes(`${v4[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`);
  }
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 255]));
}

/** Extension { id, critical?, OCTET STRING { value } }. */
export function extension(id: DerNode | string, value: DerNode | Buffer, critical?: DerNode): DerNode {
  const octets = prim(0x04, Buffer.isBuffer(value) ? value : encodeNode(value));
  return seq(typeof id === 'string' ? oid(id) : id, ...(critical ? [critical] : []), octets);
}

export const sanExtension = (sans: San[]) => extension(OIDS.san, generalNames(sans));
export const extensionRequest = (...extensions: DerNode[]) => seq(oid(OIDS.extensionRequest), set(seq(...extensions)));

/** certificationRequestInfo { version 0, subject, spki, [0] attributes }. */
export function requestInfo(key: KeyObject, subject: DerNode, attributes: DerNode[]): DerNode {
  const spki = decodeNode(createPublicKey(key).export({ format: 'der', type: 'spki' }));
  return seq(prim(0x02, [0]), subject, spki, cons(0xa0, ...attributes));
}

/** The CSR DER for `info`, signed by `key` (ECDSA P-256 with SHA-256) over info's exact encoding. */
export function signRequest(info: DerNode | Buffer, key: KeyObject): Buffer {
  const tbs = Buffer.isBuffer(info) ? info : encodeNode(info);
  const signature = sign('sha256', tbs, { key, dsaEncoding: 'der' });
  const rest = Buffer.concat([
    encodeNode(seq(oid(OIDS.ecdsaSha256))),
    encodeNode(prim(0x03, Buffer.concat([Buffer.from([0]), signature]))),
  ]);
  return encodeNode({ tag: 0x30, contents: Buffer.concat([tbs, rest]) });
}

export const toPem = (der: Buffer) => encodePem('CERTIFICATE REQUEST', der);

/**
 * The request that got DNS:kubernetes.default.svc signed (issue 11): a first extensionRequest whose type
 * OID has a redundant 0x80 byte (read as extensionRequest by @peculiar/x509, skipped by Go) with the
 * node's own IP, then a well-formed one with the name Go signs. @peculiar/x509 reads only the first.
 */
export function smuggledSanRequest(key: KeyObject, node: string, ownIp: string, smuggled: string): Buffer {
  const decoy = seq(oid(OIDS.extensionRequest, 5), set(seq(sanExtension([{ ip: ownIp }]))));
  const real = extensionRequest(sanExtension([{ dns: smuggled }, { ip: ownIp }]));
  return signRequest(requestInfo(key, nodeName(node), [decoy, real]), key);
}

/**
 * A request whose SAN extension comes twice: as two values of one extensionRequest attribute, or in two
 * extensionRequest attributes. Go reads only the first value of each, and refuses an extension requested twice.
 */
export function extensionRequestTwice(key: KeyObject, node: string, how: 'values' | 'attributes'): Buffer {
  const [first, second] = [sanExtension([{ dns: `a.${node}` }]), sanExtension([{ dns: `b.${node}` }])];
  const attributes =
    how === 'values'
      ? [seq(oid(OIDS.extensionRequest), set(seq(first), seq(second)))]
      : [extensionRequest(first), extensionRequest(second)];
  return signRequest(requestInfo(key, nodeName(node), attributes), key);
}

type Constructed = DerNode & { children: DerNode[] };

/**
 * `certificatePem` with its tbsCertificate changed by `mutate` and signed again by `issuerKey` (ECDSA with
 * SHA-256, the algorithm the certificate already names): a certificate that chains, whose encoding is under test.
 */
export function resignCertificate(
  certificatePem: string,
  issuerKey: KeyObject,
  mutate: (tbs: Constructed) => void,
): string {
  const body = certificatePem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const cert = decodeNode(Buffer.from(body, 'base64')) as Constructed;
  const tbs = cert.children[0] as Constructed;
  mutate(tbs);
  const tbsDer = encodeNode(tbs);
  const signature = sign('sha256', tbsDer, { key: issuerKey, dsaEncoding: 'der' });
  const der = encodeNode({
    tag: 0x30,
    contents: Buffer.concat([
      tbsDer,
      encodeNode(cert.children[1]!),
      encodeNode(prim(0x03, Buffer.concat([Buffer.from([0]), signature]))),
    ]),
  });
  return encodePem('CERTIFICATE', der);
}
