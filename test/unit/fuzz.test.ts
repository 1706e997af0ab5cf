// The short fuzz run in every test run: each target for a few hundred cases (`npm run fuzz` runs the long
// one). Same contract: return, or throw a UserError, within a second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TARGETS } from '../fuzz/targets.ts';
import { fuzzTarget } from '../fuzz/run.ts';

for (const target of TARGETS) {
  test(`fuzz (short): ${target.name}`, async () => {
    const r = await fuzzTarget(target, 300);
    assert.ok(!r.failed, r.report);
  });
}
