// PEM framing (RFC 7468). Our own reader because node:crypto parses only the first block of a multi-block
// file, and the files we read mix blocks: kubelet's `kubelet-client-current.pem` holds the certificate
// chain followed by the key. Input may be untrusted (a CA bundle from the network, a CSR from the API), so
// every failure is a UserError naming what was being read.

import { UserError } from '../errors.ts';

export interface PemBlock {
  /** The label between BEGIN and END, e.g. "CERTIFICATE" or "EC PRIVATE KEY". */
  label: string;
  der: Buffer;
  /** The block re-encoded canonically (64-column base64, trailing newline). */
  pem: string;
}

const BEGIN = '-----BEGIN ';
const END = '-----END ';
const DASHES = '-----';
const BASE64_BODY = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Every PEM block in `text`, in order. Text outside blocks is ignored, as openssl does (it lets a
 * certificate carry its `openssl x509 -text` dump above it). `what` names the input in error messages,
 * e.g. "CA bundle"; `source` is the file or object it came from.
 */
export function parsePemBlocks(text: string, what: string, source?: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  let position = 0;
  for (;;) {
    const begin = text.indexOf(BEGIN, position);
    if (begin < 0) return blocks;
    const labelEnd = text.indexOf(DASHES, begin + BEGIN.length);
    if (labelEnd < 0) throw malformed(what, source, 'a BEGIN line is not closed with "-----"');
    const label = text.slice(begin + BEGIN.length, labelEnd);
    if (!isValidLabel(label)) throw malformed(what, source, 'a BEGIN line has an invalid label');
    const endMarker = `${END}${label}${DASHES}`;
    const bodyStart = labelEnd + DASHES.length;
    const end = text.indexOf(endMarker, bodyStart);
    if (end < 0) throw malformed(what, source, `the "${label}" block has no matching END line`);
    blocks.push(decodeBlock(label, text.slice(bodyStart, end), what, source));
    position = end + endMarker.length;
  }
}

/** The blocks of `text` with exactly this label (e.g. all "CERTIFICATE" blocks of a bundle). */
export function pemBlocksLabelled(text: string, label: string, what: string, source?: string): PemBlock[] {
  return parsePemBlocks(text, what, source).filter((block) => block.label === label);
}

export function encodePem(label: string, der: Uint8Array): string {
  const base64 = Buffer.from(der).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `${BEGIN}${label}${DASHES}\n${lines.join('\n')}${lines.length > 0 ? '\n' : ''}${END}${label}${DASHES}\n`;
}

function isValidLabel(label: string): boolean {
  // RFC 7468 labels are printable ASCII without '-' at the ends; we only ever need letters, digits, spaces.
  return label.length <= 64 && /^[A-Z0-9]+( [A-Z0-9]+)*$/.test(label);
}

function decodeBlock(label: string, rawBody: string, what: string, source: string | undefined): PemBlock {
  if (rawBody.includes('Proc-Type:') || rawBody.includes('DEK-Info:')) {
    throw new UserError(`${what} contains an encrypted "${label}" block; nodecred needs unencrypted PEM`, {
      where: source,
      fix: 'decrypt it first, e.g. `openssl pkey -in <file> -out <file>`',
      code: 'PEM_ENCRYPTED',
    });
  }
  const body = rawBody.replace(/\s+/g, '');
  if (!BASE64_BODY.test(body) || body.length % 4 !== 0) {
    throw malformed(what, source, `the "${label}" block is not valid base64`);
  }
  const der = Buffer.from(body, 'base64');
  if (der.length === 0) throw malformed(what, source, `the "${label}" block is empty`);
  return { label, der, pem: encodePem(label, der) };
}

function malformed(what: string, source: string | undefined, detail: string): UserError {
  return new UserError(`${what} is not valid PEM: ${detail}`, {
    where: source,
    fix: `provide a PEM-encoded ${what}`,
    code: 'PEM_MALFORMED',
  });
}
