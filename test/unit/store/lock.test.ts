// The cert-dir lock: who holds it, when it is stale, where it lives, and that a stale lock raced by many
// starters at once is taken over by exactly one of them (separate processes, as real starters are).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtemp, readFile, writeFile, rm, mkdir, symlink, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { acquireLock, defaultLockDir, lockFileName, ownerAlive, resolveCertDir } from '../../../src/store/lock.ts';
import { UserError } from '../../../src/errors.ts';

const bootId = async () => (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
/** A PID that existed and is gone: a child that has exited and been reaped. */
const deadPid = () => spawnSync('true').pid!;
const startTimeOf = async (pid: number) => {
  const s = await readFile(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ')[19]!;
};

async function scratch(): Promise<{ dir: string; certDir: string; lockDir: string; lockPath(): Promise<string> }> {
  const dir = await mkdtemp(join(tmpdir(), 'lock-'));
  const certDir = join(dir, 'node', 'pki');
  const lockDir = join(dir, 'locks');
  return { dir, certDir, lockDir, lockPath: async () => join(lockDir, lockFileName(await resolveCertDir(certDir))) };
}

test('a lock names its owner (PID, start time), refuses a live owner, releases only its own file', async () => {
  const s = await scratch();
  try {
    const lock = await acquireLock(s.certDir, s.lockDir);
    assert.equal(lock.path, await s.lockPath());
    const [first, second] = (await readFile(lock.path, 'utf8')).split('\n');
    assert.match(first!, new RegExp(`^${process.pid} ${await startTimeOf(process.pid)} [0-9a-f]{16}$`));
    assert.equal(second, resolve(s.certDir));
    assert.equal((await stat(s.lockDir)).mode & 0o777, 0o700);
    // A live owner (PID 1, with its real start time) blocks; here in the format of an older nodecred, which
    // wrote the boot ID after the PID: an upgrade must not take over the running owner's lock.
    const pid1 = `1 ${await bootId()} ${await startTimeOf(1)} 00\n`;
    await writeFile(lock.path, pid1);
    await assert.rejects(
      acquireLock(s.certDir, s.lockDir),
      (e: unknown) => e instanceof UserError && e.message === `another nodecred (pid 1) already manages ${s.certDir}`,
    );
    await lock.release();
    assert.equal(await readFile(lock.path, 'utf8'), pid1, 'not ours: left alone');
  } finally {
    await rm(s.dir, { recursive: true, force: true });
  }
});

test('stale: a dead PID, a reused PID (other start time), garbage or empty; taken over', async () => {
  const s = await scratch();
  try {
    const boot = await bootId();
    for (const stale of [
      `${deadPid()} 1 00\n`,
      `1 999999999999 00\n`,
      `${deadPid()} ${boot} 1 00\n`,
      `1 ${boot} 999999999999 00\n`,
      'garbage',
      '',
    ]) {
      await mkdir(s.lockDir, { recursive: true, mode: 0o700 });
      await writeFile(await s.lockPath(), stale);
      const lock = await acquireLock(s.certDir, s.lockDir);
      assert.match(await readFile(lock.path, 'utf8'), new RegExp(`^${process.pid} `), JSON.stringify(stale));
      await lock.release();
      assert.deepEqual(await readdir(s.lockDir), [], 'released: nothing left behind');
    }
  } finally {
    await rm(s.dir, { recursive: true, force: true });
  }
});

test('keyed by the resolved cert dir: other spellings and symlinks share one lock, other dirs do not', async () => {
  const s = await scratch();
  try {
    await mkdir(s.certDir, { recursive: true });
    await symlink(join(s.dir, 'node'), join(s.dir, 'alias'));
    const lock = await acquireLock(s.certDir, s.lockDir);
    try {
      // A PID other than ours is needed for "live": a child holds the lock in the spellings below.
      for (const spelling of [`${s.certDir}/`, join(s.dir, 'node', '.', 'pki'), join(s.dir, 'alias', 'pki')])
        assert.equal(lockFileName(await resolveCertDir(spelling)), lockFileName(await resolveCertDir(s.certDir)));
      const other = await acquireLock(join(s.dir, 'node', 'other-pki'), s.lockDir);
      assert.notEqual(other.path, lock.path);
      await other.release();
    } finally {
      await lock.release();
    }
    // A cert dir that does not exist yet resolves through its deepest existing ancestor.
    assert.equal(await resolveCertDir(join(s.dir, 'alias', 'new', 'pki')), join(s.dir, 'node', 'new', 'pki'));
  } finally {
    await rm(s.dir, { recursive: true, force: true });
  }
});

test('ownerAlive: kill(pid, 0) finds it (EPERM too); /proc, where readable: a zombie, a reused PID', () => {
  const probe = (kill: string | null, info: { state: string; startTime: string } | null) => ({
    kill: () => {
      if (kill) throw Object.assign(new Error(kill), { code: kill });
    },
    info: () => info,
  });
  const owner = { pid: 4242, startTime: '1000' };
  assert.equal(ownerAlive(owner, probe(null, { state: 'S', startTime: '1000' })), true);
  assert.equal(ownerAlive(owner, probe('ESRCH', null)), false, 'no such process');
  assert.equal(ownerAlive(owner, probe('EPERM', null)), true, "another user's process, hidden from /proc");
  assert.equal(ownerAlive(owner, probe(null, null)), true, 'hidden by hidepid/ProcSubset: cannot tell, so alive');
  assert.equal(ownerAlive(owner, probe(null, { state: 'Z', startTime: '1000' })), false, 'a zombie');
  assert.equal(ownerAlive(owner, probe(null, { state: 'S', startTime: '2000' })), false, 'the PID was reused');
  assert.equal(ownerAlive({ pid: 4242, startTime: '' }, probe(null, { state: 'S', startTime: '2000' })), true);
  assert.equal(ownerAlive({ pid: process.pid, startTime: '' }), false, 'our own PID: a previous incarnation');
});

/** Runs a node program in a mount namespace whose /proc is the unit's: ProcSubset=pid, ProtectProc=invisible. */
function underUnitProc(program: string) {
  const proc = 'mount -t proc -o subset=pid,hidepid=invisible proc /proc';
  return spawn(
    'unshare',
    [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      `${proc} && exec "$0" --input-type=module -e "$1"`,
      process.execPath,
      program,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
}

test("under the unit's /proc (no /proc/sys, hidepid): inside and outside never take each other's lock", async () => {
  const s = await scratch();
  const lockModule = join(import.meta.dirname, '../../../src/store/lock.ts');
  const holdProgram = `import { acquireLock } from ${JSON.stringify(lockModule)};
    const lock = await acquireLock(${JSON.stringify(s.certDir)}, ${JSON.stringify(s.lockDir)});
    console.log('held'); process.stdin.resume();
    process.stdin.on('end', async () => { await lock.release(); process.exit(0); });`;
  const tryProgram = `import { acquireLock } from ${JSON.stringify(lockModule)};
    try { await acquireLock(${JSON.stringify(s.certDir)}, ${JSON.stringify(s.lockDir)}); console.log('won'); }
    catch (e) { console.log('refused: ' + e.message); }`;
  const children: ReturnType<typeof spawn>[] = [];
  const started = (child: ReturnType<typeof spawn>) => {
    children.push(child);
    return child;
  };
  const firstLine = async (child: ReturnType<typeof spawn>) =>
    (await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next()).value as string;
  const outside = (program: string) =>
    started(spawn(process.execPath, ['--input-type=module', '-e', program], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const refused = /^refused: another nodecred \(pid \d+\) already manages /;
  try {
    // The unit holds the lock; `nodecred bootstrap` from a runbook, outside the unit, must be refused.
    const inside = started(underUnitProc(holdProgram));
    assert.equal(await firstLine(inside), 'held');
    assert.match(await firstLine(outside(tryProgram)), refused);
    inside.stdin!.end();
    await new Promise((r) => inside.once('exit', r));
    // And the other way round.
    const holder = outside(holdProgram);
    assert.equal(await firstLine(holder), 'held');
    assert.match(await firstLine(started(underUnitProc(tryProgram))), refused);
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await rm(s.dir, { recursive: true, force: true });
  }
});

test('a symlinked parent removed under a running owner: the next starter still meets its lock', async () => {
  const s = await scratch();
  try {
    // /var/lib/kubelet → /data/kubelet, as some images lay it out; the owner runs with the symlinked path.
    const data = join(s.dir, 'data', 'kubelet');
    const link = join(s.dir, 'var', 'lib', 'kubelet');
    await mkdir(join(data, 'pki'), { recursive: true });
    await mkdir(join(s.dir, 'var', 'lib'), { recursive: true });
    await symlink(data, link);
    const certDir = join(link, 'pki');
    const [owner] = startStarters(1, certDir, s.lockDir);
    try {
      owner!.send('go');
      assert.equal(await owner!.next(), 'won');
      await rm(link, { recursive: true, force: true }); // `rm -rf /var/lib/kubelet`: the symlink goes
      assert.notEqual(await resolveCertDir(certDir), join(data, 'pki'), 'the same --cert-dir now resolves elsewhere');
      await assert.rejects(acquireLock(certDir, s.lockDir), new RegExp(`pid ${owner!.pid}\\) already manages`));
      // And one naming the symlink's old target directly meets the resolved key.
      await assert.rejects(
        acquireLock(join(data, 'pki'), s.lockDir),
        new RegExp(`pid ${owner!.pid}\\) already manages`),
      );
      owner!.send('release');
      assert.equal(await owner!.next(), 'released');
      assert.deepEqual(await readdir(s.lockDir), [], 'both lock files released');
      const next = await acquireLock(certDir, s.lockDir);
      await next.release();
    } finally {
      await owner!.stop();
    }
  } finally {
    await rm(s.dir, { recursive: true, force: true });
  }
});

test('the lock directory: /run/nodecred for root, the runtime directory or a per-user temp dir otherwise', () => {
  assert.equal(defaultLockDir({}, 0), '/run/nodecred');
  assert.equal(defaultLockDir({ XDG_RUNTIME_DIR: '/run/user/1000' }, 1000), '/run/user/1000/nodecred');
  assert.equal(defaultLockDir({}, 1000), join(tmpdir(), 'nodecred-1000'));
});

test('a process that exits without releasing (a failed start) leaves no lock behind', async () => {
  const s = await scratch();
  try {
    const lockModule = join(import.meta.dirname, '../../../src/store/lock.ts');
    const program = `import { acquireLock } from ${JSON.stringify(lockModule)};
      await acquireLock(${JSON.stringify(s.certDir)}, ${JSON.stringify(s.lockDir)});
      console.log('locked'); process.exit(1);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', program], { encoding: 'utf8' });
    assert.equal(r.stdout.trim(), 'locked', r.stderr);
    assert.deepEqual(await readdir(s.lockDir), []);
  } finally {
    await rm(s.dir, { recursive: true, force: true });
  }
});

test('a lock directory another user could write is refused', async () => {
  const s = await scratch();
  try {
    await mkdir(s.lockDir, { mode: 0o777 });
    await (await import('node:fs/promises')).chmod(s.lockDir, 0o777);
    await assert.rejects(acquireLock(s.certDir, s.lockDir), /writable only by it/);
  } finally {
    await rm(s.dir, { recursive: true, force: true });
  }
});

/** Starters in separate processes, each trying once per "go" line and reporting "won" or "lost <reason>". */
function startStarters(n: number, certDir: string, lockDir: string) {
  const lockModule = join(import.meta.dirname, '../../../src/store/lock.ts');
  const program = `
    import { acquireLock } from ${JSON.stringify(lockModule)};
    import { createInterface } from 'node:readline';
    let lock;
    for await (const line of createInterface({ input: process.stdin })) {
      if (line === 'go') {
        try { lock = await acquireLock(${JSON.stringify(certDir)}, ${JSON.stringify(lockDir)}); console.log('won'); }
        catch (e) { console.log('lost ' + e.message); }
      } else if (line === 'release') { await lock?.release(); lock = undefined; console.log('released'); }
    }`;
  return Array.from({ length: n }, () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', program], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    return {
      pid: child.pid!,
      send: (line: string) => child.stdin!.write(`${line}\n`),
      next: async () => (await lines.next()).value as string,
      stop: () => new Promise((r) => child.once('exit', r).stdin!.end()),
    };
  });
}

test('20 starters race for a stale lock, 30 rounds: exactly one wins each round, the others name it', async () => {
  const s = await scratch();
  const starters = startStarters(20, s.certDir, s.lockDir);
  try {
    await mkdir(s.lockDir, { mode: 0o700 });
    for (let round = 0; round < 30; round++) {
      // A stale lock; every third round also a takeover marker left by a taker that died mid-takeover.
      const stale = `${deadPid()} 1 ${round.toString(16).padStart(16, '0')}\n`;
      await writeFile(await s.lockPath(), stale);
      if (round % 3 === 2) {
        const { createHash } = await import('node:crypto');
        const hash = createHash('sha256').update(stale).digest('hex').slice(0, 16);
        const marker = `${await s.lockPath()}.takeover-${hash}`;
        await writeFile(marker, `${deadPid()} 1 ffffffffffffffff\n`);
      }
      for (const st of starters) st.send('go');
      const results = await Promise.all(starters.map((st) => st.next()));
      const winners = starters.filter((_, i) => results[i] === 'won');
      assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify(results)}`);
      const winner = winners[0]!;
      for (const r of results.filter((r) => r !== 'won'))
        assert.equal(r, `lost another nodecred (pid ${winner.pid}) already manages ${s.certDir}`, `round ${round}`);
      assert.match(await readFile(await s.lockPath(), 'utf8'), new RegExp(`^${winner.pid} `));
      for (const st of starters) st.send('release');
      await Promise.all(starters.map((st) => st.next()));
      assert.deepEqual(await readdir(s.lockDir), [], `round ${round}: released, and no marker or temp file left`);
    }
  } finally {
    await Promise.all(starters.map((st) => st.stop()));
    await rm(s.dir, { recursive: true, force: true });
  }
});
