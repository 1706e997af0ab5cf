import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { before, test } from 'node:test';
import { loadCertificates } from '../../../src/pki/cert.ts';
import {
  findPathToCa,
  verifyIssuedCertificate,
  type IssuedCertificateTemplate,
  type VerifyIssuedCertificateInput,
} from '../../../src/pki/verify.ts';
import { encodeNode, oid, prim, resignCertificate, seq, type DerNode } from '../../helpers/der-builder.ts';
import { CLIENT_AUTH, issueLeaf, makeCa, newEcKey, SERVER_AUTH, type LeafOptions, type TestCa } from './helpers.ts';

const MINUTE_MS = 60 * 1000;
const now = new Date();
const minutesFromNow = (minutes: number) => new Date(now.getTime() + minutes * MINUTE_MS);

const clientTemplate: IssuedCertificateTemplate = {
  commonName: 'system:node:node-1',
  organizations: ['system:nodes'],
  usage: 'client',
};
const serverTemplate: IssuedCertificateTemplate = {
  ...clientTemplate,
  usage: 'server',
  dnsNames: ['node-1', 'node-1.example.com'],
  ipAddresses: ['10.0.0.1', '2001:db8::1'],
};
const serverSans = {
  dnsNames: ['node-1', 'node-1.example.com'],
  ipAddresses: ['10.0.0.1', '2001:db8::1'],
  extendedKeyUsages: [SERVER_AUTH],
};

let ca: TestCa;
let otherCa: TestCa;
let key: { privateKey: KeyObject; publicKey: KeyObject };
before(async () => {
  [ca, otherCa] = await Promise.all([makeCa('kubernetes-ca'), makeCa('other-ca')]);
  key = newEcKey();
});

async function verify(leaf: Partial<LeafOptions>, input: Partial<VerifyIssuedCertificateInput> = {}) {
  const certificatePem = await issueLeaf(ca, { publicKey: key.publicKey, ...leaf });
  return verifyIssuedCertificate({
    certificatePem,
    key: key.privateKey,
    caBundlePem: ca.certificatePem,
    template: clientTemplate,
    now,
    ...input,
  });
}

type Result = ReturnType<typeof verifyIssuedCertificate>;

/** A client certificate (and any chain after it) checked against `ca` alone, with our key. */
const verifyAsIssuedByCa = (certificatePem: string): Result =>
  verifyIssuedCertificate({
    certificatePem,
    key: key.privateKey,
    caBundlePem: ca.certificatePem,
    template: clientTemplate,
    now,
  });

/** Exactly these problems (one regex each), and none of them leaks anything that looks like key or cert data. */
function assertProblems(result: Result, ...expected: RegExp[]): void {
  assert.equal(result.ok, false, 'expected verification to fail');
  if (result.ok) return;
  assert.equal(result.problems.length, expected.length, `problems: ${JSON.stringify(result.problems)}`);
  expected.forEach((pattern, index) => {
    assert.match(result.problems[index]!, pattern);
  });
  for (const problem of result.problems) {
    assert.doesNotMatch(problem, /BEGIN|[A-Za-z0-9+/]{32,}/, 'a problem message must not carry PEM or base64 data');
  }
}

function assertOk(result: Result): void {
  assert.ok(result.ok, result.ok ? '' : `unexpected problems: ${JSON.stringify(result.problems)}`);
}

test('a client certificate as kube-controller-manager issues it verifies, with our private or public key', async () => {
  const result = await verify({});
  assertOk(result);
  assert.equal(result.ok && result.summary.subjectCommonName, 'system:node:node-1');
  assertOk(await verify({}, { key: key.publicKey }));
});

test('a serving certificate verifies when SANs match up to DNS case, IPv6 spelling and order', async () => {
  const template = {
    ...serverTemplate,
    dnsNames: ['NODE-1.example.com', 'node-1'],
    ipAddresses: ['2001:DB8:0:0:0:0:0:1', '10.0.0.1'],
  };
  assertOk(await verify(serverSans, { template }));
});

test('organizations compare as a set', async () => {
  const template = { ...clientTemplate, organizations: ['b', 'a'] };
  assertOk(await verify({ organizations: ['a', 'b'] }, { template }));
});

test('wrong key', async () => {
  const otherKey = newEcKey();
  assertProblems(
    await verify({ publicKey: otherKey.publicKey }),
    /^certificate public key does not match the pending private key \(/,
  );
  assertProblems(
    await verify({ publicKey: otherKey.publicKey }, { key: key.publicKey }),
    /does not match the expected public key/,
  );
});

test('wrong CA', async () => {
  const certificatePem = await issueLeaf(otherCa, { publicKey: key.publicKey });
  const result = verifyIssuedCertificate({
    certificatePem,
    key: key.privateKey,
    caBundlePem: ca.certificatePem,
    template: clientTemplate,
    now,
  });
  assertProblems(
    result,
    /^certificate \(issuer "other-ca"\) does not chain to any CA in the CA bundle \(CAs: "kubernetes-ca"\)$/,
  );
});

test('a CA with the right name but another key is told apart from an unknown CA', async () => {
  const impostor = await makeCa('kubernetes-ca');
  const certificatePem = await issueLeaf(impostor, { publicKey: key.publicKey });
  const result = verifyIssuedCertificate({
    certificatePem,
    key: key.privateKey,
    caBundlePem: ca.certificatePem,
    template: clientTemplate,
    now,
  });
  assertProblems(result, /names issuer "kubernetes-ca" but its signature does not verify/);
});

test('any CA of a bundle is accepted', async () => {
  const certificatePem = await issueLeaf(otherCa, { publicKey: key.publicKey });
  const caBundlePem = ca.certificatePem + otherCa.certificatePem;
  assertOk(
    verifyIssuedCertificate({ certificatePem, key: key.privateKey, caBundlePem, template: clientTemplate, now }),
  );
});

test('an intermediate sent with the leaf, or found in the CA bundle, completes the chain', async () => {
  const intermediate = await makeCa('intermediate-ca', { issuer: ca });
  const leafPem = await issueLeaf(intermediate, { publicKey: key.publicKey });
  const base = { key: key.privateKey, template: clientTemplate, now };
  assertOk(
    verifyIssuedCertificate({
      ...base,
      certificatePem: leafPem + intermediate.certificatePem,
      caBundlePem: ca.certificatePem,
    }),
  );
  assertOk(
    verifyIssuedCertificate({
      ...base,
      certificatePem: leafPem,
      caBundlePem: ca.certificatePem + intermediate.certificatePem,
    }),
  );
  assertProblems(
    verifyIssuedCertificate({ ...base, certificatePem: leafPem, caBundlePem: ca.certificatePem }),
    /does not chain to any CA/,
  );
});

/** `count` self-signed CA certificates that share one name and one key: each one "issues" every other. */
async function sameNameSameKeyCas(name: string, privateKey: KeyObject, count: number): Promise<string[]> {
  const cas = await Promise.all(Array.from({ length: count }, () => makeCa(name, { privateKey })));
  return cas.map((c) => c.certificatePem);
}

test('a chain file of same-named, same-keyed CA certificates is refused after at most 100 signature checks', {
  timeout: 60_000,
}, async () => {
  // Before: every ordering of up to 8 of them was tried (10 took minutes). Now each is ruled out once, and
  // signature checks stop at Go's maxChainSignatureChecks (100, crypto/x509/verify.go).
  const evil = newEcKey();
  const decoys = await sameNameSameKeyCas('evil', evil.privateKey, 10);
  const leafPem = await issueLeaf(
    { name: 'evil', certificatePem: decoys[0]!, privateKey: evil.privateKey },
    {
      publicKey: key.publicKey,
    },
  );
  const [leaf, ...intermediates] = loadCertificates(leafPem + decoys.join(''));
  let signatureChecks = 0;
  for (const certificate of [leaf!, ...intermediates]) {
    const verifySignature = certificate.native.verify.bind(certificate.native);
    certificate.native.verify = (publicKey) => {
      signatureChecks++;
      return verifySignature(publicKey);
    };
  }
  try {
    assert.equal(findPathToCa(leaf!, intermediates, loadCertificates(ca.certificatePem)), undefined);
  } finally {
    for (const certificate of [leaf!, ...intermediates]) delete (certificate.native as { verify?: unknown }).verify;
  }
  assert.ok(signatureChecks <= 100, `${signatureChecks} signature checks`);
  const result = verifyAsIssuedByCa(leafPem + decoys.join(''));
  assertProblems(result, /does not chain to any CA/);
});

test('the real intermediate is still found behind same-named decoys that lead nowhere', async () => {
  const intermediateKey = newEcKey();
  const intermediate = await makeCa('intermediate-ca', { issuer: ca, privateKey: intermediateKey.privateKey });
  const decoys = await sameNameSameKeyCas('intermediate-ca', intermediateKey.privateKey, 5);
  const leafPem = await issueLeaf(intermediate, { publicKey: key.publicKey });
  const result = verifyAsIssuedByCa(leafPem + decoys.join('') + intermediate.certificatePem);
  assertOk(result);
});

test('a leaf sent along as an "intermediate" cannot issue: only CA certificates can', async () => {
  // A non-CA certificate whose subject matches the issuer name of our leaf, signed by the trusted CA.
  const fakeIntermediateKey = newEcKey();
  const fakeIntermediate = await issueLeaf(ca, {
    publicKey: fakeIntermediateKey.publicKey,
    commonName: 'fake-intermediate',
    organizations: [],
  });
  const leafPem = await issueLeaf(
    { name: 'fake-intermediate', certificatePem: fakeIntermediate, privateKey: fakeIntermediateKey.privateKey },
    { publicKey: key.publicKey },
  );
  const result = verifyAsIssuedByCa(leafPem + fakeIntermediate);
  assertProblems(result, /does not chain to any CA/);
});

test('an expired CA on the chain is a problem of its own', async () => {
  const expiredCa = await makeCa('expired-ca', { notBefore: minutesFromNow(-120), notAfter: minutesFromNow(-60) });
  const certificatePem = await issueLeaf(expiredCa, { publicKey: key.publicKey });
  const result = verifyIssuedCertificate({
    certificatePem,
    key: key.privateKey,
    caBundlePem: expiredCa.certificatePem,
    template: clientTemplate,
    now,
  });
  assertProblems(result, /^issuing CA "expired-ca" has expired: valid until /);
});

test('wrong CN', async () => {
  assertProblems(
    await verify({ commonName: 'system:node:node-2' }),
    /^certificate subject CN is "system:node:node-2", requested "system:node:node-1"$/,
  );
});

test('wrong O', async () => {
  assertProblems(
    await verify({ organizations: ['system:masters'] }),
    /^certificate subject O is \["system:masters"\], requested \["system:nodes"\]$/,
  );
  assertProblems(await verify({ organizations: ['system:nodes', 'extra'] }), /subject O is/);
  assertProblems(await verify({ organizations: [] }), /subject O is \[\], requested/);
});

test('missing EKU: no extension, or the other usage', async () => {
  assertProblems(
    await verify({ extendedKeyUsages: null }),
    /^certificate has no extended key usage extension; a client certificate needs clientAuth$/,
  );
  assertProblems(
    await verify({ extendedKeyUsages: [SERVER_AUTH] }),
    /^certificate extended key usages \(serverAuth\) lack clientAuth/,
  );
  assertProblems(
    await verify({ ...serverSans, extendedKeyUsages: [CLIENT_AUTH] }, { template: serverTemplate }),
    /lack serverAuth, which a server certificate needs/,
  );
});

test('a key usage extension without digitalSignature is refused (TLS needs it)', async () => {
  assertProblems(
    await verify({ keyUsages: 4 /* keyEncipherment only */ }),
    /key usage \(keyEncipherment\) lacks digitalSignature/,
  );
  assertOk(await verify({ keyUsages: null }));
});

test('missing SAN', async () => {
  const leaf = { ...serverSans, dnsNames: ['node-1'], ipAddresses: ['10.0.0.1'] };
  assertProblems(
    await verify(leaf, { template: serverTemplate }),
    /^certificate lacks requested DNS SAN "node-1\.example\.com"$/,
    /^certificate lacks requested IP SAN "2001:db8::1"$/,
  );
});

test('extra SAN', async () => {
  const leaf = {
    ...serverSans,
    dnsNames: [...serverSans.dnsNames, 'evil.example.com'],
    ipAddresses: [...serverSans.ipAddresses, '10.9.9.9'],
    emailAddresses: ['a@example.com'],
  };
  assertProblems(
    await verify(leaf, { template: serverTemplate }),
    /^certificate has unexpected DNS SAN "evil\.example\.com" that was not requested$/,
    /^certificate has unexpected IP SAN "10\.9\.9\.9" that was not requested$/,
    /^certificate has unexpected email SAN "a@example\.com"$/,
  );
});

test('a client certificate with any SAN is refused (none was requested)', async () => {
  assertProblems(await verify({ dnsNames: ['node-1'] }), /unexpected DNS SAN "node-1"/);
});

test('expired', async () => {
  assertProblems(
    await verify({ notBefore: minutesFromNow(-120), notAfter: minutesFromNow(-10) }),
    new RegExp(
      `^certificate has expired: valid until ${minutesFromNow(-10).toISOString().slice(0, 16)}.*, ` +
        `now is ${now.toISOString()} \\(allowed clock skew 5m\\)$`,
    ),
  );
});

test('not yet valid', async () => {
  assertProblems(
    await verify({ notBefore: minutesFromNow(10), notAfter: minutesFromNow(120) }),
    new RegExp(
      `^certificate is not yet valid: valid from ${minutesFromNow(10).toISOString().slice(0, 16)}.*, ` +
        `now is ${now.toISOString()} \\(allowed clock skew 5m\\)$`,
    ),
  );
});

// In that case the same certificate will do later.
test('notYetValid: set only when "not valid yet" is the whole problem', async () => {
  const early = await verify({ notBefore: minutesFromNow(10), notAfter: minutesFromNow(120) });
  assert.ok(!early.ok && early.notYetValid);
  const expired = await verify({ notBefore: minutesFromNow(-120), notAfter: minutesFromNow(-10) });
  assert.ok(!expired.ok && !expired.notYetValid);
  const earlyAndWrong = await verify({ notBefore: minutesFromNow(10), notAfter: minutesFromNow(120), commonName: 'x' });
  assert.ok(!earlyAndWrong.ok && !earlyAndWrong.notYetValid, 'a wrong subject stays wrong');
});

test('skew tolerance: 5 minutes by default on both ends, configurable', async () => {
  const slightlyEarly = { notBefore: minutesFromNow(4), notAfter: minutesFromNow(120) };
  const slightlyLate = { notBefore: minutesFromNow(-120), notAfter: minutesFromNow(-4) };
  assertOk(await verify(slightlyEarly));
  assertOk(await verify(slightlyLate));
  assertProblems(await verify({ notBefore: minutesFromNow(6), notAfter: minutesFromNow(120) }), /not yet valid/);
  assertProblems(await verify(slightlyEarly, { clockSkewMs: 0 }), /not yet valid: .*\(allowed clock skew 0m\)$/);
  assertProblems(await verify(slightlyLate, { clockSkewMs: 30_000 }), /has expired: .*\(allowed clock skew 30s\)$/);
});

test('several faults are all reported at once', async () => {
  const result = await verify({ publicKey: newEcKey().publicKey, commonName: 'x', extendedKeyUsages: [SERVER_AUTH] });
  assertProblems(result, /public key does not match/, /subject CN is "x"/, /lack clientAuth/);
});

test('unreadable certificate or CA bundle is a problem, never an exception', async () => {
  const base = { key: key.privateKey, template: clientTemplate, now };
  assertProblems(
    verifyIssuedCertificate({ ...base, certificatePem: 'garbage', caBundlePem: ca.certificatePem }),
    /^issued certificate contains no PEM "CERTIFICATE" block/,
  );
  const certificatePem = await issueLeaf(ca, { publicKey: key.publicKey });
  assertProblems(
    verifyIssuedCertificate({ ...base, certificatePem, caBundlePem: '' }),
    /^CA bundle contains no PEM "CERTIFICATE" block/,
  );
});

/** A leaf as `verify` issues it, with its tbsCertificate changed by `mutate` and signed again by the CA. */
async function verifyResigned(mutate: (tbs: { children: DerNode[] }) => void): Promise<Result> {
  const leafPem = await issueLeaf(ca, { publicKey: key.publicKey });
  return verifyAsIssuedByCa(resignCertificate(leafPem, ca.privateKey, mutate));
}

const addExtension = (id: string, value: DerNode) => (tbs: { children: DerNode[] }) => {
  const extensions = (tbs.children[7] as { children: Array<{ children: DerNode[] }> }).children[0]!;
  extensions.children.push(seq(oid(id), prim(0x01, [0xff]), prim(0x04, encodeNode(value))));
};

test('a critical extension Go does not handle is refused ("x509: unhandled critical extension")', async () => {
  // crypto/x509 parser.go records it in UnhandledCriticalExtensions; verify.go isValid refuses the chain.
  assertProblems(
    await verifyResigned(addExtension('1.2.3.4.5', prim(0x05, []))),
    /critical extensions .*1\.2\.3\.4\.5/,
  );
  // A critical SAN that names nothing Go reads (here only a registeredID) is unhandled too.
  const registeredIdOnly = seq(prim(0x88, [0x2a, 0x03]));
  assertProblems(
    await verifyResigned(addExtension('2.5.29.17', registeredIdOnly)),
    /unexpected SAN/,
    /critical extensions .*2\.5\.29\.17/,
  );
  // One Go handles (certificatePolicies, anyPolicy) is not a problem.
  assertOk(await verifyResigned(addExtension('2.5.29.32', seq(seq(oid('2.5.29.32.0'))))));
});

test('a negative serial number is refused, as Go 1.23+ refuses it (unless GODEBUG x509negativeserial=1)', async () => {
  // crypto/x509 parser.go: "x509: negative serial number".
  const negative = await verifyResigned((tbs) => {
    tbs.children[1] = prim(0x02, [0x80, 0x01]);
  });
  assertProblems(negative, /negative serial number/);
  const positive = await verifyResigned((tbs) => {
    tbs.children[1] = prim(0x02, [0x00, 0x80, 0x01]);
  });
  assertOk(positive);
});
