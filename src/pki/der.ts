// Strict DER: a reader that accepts only the one canonical encoding of each element (definite, minimal
// lengths; low tag numbers; minimal OIDs, INTEGERs and BOOLEANs) and an encoder for the same. For input
// where two parsers reading the same bytes differently is an attack: a CSR's approver and its signer must
// see one structure, so anything a lenient reader could interpret another way is refused, naming where.

/**
 * Where in the structure (e.g. "attributes[1].type") and what is wrong there. `nonCanonical`: the bytes
 * are a valid BER encoding of something, just not the DER one (a lenient parser would accept them).
 */
export class DerError extends Error {
  readonly path: string;
  readonly nonCanonical: boolean;
  constructor(path: string, message: string, nonCanonical = false) {
    super(`${path}: ${message}`);
    this.path = path;
    this.nonCanonical = nonCanonical;
  }
}

/** A DerError for bytes that are valid BER but not DER. */
function notDer(path: string, message: string): DerError {
  return new DerError(path, message, true);
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

export interface Tlv {
  tag: number;
  /** The whole element: tag, length and contents. */
  bytes: Buffer;
  contents: Buffer;
}

/** The element at `offset`; its length must be definite, minimally encoded and within `buf`. */
function readTlv(buf: Buffer, offset: number, path: string): Tlv {
  if (offset + 2 > buf.length) throw new DerError(path, 'truncated element');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw notDer(path, `high-tag-number form (tag byte 0x${hex(tag)})`);
  const first = buf[offset + 1]!;
  let length = first;
  let header = 2;
  if (first === 0x80) throw notDer(path, 'indefinite length (BER, not DER)');
  if (first > 0x80) {
    const count = first & 0x7f;
    if (count > 4) throw new DerError(path, `length of ${count} bytes`);
    if (offset + 2 + count > buf.length) throw new DerError(path, 'truncated length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buf[offset + 2 + i]!;
    header += count;
    if (length < 0x80 || buf[offset + 2] === 0) throw notDer(path, 'length not minimally encoded');
  }
  const end = offset + header + length;
  if (end > buf.length) throw new DerError(path, 'element runs past its container');
  return { tag, bytes: buf.subarray(offset, end), contents: buf.subarray(offset + header, end) };
}

/** The one element `buf` holds, with no bytes after it. */
export function readOnly(buf: Buffer, path: string): Tlv {
  const tlv = readTlv(buf, 0, path);
  if (tlv.bytes.length !== buf.length) throw notDer(path, `${buf.length - tlv.bytes.length} trailing bytes`);
  return tlv;
}

/** The elements a constructed element's contents hold, back to back. */
export function children(tlv: Tlv, path: string): Tlv[] {
  const out: Tlv[] = [];
  for (let offset = 0; offset < tlv.contents.length; ) {
    const child = readTlv(tlv.contents, offset, `${path}[${out.length}]`);
    out.push(child);
    offset += child.bytes.length;
  }
  return out;
}

/** Requires `tlv` to have tag `tag` (named `what` in the error). */
export function expectTag(tlv: Tlv | undefined, tag: number, path: string, what: string): Tlv {
  if (tlv === undefined) throw new DerError(path, `missing ${what}`);
  if (tlv.tag !== tag) throw new DerError(path, `expected ${what} (tag 0x${hex(tag)}), found tag 0x${hex(tlv.tag)}`);
  return tlv;
}

/**
 * Go's limit on one OID sub-identifier (encoding/asn1 parseBase128Int, cryptobyte readBase128Int): at most
 * MaxInt32, so at most five bytes. Holding to it keeps every arc a small Number: an uncapped arc grew as a
 * BigInt and made one long OID cost quadratic time.
 */
const MAX_OID_ARC = 0x7fffffff;

/** Dotted OID text; each sub-identifier minimal (no leading 0x80 byte), not truncated, within MAX_OID_ARC. */
export function readOid(tlv: Tlv | undefined, path: string): string {
  const { contents } = expectTag(tlv, TAG.OID, path, 'an OBJECT IDENTIFIER');
  if (contents.length === 0) throw new DerError(path, 'empty OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let value = 0;
  let start = true;
  for (const byte of contents) {
    if (start && byte === 0x80) throw notDer(path, 'OBJECT IDENTIFIER not minimally encoded');
    if (value > MAX_OID_ARC >>> 7) throw new DerError(path, 'OBJECT IDENTIFIER sub-identifier too large');
    value = value * 128 + (byte & 0x7f);
    start = (byte & 0x80) === 0;
    if (start) {
      if (value > MAX_OID_ARC) throw new DerError(path, 'OBJECT IDENTIFIER sub-identifier too large');
      arcs.push(value);
      value = 0;
    }
  }
  if (!start) throw new DerError(path, 'truncated OBJECT IDENTIFIER');
  const first = arcs[0]!;
  const top = first < 40 ? 0 : first < 80 ? 1 : 2;
  return [top, first - top * 40, ...arcs.slice(1)].join('.');
}

/** A small non-negative INTEGER in its minimal two's-complement encoding. */
export function readSmallInteger(tlv: Tlv | undefined, path: string): number {
  const { contents } = expectTag(tlv, TAG.INTEGER, path, 'an INTEGER');
  if (contents.length === 0) throw new DerError(path, 'empty INTEGER');
  if (contents.length > 1 && contents[0] === 0 && contents[1]! < 0x80)
    throw notDer(path, 'INTEGER not minimally encoded');
  if (contents[0]! >= 0x80) throw new DerError(path, 'negative INTEGER');
  if (contents.length > 6) throw new DerError(path, 'INTEGER too large');
  return contents.readUIntBE(0, contents.length);
}

/** BOOLEAN TRUE; DER writes it as 0xFF, and a FALSE that equals a DEFAULT is left out altogether. */
export function readTrue(tlv: Tlv, path: string): void {
  const { contents } = expectTag(tlv, TAG.BOOLEAN, path, 'a BOOLEAN');
  if (contents.length !== 1) throw new DerError(path, 'BOOLEAN of the wrong length');
  if (contents[0] === 0x00) throw notDer(path, 'explicit FALSE for a field whose DEFAULT is FALSE');
  if (contents[0] !== 0xff) throw notDer(path, `BOOLEAN TRUE encoded as 0x${hex(contents[0]!)}, not 0xff`);
}

/** The bits of a BIT STRING with no unused bits (keys and signatures are whole bytes). */
export function readWholeBitString(tlv: Tlv | undefined, path: string): Buffer {
  const { contents } = expectTag(tlv, TAG.BIT_STRING, path, 'a BIT STRING');
  if (contents.length === 0 || contents[0] !== 0) throw new DerError(path, 'BIT STRING with unused bits');
  return contents.subarray(1);
}

/**
 * A BIT STRING's bytes, as Go's cryptobyte ReadASN1BitString accepts it: at most 7 unused bits, none with
 * no bytes, and the unused bits zero (DER).
 */
export function readBitString(tlv: Tlv | undefined, path: string): Buffer {
  const { contents } = expectTag(tlv, TAG.BIT_STRING, path, 'a BIT STRING');
  if (contents.length === 0) throw new DerError(path, 'empty BIT STRING');
  const unused = contents[0]!;
  const bytes = contents.subarray(1);
  if (unused > 7 || (bytes.length === 0 && unused !== 0)) throw new DerError(path, `${unused} unused bits`);
  if (bytes.length > 0 && (bytes[bytes.length - 1]! & ((1 << unused) - 1)) !== 0)
    throw notDer(path, 'BIT STRING with unused bits set');
  return bytes;
}

export function encodeTlv(tag: number, contents: Uint8Array): Buffer {
  const n = contents.length;
  let length: number[];
  if (n < 0x80) length = [n];
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
    length = [0x80 | bytes.length, ...bytes];
  }
  return Buffer.concat([Buffer.from([tag, ...length]), contents]);
}

/** The DER of a dotted OID (the inverse of readOid). */
export function encodeOid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const body: number[] = [];
  for (const arc of [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)]) {
    const groups: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) groups.unshift(Number(v & 0x7fn) | 0x80);
    body.push(...groups);
  }
  return encodeTlv(TAG.OID, Buffer.from(body));
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}
