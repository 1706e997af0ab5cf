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

test('ipInCidr: both families, boundaries, no cross-family matches', () => {
  assert.equal(ipInCidr('10.0.0.255', '10.0.0.0/24'), true);
  assert.equal(ipInCidr('10.0.1.0', '10.0.0.0/24'), false);
  assert.equal(ipInCidr('2001:db8::1', '2001:db8::/32'), true);
  assert.equal(ipInCidr('2001:db9::1', '2001:db8::/32'), false);
  assert.equal(ipInCidr('10.0.0.1', '::/0'), false);
  assert.equal(ipInCidr('10.0.0.1', '0.0.0.0/0'), true);
  assert.equal(ipInCidr('10.0.0.1', 'not-a-cidr'), false);
});

const api = { dnsNames: new Set(['api.example']), ips: new Set(['10.0.0.1']) };
const strictPolicy = { clusterDomain: 'cluster.local', allowLoopback: false };

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
    reservedDnsName('x.my.domain', { ...strictPolicy, clusterDomain: 'my.domain' }, api),
    'in the cluster domain my.domain',
  );
  for (const ip of ['0.0.0.0', '::', '10.0.0.1', '127.0.0.1', '127.255.0.9', '::1'])
    assert.ok(reservedIp(ip, strictPolicy, api), ip);
  assert.equal(reservedIp('10.0.0.2', strictPolicy, api), undefined);
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
