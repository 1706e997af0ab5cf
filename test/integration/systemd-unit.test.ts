// systemd/nodecred.service as a VM image ships it, under a real systemd (PID 1 in systemd-nspawn, a
// minimal Debian bookworm rootfs with no /var/lib/kubelet and no /etc/kubernetes, no Node and no kill
// binary): the single executable and the unit are all that is installed, plus a config and a bootstrap
// kubeconfig for the test control plane on the shared loopback. What systemd itself reports is asserted:
// active/running after READY=1, the STATUS= line, the watchdog, no restarts; `systemctl reload` runs
// ExecReload (exit 0) and the daemon logs the reload; a broken config makes the reload fail and keeps the
// daemon running; SIGTERM stops it cleanly. A `nodecred bootstrap` run beside the unit (outside its sandbox)
// is refused by the cert-dir lock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { testCluster, createBootstrapToken, ensureBootstrapRbac, uniqueName, waitFor } from '../helpers/cluster.ts';
import { inlineTokenKubeconfig, REPO } from '../helpers/node.ts';
import { bootContainer, cachedRootfs, nspawnUnavailable, type Container } from '../helpers/nspawn.ts';
import { buildSingleExecutable } from '../../scripts/lib/sea.ts';
import { freePort, httpGet } from '../../scripts/lib/local-cluster.ts';

const log = (line: string) => process.stderr.write(`${line}\n`);
const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

test('nodecred.service, bare image, real systemd: first boot gets READY and STATUS; reload works', async (t) => {
  const unavailable = nspawnUnavailable();
  assert.equal(unavailable, null, `this test needs a real systemd in systemd-nspawn: ${unavailable}`);
  const c = testCluster();
  const work = await mkdtemp(join(tmpdir(), 'nodecred-unit-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const [rootfs] = await Promise.all([
    cachedRootfs({ log }),
    buildSingleExecutable(join(REPO, 'src/cli/main.ts'), join(work, 'nodecred')),
  ]);
  await ensureBootstrapRbac(c);
  const token = await createBootstrapToken(c);
  const nodeName = uniqueName('nspawn-node');
  const healthPort = await freePort();

  const box: Container = await bootContainer({ rootfs, log });
  t.after(() => box.stop());
  for (const absent of ['/var/lib/kubelet', '/etc/kubernetes', '/usr/bin/kill', '/bin/kill', '/usr/bin/node'])
    assert.ok(!existsSync(box.path(absent)), `a bare image has no ${absent}`);

  await box.copyIn(join(work, 'nodecred'), '/usr/local/bin/nodecred', 0o755);
  await box.copyIn(join(REPO, 'systemd/nodecred.service'), '/etc/systemd/system/nodecred.service');
  // The CA inline: the container cannot see the test cluster's files.
  const bootstrapKubeconfig = inlineTokenKubeconfig(c, token.token);
  await box.writeFile('/etc/nodecred/bootstrap-kubelet.conf', bootstrapKubeconfig, 0o600);
  const config = (logLevel: string) =>
    stringify({
      apiVersion: 'nodecred.io/v1alpha1',
      kind: 'NodeCredConfiguration',
      nodeName,
      bootstrapKubeconfig: '/etc/nodecred/bootstrap-kubelet.conf',
      // The host network is shared: not the default port, which another daemon on this machine may hold.
      healthListen: `127.0.0.1:${healthPort}`,
      logLevel,
    });
  await box.writeFile('/etc/nodecred/config.yaml', config('info'), 0o600);

  const failWith = async (what: string, r: { code: number | null; stdout: string; stderr: string }) =>
    `${what} exited ${r.code}: ${r.stderr}${r.stdout}\njournal:\n` +
    (await box.journal('nodecred.service')).slice(-3000);

  assert.equal((await box.systemctl('daemon-reload')).code, 0);
  // Type=notify: `start` returns once the daemon sent READY=1 (credentials installed), or fails.
  const started = await box.systemctl('enable', '--now', 'nodecred.service');
  assert.equal(started.code, 0, await failWith('systemctl enable --now', started));

  const props = await box.show('nodecred.service', [
    'ActiveState',
    'SubState',
    'StatusText',
    'NRestarts',
    'WatchdogUSec',
    'MainPID',
  ]);
  assert.equal(props.ActiveState, 'active');
  assert.equal(props.SubState, 'running');
  assert.match(props.StatusText!, /^client: valid \d+d/, 'STATUS= from the daemon, as systemd shows it');
  assert.equal(props.NRestarts, '0', 'started first time: no 226/NAMESPACE restarts');
  assert.equal(props.WatchdogUSec, '1min');
  const mainPid = props.MainPID;

  // What the first boot created, with the modes the daemon promises.
  assert.equal(await modeOf(box.path('/var/lib/kubelet')), 0o700, 'created by ExecStartPre, 0700');
  assert.equal(await modeOf(box.path('/var/lib/kubelet/pki')), 0o700);
  assert.equal(await modeOf(box.path('/var/lib/kubelet/kubeconfig')), 0o600);
  assert.equal(await modeOf(box.path('/run/nodecred')), 0o700, 'RuntimeDirectory= for the lock');
  assert.deepEqual(
    (await readdir(box.path('/run/nodecred'))).filter((n) => n.endsWith('.lock')).length,
    1,
    'one lock, in /run/nodecred',
  );
  assert.ok(!existsSync(box.path('/etc/kubernetes')), 'nothing written outside /var/lib/kubelet');
  // The credential works: /readyz includes a real SelfSubjectReview with the installed certificate.
  const ready = await waitFor('readyz 200 from inside the container', async () => {
    const url = `http://127.0.0.1:${healthPort}/readyz?verbose`;
    const [status, body] = await httpGet({ url }).catch((): [number, string] => [0, '']);
    return status === 200 ? body : undefined;
  });
  assert.match(ready, /\[\+\]apiserver-auth ok/);

  // One nodecred per cert dir, across the unit's sandbox: a `nodecred bootstrap` from a runbook, on the
  // machine but outside the unit (a full /proc, where the unit has ProcSubset=pid and ProtectProc=invisible,
  // so neither side reads the same facts about the other), is refused and leaves the unit's lock alone.
  const lockFiles = async () => (await readdir(box.path('/run/nodecred'))).filter((n) => n.endsWith('.lock'));
  const [lockFile] = await lockFiles();
  const unitLock = await readFile(box.path(`/run/nodecred/${lockFile}`), 'utf8');
  assert.match(unitLock, new RegExp(`^${mainPid} `), 'the unit holds the lock');
  // As from a root shell on the machine: a plain environment, not the test runner's.
  const shell = ['env', '-i', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root'];
  const runbook = await box.run(
    [...shell, '/usr/local/bin/nodecred', 'bootstrap', '--config', '/etc/nodecred/config.yaml'],
    {
      timeoutMs: 120_000,
    },
  );
  assert.notEqual(runbook.code, 0, `a second manager was let in: ${runbook.stdout}${runbook.stderr}`);
  assert.equal(runbook.stderr.trim().split('\n').length, 1, runbook.stderr);
  assert.match(
    runbook.stderr,
    new RegExp(`another nodecred \\(pid ${mainPid}\\) already manages /var/lib/kubelet/pki`),
  );
  assert.deepEqual(await lockFiles(), [lockFile]);
  assert.equal(await readFile(box.path(`/run/nodecred/${lockFile}`), 'utf8'), unitLock, 'the unit keeps its lock');

  // Reload: ExecReload (no kill binary on this image) validates and signals; the daemon logs it.
  await box.writeFile('/etc/nodecred/config.yaml', config('debug'), 0o600);
  const reloaded = await box.systemctl('reload', 'nodecred.service');
  assert.equal(reloaded.code, 0, await failWith('systemctl reload', reloaded));
  await waitFor('the daemon to log the reload', async () =>
    (await box.journal('nodecred.service')).includes('configuration reloaded') ? true : undefined,
  );
  const afterReload = await box.show('nodecred.service', ['ActiveState', 'MainPID', 'NRestarts', 'ExecReload']);
  assert.match(afterReload.ExecReload!, /status=0[/ ;]/, `ExecReload exit 0: ${afterReload.ExecReload}`);
  assert.equal(afterReload.MainPID, mainPid, 'reloaded in place, not restarted');
  assert.equal(afterReload.NRestarts, '0');
  assert.equal(afterReload.ActiveState, 'active');

  // A broken config: the reload fails with the reason, the daemon keeps running with the old one.
  await box.writeFile('/etc/nodecred/config.yaml', 'rotation: {from: 0.9, to: 0.2\n', 0o600);
  const refused = await box.systemctl('reload', 'nodecred.service');
  assert.notEqual(refused.code, 0, 'systemctl reload fails on a broken config');
  const journal = await box.journal('nodecred.service');
  assert.match(journal, /nodecred: \/etc\/nodecred\/config\.yaml: not valid YAML/);
  assert.doesNotMatch(journal, /^\s+at /m, 'no stack trace in the journal');
  const afterRefusal = await box.show('nodecred.service', ['ActiveState', 'MainPID']);
  assert.deepEqual(afterRefusal, { ActiveState: 'active', MainPID: mainPid });

  // SIGTERM: STOPPING=1 and exit 0.
  await box.writeFile('/etc/nodecred/config.yaml', config('info'), 0o600);
  const stopped = await box.systemctl('stop', 'nodecred.service');
  assert.equal(stopped.code, 0, await failWith('systemctl stop', stopped));
  const end = await box.show('nodecred.service', ['ActiveState', 'Result', 'ExecMainStatus']);
  assert.deepEqual(end, { ActiveState: 'inactive', Result: 'success', ExecMainStatus: '0' });
});
