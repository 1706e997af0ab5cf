// The simulator's signer and request builder are checked against outside oracles (openssl) and against
// the PKCS#10 parser nodecred uses in production, so the simulation's certificates are real ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCsrPem } from '../../../src/pki/csr.ts';
import { verifyIssuedCertificate } from '../../../src/pki/verify.ts';
import { buildCsr, buildKnownCsr, readCsr, readSubmittedCsr, SimCa } from '../../../bench/sim/pki.ts';
import { newEcKey, openssl } from '../pki/helpers.ts';

const request = {
  commonName: 'system:node:worker-1',
  organizations: ['system:nodes'],
  dnsNames: ['worker-1.example'],
  ipAddresses: ['10.0.0.7', 'fd00::7'],
};

test('sim CSR: openssl verifies its signature; nodecred’s parser and the simulator read the same request', async () => {
  const { privateKey } = newEcKey();
  const pem = buildCsr(privateKey, request);
  const text = openssl(['req', '-in', '{r.pem}', '-noout', '-verify', '-text'], { 'r.pem': pem });
  assert.match(text, /verify OK/i);
  assert.match(text, /Subject: O\s?=\s?system:nodes, CN\s?=\s?system:node:worker-1/);
  assert.match(text, /DNS:worker-1\.example, IP Address:10\.0\.0\.7, IP Address:FD00:0:0:0:0:0:0:7/);
  const ours = await parseCsrPem(pem);
  const sims = readCsr(pem);
  for (const r of [ours, sims]) {
    assert.equal(r.commonName, request.commonName);
    assert.deepEqual(r.organizations, request.organizations);
    assert.deepEqual(r.dnsNames, request.dnsNames);
    assert.deepEqual(r.ipAddresses, request.ipAddresses);
    assert.equal(r.signatureValid, true);
  }
  const tampered = pem.replace(/^(.{40})(.)/m, (_, head: string, c: string) => head + (c === 'A' ? 'B' : 'A'));
  assert.equal(readCsr(tampered).signatureValid, false, 'a changed request no longer verifies');
});

test('a request the simulated API server takes from the builder’s record reads as the parsed request', () => {
  const { privateKey } = newEcKey();
  for (const r of [request, { commonName: 'system:node:w', organizations: ['system:nodes'] }]) {
    const pem = buildKnownCsr(privateKey, r);
    const { publicKey, ...recorded } = readSubmittedCsr(pem);
    const { publicKey: parsedKey, ...parsed } = readCsr(pem);
    assert.deepEqual(recorded, parsed);
    assert.ok(publicKey.equals(parsedKey));
    assert.deepEqual(readSubmittedCsr(pem), readCsr(pem), 'taken once; a second submission is parsed');
  }
});

test('sim certificate: openssl verifies it against the sim CA for its purpose; nodecred verifies it too', () => {
  const ca = new SimCa();
  const { privateKey } = newEcKey();
  const r = readCsr(buildCsr(privateKey, request));
  const now = Date.now();
  const cert = ca.issue({
    serial: 42,
    commonName: r.commonName!,
    organizations: r.organizations,
    spki: r.spki,
    keyType: r.keyType,
    dnsNames: r.dnsNames,
    ipAddresses: r.ipAddresses,
    usage: 'server',
    notBefore: new Date(now - 300_000),
    notAfter: new Date(now + 3_600_000),
  });
  const files = { 'ca.pem': ca.pem, 'leaf.pem': cert };
  assert.match(openssl(['verify', '-CAfile', '{ca.pem}', '-purpose', 'sslserver', '{leaf.pem}'], files), /OK/);
  assert.throws(() => openssl(['verify', '-CAfile', '{ca.pem}', '-purpose', 'sslclient', '{leaf.pem}'], files));
  const template = { ...request, usage: 'server' as const };
  const verdict = verifyIssuedCertificate({
    certificatePem: cert,
    key: privateKey,
    caBundlePem: ca.pem,
    template,
    now: new Date(),
  });
  assert.ok(verdict.ok, verdict.ok ? '' : verdict.problems.join('; '));
  const rogue = new SimCa('rogue');
  const fromRogue = verifyIssuedCertificate({
    certificatePem: cert,
    key: privateKey,
    caBundlePem: rogue.pem,
    template,
    now: new Date(),
  });
  assert.equal(fromRogue.ok, false, 'another CA is refused');
});
