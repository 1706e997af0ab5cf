// The cert-dir lock: who holds it, when it is stale, where it lives, and that a stale lock raced by many
// starters at once is taken over by exactly one of them (separate processes, as real starters are).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtemp, readFile, writeFile, rm, mkdir, symlink, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { acquireLock, defaultLockDir, lockFileName, resolveCertDir } from '../../../src/store/lock.ts';
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

test('a lock names its owner (PID, boot, start time), refuses a live owner, releases only its own file', async () => {
  const s = await scratch();
  try {
    const lock = await acquireLock(s.certDir, s.lockDir);
    assert.equal(lock.path, await s.lockPath());
    const [first, second] = (await readFile(lock.path, 'utf8')).split('\n');
    assert.match(
      first!,
      new RegExp(`^${process.pid} ${await bootId()} ${await startTimeOf(process.pid)} [0-9a-f]{16}$`),
    );
    assert.equal(second, resolve(s.certDir));
    assert.equal((await stat(s.lockDir)).mode & 0o777, 0o700);
    // A live owner from this boot (PID 1, with its real start time) blocks.
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

test('stale: another boot, a dead PID, a reused PID (other start time), garbage or empty; taken over', async () => {
  const s = await scratch();
  try {
    const boot = await bootId();
    for (const stale of [
      `1 00000000-0000-0000-0000-000000000000 ${await startTimeOf(1)} 00\n`,
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
    const boot = await bootId();
    await mkdir(s.lockDir, { mode: 0o700 });
    for (let round = 0; round < 30; round++) {
      // A stale lock; every third round also a takeover marker left by a taker that died mid-takeover.
      const stale = `${deadPid()} ${boot} 1 ${round.toString(16).padStart(16, '0')}\n`;
      await writeFile(await s.lockPath(), stale);
      if (round % 3 === 2) {
        const { createHash } = await import('node:crypto');
        const hash = createHash('sha256').update(stale).digest('hex').slice(0, 16);
        const marker = `${await s.lockPath()}.takeover-${hash}`;
        await writeFile(marker, `${deadPid()} ${boot} 1 ffffffffffffffff\n`);
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
