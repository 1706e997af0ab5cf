// Hook pid files: nodecred runs as root, so the PID it signals must come from a file only root (or its own
// user) can write. Real files, real ownership and modes, a real process to signal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidFileProblem, runHooks } from '../../../src/hooks.ts';
import type { Logger } from '../../../src/log.ts';

function recordingLog() {
  const lines: Array<{ level: string; fields: Record<string, unknown>; msg: string }> = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => lines.push({ level, fields, msg });
  return { lines, log: { info: at('info'), warn: at('warn') } as unknown as Logger };
}

test('pidFileProblem: a regular file owned by root or by us, writable by nobody else', () => {
  const ok = { uid: 0, mode: 0o100644, isFile: true };
  assert.equal(pidFileProblem(ok, 0), undefined);
  assert.equal(pidFileProblem({ ...ok, mode: 0o100600 }, 0), undefined);
  assert.equal(pidFileProblem({ ...ok, uid: 1000 }, 1000), undefined, 'our own uid when not running as root');
  assert.match(pidFileProblem({ ...ok, uid: 1000 }, 0)!, /owned by uid 1000, not root/);
  assert.match(pidFileProblem({ ...ok, mode: 0o100664 }, 0)!, /group-writable \(mode 0664\)/);
  assert.match(pidFileProblem({ ...ok, mode: 0o100646 }, 0)!, /world-writable \(mode 0646\)/);
  assert.match(pidFileProblem({ ...ok, isFile: false }, 0)!, /not a regular file/);
});

test('hook pid file: signalled only when root-owned and not group/world-writable', async () => {
  // Runs as root (as the test suite does): only root can make a file owned by another user.
  assert.equal(process.getuid?.(), 0, 'this test needs root');
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-pidfile-'));
  const info = { kind: 'server' as const, certFile: '/dev/null', kubeconfig: '/dev/null' };
  try {
    const cases: Array<[string, (path: string) => Promise<void>, RegExp | null]> = [
      ['root 0644', async () => {}, null],
      ['group-writable', (p) => chmod(p, 0o664), /group-writable \(mode 0664\)/],
      ['world-writable', (p) => chmod(p, 0o646), /world-writable \(mode 0646\)/],
      ['owned by nobody', (p) => chown(p, 65534, 65534), /owned by uid 65534, not root/],
    ];
    for (const [name, prepare, refusal] of cases) {
      const sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
      const exited = new Promise<NodeJS.Signals | null>((r) => sleeper.on('exit', (_c, sig) => r(sig)));
      const pidFile = join(dir, `${name.replaceAll(' ', '-')}.pid`);
      await writeFile(pidFile, `${sleeper.pid}\n`, { mode: 0o644 });
      await chmod(pidFile, 0o644);
      await prepare(pidFile);
      const { lines, log } = recordingLog();
      await runHooks({ command: undefined, pidFile, signal: 'SIGTERM', timeoutMs: 1000 }, info, log);
      if (refusal === null) {
        assert.equal(await exited, 'SIGTERM', `${name}: signalled`);
        assert.equal(lines[0]?.msg, 'signalled process after install');
      } else {
        assert.equal(lines[0]?.level, 'warn', name);
        assert.match(String(lines[0]?.fields.err), refusal, name);
        assert.equal(sleeper.exitCode, null, `${name}: not signalled`);
        assert.equal(sleeper.signalCode, null, `${name}: not signalled`);
        sleeper.kill('SIGKILL');
        await exited;
      }
    }
    // A symlink to a root-owned pid file is not followed.
    const target = join(dir, 'root-0644.pid');
    await symlink(target, join(dir, 'link.pid'));
    const { lines, log } = recordingLog();
    await runHooks(
      { command: undefined, pidFile: join(dir, 'link.pid'), signal: 'SIGTERM', timeoutMs: 1000 },
      info,
      log,
    );
    assert.match(String(lines[0]?.fields.err), /is a symlink; refusing to follow it/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// The daemon may hold the bootstrap token in its environment (NODECRED_DISCOVERY_TOKEN, the recommended form):
// a hook (a reload script, and whatever it starts) must not inherit it.
test('hook command: its environment names the install, never the bootstrap token', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-hookenv-'));
  const out = join(dir, 'env');
  const saved = process.env.NODECRED_DISCOVERY_TOKEN;
  process.env.NODECRED_DISCOVERY_TOKEN = 'abcdef.0123456789abcdef';
  try {
    const { log, lines } = recordingLog();
    const hooks = {
      command: ['/bin/sh', '-c', `env > ${out}`],
      timeoutMs: 10_000,
      pidFile: undefined,
      signal: 'SIGHUP',
    };
    await runHooks(hooks, { kind: 'client', certFile: '/dev/null', kubeconfig: '/dev/null' }, log);
    assert.deepEqual(
      lines.map((l) => l.msg),
      ['post-install hook ran'],
    );
    const env = (await readFile(out, 'utf8')).split('\n');
    assert.ok(env.includes('NODECRED_KIND=client'), 'the hook learns what was installed');
    assert.deepEqual(
      env.filter((l) => l.includes('0123456789abcdef') || l.startsWith('NODECRED_DISCOVERY_TOKEN=')),
      [],
    );
  } finally {
    if (saved === undefined) delete process.env.NODECRED_DISCOVERY_TOKEN;
    else process.env.NODECRED_DISCOVERY_TOKEN = saved;
    await rm(dir, { recursive: true, force: true });
  }
});
