// nodecred.service and kubelet.service: the kubelet is ordered after nodecred, and enabling nodecred makes
// starting the kubelet pull it in, through the weakest dependency that does so (Wants). systemd's own
// `systemctl --root … enable` is the judge of what the [Install] section creates; a restart of nodecred
// leaving a running kubelet alone is checked under a real systemd (test/integration/systemd-boot.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const UNIT = readFileSync(join(import.meta.dirname, '../../../systemd/nodecred.service'), 'utf8');

/** Values of `key=` in a section, one per assignment, split on whitespace as systemd does for unit lists. */
function values(section: string, key: string): string[] {
  const body = UNIT.split(/^\[/m).find((s) => s.startsWith(`${section}]`)) ?? '';
  return body
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .flatMap((l) => l.slice(key.length + 1).split(/\s+/))
    .filter(Boolean);
}

test('nodecred.service is ordered before the kubelet and never requires, binds or is part of it', () => {
  assert.ok(values('Unit', 'Before').includes('kubelet.service'));
  for (const strong of ['Requires', 'Requisite', 'BindsTo', 'PartOf', 'Upholds', 'PropagatesStopTo'])
    assert.deepEqual(values('Unit', strong), [], `[Unit] ${strong}=`);
  for (const strong of ['RequiredBy', 'UpheldBy'])
    assert.deepEqual(values('Install', strong), [], `[Install] ${strong}=`);
});

test('systemctl enable wires nodecred into kubelet.service.wants/ and multi-user.target.wants/ only', (t) => {
  if (spawnSync('systemctl', ['--version']).status !== 0) return t.skip('systemctl not installed');
  const root = mkdtempSync(join(tmpdir(), 'nodecred-unit-root-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const units = join(root, 'etc/systemd/system');
  mkdirSync(units, { recursive: true });
  writeFileSync(join(units, 'nodecred.service'), UNIT);
  writeFileSync(join(units, 'kubelet.service'), '[Service]\nExecStart=/usr/bin/kubelet\n');
  const r = spawnSync('systemctl', [`--root=${root}`, 'enable', 'nodecred.service'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const created = readdirSync(units).filter((d) => /\.(wants|requires|upholds)$/.test(d));
  assert.deepEqual(created.sort(), ['kubelet.service.wants', 'multi-user.target.wants']);
  assert.deepEqual(readdirSync(join(units, 'kubelet.service.wants')), ['nodecred.service']);
});
