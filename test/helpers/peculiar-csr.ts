// The approver's old reader of CSRs: @peculiar/x509, lenient (it reads only the first extensionRequest,
// accepts non-canonical DER). nodecred no longer reads requests with it (src/pki/x509-read.ts for its own,
// src/pki/strict-csr.ts for the approver); the oracle tests keep it to show that their property can fail.
import { createPublicKey, webcrypto } from 'node:crypto';
import type { ParsedCsr } from '../../src/pki/csr.ts';
import { describeKeyAlgorithm } from '../../src/pki/keys.ts';
import { pemBlocksLabelled } from '../../src/pki/pem.ts';
import { canonicalIp } from '../../src/pki/san.ts';
import { x509 } from './x509.ts';

const SUBJECT_ALT_NAME = '2.5.29.17';

export async function parseCsrWithPeculiar(text: string): Promise<ParsedCsr> {
  const blocks = pemBlocksLabelled(text, 'CERTIFICATE REQUEST', 'certificate signing request');
  if (blocks.length !== 1) throw new Error(`expected one CSR block, found ${blocks.length}`);
  const csr = new x509.Pkcs10CertificateRequest(blocks[0]!.der);
  const publicKey = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  const parsed: ParsedCsr = {
    commonName: undefined,
    organizations: [],
    otherSubjectAttributes: [],
    dnsNames: [],
    ipAddresses: [],
    emailAddresses: [],
    uris: [],
    otherSubjectAltNames: [],
    publicKey,
    keyAlgorithm: describeKeyAlgorithm(publicKey),
    signatureValid: await csr.verify(webcrypto).catch(() => false),
  };
  for (const rdn of csr.subjectName.toJSON()) {
    for (const [type, values] of Object.entries(rdn)) {
      for (const value of values) {
        if (type === 'CN') {
          if (parsed.commonName !== undefined) throw new Error('more than one subject common name');
          parsed.commonName = value;
        } else if (type === 'O') parsed.organizations.push(value);
        else parsed.otherSubjectAttributes.push(`${type}=${value}`);
      }
    }
  }
  for (const extension of csr.extensions) {
    if (extension.type !== SUBJECT_ALT_NAME) continue;
    const san =
      extension instanceof x509.SubjectAlternativeNameExtension
        ? extension
        : new x509.SubjectAlternativeNameExtension(extension.rawData);
    for (const { type, value } of san.names.items) {
      if (type === 'dns') parsed.dnsNames.push(value);
      else if (type === 'ip') parsed.ipAddresses.push(canonicalIp(value) ?? value);
      else if (type === 'email') parsed.emailAddresses.push(value);
      else if (type === 'url') parsed.uris.push(value);
      else parsed.otherSubjectAltNames.push(`${type}:${value}`);
    }
  }
  return parsed;
}
