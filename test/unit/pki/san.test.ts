import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalDnsName, canonicalIp } from '../../../src/pki/san.ts';

test('canonicalIp keeps IPv4, compresses IPv6 and unmaps IPv4-mapped IPv6 as Go prints them', () => {
  assert.equal(canonicalIp('10.0.0.1'), '10.0.0.1');
  assert.equal(canonicalIp('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.equal(canonicalIp('::1'), '::1');
  assert.equal(canonicalIp('::ffff:192.168.1.2'), '192.168.1.2');
  assert.equal(canonicalIp('::ffff:0:192.168.1.2'), '::ffff:0:c0a8:102');
});

test('canonicalIp refuses what cannot be a SAN IP', () => {
  for (const text of ['', 'node-1', '010.0.0.1', '10.0.0.1/8', 'fe80::1%eth0', '1.2.3', '::g']) {
    assert.equal(canonicalIp(text), undefined, text);
  }
});

test("canonicalDnsName ignores case and the root's trailing dot", () => {
  assert.equal(canonicalDnsName('Node-1.Example.COM'), 'node-1.example.com');
  assert.equal(canonicalDnsName('Node-1.Example.COM.'), 'node-1.example.com');
  assert.equal(canonicalDnsName('.'), '.', 'the root alone stays as it is');
});
