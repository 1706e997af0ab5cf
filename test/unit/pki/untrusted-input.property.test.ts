// The parsers face untrusted input (CSRs from the API, CA bundles from anonymous discovery). Whatever they
// are fed, they may only fail with a UserError — never a library exception, never a crash.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import fc from 'fast-check';
import { isUserError } from '../../../src/errors.ts';
import { caPinHash, parseCertificateBundle, parsePinHash } from '../../../src/pki/cert.ts';
import { buildCsrPem, nodeSubject, parseCsrPem } from '../../../src/pki/csr.ts';
import { loadPrivateKeyPem } from '../../../src/pki/keys.ts';
import { encodePem, parsePemBlocks } from '../../../src/pki/pem.ts';
import { verifyIssuedCertificate } from '../../../src/pki/verify.ts';
import { issueLeaf, makeCa, newEcKey } from './helpers.ts';

const RUNS = 300;

let validCsrDer: Buffer;
let validCertificateDer: Buffer;
let validKeyDer: Buffer;
before(async () => {
  const key = newEcKey();
  validCsrDer = parsePemBlocks(
    await buildCsrPem(key.privateKey, { ...nodeSubject('n'), dnsNames: ['n'], ipAddresses: ['10.0.0.1'] }),
    'csr',
  )[0]!.der;
  const ca = await makeCa('fuzz-ca');
  validCertificateDer = parsePemBlocks(await issueLeaf(ca, { publicKey: key.publicKey, dnsNames: ['n'] }), 'cert')[0]!
    .der;
  validKeyDer = key.privateKey.export({ format: 'der', type: 'sec1' });
});

/** Valid DER with a few bytes overwritten and possibly truncated: reaches deep into the ASN.1 decoders. */
function mutated(der: () => Buffer): fc.Arbitrary<Buffer> {
  const edit = fc.record({ offset: fc.nat(), value: fc.integer({ min: 0, max: 255 }) });
  return fc
    .record({
      edits: fc.array(edit, { minLength: 1, maxLength: 4 }),
      keep: fc.double({ min: 0.2, max: 1, noNaN: true }),
    })
    .map(({ edits, keep }) => {
      const bytes = Buffer.from(der());
      for (const { offset, value } of edits) bytes[offset % bytes.length] = value;
      return bytes.subarray(0, Math.max(1, Math.floor(bytes.length * keep)));
    });
}

function pemInputs(label: string, der: () => Buffer): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.string({ unit: fc.constantFrom('-', 'BEGIN ', 'END ', label, '\n', 'QUJD', '=', ' '), maxLength: 30 }),
    fc.uint8Array({ maxLength: 300 }).map((bytes) => encodePem(label, bytes)),
    mutated(der).map((bytes) => encodePem(label, bytes)),
  );
}

function assertOnlyUserErrors(error: unknown): void {
  assert.ok(
    isUserError(error),
    `expected a UserError, got ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
  );
}

function syncNeverThrowsButUserError(parse: () => unknown): void {
  try {
    parse();
  } catch (error) {
    assertOnlyUserErrors(error);
  }
}

test('parseCsrPem fails only with UserErrors', async () => {
  await fc.assert(
    fc.asyncProperty(
      pemInputs('CERTIFICATE REQUEST', () => validCsrDer),
      async (text) => {
        await parseCsrPem(text).catch(assertOnlyUserErrors);
      },
    ),
    { numRuns: RUNS },
  );
});

test('certificate parsing and CA pinning fail only with UserErrors', () => {
  fc.assert(
    fc.property(
      pemInputs('CERTIFICATE', () => validCertificateDer),
      (text) => {
        syncNeverThrowsButUserError(() => parseCertificateBundle(text));
        syncNeverThrowsButUserError(() => caPinHash(text));
      },
    ),
    { numRuns: RUNS },
  );
});

test('private key loading fails only with UserErrors', () => {
  fc.assert(
    fc.property(
      pemInputs('EC PRIVATE KEY', () => validKeyDer),
      (text) => syncNeverThrowsButUserError(() => loadPrivateKeyPem(text)),
    ),
    { numRuns: RUNS },
  );
});

test('parsePinHash fails only with UserErrors', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (text) => syncNeverThrowsButUserError(() => parsePinHash(text))),
    { numRuns: RUNS },
  );
});

test('verifyIssuedCertificate never throws on arbitrary certificate and CA input', () => {
  const key = newEcKey().privateKey;
  const template = { ...nodeSubject('n'), usage: 'client' as const };
  fc.assert(
    fc.property(
      pemInputs('CERTIFICATE', () => validCertificateDer),
      pemInputs('CERTIFICATE', () => validCertificateDer),
      (certificatePem, caBundlePem) => {
        const result = verifyIssuedCertificate({ certificatePem, caBundlePem, key, template, now: new Date() });
        assert.equal(typeof result.ok, 'boolean');
      },
    ),
    { numRuns: RUNS },
  );
});
