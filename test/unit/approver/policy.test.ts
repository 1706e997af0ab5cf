// Every approve / deny / leave-pending path of the kubelet-serving CSR policy, with real PKCS#10 requests
// built by src/pki/csr.ts (and openssl for what nodecred itself never builds: P-521 keys, email SANs, OU;
// test/fuzz/csr-cases.ts for encodings a lenient parser reads differently), read by the approver's strict
// reader exactly as the controller does.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { approverOverridesFromDocument, mergeApproverConfig, policyOf } from '../../../src/approver/config.ts';
import { buildCsrPem, nodeSubject, type CsrRequest, type ParsedCsr } from '../../../src/pki/csr.ts';
import { encodePrivateKeyPem, generateKey, KEY_ALGORITHMS, type KeyAlgorithm } from '../../../src/pki/keys.ts';
import { encodePem, parsePemBlocks } from '../../../src/pki/pem.ts';
import { SERVING_SIGNER } from '../../../src/kube/csr-name.ts';
import {
  applyAuthorization,
  decideServingCsr,
  nodeNameOf,
  DENY_REASONS,
  type ApproverPolicy,
  type ClusterView,
  type CsrFacts,
  type Decision,
  type NodeFacts,
} from '../../../src/approver/policy.ts';
import { NodeClaims } from '../../../src/approver/names.ts';
import { parseStrictCsr } from '../../../src/pki/strict-csr.ts';
import { CRAFTED_CASES, CASE_NODE } from '../../fuzz/csr-cases.ts';
import {
  extensionRequest,
  nodeName,
  requestInfo,
  sanExtension,
  signRequest,
  toPem,
} from '../../helpers/der-builder.ts';
import { openssl } from '../pki/helpers.ts';

const NODE = 'worker-1';
const USER = `system:node:${NODE}`;
const GROUPS = ['system:nodes', 'system:authenticated'];
const SERVING_USAGES = ['digital signature', 'server auth'];
const ADDRESSES = [
  { type: 'InternalIP', address: '10.0.0.5' },
  { type: 'ExternalIP', address: '2001:db8::5' },
  { type: 'Hostname', address: 'worker-1' },
  { type: 'InternalDNS', address: 'worker-1.internal.example' },
];
const THE_NODE: NodeFacts = { name: NODE, addresses: ADDRESSES };

const POLICY: ApproverPolicy = {
  // "*": worker-1 may have its own single-label name; "*.internal.example": worker-1.internal.example.
  dnsPatterns: ['*', '*.internal.example'],
  allowedCidrs: ['10.0.0.0/24', '2001:db8::/64'],
  maxExpirationSeconds: undefined,
  allowedKeyAlgorithms: [...KEY_ALGORITHMS],
  clusterDomain: 'cluster.local',
  allowLoopback: false,
  reservedNames: [],
  reservedCidrs: [],
  denyMode: 'deny',
  onUnknownNode: 'deny',
  nodeNamePattern: undefined,
};

// The rest of the cluster: worker-2 next door (one of its names written with the root's dot), a Node named
// by its address, and the API server at 10.0.0.1 (its advertise address, in the EndpointSlice), 10.96.0.1
// (the Service) and api.example; cp-1 is a control-plane node whose kubeadm certificate holds its name.
const claims = new NodeClaims();
claims.set(NODE, ADDRESSES);
claims.set('worker-2', [
  { type: 'InternalIP', address: '10.0.0.6' },
  { type: 'InternalDNS', address: 'worker-2.internal.example' },
  { type: 'ExternalDNS', address: 'shared.internal.example' },
  { type: 'ExternalDNS', address: 'Trailing.Internal.Example.' },
]);
claims.set('10.0.0.8', []);
const CLUSTER: ClusterView = {
  claimants: (key, requester) => claims.claimants(key, requester),
  apiServer: {
    dnsNames: new Set(['api.example', 'cp-1']),
    ips: new Set(['10.0.0.1', '10.96.0.1', '10.0.0.9']),
    advertised: new Set(['10.0.0.1', '10.0.0.9']),
  },
};

const decide = (f: CsrFacts, node: NodeFacts = THE_NODE, policy: ApproverPolicy = POLICY) =>
  decideServingCsr(f, node, policy, CLUSTER);

/** What the controller hands the policy for a PEM request. */
function strict(pem: string | Buffer): CsrFacts['request'] {
  const r = parseStrictCsr(Buffer.from(pem));
  return r.ok ? r.csr : { refusal: r.reason, message: r.message };
}

const keys = new Map<KeyAlgorithm, KeyObject>();
const parsedCache = new Map<string, ParsedCsr>();
before(async () => {
  for (const alg of ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048'] as const)
    keys.set(alg, (await generateKey(alg)).privateKey);
});

async function request(req: Partial<CsrRequest> = {}, alg: KeyAlgorithm = 'ecdsa-p256'): Promise<ParsedCsr> {
  const full: CsrRequest = { ...nodeSubject(NODE), ipAddresses: ['10.0.0.5'], dnsNames: ['worker-1'], ...req };
  const cacheKey = JSON.stringify([full, alg]);
  const hit = parsedCache.get(cacheKey);
  if (hit) return hit;
  const parsed = strict(await buildCsrPem(keys.get(alg)!, full));
  assert.ok(!('refusal' in parsed), JSON.stringify(parsed));
  parsedCache.set(cacheKey, parsed);
  return parsed;
}

async function facts(over: Partial<CsrFacts> = {}, req?: Partial<CsrRequest>, alg?: KeyAlgorithm): Promise<CsrFacts> {
  return {
    signerName: SERVING_SIGNER,
    username: USER,
    groups: GROUPS,
    usages: SERVING_USAGES,
    expirationSeconds: undefined,
    request: over.request ?? (await request(req, alg)),
    ...over,
  };
}

function expectDecision(
  d: Decision,
  decision: Decision['decision'],
  reason?: string,
  message?: RegExp,
  detail?: RegExp,
): void {
  assert.equal(d.decision, decision, JSON.stringify(d));
  if (reason !== undefined) assert.equal((d as { reason?: string }).reason, reason, JSON.stringify(d));
  if (message) assert.match(d.message, message);
  if (detail) assert.match((d as { detail?: string }).detail ?? d.message, detail);
}

// ── approvals ────────────────────────────────────────────────────────────────────────────────────────

test('approves a kubelet-style serving CSR: the node name, its own dnsPatterns name, IPs in allowedCidrs', async () => {
  const f = await facts(
    {},
    { dnsNames: ['worker-1', 'worker-1.internal.example'], ipAddresses: ['10.0.0.5', '2001:db8::5'] },
  );
  expectDecision(decide(f), 'approve', undefined, /worker-1.*10\.0\.0\.5.*within policy and no other Node's/);
});

test('approves every usage set the kubelet-serving signer accepts, with and without key encipherment', async () => {
  for (const usages of [
    SERVING_USAGES,
    [...SERVING_USAGES, 'key encipherment'],
    ['server auth', 'key encipherment', 'digital signature'],
  ]) {
    expectDecision(decide(await facts({ usages })), 'approve');
  }
});

test('approves each default key algorithm, and a subset of SANs', async () => {
  for (const alg of ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048'] as const) {
    expectDecision(decide(await facts({}, { dnsNames: [], ipAddresses: ['10.0.0.5'] }, alg)), 'approve');
  }
});

test("status.addresses are not proof: a SAN policy bounds is approved, whatever the node's addresses say", async () => {
  const f = await facts({}, { dnsNames: [], ipAddresses: ['10.0.0.7'] });
  expectDecision(decide(f, { name: NODE, addresses: [] }), 'approve');
  const claimed = await facts({}, { dnsNames: [], ipAddresses: ['10.0.0.6'] });
  expectDecision(
    decide(claimed, { name: NODE, addresses: [{ type: 'InternalIP', address: '10.0.0.6' }] }),
    'deny',
    'SANClaimedByAnotherNode',
  );
});

test('IPv6 SANs compare in canonical form', async () => {
  expectDecision(decide(await facts({}, { dnsNames: [], ipAddresses: ['2001:DB8:0::5'] })), 'approve');
});

test('an exact dnsPatterns entry is granted to every node in scope, unless another Node claims it', async () => {
  const policy = { ...POLICY, dnsPatterns: ['metrics.example', 'shared.internal.example'] };
  expectDecision(decide(await facts({}, { dnsNames: ['metrics.example'] }), THE_NODE, policy), 'approve');
  expectDecision(
    decide(await facts({}, { dnsNames: ['shared.internal.example'] }), THE_NODE, policy),
    'deny',
    'SANClaimedByAnotherNode',
    /^DNS:shared\.internal\.example is claimed by another Node$/,
    /^DNS:shared\.internal\.example is claimed by Node worker-2$/,
  );
});

test('the lifetime limit allows requests at or below it', async () => {
  const policy = { ...POLICY, maxExpirationSeconds: 86_400 };
  expectDecision(decide(await facts({ expirationSeconds: 86_400 }), THE_NODE, policy), 'approve');
  expectDecision(decide(await facts({ expirationSeconds: 600 }), THE_NODE, policy), 'approve');
});

test('allowLoopback passes loopback names and addresses, never the API server or the unspecified address', async () => {
  const policy = { ...POLICY, allowLoopback: true, allowedCidrs: ['127.0.0.0/8', '0.0.0.0/0'] };
  expectDecision(decide(await facts({}, { dnsNames: [], ipAddresses: ['127.0.0.2'] }), THE_NODE, policy), 'approve');
  expectDecision(
    decide(await facts({}, { dnsNames: [], ipAddresses: ['10.96.0.1'] }), THE_NODE, policy),
    'deny',
    'SANReservedForCluster',
  );
  expectDecision(
    decide(await facts({}, { dnsNames: [], ipAddresses: ['0.0.0.0'] }), THE_NODE, policy),
    'deny',
    'SANReservedForCluster',
  );
});

// ── the node's own name, and control-plane nodes ─────────────────────────────────────────────────────

/** A CSR from `node` (its own client certificate) for these SANs. */
async function fromNode(node: string, dnsNames: string[], ipAddresses: string[]): Promise<CsrFacts> {
  return facts({
    username: `system:node:${node}`,
    request: strict(await buildCsrPem(keys.get('ecdsa-p256')!, { ...nodeSubject(node), dnsNames, ipAddresses })),
  });
}

// Whoever holds a bootstrap token picks its node's name.
test("review: a node named after the API server's external name gets no certificate for it", async () => {
  // The reviewer's reproduction: node k8s-api.example.com (any name: kube-controller-manager's nodeclient
  // approval signs every system:node:<name>), a Node of that name, policy 10.0.0.0/16 and *.compute.internal.
  const policy = { ...POLICY, allowedCidrs: ['10.0.0.0/16'], dnsPatterns: ['*.compute.internal'] };
  const attacker = { name: 'k8s-api.example.com', addresses: [] };
  expectDecision(
    decideServingCsr(await fromNode(attacker.name, ['k8s-api.example.com'], []), attacker, policy, CLUSTER),
    'deny',
    'DNSNameNotAllowed',
    /^DNS:k8s-api\.example\.com is the node's own name, but not allowed by dnsPatterns \(\*\.compute\.internal\)$/,
  );
  // Not even with "*": it is the single-label name only.
  expectDecision(
    decideServingCsr(
      await fromNode(attacker.name, ['k8s-api.example.com'], []),
      attacker,
      { ...policy, dnsPatterns: ['*'] },
      CLUSTER,
    ),
    'deny',
    'DNSNameNotAllowed',
  );
  // A node name under the operator's suffix is still fine, unless it is one of the API server's names.
  const worker = { name: 'ip-10-0-0-5.compute.internal', addresses: [] };
  expectDecision(
    decideServingCsr(await fromNode(worker.name, [worker.name], ['10.0.0.55']), worker, policy, CLUSTER),
    'approve',
  );
  const squatter = { name: 'api.compute.internal', addresses: [] };
  const withApiName = { ...CLUSTER, apiServer: { ...CLUSTER.apiServer, dnsNames: new Set(['api.compute.internal']) } };
  expectDecision(
    decideServingCsr(await fromNode(squatter.name, [squatter.name], []), squatter, policy, withApiName),
    'deny',
    'SANReservedForCluster',
    /^DNS:api\.compute\.internal is reserved for the cluster$/,
  );
});

test("a control-plane Node gets its own name and advertise address, also in the API server's certificate", async () => {
  const cp = {
    name: 'cp-1',
    addresses: [
      { type: 'InternalIP', address: '10.0.0.9' },
      { type: 'Hostname', address: 'cp-1' },
    ],
    controlPlane: true,
  };
  expectDecision(decide(await fromNode('cp-1', ['cp-1'], ['10.0.0.9']), cp), 'approve');
  // Without the label (which only an administrator can set): the API server's, denied as before.
  expectDecision(
    decide(await fromNode('cp-1', ['cp-1'], ['10.0.0.9']), { ...cp, controlPlane: false }),
    'deny',
    'SANReservedForCluster',
  );
  // Only the Node's own: another API server's advertise address, the Service IP, the API server's other
  // names, an address its status does not list, one the operator reserved — each stays reserved.
  for (const [dnsNames, ipAddresses] of [
    [[], ['10.0.0.1']],
    [[], ['10.96.0.1']],
    [['api.example'], []],
  ] as const)
    expectDecision(
      decide(await fromNode('cp-1', [...dnsNames], [...ipAddresses]), cp, {
        ...POLICY,
        dnsPatterns: ['*', 'api.example'],
        allowedCidrs: ['10.0.0.0/8'],
      }),
      'deny',
      'SANReservedForCluster',
      /reserved for the cluster/,
    );
  expectDecision(
    decide(await fromNode('cp-1', [], ['10.0.0.9']), { ...cp, addresses: [] }),
    'deny',
    'SANReservedForCluster',
  );
  expectDecision(
    decide(await fromNode('cp-1', [], ['10.0.0.9']), cp, { ...POLICY, reservedCidrs: ['10.0.0.9/32'] }),
    'deny',
    'SANReservedForCluster',
    undefined,
    /reservedCidrs/,
  );
  expectDecision(
    decide(await fromNode('cp-1', ['cp-1'], []), cp, { ...POLICY, reservedNames: ['cp-1'] }),
    'deny',
    'SANReservedForCluster',
    undefined,
    /reservedNames/,
  );
  // And every other rule still holds: allowedCidrs, dnsPatterns.
  expectDecision(
    decide(await fromNode('cp-1', [], ['10.0.0.9']), cp, { ...POLICY, allowedCidrs: ['10.1.0.0/16'] }),
    'deny',
    'IPNotInAllowedCIDRs',
  );
  expectDecision(
    decide(await fromNode('cp-1', ['cp-1'], []), cp, { ...POLICY, dnsPatterns: ['*.internal.example'] }),
    'deny',
    'DNSNameNotAllowed',
  );
  // A second Node claiming the address (a squatter) blocks it.
  const withSquatter: ClusterView = {
    ...CLUSTER,
    claimants: (key, requester) => (key === 'ip:10.0.0.9' ? ['squatter'] : CLUSTER.claimants(key, requester)),
  };
  expectDecision(
    decideServingCsr(await fromNode('cp-1', [], ['10.0.0.9']), cp, POLICY, withSquatter),
    'deny',
    'SANClaimedByAnotherNode',
  );
});

// ── skips: not this approver's business ──────────────────────────────────────────────────────────────

test('other signers are skipped, not denied', async () => {
  for (const signerName of [
    'kubernetes.io/kube-apiserver-client-kubelet',
    'kubernetes.io/kube-apiserver-client',
    'example.com/custom',
  ]) {
    expectDecision(decide(await facts({ signerName })), 'skip', 'OtherSigner', new RegExp(signerName));
  }
});

test('nodeNamePattern: nodes outside it (and non-node requesters) are skipped', async () => {
  const policy = { ...POLICY, nodeNamePattern: /^(?:pool-a-.*)$/ };
  expectDecision(decide(await facts(), THE_NODE, policy), 'skip', 'OutOfScope', /worker-1.*pool-a/);
  expectDecision(decide(await facts({ username: 'alice' }), THE_NODE, policy), 'skip', 'OutOfScope');
  const inScope = { ...POLICY, nodeNamePattern: /^(?:worker-.*)$/ };
  expectDecision(decide(await facts(), THE_NODE, inScope), 'approve');
});

// ── denials, one per reason ──────────────────────────────────────────────────────────────────────────

interface DenyCase {
  name: string;
  facts: () => Promise<CsrFacts>;
  node?: NodeFacts;
  policy?: Partial<ApproverPolicy>;
  reason: (typeof DENY_REASONS)[number];
  /** What the condition says (the requesting node reads it). */
  message: RegExp;
  /** What the log and the Event say, when it is more. */
  detail?: RegExp;
}

function tamperSignature(pem: string): string {
  const der = Buffer.from(parsePemBlocks(pem, 'csr')[0]!.der);
  der[der.length - 1] = der[der.length - 1]! ^ 0x01; // the last byte of the signature value
  return encodePem('CERTIFICATE REQUEST', der);
}

const opensslCsr = (subject: string, sanExt: string, keyPem?: string) => {
  const key = keyPem ?? encodePrivateKeyPem(keys.get('ecdsa-p256')!);
  return openssl(['req', '-new', '-key', '{key.pem}', '-subj', subject, '-addext', `subjectAltName=${sanExt}`], {
    'key.pem': key,
  });
};

/** A crafted request (test/fuzz/csr-cases.ts) from node CASE_NODE. */
function crafted(name: string): () => Promise<CsrFacts> {
  const c = CRAFTED_CASES.find((x) => x.name.startsWith(name))!;
  return () =>
    facts({ username: `system:node:${CASE_NODE}`, request: strict(toPem(c.build(keys.get('ecdsa-p256')!))) });
}

/** DNS SANs nodecred's own builder refuses to write (wildcards, empty labels, ...), encoded by hand. */
const dns =
  (...dnsNames: string[]) =>
  async () => {
    const key = keys.get('ecdsa-p256')!;
    const sans = extensionRequest(sanExtension(dnsNames.map((d) => ({ dns: d }))));
    return facts({ request: strict(toPem(signRequest(requestInfo(key, nodeName(NODE), [sans]), key))) });
  };
const ips =
  (...ipAddresses: string[]) =>
  () =>
    facts({}, { dnsNames: [], ipAddresses });

const DENY_CASES: DenyCase[] = [
  {
    name: 'an unparseable request',
    facts: async () => facts({ request: strict('no PEM here') }),
    reason: 'InvalidRequest',
    message: /exactly one PEM "CERTIFICATE REQUEST" block/,
  },
  {
    name: 'the issue-11 request (a decoy extensionRequest with a non-minimal OID)',
    facts: crafted('issue 11'),
    reason: 'NonCanonicalDER',
    message: /attributes\[0\]\.type: OBJECT IDENTIFIER not minimally encoded/,
  },
  {
    name: 'two extensionRequest attributes',
    facts: crafted('two well-formed extensionRequest'),
    reason: 'UnexpectedAttributes',
    message: /2 attributes/,
  },
  {
    name: 'a SAN extension requested twice',
    facts: crafted('two SAN extensions'),
    reason: 'DuplicateExtension',
    message: /extension 2\.5\.29\.17 is requested twice/,
  },
  {
    name: 'an unknown critical extension',
    facts: crafted('an unknown critical extension'),
    reason: 'UnknownCriticalExtension',
    message: /1\.3\.6\.1\.4\.1\.99999\.1 is marked critical/,
  },
  {
    name: 'a signature that does not verify',
    facts: async () => {
      const pem = await buildCsrPem(keys.get('ecdsa-p256')!, { ...nodeSubject(NODE), ipAddresses: ['10.0.0.5'] });
      const parsed = strict(tamperSignature(pem));
      assert.equal((parsed as ParsedCsr).signatureValid, false);
      return facts({ request: parsed });
    },
    reason: 'InvalidSignature',
    message: /does not verify/,
  },
  {
    name: 'a requester that is not a node',
    facts: () => facts({ username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] }),
    reason: 'RequesterNotANode',
    message: /kubernetes-admin is not a node/,
  },
  {
    name: 'a node-like username outside the system:nodes group',
    facts: () => facts({ groups: ['system:authenticated'] }),
    reason: 'RequesterNotANode',
    message: /not in group system:nodes/,
  },
  {
    name: 'a CN that names another node',
    facts: () => facts({}, { commonName: 'system:node:worker-2' }),
    reason: 'CommonNameMismatch',
    message: /CN system:node:worker-2 is not the requester system:node:worker-1/,
  },
  {
    name: 'an organization other than system:nodes',
    facts: () => facts({}, { organizations: ['system:masters'] }),
    reason: 'OrganizationMismatch',
    message: /\[system:masters\]/,
  },
  {
    name: 'a BOM before system:nodes (crafted; read as Go reads it)',
    facts: crafted('a BOM before system:nodes'),
    reason: 'OrganizationMismatch',
    message: /^subject O must be exactly \[system:nodes\], got \[\ufeffsystem:nodes\]$/,
  },
  {
    name: 'an extra organization',
    facts: () => facts({}, { organizations: ['system:nodes', 'system:masters'] }),
    reason: 'OrganizationMismatch',
    message: /exactly \[system:nodes\], got \[system:nodes, system:masters\]/,
  },
  {
    name: 'no organization',
    facts: () => facts({}, { organizations: [] }),
    reason: 'OrganizationMismatch',
    message: /got \[\]/,
  },
  {
    name: 'other subject attributes (OU)',
    facts: async () => facts({ request: strict(opensslCsr(`/O=system:nodes/OU=ops/CN=${USER}`, 'IP:10.0.0.5')) }),
    reason: 'UnexpectedSubjectAttributes',
    message: /OU=ops/,
  },
  {
    name: 'client auth among the usages',
    facts: () => facts({ usages: [...SERVING_USAGES, 'client auth'] }),
    reason: 'DisallowedUsages',
    message: /not allowed: client auth/,
  },
  {
    name: 'a missing server auth usage',
    facts: () => facts({ usages: ['digital signature', 'key encipherment'] }),
    reason: 'DisallowedUsages',
    message: /missing: server auth/,
  },
  {
    name: 'a missing digital signature usage',
    facts: () => facts({ usages: ['server auth'] }),
    reason: 'DisallowedUsages',
    message: /missing: digital signature/,
  },
  {
    name: 'CA-ish usages',
    facts: () => facts({ usages: [...SERVING_USAGES, 'cert sign', 'any'] }),
    reason: 'DisallowedUsages',
    message: /not allowed: cert sign, any/,
  },
  {
    name: 'no SANs at all',
    facts: () => facts({}, { dnsNames: [], ipAddresses: [] }),
    reason: 'NoSubjectAltNames',
    message: /at least one DNS or IP SAN/,
  },
  {
    name: 'an email SAN',
    facts: async () =>
      facts({ request: strict(opensslCsr(`/O=system:nodes/CN=${USER}`, 'IP:10.0.0.5,email:ops@example.com')) }),
    reason: 'DisallowedSANType',
    message: /email:ops@example\.com/,
  },
  {
    name: 'a URI SAN',
    facts: async () =>
      facts({ request: strict(opensslCsr(`/O=system:nodes/CN=${USER}`, 'IP:10.0.0.5,URI:spiffe://cluster/ns/x')) }),
    reason: 'DisallowedSANType',
    message: /URI:spiffe:\/\/cluster\/ns\/x/,
  },
  {
    name: 'a directoryName SAN',
    facts: crafted('a directoryName SAN'),
    reason: 'DisallowedSANType',
    message: /\[tag 0xa4\]/,
  },
  {
    name: 'a key algorithm outside the allowed list',
    facts: () => facts({}, {}, 'ecdsa-p384'),
    policy: { allowedKeyAlgorithms: ['ecdsa-p256'] },
    reason: 'KeyAlgorithmNotAllowed',
    message: /key ecdsa-p384 is not allowed \(allowed: ecdsa-p256\)/,
  },
  {
    name: 'a key nodecred never allows (P-521)',
    facts: async () => {
      const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey;
      const keyPem = p521.export({ format: 'pem', type: 'pkcs8' }).toString();
      return facts({ request: strict(opensslCsr(`/O=system:nodes/CN=${USER}`, 'IP:10.0.0.5', keyPem)) });
    },
    reason: 'KeyAlgorithmNotAllowed',
    message: /ecdsa-p521/,
  },
  {
    name: 'a requested lifetime above the maximum',
    facts: () => facts({ expirationSeconds: 86_401 }),
    policy: { maxExpirationSeconds: 86_400 },
    reason: 'LifetimeTooLong',
    message: /86401 exceeds the maximum 86400/,
  },
  {
    name: 'no spec.expirationSeconds while maxLifetime is set (the signer default would apply)',
    facts: () => facts({ expirationSeconds: undefined }),
    policy: { maxExpirationSeconds: 86_400 },
    reason: 'ExpirationSecondsRequired',
    message: /spec\.expirationSeconds is not set, and maxLifetime is 86400 s/,
  },
  {
    name: 'a node without a Node object',
    facts: () => facts(),
    node: null,
    reason: 'NodeNotFound',
    message: /Node worker-1 does not exist/,
  },
  {
    name: 'a wildcard DNS SAN, even under an allowed pattern',
    facts: dns('*.internal.example'),
    reason: 'InvalidDNSName',
    message: /DNS:\*\.internal\.example has a "\*"/,
  },
  {
    name: 'an upper-case DNS SAN',
    facts: dns('Worker-1'),
    reason: 'InvalidDNSName',
    message: /upper-case/,
  },
  {
    name: 'a DNS SAN with an empty label (trailing dot)',
    facts: dns('worker-1.internal.example.'),
    reason: 'InvalidDNSName',
    message: /empty label/,
  },
  {
    name: 'a DNS SAN label that is not LDH',
    facts: dns('worker_1.internal.example'),
    reason: 'InvalidDNSName',
    message: /label "worker_1"/,
  },
  {
    name: 'a DNS SAN longer than 253 characters',
    facts: dns(`${`${'a'.repeat(60)}.`.repeat(4)}internal.example`),
    reason: 'InvalidDNSName',
    message: /longer than 253/,
  },
  {
    name: 'an IP address as a DNS SAN',
    facts: dns('10.0.0.5'),
    reason: 'InvalidDNSName',
    message: /IP address written as a DNS name/,
  },
  {
    name: 'kubernetes.default.svc',
    facts: dns('kubernetes.default.svc'),
    reason: 'SANReservedForCluster',
    message: /DNS:kubernetes\.default\.svc is a Service name/,
  },
  {
    name: 'kubernetes, kubernetes.default and a name in the cluster domain',
    facts: dns('kubernetes', 'kubernetes.default', 'kubernetes.default.svc.cluster.local'),
    reason: 'SANReservedForCluster',
    message: /DNS:kubernetes is the API server's Service name; DNS:kubernetes\.default is .*; .*in the cluster domain/,
  },
  {
    name: "the API server's host name",
    facts: dns('api.example'),
    policy: { dnsPatterns: ['api.example'] },
    reason: 'SANReservedForCluster',
    message: /^DNS:api\.example is reserved for the cluster$/,
    detail: /^DNS:api\.example is a name of the API server \(its serving certificate/,
  },
  {
    name: "the API server's addresses",
    facts: ips('10.0.0.1', '10.96.0.1'),
    policy: { allowedCidrs: ['10.0.0.0/8'] },
    reason: 'SANReservedForCluster',
    message: /^IP:10\.0\.0\.1 is reserved for the cluster; IP:10\.96\.0\.1 is reserved for the cluster$/,
    detail: /^IP:10\.0\.0\.1 is an API server's advertise address; IP:10\.96\.0\.1 is an address of the API server$/,
  },
  {
    name: 'reservedNames and reservedCidrs (load balancers, VIPs)',
    facts: () => facts({}, { dnsNames: ['lb.internal.example'], ipAddresses: ['10.0.0.200'] }),
    policy: {
      dnsPatterns: ['lb.internal.example'],
      reservedNames: ['lb.internal.example'],
      reservedCidrs: ['10.0.0.192/26'],
    },
    reason: 'SANReservedForCluster',
    message: /^DNS:lb\.internal\.example is reserved for the cluster; IP:10\.0\.0\.200 is reserved for the cluster$/,
    detail: /reservedNames \(lb\.internal\.example\); IP:10\.0\.0\.200 is in reservedCidrs \(10\.0\.0\.192\/26\)$/,
  },
  {
    name: 'loopback aliases: localhost.localdomain, ip6-localhost, ip6-loopback, *.localhost',
    facts: dns('localhost.localdomain', 'ip6-localhost', 'ip6-loopback', 'app.localhost'),
    policy: { dnsPatterns: ['localhost.localdomain', 'ip6-localhost', 'ip6-loopback', 'app.localhost'] },
    reason: 'SANReservedForCluster',
    message: /^(DNS:[a-z0-9.-]+ is a loopback name \(allowLoopback is off\)(; )?){4}$/,
  },
  {
    name: 'loopback names and addresses',
    facts: () => facts({}, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] }),
    policy: { allowedCidrs: ['0.0.0.0/0', '::/0'] },
    reason: 'SANReservedForCluster',
    message: /DNS:localhost is a loopback name.*IP:127\.0\.0\.1 is a loopback address.*IP:::1/,
  },
  {
    name: 'a DNS SAN dnsPatterns do not allow',
    facts: dns('worker-1.other.example'),
    reason: 'DNSNameNotAllowed',
    message: /^DNS:worker-1\.other\.example is not allowed by dnsPatterns \(\*, \*\.internal\.example\)$/,
  },
  {
    name: "the node's own name when dnsPatterns do not allow it",
    facts: dns('worker-1'),
    policy: { dnsPatterns: ['*.internal.example'] },
    reason: 'DNSNameNotAllowed',
    message: /^DNS:worker-1 is the node's own name, but not allowed by dnsPatterns \(\*\.internal\.example\)$/,
  },
  {
    name: 'another node\'s name under a wildcard pattern ("*" is the node\'s own label)',
    facts: dns('worker-3.internal.example'),
    reason: 'DNSNameNotAllowed',
    message: /worker-3\.internal\.example/,
  },
  {
    name: 'a DNS SAN two labels deep under a wildcard pattern',
    facts: dns('a.worker-1.internal.example'),
    reason: 'DNSNameNotAllowed',
    message: /a\.worker-1\.internal\.example/,
  },
  {
    name: 'an IP SAN outside allowedCidrs',
    facts: ips('10.0.0.5', '10.9.9.9'),
    reason: 'IPNotInAllowedCIDRs',
    message: /IP:10\.9\.9\.9 is outside allowedCidrs 10\.0\.0\.0\/24, 2001:db8::\/64/,
  },
  {
    name: 'an IP SAN with allowedCidrs empty',
    facts: ips('10.0.0.5'),
    policy: { allowedCidrs: [] },
    reason: 'IPNotInAllowedCIDRs',
    message: /allowedCidrs is empty, so no IP SAN is approved/,
  },
  {
    name: "another Node's IP",
    facts: ips('10.0.0.5', '10.0.0.6'),
    reason: 'SANClaimedByAnotherNode',
    message: /^IP:10\.0\.0\.6 is claimed by another Node$/,
    detail: /^IP:10\.0\.0\.6 is claimed by Node worker-2$/,
  },
  {
    name: "another Node's name",
    facts: dns('worker-2'),
    policy: { dnsPatterns: ['worker-2'] },
    reason: 'SANClaimedByAnotherNode',
    message: /^DNS:worker-2 is claimed by another Node$/,
    detail: /^DNS:worker-2 is claimed by Node worker-2$/,
  },
  {
    name: 'the address another Node is named after',
    facts: ips('10.0.0.8'),
    reason: 'SANClaimedByAnotherNode',
    message: /^IP:10\.0\.0\.8 is claimed by another Node$/,
    detail: /claimed by Node 10\.0\.0\.8$/,
  },
  {
    name: "another Node's name written with the root's trailing dot",
    facts: dns('trailing.internal.example'),
    policy: { dnsPatterns: ['trailing.internal.example'] },
    reason: 'SANClaimedByAnotherNode',
    message: /^DNS:trailing\.internal\.example is claimed by another Node$/,
    detail: /claimed by Node worker-2$/,
  },
];

/** The requester's Node: the case's, else CASE_NODE's for a crafted request, else worker-1's. */
function nodeFor(c: DenyCase, f: CsrFacts): NodeFacts {
  if (c.node !== undefined) return c.node;
  return f.username === `system:node:${CASE_NODE}` ? { name: CASE_NODE, addresses: [] } : THE_NODE;
}

for (const c of DENY_CASES) {
  test(`denies ${c.name}: ${c.reason}`, async () => {
    const f = await c.facts();
    expectDecision(decide(f, nodeFor(c, f), { ...POLICY, ...c.policy }), 'deny', c.reason, c.message, c.detail);
  });
}

test('a condition message never names another Node or where a reserved name was learnt; the detail does', async () => {
  const secretive = DENY_CASES.filter(
    (c) => c.reason === 'SANClaimedByAnotherNode' || c.reason === 'SANReservedForCluster',
  );
  assert.ok(secretive.length >= 6);
  for (const c of secretive) {
    const f = await c.facts();
    const d = decide(f, nodeFor(c, f), { ...POLICY, ...c.policy });
    assert.ok(d.decision === 'deny');
    assert.doesNotMatch(
      d.message,
      /by Node |API server's (host|advertise)|address of the API|reserved(Names|Cidrs)/,
      c.name,
    );
  }
});

test('every deny reason has a case (the SubjectAccessReview one below)', () => {
  const covered = new Set<string>([...DENY_CASES.map((c) => c.reason), 'RequesterNotAuthorized']);
  assert.deepEqual(
    DENY_REASONS.filter((r) => !covered.has(r)),
    [],
  );
});

test('several failing SANs: the most fundamental reason is reported, naming each SAN it applies to', async () => {
  const f = await dns('kubernetes', '*.x.example', 'worker-9')();
  expectDecision(decide(f), 'deny', 'InvalidDNSName', /^DNS:\*\.x\.example has a "\*"[^;]*$/);
  const g = await facts({}, { dnsNames: ['worker-9'], ipAddresses: ['10.0.0.6', '192.0.2.1'] });
  expectDecision(decide(g), 'deny', 'DNSNameNotAllowed', /DNS:worker-9/);
});

test('a requester the SubjectAccessReview refuses is denied; an allowed one stays approved', async () => {
  const approved = decide(await facts());
  expectDecision(approved, 'approve');
  expectDecision(applyAuthorization(approved, { allowed: true }, USER, POLICY), 'approve');
  expectDecision(
    applyAuthorization(approved, { allowed: false, reason: 'no RBAC policy matched' }, USER, POLICY),
    'deny',
    'RequesterNotAuthorized',
    /system:node:worker-1 may not create certificatesigningrequests.*no RBAC policy matched/,
  );
  expectDecision(
    applyAuthorization(approved, { allowed: false }, USER, { denyMode: 'leave-pending' }),
    'skip',
    'RequesterNotAuthorized',
  );
  const denied = decide(await facts({ usages: ['client auth'] }));
  assert.deepEqual(
    applyAuthorization(denied, { allowed: false }, USER, POLICY),
    denied,
    'a denial keeps its own reason',
  );
});

// ── leave-pending modes ──────────────────────────────────────────────────────────────────────────────

test('denyMode leave-pending turns every denial into a skip with the same reason and message', async () => {
  for (const c of DENY_CASES) {
    const policy = { ...POLICY, ...c.policy, denyMode: 'leave-pending' as const };
    const f = await c.facts();
    expectDecision(decide(f, nodeFor(c, f), policy), 'skip', c.reason, c.message);
  }
});

test('onUnknownNode leave-pending leaves only the missing-Node case pending', async () => {
  const policy = { ...POLICY, onUnknownNode: 'leave-pending' as const };
  expectDecision(decide(await facts(), null, policy), 'skip', 'NodeNotFound', /does not exist/);
  expectDecision(
    decide(await facts({}, { ipAddresses: ['10.9.9.9'] }), THE_NODE, policy),
    'deny',
    'IPNotInAllowedCIDRs',
  );
  // A static refusal is still a denial even when the Node is missing: it can never become acceptable.
  expectDecision(decide(await facts({ usages: ['client auth'] }), null, policy), 'deny', 'DisallowedUsages');
});

// ── helpers ──────────────────────────────────────────────────────────────────────────────────────────

test('nodeNameOf reads system:node:<name> and nothing else', () => {
  assert.equal(nodeNameOf('system:node:a.b'), 'a.b');
  assert.equal(nodeNameOf('system:node:'), undefined);
  assert.equal(nodeNameOf('system:nodes'), undefined);
  assert.equal(nodeNameOf('alice'), undefined);
});

// The policy is the one in examples/eks/README.md.
test("the EKS example's policy approves an EKS-style node's serving CSR, and no neighbour's", async () => {
  const readme = readFileSync(join(import.meta.dirname, '../../../examples/eks/README.md'), 'utf8');
  const yaml = /```yaml\n(apiVersion: nodecred\.io\/v1alpha1\nkind: ApproverConfiguration\n[\s\S]*?)```/.exec(readme);
  assert.ok(yaml, 'the README shows an ApproverConfiguration');
  const policy = policyOf(mergeApproverConfig(approverOverridesFromDocument(parseYaml(yaml[1]!), 'README')));
  const eksNode = 'ip-10-0-1-23.eu-west-1.compute.internal';
  const request = async (dnsNames: string[], ipAddresses: string[]) =>
    facts({
      username: `system:node:${eksNode}`,
      request: strict(await buildCsrPem(keys.get('ecdsa-p256')!, { ...nodeSubject(eksNode), dnsNames, ipAddresses })),
    });
  const node = { name: eksNode, addresses: [] };
  expectDecision(decideServingCsr(await request([eksNode], ['10.0.1.23']), node, policy, CLUSTER), 'approve');
  expectDecision(
    decideServingCsr(await request(['ip-10-0-1-24.eu-west-1.compute.internal'], []), node, policy, CLUSTER),
    'deny',
    'DNSNameNotAllowed',
  );
});
