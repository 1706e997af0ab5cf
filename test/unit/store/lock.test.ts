import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, lockPathFor } from '../../../src/store/lock.ts';
import { UserError } from '../../../src/errors.ts';

const bootId = async () => (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();

test('a lock holds PID and boot ID, refuses a live owner, and releases only its own file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lock-'));
  try {
    const certDir = join(dir, 'pki');
    const lock = await acquireLock(certDir);
    assert.equal(await readFile(lockPathFor(certDir), 'utf8'), `${process.pid} ${await bootId()}\n`);
    // A live owner from this boot (PID 1 always exists) blocks.
    await writeFile(lockPathFor(certDir), `1 ${await bootId()}\n`);
    await assert.rejects(
      acquireLock(certDir),
      (e: unknown) => e instanceof UserError && /another nodecred \(pid 1\)/.test(e.message),
    );
    await lock.release();
    assert.equal(await readFile(lockPathFor(certDir), 'utf8'), `1 ${await bootId()}\n`, 'not ours: left alone');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a lock from another boot, or of a dead process, or empty, is stale and taken over', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lock-'));
  try {
    const certDir = join(dir, 'pki');
    for (const stale of ['1 00000000-0000-0000-0000-000000000000\n', `999999999 ${await bootId()}\n`, '']) {
      await writeFile(lockPathFor(certDir), stale);
      const lock = await acquireLock(certDir);
      assert.match(await readFile(lockPathFor(certDir), 'utf8'), new RegExp(`^${process.pid} `));
      await lock.release();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
