// The fleet simulation, short (200 nodes × 60 days, every fault of the full run): nodecred's invariants hold
// on every node, the kubelet model shows the CSR flood nodecred avoids, and a run is a function of its seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate, type SimulationResult } from '../../../bench/sim/simulate.ts';
import { DEFAULT_SCENARIO } from '../../../bench/sim/trace.ts';

const DAY = 86_400_000;

/** What a run decided, without how long it took. */
function outcome(r: SimulationResult) {
  return r.results.map(({ cpuSeconds: _c, wallSeconds: _w, ...rest }) => rest);
}

test('200 nodes × 60 days with outages: nodecred keeps every invariant; the kubelet model floods CSRs', async () => {
  const r = await simulate({ scenario: { ...DEFAULT_SCENARIO, nodes: 200, days: 60 }, shards: 1, workers: 0 });
  for (const i of r.invariants) assert.ok(i.ok, `${i.name}: ${i.detail}`);
  const [nodecred, kubelet] = r.results;
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

test('a simulation is deterministic given its seed', async () => {
  const scenario = { ...DEFAULT_SCENARIO, nodes: 40, days: 30, joinSpreadMs: DAY };
  const a = await simulate({ scenario, shards: 2, workers: 0, policies: ['nodecred'] });
  const b = await simulate({ scenario, shards: 2, workers: 0, policies: ['nodecred'] });
  assert.deepEqual(outcome(a), outcome(b));
  const c = await simulate({ scenario: { ...scenario, seed: 2 }, shards: 2, workers: 0, policies: ['nodecred'] });
  assert.notDeepEqual(outcome(a), outcome(c), 'another seed, another year');
});
