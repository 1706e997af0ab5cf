// The decision sequence of one CSR (src/approver/controller.ts decideWithReview): the policy, the
// SubjectAccessReview, and the policy again on what the cluster view holds once the review has returned,
// so a claim (or a change to the requester's Node) that arrived during that round trip is honoured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideWithReview } from '../../../src/approver/controller.ts';
import { NodeClaims } from '../../../src/approver/names.ts';
import type { ApproverPolicy, CsrFacts, NodeFacts } from '../../../src/approver/policy.ts';
import { buildCsrPem, nodeSubject } from '../../../src/pki/csr.ts';
import { generateKey } from '../../../src/pki/keys.ts';
import { parseStrictCsr } from '../../../src/pki/strict-csr.ts';

const POLICY: ApproverPolicy = {
  dnsPatterns: ['*'],
  allowedCidrs: ['10.0.0.0/24'],
  maxExpirationSeconds: undefined,
  allowedKeyAlgorithms: ['ecdsa-p256'],
  clusterDomain: 'cluster.local',
  allowLoopback: false,
  reservedNames: [],
  reservedCidrs: [],
  denyMode: 'deny',
  onUnknownNode: 'deny',
  nodeNamePattern: undefined,
};

async function csrFor(node: string, ipAddresses: string[]): Promise<CsrFacts> {
  const { privateKey } = await generateKey('ecdsa-p256');
  const parsed = parseStrictCsr(Buffer.from(await buildCsrPem(privateKey, { ...nodeSubject(node), ipAddresses })));
  assert.ok(parsed.ok);
  return {
    signerName: 'kubernetes.io/kubelet-serving',
    username: `system:node:${node}`,
    groups: ['system:nodes', 'system:authenticated'],
    usages: ['digital signature', 'server auth'],
    expirationSeconds: undefined,
    request: parsed.csr,
  };
}

function view() {
  const claims = new NodeClaims();
  const nodes = new Map<string, NonNullable<NodeFacts>>();
  const cluster = {
    claimants: (key: string, requester: string) => claims.claimants(key, requester),
    apiServer: { dnsNames: new Set<string>(), ips: new Set(['10.0.0.1']), advertised: new Set(['10.0.0.1']) },
    // The cache, and on a miss the API (here: the same map; a deleted Node is a 404, so null).
    node: async (name: string) => nodes.get(name) ?? null,
  };
  return { claims, nodes, cluster };
}

test('a Node claiming the address during the SubjectAccessReview turns the approval into a denial', async () => {
  const { claims, nodes, cluster } = view();
  const node = { name: 'worker-1', addresses: [{ type: 'InternalIP', address: '10.0.0.5' }] };
  nodes.set(node.name, node);
  const facts = await csrFor('worker-1', ['10.0.0.5']);
  const quiet = await decideWithReview(facts, node, POLICY, cluster, async () => ({ allowed: true }));
  assert.equal(quiet.decision, 'approve');
  const raced = await decideWithReview(facts, node, POLICY, cluster, async () => {
    claims.set('worker-2', [{ type: 'InternalIP', address: '10.0.0.5' }]);
    return { allowed: true };
  });
  assert.deepEqual(raced, {
    decision: 'deny',
    reason: 'SANClaimedByAnotherNode',
    message: 'IP:10.0.0.5 is claimed by another Node',
    detail: 'IP:10.0.0.5 is claimed by Node worker-2',
  });
});

test("the requester's Node after the review: a control-plane label removed meanwhile is honoured", async () => {
  const { nodes, cluster } = view();
  const cp = { name: 'cp-1', addresses: [{ type: 'InternalIP', address: '10.0.0.1' }], controlPlane: true };
  nodes.set(cp.name, cp);
  const facts = await csrFor('cp-1', ['10.0.0.1']);
  const decision = await decideWithReview(facts, cp, POLICY, cluster, async () => {
    nodes.set(cp.name, { ...cp, controlPlane: false });
    return { allowed: true };
  });
  assert.equal(decision.decision, 'deny');
  assert.equal((decision as { reason: string }).reason, 'SANReservedForCluster');
});

test('no review for a denial; a refused review denies without judging again', async () => {
  const { cluster } = view();
  const node = { name: 'worker-1', addresses: [] };
  let reviews = 0;
  const denied = await decideWithReview(await csrFor('worker-1', ['10.9.9.9']), node, POLICY, cluster, async () => {
    reviews++;
    return { allowed: true };
  });
  assert.equal(denied.decision, 'deny');
  assert.equal(reviews, 0);
  const refused = await decideWithReview(await csrFor('worker-1', ['10.0.0.5']), node, POLICY, cluster, async () => ({
    allowed: false,
    reason: 'no RBAC',
  }));
  assert.equal((refused as { reason: string }).reason, 'RequesterNotAuthorized');
});

// A Node deleted while the review was in flight is no Node at all: its facts from before are not grounds to approve.
test('a Node deleted during the SubjectAccessReview gets no approval: NodeNotFound, denied or pending', async () => {
  for (const onUnknownNode of ['deny', 'leave-pending'] as const) {
    const { nodes, cluster } = view();
    const node = { name: 'worker-1', addresses: [{ type: 'InternalIP', address: '10.0.0.5' }] };
    nodes.set(node.name, node);
    const facts = await csrFor('worker-1', ['10.0.0.5']);
    const decision = await decideWithReview(facts, node, { ...POLICY, onUnknownNode }, cluster, async () => {
      nodes.delete(node.name);
      return { allowed: true };
    });
    assert.equal(decision.decision, onUnknownNode === 'deny' ? 'deny' : 'skip', onUnknownNode);
    assert.equal((decision as { reason: string }).reason, 'NodeNotFound');
  }
});
