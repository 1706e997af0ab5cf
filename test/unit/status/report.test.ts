import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { assessCertificate } from '../../../src/status/report.ts';
import { dnsSanCovers } from '../../../src/pki/san.ts';
import { issueLeaf, makeCa, newEcKey, SERVER_AUTH } from '../pki/helpers.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

test('dnsSanCovers matches DNS SANs as OpenSSL does (X509Certificate.checkHost is the oracle)', async () => {
  const ca = await makeCa('san-ca');
  const sans = ['*.Nodes.Example.', 'api.example', 'node-1'];
  const pem = await issueLeaf(ca, {
    publicKey: newEcKey().publicKey,
    extendedKeyUsages: [SERVER_AUTH],
    dnsNames: ['*.Nodes.Example', 'api.example', 'node-1'],
  });
  const cert = new X509Certificate(pem);
  const names = [
    'a.nodes.example',
    'A.NODES.EXAMPLE',
    'a.b.nodes.example',
    'nodes.example',
    'api.example',
    'API.example.',
    'x.api.example',
    'node-1',
    'node-2',
  ];
  for (const name of names) {
    const ours = sans.some((san) => dnsSanCovers(san, name));
    const openssl = cert.checkHost(name.replace(/\.$/, ''), { wildcards: true, partialWildcards: false }) !== undefined;
    assert.equal(ours, openssl, name);
  }
  // OpenSSL reads a leading dot as "any name under"; that is no host name, and Go's matcher refuses it too.
  assert.equal(dnsSanCovers('*.nodes.example', '.nodes.example'), false);
});

test('status: a wildcard SAN in capitals covers the expected name (the old match was case-sensitive)', async () => {
  const ca = await makeCa('status-ca');
  const pem = await issueLeaf(ca, {
    publicKey: newEcKey().publicKey,
    extendedKeyUsages: [SERVER_AUTH],
    dnsNames: ['*.Nodes.Example'],
  });
  const row = assessCertificate('server', '/x/server.pem', pem, {
    now: new Date(),
    minValidMs: 0,
    caPem: ca.certificatePem,
    expectSans: ['node-1.nodes.example'],
  });
  assert.deepEqual(row.problems, []);
  assert.equal(row.state, 'ok');
});

test('status: a chain through a certificate that is not a CA does not chain (Go refuses it too)', async () => {
  const root = await makeCa('status-root');
  const intermediate = await makeCa('status-intermediate', { issuer: root });
  const notCaKey = newEcKey();
  const notCa = await issueLeaf(root, { publicKey: notCaKey.publicKey, commonName: 'not-a-ca', organizations: [] });
  const viaCa = await issueLeaf(intermediate, { publicKey: newEcKey().publicKey });
  const expect = { now: new Date(), minValidMs: DAY_MS / 24, caPem: root.certificatePem };
  assert.deepEqual(assessCertificate('client', '/x', `${viaCa}${intermediate.certificatePem}`, expect).problems, []);

  const leafUnderNotCa = await issueLeaf(
    { name: 'not-a-ca', certificatePem: notCa, privateKey: notCaKey.privateKey },
    {
      publicKey: newEcKey().publicKey,
    },
  );
  const row = assessCertificate('client', '/x', `${leafUnderNotCa}${notCa}`, expect);
  assert.deepEqual(row.problems, ['does not chain to the given CA']);
  assert.equal(row.state, 'invalid');
});
