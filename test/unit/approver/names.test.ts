// The name rules of the serving approver (src/approver/names.ts): host names, dnsPatterns bound to the
// node's own name, CIDRs, the cluster's reserved names and the index of what each Node claims.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  NodeClaims,
  claimsOf,
  dnsKey,
  dnsPatternMatches,
  hostnameProblem,
  ipInCidr,
  ipKey,
  isLoopbackName,
  reservedDnsName,
  reservedIp,
} from '../../../src/approver/names.ts';

test('hostnameProblem: RFC 1123 lower-case LDH labels, length limits, no wildcard, no empty label, no IP', () => {
  for (const ok of ['a', 'worker-1', 'ip-10-0-0-5.ec2.internal', '0xabc.example', `${'a'.repeat(63)}.b`, '1.example'])
    assert.equal(hostnameProblem(ok), undefined, ok);
  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['*.example', /"\*"/],
    ['a*b.example', /"\*"/],
    ['Worker-1', /upper-case/],
    ['a..b', /empty label/],
    ['a.b.', /empty label/],
    ['.a', /empty label/],
    ['-a.example', /label "-a"/],
    ['a-.example', /label "a-"/],
    ['a_b.example', /label "a_b"/],
    ['é.example', /label "é"/],
    [`${'a'.repeat(64)}.example`, /label/],
    [`${'abcdefghi.'.repeat(25)}example`, /longer than 253/],
    ['10.0.0.5', /IP address/],
  ];
  for (const [name, problem] of bad) assert.match(hostnameProblem(name) ?? 'accepted', problem, name);
});

test("dnsPatternMatches: the wildcard is one label, the node's own; exact names match themselves", () => {
  assert.equal(dnsPatternMatches('*.compute.internal', 'ip-10-0-0-1.compute.internal', 'ip-10-0-0-1'), true);
  assert.equal(
    dnsPatternMatches('*.compute.internal', 'ip-10-0-0-1.compute.internal', 'ip-10-0-0-1.ec2.internal'),
    true,
    'the first label of a fully qualified node name',
  );
  assert.equal(dnsPatternMatches('*.compute.internal', 'ip-10-0-0-2.compute.internal', 'ip-10-0-0-1'), false);
  assert.equal(dnsPatternMatches('*.Compute.Internal', 'IP-10-0-0-1.compute.internal', 'ip-10-0-0-1'), true);
  assert.equal(dnsPatternMatches('*.compute.internal', 'a.ip-10-0-0-1.compute.internal', 'ip-10-0-0-1'), false);
  assert.equal(dnsPatternMatches('*.compute.internal', 'compute.internal', 'ip-10-0-0-1'), false);
  assert.equal(dnsPatternMatches('*.compute.internal', 'ip-10-0-0-1xcompute.internal', 'ip-10-0-0-1'), false);
  assert.equal(dnsPatternMatches('node.example', 'node.example', 'anything'), true);
  assert.equal(dnsPatternMatches('node.example', 'a.node.example', 'a'), false);
});

test("dnsPatternMatches with a bare *: the node's own name, only when it is a single label", () => {
  assert.equal(dnsPatternMatches('*', 'worker-1', 'worker-1'), true);
  assert.equal(dnsPatternMatches('*', 'worker-1', 'Worker-1'), true, 'case-insensitively');
  assert.equal(dnsPatternMatches('*', 'worker-2', 'worker-1'), false);
  // A multi-label node name is picked by whoever holds a bootstrap token: "*" never lets it choose a domain.
  assert.equal(dnsPatternMatches('*', 'k8s-api.example.com', 'k8s-api.example.com'), false);
  assert.equal(dnsPatternMatches('*', 'k8s-api', 'k8s-api.example.com'), false);
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

const api = { dnsNames: new Set(['api.example']), ips: new Set(['10.0.0.1']), advertised: new Set<string>() };
const strictPolicy = { clusterDomain: 'cluster.local', allowLoopback: false, reservedNames: [], reservedCidrs: [] };

test("reserved: the API server's Service names, *.svc, the cluster domain, its host names and addresses", () => {
  for (const name of [
    'kubernetes',
    'kubernetes.default',
    'kubernetes.default.svc',
    'kubernetes.default.svc.cluster.local',
    'anything.svc',
    'pod-1.ns.pod.cluster.local',
    'cluster.local',
    'api.example',
    'localhost',
    'x.localhost',
  ])
    assert.ok(reservedDnsName(name, strictPolicy, api), name);
  for (const name of ['worker-1', 'kubernetes.example', 'svc.example', 'cluster.local.example'])
    assert.equal(reservedDnsName(name, strictPolicy, api), undefined, name);
  assert.equal(
    reservedDnsName('x.my.domain', { ...strictPolicy, clusterDomain: 'my.domain' }, api)?.requester,
    'is in the cluster domain my.domain',
  );
  for (const ip of ['0.0.0.0', '::', '10.0.0.1', '127.0.0.1', '127.255.0.9', '::1'])
    assert.ok(reservedIp(ip, strictPolicy, api), ip);
  assert.equal(reservedIp('10.0.0.2', strictPolicy, api), undefined);
});

test("reserved names and addresses the cluster taught: the requester's text never says where they come from", () => {
  const learnt = {
    dnsNames: new Set(['k8s-api.example.com', '*.lb.example.com']),
    ips: new Set(['10.0.0.1', '10.0.0.2']),
    advertised: new Set(['10.0.0.2']),
  };
  const policy = {
    ...strictPolicy,
    reservedNames: ['vip.example.com', '*.ingress.example.com'],
    reservedCidrs: ['10.9.0.0/24'],
  };
  const expect = (r: ReturnType<typeof reservedDnsName>, source: string, detail: RegExp) => {
    assert.equal(r?.source, source);
    assert.equal(r?.requester, 'is reserved for the cluster');
    assert.match(r!.detail, detail);
  };
  expect(reservedDnsName('k8s-api.example.com', policy, learnt), 'api-server', /a name of the API server/);
  expect(reservedDnsName('a.lb.example.com', policy, learnt), 'api-server', /a name of the API server/);
  assert.equal(reservedDnsName('a.b.lb.example.com', policy, learnt), undefined, 'a wildcard covers one label');
  expect(reservedDnsName('vip.example.com', policy, learnt), 'operator', /reservedNames \(vip\.example\.com\)/);
  expect(reservedDnsName('a.b.ingress.example.com', policy, learnt), 'operator', /\*\.ingress\.example\.com/);
  assert.equal(reservedDnsName('ingress.example.com', policy, learnt), undefined, '"*." reserves names under it');
  expect(reservedIp('10.9.0.200', policy, learnt), 'operator', /reservedCidrs \(10\.9\.0\.0\/24\)/);
  expect(reservedIp('10.0.0.1', policy, learnt), 'api-server', /an address of the API server/);
  expect(reservedIp('10.0.0.2', policy, learnt), 'api-server', /advertise address/);
  // An operator's reservation outranks the API server's, so nothing can release it (see policy.ts).
  expect(reservedIp('10.0.0.2', { ...policy, reservedCidrs: ['10.0.0.2/32'] }, learnt), 'operator', /reservedCidrs/);
  assert.equal(reservedDnsName('kubernetes', policy, learnt)?.source, 'rule');
});

test('loopback names: localhost, *.localhost (RFC 6761) and the aliases distributions put in /etc/hosts', () => {
  for (const name of [
    'localhost',
    'x.localhost',
    'localhost.localdomain',
    'ip6-localhost',
    'ip6-loopback',
    'localhost4',
    'localhost6.localdomain6',
    'LOCALHOST.',
  ]) {
    assert.ok(isLoopbackName(name), name);
    assert.equal(reservedDnsName(name.toLowerCase().replace(/\.$/, ''), strictPolicy, api)?.source, 'rule', name);
  }
  for (const name of ['localhost.example', 'mylocalhost', 'ip6-localhost.example'])
    assert.equal(isLoopbackName(name), false, name);
});

test('allowLoopback releases loopback, and nothing else', () => {
  const loose = { ...strictPolicy, allowLoopback: true };
  assert.equal(reservedDnsName('localhost', loose, api), undefined);
  assert.equal(reservedIp('127.0.0.1', loose, api), undefined);
  assert.equal(reservedIp('::1', loose, api), undefined);
  assert.ok(reservedIp('10.0.0.1', loose, api));
  assert.ok(reservedIp('0.0.0.0', loose, api));
  assert.ok(reservedDnsName('kubernetes', loose, api));
});

test('claimsOf / NodeClaims: a Node claims its name and every address; updates and deletes replace claims', () => {
  assert.deepEqual(
    claimsOf('Worker-1', [
      { type: 'InternalIP', address: '10.0.0.5' },
      { type: 'ExternalIP', address: '2001:DB8::5' },
      { type: 'InternalDNS', address: 'W1.Example' },
      { type: 'InternalDNS', address: '10.0.0.9' },
      { type: 'Hostname', address: ' ' },
    ]),
    ['dns:worker-1', 'ip:10.0.0.5', 'ip:2001:db8::5', 'dns:w1.example', 'ip:10.0.0.9'],
  );
  // A Node named as an address claims that address (a kubelet of that name asks for it as IP:...), and a
  // fully qualified name written with the root's dot claims the name without it.
  assert.deepEqual(claimsOf('10.0.0.7', []), ['dns:10.0.0.7', 'ip:10.0.0.7']);
  assert.deepEqual(claimsOf('2001:DB8::7', []), ['dns:2001:db8::7', 'ip:2001:db8::7']);
  assert.deepEqual(claimsOf('n1', [{ type: 'InternalDNS', address: 'N2.Example.' }]), ['dns:n1', 'dns:n2.example']);
  const claims = new NodeClaims();
  claims.set('a', [{ type: 'InternalIP', address: '10.0.0.5' }]);
  claims.set('b', [{ type: 'InternalIP', address: '10.0.0.5' }]);
  assert.deepEqual(claims.claimants(ipKey('10.0.0.5'), 'a'), ['b']);
  assert.deepEqual(claims.claimants(dnsKey('B'), 'a'), ['b']);
  claims.set('b', [{ type: 'InternalIP', address: '10.0.0.6' }]);
  assert.deepEqual(claims.claimants(ipKey('10.0.0.5'), 'a'), []);
  assert.deepEqual(claims.claimants(ipKey('10.0.0.6'), 'a'), ['b']);
  claims.delete('b');
  assert.deepEqual(claims.claimants(ipKey('10.0.0.6'), 'a'), []);
  assert.deepEqual(claims.claimants(dnsKey('b'), 'a'), []);
});
