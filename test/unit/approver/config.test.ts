import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../../../src/errors.ts';
import {
  approverOverridesFromDocument,
  defaultApproverConfig,
  mergeApproverConfig,
  parseMetricsListen,
  policyOf,
  unboundedPolicyProblem,
} from '../../../src/approver/config.ts';

const HEAD = { apiVersion: 'nodecred.io/v1alpha1', kind: 'ApproverConfiguration' };
const FILE = '/etc/nodecred/approver.yaml';

function fails(doc: unknown, where: string, message: RegExp): void {
  assert.throws(
    () => approverOverridesFromDocument(doc, FILE),
    (err: unknown) => {
      assert.ok(err instanceof UserError, String(err));
      assert.equal(err.where, `${FILE}: ${where}`);
      assert.match(err.message, message);
      return true;
    },
  );
}

test('defaults: every default key algorithm, deny, kube-system/nodecred-approver, loopback metrics', () => {
  const c = defaultApproverConfig();
  assert.deepEqual(c.allowedKeyAlgorithms, ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096']);
  assert.equal(c.denyMode, 'deny');
  assert.equal(c.onUnknownNode, 'deny');
  assert.equal(`${c.leaseNamespace}/${c.leaseName}`, 'kube-system/nodecred-approver');
  assert.equal(c.metricsListen, '127.0.0.1:10291');
  assert.equal(c.maxExpirationSeconds, undefined);
  assert.equal(c.clusterDomain, 'cluster.local');
  assert.equal(c.allowLoopback, false);
  assert.deepEqual([c.reservedNames, c.reservedCidrs], [[], []]);
});

test('no name-bounding policy (neither allowedCidrs nor dnsPatterns) is a reason not to start', () => {
  assert.match(unboundedPolicyProblem(defaultApproverConfig()) ?? '', /allowedCidrs and dnsPatterns are both empty/);
  assert.equal(unboundedPolicyProblem({ allowedCidrs: ['10.0.0.0/16'], dnsPatterns: [] }), undefined);
  assert.equal(unboundedPolicyProblem({ allowedCidrs: [], dnsPatterns: ['*.compute.internal'] }), undefined);
});

test('a full document is read into the config; flags (later layers) win', () => {
  const o = approverOverridesFromDocument(
    {
      ...HEAD,
      dnsPatterns: ['*.Compute.Internal', 'node.example', '*'],
      allowedCidrs: ['10.0.0.0/8', '2001:db8::/32'],
      maxLifetime: '720h',
      allowedKeyAlgorithms: ['ecdsa-p256'],
      clusterDomain: 'k8s.example',
      allowLoopback: true,
      reservedNames: ['K8s-API.example.com', '*.lb.example.com'],
      reservedCidrs: ['10.0.0.10/32', '2001:db8::10/128'],
      denyMode: 'leave-pending',
      onUnknownNode: 'leave-pending',
      nodeNamePattern: 'ip-10-.*',
      leaseNamespace: 'nodecred',
      leaseName: 'approver',
      resyncInterval: '30s',
      metricsListen: '[::1]:9000',
      logLevel: 'debug',
    },
    FILE,
  );
  const c = mergeApproverConfig(o, { leaseName: 'from-flag' });
  assert.deepEqual(c.dnsPatterns, ['*.compute.internal', 'node.example', '*']);
  assert.equal(c.maxExpirationSeconds, 720 * 3600);
  assert.equal(c.leaseName, 'from-flag');
  assert.equal(c.resyncIntervalMs, 30_000);
  const p = policyOf(c);
  assert.equal(p.clusterDomain, 'k8s.example');
  assert.equal(p.allowLoopback, true);
  assert.deepEqual(p.reservedNames, ['k8s-api.example.com', '*.lb.example.com']);
  assert.deepEqual(p.reservedCidrs, ['10.0.0.10/32', '2001:db8::10/128']);
  assert.equal(p.nodeNamePattern!.test('ip-10-0-0-1'), true);
  assert.equal(p.nodeNamePattern!.test('xip-10-0-0-1'), false, 'the pattern must match the whole name');
});

test('errors name the file and the field', () => {
  fails({ ...HEAD, dnsPattern: ['x'] }, 'dnsPattern', /unknown field/);
  fails({ ...HEAD, kind: 'NodeCredConfiguration' }, 'kind', /must be ApproverConfiguration/);
  fails({ apiVersion: 'v1', kind: 'ApproverConfiguration' }, 'apiVersion', /must be nodecred\.io\/v1alpha1/);
  fails({ ...HEAD, dnsPatterns: ['*.internal'] }, 'dnsPatterns[0]', /at least two labels/);
  fails({ ...HEAD, dnsPatterns: ['a.*.example'] }, 'dnsPatterns[0]', /not a DNS name/);
  fails({ ...HEAD, dnsPatterns: ['*.under_score.example'] }, 'dnsPatterns[0]', /not a DNS name/);
  fails({ ...HEAD, dnsPatterns: ['*.trailing.dot.'] }, 'dnsPatterns[0]', /not a DNS name/);
  fails({ ...HEAD, dnsPatterns: '*.compute.internal' }, 'dnsPatterns', /must be a list/);
  fails({ ...HEAD, allowedCidrs: ['10.0.0.0/33'] }, 'allowedCidrs[0]', /not a CIDR/);
  fails({ ...HEAD, allowedCidrs: ['10.0.0.0'] }, 'allowedCidrs[0]', /not a CIDR/);
  fails({ ...HEAD, maxLifetime: '5m' }, 'maxLifetime', /at least 10m/);
  fails({ ...HEAD, maxLifetime: 'forever' }, 'maxLifetime', /invalid duration/);
  fails({ ...HEAD, allowedKeyAlgorithms: ['ed25519'] }, 'allowedKeyAlgorithms[0]', /unknown key algorithm "ed25519"/);
  fails({ ...HEAD, allowedKeyAlgorithms: [] }, 'allowedKeyAlgorithms', /must not be empty/);
  fails({ ...HEAD, denyMode: 'ignore' }, 'denyMode', /unknown mode "ignore"/);
  fails({ ...HEAD, onUnknownNode: true }, 'onUnknownNode', /non-empty string/);
  fails({ ...HEAD, nodeNamePattern: '(' }, 'nodeNamePattern', /not a valid regular expression/);
  fails({ ...HEAD, leaseNamespace: 'Kube_System' }, 'leaseNamespace', /not a valid namespace/);
  fails({ ...HEAD, resyncInterval: '10ms' }, 'resyncInterval', /at least 1s/);
  fails({ ...HEAD, metricsListen: 'localhost' }, 'metricsListen', /not host:port/);
  fails({ ...HEAD, clusterDomain: 'Cluster.Local.' }, 'clusterDomain', /upper-case/);
  fails({ ...HEAD, allowLoopback: 'yes' }, 'allowLoopback', /true or false|boolean/);
  fails({ ...HEAD, dnsPatterns: ['**'] }, 'dnsPatterns[0]', /not a DNS name/);
  fails({ ...HEAD, reservedNames: ['a..example'] }, 'reservedNames[0]', /not a DNS name or "\*\.<domain>"/);
  fails({ ...HEAD, reservedNames: ['a.*.example'] }, 'reservedNames[0]', /not a DNS name/);
  fails({ ...HEAD, reservedCidrs: ['10.0.0.1'] }, 'reservedCidrs[0]', /not a CIDR/);
});

test('parseMetricsListen: "off" is no listener, else a listen address (config/listen.test.ts)', () => {
  assert.equal(parseMetricsListen('off', 'x'), null);
  assert.deepEqual(parseMetricsListen('127.0.0.1:10291', 'x'), { host: '127.0.0.1', port: 10291 });
  assert.throws(() => parseMetricsListen('1.2.3.4:70000', 'x'), UserError);
});
