// Just enough DER to build and read PKCS#10 requests and X.509 certificates synchronously, so the simulated
// signer can issue real, verifiable certificates for a whole fleet in seconds (bench/sim/pki.ts).

export function tlv(tag: number, content: Uint8Array): Buffer {
  const n = content.length;
  let header: number[];
  if (n < 0x80) header = [tag, n];
  else if (n < 0x100) header = [tag, 0x81, n];
  else if (n < 0x10000) header = [tag, 0x82, n >> 8, n & 0xff];
  else header = [tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from(header), content]);
}

export const seq = (...items: Uint8Array[]) => tlv(0x30, Buffer.concat(items));
export const set = (...items: Uint8Array[]) => tlv(0x31, Buffer.concat(items));
export const octets = (content: Uint8Array) => tlv(0x04, content);
export const utf8 = (text: string) => tlv(0x0c, Buffer.from(text, 'utf8'));
export const bool = (value: boolean) => tlv(0x01, Buffer.from([value ? 0xff : 0]));
export const explicit = (n: number, content: Uint8Array) => tlv(0xa0 + n, content);
/** A BIT STRING with no unused bits (signatures, keys). */
export const bits = (content: Uint8Array) => tlv(0x03, Buffer.concat([Buffer.from([0]), content]));

/** A non-negative INTEGER from big-endian bytes (a leading zero is added when the top bit is set). */
export function integer(value: number | Uint8Array): Buffer {
  let bytes: Buffer;
  if (typeof value === 'number') {
    const out: number[] = [];
    let v = value;
    do {
      out.unshift(v % 256);
      v = Math.floor(v / 256);
    } while (v > 0);
    bytes = Buffer.from(out);
  } else bytes = Buffer.from(value);
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(0x02, bytes);
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const part of parts.slice(2)) {
    const chunk: number[] = [];
    let v = part;
    do {
      chunk.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i]! |= 0x80;
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime before 2050, GeneralizedTime after, as RFC 5280 asks. */
export function time(at: Date): Buffer {
  const iso = at.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return at.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${iso}Z`));
}

export interface Node {
  tag: number;
  /** The whole element, header included. */
  raw: Buffer;
  /** The content. */
  value: Buffer;
}

/** Reads the element at `offset`. */
export function read(buf: Buffer, offset = 0): Node & { end: number } {
  const tag = buf[offset]!;
  let length = buf[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buf[start + i]!;
    start += count;
  }
  const end = start + length;
  if (end > buf.length) throw new Error('DER element runs past the end of its input');
  return { tag, raw: buf.subarray(offset, end), value: buf.subarray(start, end), end };
}

/** The elements inside a constructed element's content. */
export function children(content: Buffer): Node[] {
  const out: Node[] = [];
  for (let offset = 0; offset < content.length; ) {
    const node = read(content, offset);
    out.push(node);
    offset = node.end;
  }
  return out;
}

export function readOid(node: Node): string {
  const v = node.value;
  const parts = [Math.floor(v[0]! / 40), v[0]! % 40];
  let acc = 0;
  for (let i = 1; i < v.length; i++) {
    acc = acc * 128 + (v[i]! & 0x7f);
    if (!(v[i]! & 0x80)) {
      parts.push(acc);
      acc = 0;
    }
  }
  return parts.join('.');
}
