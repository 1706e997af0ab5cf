// The secure listener's reading of a verified client certificate (src/health/x509-identity.ts). That the user
// and groups are the API server's is test/integration/security.test.ts, against kube-apiserver itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { userFromCertificate } from '../../../src/health/x509-identity.ts';
import { parsePemBlocks } from '../../../src/pki/pem.ts';
import { resignCertificate } from '../../helpers/der-builder.ts';
import { CLIENT_AUTH, issueLeaf, makeCa, newEcKey } from '../pki/helpers.ts';

test('a client certificate that is not DER (a non-minimal length) is unreadable, not an exception', async () => {
  const ca = await makeCa('client-ca');
  const leaf = await issueLeaf(ca, { publicKey: newEcKey().publicKey, extendedKeyUsages: [CLIENT_AUTH] });
  const der = (pem: string) => parsePemBlocks(pem, 'cert')[0]!.der;
  assert.equal((userFromCertificate(der(leaf)) as { user: string }).user, 'system:node:node-1');
  // The subject in a two-byte long-form length: BER, which OpenSSL reads and Go (and DER) refuse.
  const nonMinimal = resignCertificate(leaf, ca.privateKey, (tbs) => {
    tbs.children[5]!.lengthBytes = 2;
  });
  assert.equal(userFromCertificate(der(nonMinimal)), 'unreadable');
});
