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
import { parseCsrPem } from '../../src/pki/csr.ts';
import { parseStrictCsr } from '../../src/pki/strict-csr.ts';
import { CRAFTED_CASES } from '../fuzz/csr-cases.ts';
import { FUZZ_NODE, fuzzAgainstGo, judge, type RequestReader } from '../fuzz/csr-structure.ts';
import { GoOracle } from '../fuzz/go-oracle.ts';
import { toPem } from '../helpers/der-builder.ts';
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
  const lenient = await parseCsrPem(pem.toString());
  assert.deepEqual(lenient.dnsNames, [], '@peculiar/x509 sees no DNS name at all: what the old approver judged');
  const strict = parseStrictCsr(pem);
  assert.equal(strict.ok === false && strict.reason, 'NonCanonicalDER');
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
      return await parseCsrPem(pem.toString());
    } catch (err) {
      return { refusal: 'InvalidRequest', message: String(err) };
    }
  };
  // Every corpus entry is an exploit of that reader: approved, and signed by Go with other names.
  const files = readdirSync(CORPUS).filter((f) => f.endsWith('.pem'));
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
