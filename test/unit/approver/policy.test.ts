// Every approve / deny / leave-pending path of the kubelet-serving CSR policy, with real PKCS#10 requests
// built by src/pki/csr.ts (and openssl for what nodecred itself never builds: P-521 keys, email SANs, OU).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { buildCsrPem, nodeSubject, parseCsrPem, type CsrRequest, type ParsedCsr } from '../../../src/pki/csr.ts';
import { encodePrivateKeyPem, generateKey, KEY_ALGORITHMS, type KeyAlgorithm } from '../../../src/pki/keys.ts';
import { encodePem, parsePemBlocks } from '../../../src/pki/pem.ts';
import {
  applyAuthorization,
  decideServingCsr,
  dnsPatternMatches,
  ipInCidr,
  nodeNameOf,
  DENY_REASONS,
  KUBELET_SERVING_SIGNER,
  type ApproverPolicy,
  type CsrFacts,
  type Decision,
  type NodeFacts,
} from '../../../src/approver/policy.ts';
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
  dnsPatterns: [],
  allowedCidrs: [],
  maxExpirationSeconds: undefined,
  allowedKeyAlgorithms: [...KEY_ALGORITHMS],
  denyMode: 'deny',
  onUnknownNode: 'deny',
  nodeNamePattern: undefined,
};

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
  const parsed = await parseCsrPem(await buildCsrPem(keys.get(alg)!, full));
  parsedCache.set(cacheKey, parsed);
  return parsed;
}

async function facts(over: Partial<CsrFacts> = {}, req?: Partial<CsrRequest>, alg?: KeyAlgorithm): Promise<CsrFacts> {
  return {
    signerName: KUBELET_SERVING_SIGNER,
    username: USER,
    groups: GROUPS,
    usages: SERVING_USAGES,
    expirationSeconds: undefined,
    request: over.request ?? (await request(req, alg)),
    ...over,
  };
}

function expectDecision(d: Decision, decision: Decision['decision'], reason?: string, message?: RegExp): void {
  assert.equal(d.decision, decision, JSON.stringify(d));
  if (reason !== undefined) assert.equal((d as { reason?: string }).reason, reason, JSON.stringify(d));
  if (message) assert.match(d.message, message);
}

// ── approvals ────────────────────────────────────────────────────────────────────────────────────────

test("approves a kubelet-style serving CSR whose SANs are all the Node's addresses", async () => {
  const f = await facts(
    {},
    { dnsNames: ['worker-1', 'worker-1.internal.example'], ipAddresses: ['10.0.0.5', '2001:db8::5'] },
  );
  expectDecision(decideServingCsr(f, THE_NODE, POLICY), 'approve', undefined, /worker-1.*10\.0\.0\.5/);
});

test('approves every usage set the kubelet-serving signer accepts, with and without key encipherment', async () => {
  for (const usages of [
    SERVING_USAGES,
    [...SERVING_USAGES, 'key encipherment'],
    ['server auth', 'key encipherment', 'digital signature'],
  ]) {
    expectDecision(decideServingCsr(await facts({ usages }), THE_NODE, POLICY), 'approve');
  }
});

test('approves each default key algorithm, and a subset of SANs', async () => {
  for (const alg of ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048'] as const) {
    expectDecision(
      decideServingCsr(await facts({}, { dnsNames: [], ipAddresses: ['10.0.0.5'] }, alg), THE_NODE, POLICY),
      'approve',
    );
  }
});

test('DNS SANs compare case-insensitively, IPv6 by canonical form', async () => {
  const f = await facts({}, { dnsNames: ['Worker-1.Internal.Example'], ipAddresses: ['2001:DB8:0::5'] });
  expectDecision(decideServingCsr(f, THE_NODE, POLICY), 'approve');
});

test("a DNS SAN outside the Node's addresses is approved when it matches a dnsPatterns entry", async () => {
  const f = await facts({}, { dnsNames: ['ip-10-0-0-5.compute.internal'] });
  expectDecision(decideServingCsr(f, THE_NODE, POLICY), 'deny', 'SANNotInNodeAddresses');
  expectDecision(decideServingCsr(f, THE_NODE, { ...POLICY, dnsPatterns: ['*.compute.internal'] }), 'approve');
  expectDecision(
    decideServingCsr(f, THE_NODE, { ...POLICY, dnsPatterns: ['ip-10-0-0-5.compute.internal'] }),
    'approve',
  );
});

test('the lifetime limit allows requests at or below it and requests that leave the lifetime to the signer', async () => {
  const policy = { ...POLICY, maxExpirationSeconds: 86_400 };
  expectDecision(decideServingCsr(await facts({ expirationSeconds: 86_400 }), THE_NODE, policy), 'approve');
  expectDecision(decideServingCsr(await facts({ expirationSeconds: undefined }), THE_NODE, policy), 'approve');
});

test('IP SANs inside allowedCidrs are approved', async () => {
  const f = await facts({}, { dnsNames: [], ipAddresses: ['10.0.0.5', '2001:db8::5'] });
  expectDecision(
    decideServingCsr(f, THE_NODE, { ...POLICY, allowedCidrs: ['10.0.0.0/24', '2001:db8::/64'] }),
    'approve',
  );
});

// ── skips: not this approver's business ──────────────────────────────────────────────────────────────

test('other signers are skipped, not denied', async () => {
  for (const signerName of [
    'kubernetes.io/kube-apiserver-client-kubelet',
    'kubernetes.io/kube-apiserver-client',
    'example.com/custom',
  ]) {
    expectDecision(
      decideServingCsr(await facts({ signerName }), THE_NODE, POLICY),
      'skip',
      'OtherSigner',
      new RegExp(signerName),
    );
  }
});

test('nodeNamePattern: nodes outside it (and non-node requesters) are skipped', async () => {
  const policy = { ...POLICY, nodeNamePattern: /^(?:pool-a-.*)$/ };
  expectDecision(decideServingCsr(await facts(), THE_NODE, policy), 'skip', 'OutOfScope', /worker-1.*pool-a/);
  expectDecision(decideServingCsr(await facts({ username: 'alice' }), THE_NODE, policy), 'skip', 'OutOfScope');
  const inScope = { ...POLICY, nodeNamePattern: /^(?:worker-.*)$/ };
  expectDecision(decideServingCsr(await facts(), THE_NODE, inScope), 'approve');
});

// ── denials, one per reason ──────────────────────────────────────────────────────────────────────────

interface DenyCase {
  name: string;
  facts: () => Promise<CsrFacts>;
  node?: NodeFacts;
  policy?: Partial<ApproverPolicy>;
  reason: (typeof DENY_REASONS)[number];
  message: RegExp;
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

const DENY_CASES: DenyCase[] = [
  {
    name: 'an unparseable request',
    facts: () => facts({ request: { error: 'expected exactly one PEM "CERTIFICATE REQUEST" block, found 0' } }),
    reason: 'InvalidRequest',
    message: /not a usable PKCS#10 request: expected exactly one/,
  },
  {
    name: 'a signature that does not verify',
    facts: async () => {
      const pem = await buildCsrPem(keys.get('ecdsa-p256')!, { ...nodeSubject(NODE), ipAddresses: ['10.0.0.5'] });
      const parsed = await parseCsrPem(tamperSignature(pem));
      assert.equal(parsed.signatureValid, false);
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
    facts: async () =>
      facts({ request: await parseCsrPem(opensslCsr(`/O=system:nodes/OU=ops/CN=${USER}`, 'IP:10.0.0.5')) }),
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
      facts({
        request: await parseCsrPem(opensslCsr(`/O=system:nodes/CN=${USER}`, 'IP:10.0.0.5,email:ops@example.com')),
      }),
    reason: 'DisallowedSANType',
    message: /email:ops@example\.com/,
  },
  {
    name: 'a URI SAN',
    facts: async () =>
      facts({
        request: await parseCsrPem(opensslCsr(`/O=system:nodes/CN=${USER}`, 'IP:10.0.0.5,URI:spiffe://cluster/ns/x')),
      }),
    reason: 'DisallowedSANType',
    message: /URI:spiffe:\/\/cluster\/ns\/x/,
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
      return facts({ request: await parseCsrPem(opensslCsr(`/O=system:nodes/CN=${USER}`, 'IP:10.0.0.5', keyPem)) });
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
    name: 'a node without a Node object',
    facts: () => facts(),
    node: null,
    reason: 'NodeNotFound',
    message: /Node worker-1 does not exist/,
  },
  {
    name: 'an IP SAN the Node does not have',
    facts: () => facts({}, { ipAddresses: ['10.0.0.5', '10.9.9.9'] }),
    reason: 'SANNotInNodeAddresses',
    message:
      /IP:10\.9\.9\.9 not among Node worker-1's addresses \(InternalIP 10\.0\.0\.5, ExternalIP 2001:db8::5, Hostname worker-1, InternalDNS worker-1\.internal\.example\)/,
  },
  {
    name: "a DNS SAN the Node does not have (another node's name)",
    facts: () => facts({}, { dnsNames: ['worker-2'] }),
    reason: 'SANNotInNodeAddresses',
    message: /DNS:worker-2 not among/,
  },
  {
    name: 'a DNS SAN two labels deep under a single-label wildcard pattern',
    facts: () => facts({}, { dnsNames: ['a.b.compute.internal'] }),
    policy: { dnsPatterns: ['*.compute.internal'] },
    reason: 'SANNotInNodeAddresses',
    message: /DNS:a\.b\.compute\.internal.*dnsPatterns: \*\.compute\.internal/,
  },
  {
    name: 'a Node address given as the IP SAN of a DNS-only address type',
    facts: () => facts({}, { ipAddresses: ['10.1.1.1'], dnsNames: [] }),
    node: { name: NODE, addresses: [{ type: 'InternalDNS', address: '10.1.1.1' }] },
    reason: 'SANNotInNodeAddresses',
    message: /IP:10\.1\.1\.1/,
  },
  {
    name: 'an IP SAN of the Node outside allowedCidrs',
    facts: () => facts({}, { ipAddresses: ['10.0.0.5', '2001:db8::5'] }),
    policy: { allowedCidrs: ['10.0.0.0/8'] },
    reason: 'IPNotInAllowedCIDRs',
    message: /IP 2001:db8::5 outside allowedCidrs 10\.0\.0\.0\/8/,
  },
];

for (const c of DENY_CASES) {
  test(`denies ${c.name}: ${c.reason}`, async () => {
    const policy = { ...POLICY, ...c.policy };
    const node = c.node === undefined ? THE_NODE : c.node;
    expectDecision(decideServingCsr(await c.facts(), node, policy), 'deny', c.reason, c.message);
  });
}

test('every deny reason has a case (the SubjectAccessReview one below)', () => {
  const covered = new Set<string>([...DENY_CASES.map((c) => c.reason), 'RequesterNotAuthorized']);
  assert.deepEqual(
    DENY_REASONS.filter((r) => !covered.has(r)),
    [],
  );
});

test('a requester the SubjectAccessReview refuses is denied; an allowed one stays approved', async () => {
  const approved = decideServingCsr(await facts(), THE_NODE, POLICY);
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
  const denied = decideServingCsr(await facts({ usages: ['client auth'] }), THE_NODE, POLICY);
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
    const node = c.node === undefined ? THE_NODE : c.node;
    expectDecision(decideServingCsr(await c.facts(), node, policy), 'skip', c.reason, c.message);
  }
});

test('onUnknownNode leave-pending leaves only the missing-Node case pending', async () => {
  const policy = { ...POLICY, onUnknownNode: 'leave-pending' as const };
  expectDecision(decideServingCsr(await facts(), null, policy), 'skip', 'NodeNotFound', /does not exist/);
  expectDecision(
    decideServingCsr(await facts({}, { ipAddresses: ['10.9.9.9'] }), THE_NODE, policy),
    'deny',
    'SANNotInNodeAddresses',
  );
  // A static refusal is still a denial even when the Node is missing: it can never become acceptable.
  expectDecision(decideServingCsr(await facts({ usages: ['client auth'] }), null, policy), 'deny', 'DisallowedUsages');
});

// ── helpers ──────────────────────────────────────────────────────────────────────────────────────────

test('nodeNameOf reads system:node:<name> and nothing else', () => {
  assert.equal(nodeNameOf('system:node:a.b'), 'a.b');
  assert.equal(nodeNameOf('system:node:'), undefined);
  assert.equal(nodeNameOf('system:nodes'), undefined);
  assert.equal(nodeNameOf('alice'), undefined);
});

test('dnsPatternMatches: "*" is exactly one label; exact patterns match themselves; case-insensitive', () => {
  assert.equal(dnsPatternMatches('*.compute.internal', 'ip-10-0-0-1.compute.internal'), true);
  assert.equal(dnsPatternMatches('*.compute.internal', 'IP-10-0-0-1.Compute.Internal'), true);
  assert.equal(dnsPatternMatches('*.compute.internal', 'a.b.compute.internal'), false);
  assert.equal(dnsPatternMatches('*.compute.internal', 'compute.internal'), false);
  assert.equal(dnsPatternMatches('*.compute.internal', '.compute.internal'), false);
  assert.equal(dnsPatternMatches('*.compute.internal', 'xcompute.internal'), false);
  assert.equal(dnsPatternMatches('node.example', 'node.example'), true);
  assert.equal(dnsPatternMatches('node.example', 'a.node.example'), false);
});

test('ipInCidr: both families, boundaries, no cross-family matches', () => {
  assert.equal(ipInCidr('10.0.0.255', '10.0.0.0/24'), true);
  assert.equal(ipInCidr('10.0.1.0', '10.0.0.0/24'), false);
  assert.equal(ipInCidr('2001:db8::1', '2001:db8::/32'), true);
  assert.equal(ipInCidr('2001:db9::1', '2001:db8::/32'), false);
  assert.equal(ipInCidr('10.0.0.1', '::/0'), false);
  assert.equal(ipInCidr('10.0.0.1', '0.0.0.0/0'), true);
  assert.equal(ipInCidr('10.0.0.1', 'not-a-cidr'), false);
});
