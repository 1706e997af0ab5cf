// systemd/nodecred.service as shipped: what it may write (exactly the default layout), that every writable
// path is created before the sandbox needs it, that reload needs no kill binary, that its hardening did not
// get weaker (systemd-analyze security), and that systemd-analyze verify accepts it alone and with each
// drop-in of systemd/examples/. Booting it under a real systemd: test/integration/systemd-unit.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_FLAGS, parseFlags } from '../../../src/cli/flags.ts';

const REPO = join(import.meta.dirname, '../../..');
const unit = readFileSync(join(REPO, 'systemd/nodecred.service'), 'utf8');
const values = (text: string, key: string) =>
  [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!).filter(Boolean);
const DROP_INS = readdirSync(join(REPO, 'systemd/examples')).filter((n) => n.endsWith('.conf'));

test('writes exactly /var/lib/kubelet and /run/nodecred, each created first; reload needs no kill binary', () => {
  assert.deepEqual(values(unit, 'ReadWritePaths'), ['-/var/lib/kubelet']);
  assert.deepEqual(values(unit, 'RuntimeDirectory'), ['nodecred']);
  assert.deepEqual(values(unit, 'RuntimeDirectoryMode'), ['0700']);
  assert.match(unit, /^ProtectSystem=strict$/m);
  for (const text of [unit, ...DROP_INS.map((n) => readFileSync(join(REPO, 'systemd/examples', n), 'utf8'))]) {
    const created = values(text, 'ExecStartPre').map((c) => /^\+\/bin\/mkdir -p -m 0700 (\S+)$/.exec(c)?.[1]);
    for (const path of values(text, 'ReadWritePaths').flatMap((v) => v.split(/\s+/)))
      assert.ok(created.includes(path.replace(/^-/, '')), `${path} is created by an ExecStartPre=+ mkdir`);
  }
  const start = /^ExecStart=\/usr\/local\/bin\/nodecred run (.*)$/m.exec(unit);
  assert.ok(start, 'ExecStart runs nodecred run');
  parseFlags(start[1]!.split(/\s+/), NODE_FLAGS);
  assert.deepEqual(values(unit, 'ExecReload'), ['/usr/local/bin/nodecred reload --pid $MAINPID']);
  assert.doesNotMatch(unit, /\bkill\b.*\$MAINPID/);
});

test('systemd-analyze: exposure still 2.0 or better, and verify is clean alone and with every drop-in', () => {
  const security = spawnSync(
    'systemd-analyze',
    ['security', '--offline=true', join(REPO, 'systemd/nodecred.service')],
    {
      encoding: 'utf8',
    },
  );
  const exposure = /Overall exposure level for nodecred\.service: (\d+\.\d+)/.exec(security.stdout);
  assert.ok(exposure, security.stdout + security.stderr);
  assert.ok(Number(exposure[1]) <= 2.0, `exposure ${exposure[1]} (was 2.0 before the first-boot changes)`);

  // verify needs ExecStart to exist: point a copy at a stand-in; SYSTEMD_UNIT_PATH makes it read drop-ins.
  for (const dropIn of [undefined, ...DROP_INS]) {
    const dir = mkdtempSync(join(tmpdir(), 'nodecred-unit-'));
    try {
      writeFileSync(join(dir, 'nodecred'), '#!/bin/sh\nexit 0\n');
      chmodSync(join(dir, 'nodecred'), 0o755);
      const local = (text: string) => text.replaceAll('/usr/local/bin/nodecred', join(dir, 'nodecred'));
      writeFileSync(join(dir, 'nodecred.service'), local(unit));
      if (dropIn) {
        mkdirSync(join(dir, 'nodecred.service.d'));
        writeFileSync(
          join(dir, 'nodecred.service.d', dropIn),
          local(readFileSync(join(REPO, 'systemd/examples', dropIn), 'utf8')),
        );
      }
      const r = spawnSync('systemd-analyze', ['verify', join(dir, 'nodecred.service')], {
        encoding: 'utf8',
        env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` },
      });
      assert.equal(r.status, 0, `${dropIn ?? 'the unit'}: ${r.stderr}`);
      assert.equal(r.stderr.trim(), '', `${dropIn ?? 'the unit'}: no warnings`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});
