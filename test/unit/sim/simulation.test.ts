// The fleet simulation, short (200 nodes × 60 days, every fault of the full run): nodecred's invariants hold
// on every node, the kubelet model shows the CSR flood nodecred avoids, and a run is a function of its seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { herdBound, invariants, type PolicySummary } from '../../../bench/sim/report.ts';
import { simulate, type SimulationResult } from '../../../bench/sim/simulate.ts';
import { table } from '../../../bench/sim/table.ts';
import { DEFAULT_SCENARIO } from '../../../bench/sim/trace.ts';

const DAY = 86_400_000;

/** What a run decided, without how long it took. */
function outcome(r: SimulationResult) {
  return r.results.map(({ cpuSeconds: _c, wallSeconds: _w, ...rest }) => rest);
}

/** The invariants, each checked on every node (bench/sim/report.ts invariants). */
const INVARIANTS = [
  /^no expiry while the control plane was reachable/,
  /^CSRs per rotation ≤ 1\.05/,
  /^no expired or unverified certificate installed/,
  /^recovery within one backoff period/,
  /^reconnect herd spread by the jittered backoff/,
];

test('200 nodes × 60 days with outages: nodecred keeps every invariant; the kubelet model floods CSRs', async (t) => {
  const r = await simulate({ scenario: { ...DEFAULT_SCENARIO, nodes: 200, days: 60 }, shards: 1, workers: 0 });
  assert.equal(r.invariants.length, INVARIANTS.length);
  INVARIANTS.forEach((name, k) => {
    assert.match(r.invariants[k]!.name, name);
  });
  for (const i of r.invariants) assert.ok(i.ok, `${i.name}: ${i.detail}`);
  const [nodecred, kubelet] = r.results;
  await t.test('each invariant fails on a summary that breaks it', () => brokenSummariesFail(nodecred!));
  const printed = table(r);
  assert.match(printed, /^\| \| nodecred \(real code\) \| kubelet policy \(model\) \|$/m, 'the side-by-side table');
  assert.match(printed, /^\| CSRs per certificate \(goal ≤ 1\.05\) \| [\d.]+ \| [\d.]+ \|$/m);
  assert.equal(nodecred!.policy, 'nodecred');
  assert.ok(nodecred!.csrs.installs >= 200 * 2 * 2, `rotations happened (${nodecred!.csrs.installs})`);
  assert.ok(nodecred!.herds.length >= 3, 'API outages ended and were observed');
  assert.ok(nodecred!.expiries.total > 0, 'nodes powered off for weeks come back expired (and bootstrap again)');
  // More than one only when a CSR was denied, issued wrong, or removed by the cleaner after a day pending.
  assert.ok(nodecred!.csrs.maxPerRotation <= 3, `nodecred: ${nodecred!.csrs.maxPerRotation} CSRs for one certificate`);
  // The kubelet makes a new CSR per attempt and waits 15 minutes each: a day without an approver is ~90.
  assert.equal(kubelet!.policy, 'kubelet');
  assert.ok(
    kubelet!.csrs.maxPerRotation >= 20,
    `kubelet model: ${kubelet!.csrs.maxPerRotation} CSRs for one certificate`,
  );
});

/** Every invariant can fail: a copy of a passing summary with one property broken fails exactly that one. */
function brokenSummariesFail(passing: PolicySummary): void {
  const breaks: Array<(s: PolicySummary) => void> = [
    (s) => (s.expiries.policyFailures = 1),
    (s) => (s.csrs.perRotation = 1.06),
    (s) => (s.badInstalls.total = 1),
    (s) => (s.recovery.maxSeconds = 301),
    (s) => (s.herds[0]!.peakPerSecond = herdBound(s.nodes) + 1),
  ];
  breaks.forEach((breakIt, k) => {
    const broken = structuredClone(passing);
    breakIt(broken);
    assert.deepEqual(
      invariants(broken).map((i) => i.ok),
      INVARIANTS.map((_, j) => j !== k),
    );
  });
  const stuck = structuredClone(passing);
  stuck.recovery.notRecovered = 1;
  assert.equal(invariants(stuck)[3]!.ok, false, 'a node that never came back fails recovery too');
}

test('a simulation is deterministic given its seed', async () => {
  const scenario = { ...DEFAULT_SCENARIO, nodes: 20, days: 20, joinSpreadMs: DAY };
  const a = await simulate({ scenario, shards: 2, workers: 0, policies: ['nodecred'] });
  const b = await simulate({ scenario, shards: 2, workers: 0, policies: ['nodecred'] });
  assert.deepEqual(outcome(a), outcome(b));
  const c = await simulate({ scenario: { ...scenario, seed: 2 }, shards: 2, workers: 0, policies: ['nodecred'] });
  assert.notDeepEqual(outcome(a), outcome(c), 'another seed, another year');
});
