// The approver's reading of CSRs against the outside oracle: Go's crypto/x509 and the kubelet-serving
// signer's own code (`cluster csr-inspect`, test/cluster/csrinspect.go, built with the control plane).
// Crafted requests, the regression corpus (test/fuzz/corpus/csr/) and a short structure-aware fuzz run
// (`npm run fuzz` runs the long one) must never have the approver approve a name Go would sign differently.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildCsrPem, nodeSubject, parseCsrPem } from '../../src/pki/csr.ts';
import { generateKey, KEY_ALGORITHMS } from '../../src/pki/keys.ts';
import { parseStrictCsr } from '../../src/pki/strict-csr.ts';
import { CRAFTED_CASES } from '../fuzz/csr-cases.ts';
import { FUZZ_NODE, fuzzAgainstGo, judge, strictReader, type RequestReader } from '../fuzz/csr-structure.ts';
import { GoOracle } from '../fuzz/go-oracle.ts';
import { extensionRequestTwice, toPem } from '../helpers/der-builder.ts';
import { parseCsrWithPeculiar } from '../helpers/peculiar-csr.ts';
import { testCluster } from '../helpers/cluster.ts';

const CORPUS = join(import.meta.dirname, '../fuzz/corpus/csr');
const SHORT_RUN = 3000;
let oracle: GoOracle;

before(() => {
  oracle = GoOracle.start(testCluster().state.binary);
});
after(() => oracle.close());

const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;

test("the kubelet's own requests (client-go MakeCSRFromTemplate) are read as Go reads them, and approved", async () => {
  const binary = testCluster().state.binary;
  const sans = [FUZZ_NODE, `${FUZZ_NODE}.fuzz.example`, '10.0.0.5', '2001:db8::5'];
  const algorithms = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072'];
  const pems = algorithms.map((alg) =>
    execFileSync(binary, ['csr-inspect', '--make-kubelet-csr', alg, FUZZ_NODE, ...sans]),
  );
  const views = await oracle.inspect(pems);
  for (const [i, alg] of algorithms.entries()) {
    const j = await judge(pems[i]!, views[i]!);
    assert.deepEqual(j.violations, [], alg);
    assert.equal(j.decision, 'approve', `${alg}: ${j.reason}`);
  }
});

test("nodecred's own requests (src/pki/x509-write.ts) are read by Go as written, and are canonical DER", async () => {
  const serving = { ...nodeSubject(FUZZ_NODE), dnsNames: [FUZZ_NODE], ipAddresses: ['10.0.0.5', '2001:db8::5'] };
  const requests = [nodeSubject(FUZZ_NODE), serving, { commonName: 'ops', organizations: ['team-b', 'team-a'] }];
  const built = await Promise.all(
    KEY_ALGORITHMS.map(async (alg) => {
      const { privateKey } = await generateKey(alg);
      return Promise.all(requests.map(async (r) => ({ alg, r, pem: await buildCsrPem(privateKey, r) })));
    }),
  );
  const cases = built.flat();
  const views = await oracle.inspect(cases.map((c) => Buffer.from(c.pem)));
  for (const [i, { alg, r, pem }] of cases.entries()) {
    const go = views[i]!;
    const what = `${alg} ${r.commonName}`;
    assert.equal(go.parseError, undefined, what);
    assert.equal(go.signatureValid, true, what);
    assert.equal(go.commonName, r.commonName, what);
    assert.deepEqual([...(go.organization ?? [])].sort(), [...r.organizations].sort(), what);
    assert.deepEqual(go.dnsNames ?? [], 'dnsNames' in r ? r.dnsNames : [], what);
    assert.deepEqual(go.ipAddresses ?? [], 'ipAddresses' in r ? r.ipAddresses : [], what);
    assert.deepEqual(go.extensions ?? [], 'dnsNames' in r ? [{ id: '2.5.29.17', critical: false }] : [], what);
    const strict = parseStrictCsr(Buffer.from(pem));
    assert.ok(strict.ok, `${what}: ${strict.ok ? '' : strict.message}`);
  }
  const serving0 = await judge(Buffer.from(cases[1]!.pem), views[1]!);
  assert.deepEqual(serving0.violations, []);
  assert.equal(serving0.decision, 'approve', serving0.reason);
});

test('crafted requests: the approver accepts exactly what Go reads the same way, and refuses the rest', async () => {
  const pems = CRAFTED_CASES.map((c) => Buffer.from(toPem(c.build(key))));
  const views = await oracle.inspect(pems);
  for (const [i, c] of CRAFTED_CASES.entries()) {
    const j = await judge(pems[i]!, views[i]!);
    assert.deepEqual(j.violations, [], c.name);
    assert.equal(j.approverAccepted, c.expect === 'ok', c.name);
    if (c.expect === 'ok') assert.ok(j.goParsed, `${c.name}: Go reads it too (${views[i]!.parseError})`);
  }
});

test('issue 11: Go signs DNS:kubernetes.default.svc from the request; the approver refuses it', async () => {
  const pem = readFileSync(join(CORPUS, 'issue-11-smuggled-kubernetes-default-svc.pem'));
  const [go] = await oracle.inspect([pem]);
  assert.equal(go!.parseError, undefined);
  assert.deepEqual(go!.signed?.dnsNames, ['kubernetes.default.svc'], "what kube-controller-manager's signer issues");
  assert.equal(go!.kubeletServingError, undefined, 'the signer accepts it for kubernetes.io/kubelet-serving');
  const lenient = await parseCsrWithPeculiar(pem.toString());
  assert.deepEqual(lenient.dnsNames, [], '@peculiar/x509 sees no DNS name at all: what the old approver judged');
  const strict = parseStrictCsr(pem);
  assert.equal(strict.ok === false && strict.reason, 'NonCanonicalDER');
});

test("the node's CSR reader (parseCsrPem) reads a SAN requested twice as Go does", async () => {
  const pems = (['values', 'attributes'] as const).map((how) =>
    Buffer.from(toPem(extensionRequestTwice(key, FUZZ_NODE, how))),
  );
  const [twoValues, twoAttributes] = await oracle.inspect(pems);
  assert.equal(twoValues!.parseError, undefined);
  assert.deepEqual((await parseCsrPem(pems[0]!.toString())).dnsNames, twoValues!.dnsNames);
  assert.match(twoAttributes!.parseError ?? '', /duplicate requested extensions/);
  await assert.rejects(parseCsrPem(pems[1]!.toString()), /duplicate requested extensions/);
});

test('regression corpus: no request the approver approves is signed with other names', async () => {
  const files = readdirSync(CORPUS).filter((f) => f.endsWith('.pem'));
  assert.ok(files.length >= 5, 'the corpus is there');
  const pems = files.map((f) => readFileSync(join(CORPUS, f)));
  const views = await oracle.inspect(pems);
  for (const [i, file] of files.entries()) {
    const j = await judge(pems[i]!, views[i]!);
    assert.deepEqual(j.violations, [], file);
    assert.notEqual(j.decision, 'approve', `${file} is an exploit: it must not be approved`);
  }
});

test('structure-aware fuzz (short): approve ⇒ Go signs exactly the approved names', async () => {
  const stats = await fuzzAgainstGo(oracle, SHORT_RUN, Date.now() % 1_000_000);
  process.stderr.write(
    `# csr fuzz: ${stats.cases} cases in ${stats.seconds.toFixed(1)} s ` +
      `(${Math.round(stats.cases / stats.seconds)}/s), ` +
      `${stats.approved} approved, ${stats.approverAccepted} read by the approver, ${stats.goParsed} by Go\n`,
  );
  assert.deepEqual(
    stats.failures.slice(0, 3),
    [],
    'a finding: add its PEM to test/fuzz/corpus/csr/ and fix the reader',
  );
  assert.ok(stats.approved > 0, 'the mutants reach the approval path');
});

test('the property can fail: reading with @peculiar/x509 (the old approver) it finds names signed unseen', async () => {
  const lenient: RequestReader = async (pem) => {
    try {
      return await parseCsrWithPeculiar(pem.toString());
    } catch (err) {
      return { refusal: 'InvalidRequest', message: String(err) };
    }
  };
  // Every corpus entry from before the review is an exploit of that reader: approved, and signed by Go with
  // other names. (review-*: exploits of the strict reader's own past bugs, checked below.)
  const files = readdirSync(CORPUS).filter((f) => f.endsWith('.pem') && !f.startsWith('review-'));
  const pems = files.map((f) => readFileSync(join(CORPUS, f)));
  const views = await oracle.inspect(pems);
  for (const [i, file] of files.entries()) {
    const j = await judge(pems[i]!, views[i]!, lenient);
    assert.ok(
      j.violations.some((v) => v.startsWith('signed')),
      `${file}: ${j.decision} ${JSON.stringify(j.violations)}`,
    );
  }
  // And the fuzz, on its own, finds that reader breaking the property.
  const stats = await fuzzAgainstGo(oracle, 2000, 11, lenient);
  assert.ok(stats.failures.length > 0, `no violation found in ${stats.cases} cases`);
});

test("the property can fail: a reader that drops a leading BOM, as the strict reader's decoder once did", async () => {
  // TextDecoder without ignoreBOM strips U+FEFF at the start of a value; Go keeps it. Emulate that reader.
  const stripsBom: RequestReader = async (pem) => {
    const r = await strictReader(pem);
    if ('refusal' in r) return r;
    const strip = (v: string) => v.replace(/^\ufeff/, '');
    return { ...r, commonName: r.commonName && strip(r.commonName), organizations: r.organizations.map(strip) };
  };
  const pem = readFileSync(join(CORPUS, 'review-bom-before-system-nodes.pem'));
  const [go] = await oracle.inspect([pem]);
  assert.deepEqual(go!.organization, ['\ufeffsystem:nodes'], 'Go keeps the BOM');
  assert.match(go!.kubeletServingError ?? '', /organization/i, 'and the signer refuses the request');
  const j = await judge(pem, go!, stripsBom);
  assert.equal(j.decision, 'approve', 'that reader approved it');
  assert.ok(
    j.violations.some((v) => v.includes('differently: O')),
    JSON.stringify(j.violations),
  );
  const fixed = await judge(pem, go!);
  assert.deepEqual([fixed.decision, fixed.reason, fixed.violations], ['deny', 'OrganizationMismatch', []]);
});
