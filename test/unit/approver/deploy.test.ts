// The shipped deployment artefacts agree with the code: the ConfigMap's configuration validates, the
// Deployment and the systemd unit pass only flags `nodecred approve` knows, both are hardened, and
// systemd-analyze accepts the unit without a warning. (That deploy/approver-rbac.yaml grants enough is
// proven against the real API server in test/integration/approver.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import {
  approverOverridesFromDocument,
  mergeApproverConfig,
  unboundedPolicyProblem,
} from '../../../src/approver/config.ts';
import { APPROVE_FLAGS } from '../../../src/cli/approve.ts';
import { parseFlags } from '../../../src/cli/flags.ts';

const REPO = resolve(import.meta.dirname, '../../..');
const read = (path: string) => readFileSync(join(REPO, path), 'utf8');
// biome-ignore lint/suspicious/noExplicitAny: parsed YAML manifests, read field by field in the assertions
type Doc = { kind: string; [k: string]: any };
const docs = (path: string): Doc[] => parseAllDocuments(read(path)).map((d) => d.toJS() as Doc);

test('approver-deployment.yaml: the ConfigMap holds a valid ApproverConfiguration that must be completed', () => {
  const cm = docs('deploy/approver-deployment.yaml').find((d) => d.kind === 'ConfigMap')!;
  const o = approverOverridesFromDocument(
    parseYaml(cm.data['approver.yaml']),
    'ConfigMap nodecred-approver: approver.yaml',
  );
  assert.equal(o.denyMode, 'deny');
  // Shipped without a name-bounding policy on purpose: the approver refuses to start until the operator
  // says which names nodes may have (README: Approving kubelet serving certificates).
  assert.match(unboundedPolicyProblem(mergeApproverConfig(o)) ?? '', /both empty/);
  assert.match(cm.data['approver.yaml'], /REQUIRED/);
});

test('approver-deployment.yaml: 2 replicas, non-root, read-only root, no capabilities, probes and resources', () => {
  const all = docs('deploy/approver-deployment.yaml');
  const d = all.find((x) => x.kind === 'Deployment')!;
  assert.equal(d.spec.replicas, 2);
  const pod = d.spec.template.spec;
  assert.equal(pod.serviceAccountName, 'nodecred-approver');
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.ok(pod.securityContext.runAsUser > 0);
  const [c] = pod.containers;
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  assert.equal(c.readinessProbe.httpGet.path, '/healthz');
  assert.ok(c.resources.requests.memory && c.resources.limits.memory);
  assert.equal(c.args[0], 'approve');
  const flags = parseFlags(c.args.slice(1), APPROVE_FLAGS);
  assert.equal(flags.get('config')?.[0], '/etc/nodecred/approver.yaml');
  assert.ok(all.some((x) => x.kind === 'PodDisruptionBudget'));
});

test('approver-deployment.yaml: pinned to control-plane nodes (nodeSelector and the matching toleration)', () => {
  const d = docs('deploy/approver-deployment.yaml').find((x) => x.kind === 'Deployment')!;
  const pod = d.spec.template.spec;
  assert.deepEqual(pod.nodeSelector, { 'node-role.kubernetes.io/control-plane': '' });
  assert.ok(
    pod.tolerations.some(
      (t: { key: string; operator: string; effect?: string }) =>
        t.key === 'node-role.kubernetes.io/control-plane' && t.operator === 'Exists' && t.effect === 'NoSchedule',
    ),
    'tolerates the control-plane taint',
  );
});

test('approver-rbac.yaml: the signer rule is limited to kubelet-serving, Lease get/update to its own Lease', () => {
  const all = docs('deploy/approver-rbac.yaml');
  const role = all.find((x) => x.kind === 'ClusterRole')!;
  const signer = role.rules.find((r: { resources: string[] }) => r.resources.includes('signers'));
  assert.deepEqual(signer, {
    apiGroups: ['certificates.k8s.io'],
    resources: ['signers'],
    resourceNames: ['kubernetes.io/kubelet-serving'],
    verbs: ['approve'],
  });
  for (const r of role.rules) assert.ok(!r.verbs.includes('*') && !r.resources.includes('*'), JSON.stringify(r));
  const lease = all.find((x) => x.kind === 'Role' && x.metadata.namespace === 'kube-system')!;
  const named = lease.rules.find((r: { verbs: string[] }) => r.verbs.includes('update'));
  assert.deepEqual(named.resourceNames, ['nodecred-approver']);
});

test('nodecred-approver.service: flags are known, and systemd-analyze verify passes without warnings', (t) => {
  const unit = read('systemd/nodecred-approver.service');
  const exec = /^ExecStart=(\S+) approve (.*)$/m.exec(unit);
  assert.ok(exec, 'ExecStart runs nodecred approve');
  parseFlags(exec[2]!.split(/\s+/), APPROVE_FLAGS);
  assert.match(unit, /^DynamicUser=yes$/m);
  assert.match(unit, /^NoNewPrivileges=yes$/m);
  assert.match(unit, /^ProtectSystem=strict$/m);
  if (spawnSync('systemd-analyze', ['--version']).status !== 0) return t.skip('systemd-analyze not installed');
  // verify needs ExecStart to exist: point a copy of the unit at a stand-in executable.
  const dir = mkdtempSync(join(tmpdir(), 'nodecred-unit-'));
  try {
    writeFileSync(join(dir, 'nodecred'), '#!/bin/sh\nexit 0\n');
    chmodSync(join(dir, 'nodecred'), 0o755);
    writeFileSync(
      join(dir, 'nodecred-approver.service'),
      unit.replaceAll('/usr/local/bin/nodecred', join(dir, 'nodecred')),
    );
    const r = spawnSync('systemd-analyze', ['verify', join(dir, 'nodecred-approver.service')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'no warnings');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
