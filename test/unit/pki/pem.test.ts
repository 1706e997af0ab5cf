import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError } from '../../../src/errors.ts';
import { encodePem, parsePemBlocks, pemBlocksLabelled } from '../../../src/pki/pem.ts';

const der = Buffer.from(Array.from({ length: 100 }, (_, i) => i));

test('encodePem wraps base64 at 64 columns and round-trips through parsePemBlocks', () => {
  const pem = encodePem('CERTIFICATE', der);
  assert.ok(pem.split('\n').every((line) => line.length <= 64));
  const [block] = parsePemBlocks(pem, 'test input');
  assert.equal(block?.label, 'CERTIFICATE');
  assert.deepEqual(block?.der, der);
  assert.equal(block?.pem, pem);
});

test('parsePemBlocks reads every block in order, ignoring text around them and CRLF line ends', () => {
  const pems = `${encodePem('CERTIFICATE', der)}between\n${encodePem('EC PRIVATE KEY', der.subarray(0, 10))}`;
  const text = `explanatory text\r\n${pems}`.replace(/\n/g, '\r\n');
  const blocks = parsePemBlocks(text, 'test input');
  assert.deepEqual(
    blocks.map((block) => block.label),
    ['CERTIFICATE', 'EC PRIVATE KEY'],
  );
  assert.deepEqual(blocks[1]?.der, der.subarray(0, 10));
  assert.equal(pemBlocksLabelled(text, 'EC PRIVATE KEY', 'test input').length, 1);
});

test('text without PEM blocks yields no blocks', () => {
  assert.deepEqual(parsePemBlocks('hello', 'test input'), []);
});

const malformed: Array<[string, string]> = [
  ['BEGIN line not closed', '-----BEGIN CERTIFICATE'],
  ['no END line', '-----BEGIN CERTIFICATE-----\nAAAA\n'],
  ['mismatched END label', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n'],
  ['invalid base64', '-----BEGIN CERTIFICATE-----\nAA*A\n-----END CERTIFICATE-----\n'],
  ['truncated base64', '-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n'],
  ['empty body', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n'],
  ['lower-case label', '-----BEGIN certificate-----\nAAAA\n-----END certificate-----\n'],
];
for (const [name, text] of malformed) {
  test(`malformed PEM is a UserError naming the input: ${name}`, () => {
    assert.throws(
      () => parsePemBlocks(text, 'CA bundle', '/etc/ca.pem'),
      (error: unknown) =>
        error instanceof UserError &&
        error.code === 'PEM_MALFORMED' &&
        error.oneLine().startsWith('/etc/ca.pem: CA bundle is not valid PEM'),
    );
  });
}

test('a legacy encrypted PEM block is refused with a fix', () => {
  const text =
    '-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n' +
    'AAAA\n-----END EC PRIVATE KEY-----\n';
  assert.throws(
    () => parsePemBlocks(text, 'private key file'),
    (error: unknown) => error instanceof UserError && error.code === 'PEM_ENCRYPTED',
  );
});
