// The approver's view of Nodes (src/approver/cluster-view.ts): only the watch writes its cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Node } from '@kubernetes/client-node';
import type { ApiSource, ApproverClients } from '../../../src/approver/api.ts';
import { ClusterFacts } from '../../../src/approver/cluster-view.ts';
import { createApproverMetrics } from '../../../src/approver/metrics.ts';
import { silentLogger } from '../../../src/log.ts';

test('a Node read by GET (not yet seen by the watch) is not cached: a later DELETED is not undone', async () => {
  let gets = 0;
  let exists = true;
  const node: V1Node = {
    metadata: { name: 'worker-9' },
    status: { addresses: [{ type: 'InternalIP', address: '10.0.0.9' }] },
  };
  const core = {
    readNode: async () => {
      gets++;
      if (!exists) throw Object.assign(new Error('not found'), { code: 404 });
      return node;
    },
  };
  const source = {
    clients: async () => ({ core }) as unknown as ApproverClients,
    noteFailure: () => {},
  } as unknown as ApiSource;
  const facts = new ClusterFacts({
    source,
    log: silentLogger(),
    metrics: createApproverMetrics(),
    resyncIntervalMs: 60_000,
  });
  const first = await facts.node('worker-9');
  assert.equal(first?.name, 'worker-9');
  assert.equal(facts.nodeCount, 0, 'the GET answer is not in the cache');
  // The Node is deleted (the watch's DELETED came before, or will come after, the GET's answer): asked again,
  // the approver asks the API again and hears it is gone, instead of judging the request on the old facts.
  exists = false;
  assert.equal(await facts.node('worker-9'), null);
  assert.equal(gets, 2);
  assert.deepEqual(facts.claimants('10.0.0.9', 'worker-10'), [], 'its address is claimed by no one');
});
