import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../../src/errors.ts';
import {
  ensurePrivateDir,
  fsyncDir,
  removeTemporaryFiles,
  replaceSymlink,
  TEMP_MARKER,
  writeFileAtomic,
} from '../../../src/store/atomic.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-atomic-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs `fn` with the process umask set to `mask`, restoring it afterwards. */
async function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const previous = process.umask(mask);
  try {
    return await fn();
  } finally {
    process.umask(previous);
  }
}

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;
const leftovers = async (dir: string) => (await readdir(dir)).filter((n) => n.startsWith(TEMP_MARKER));

test('writeFileAtomic writes the content with exactly 0600, even under a permissive umask', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'key.pem');
  await withUmask(0o000, () => writeFileAtomic(path, 'secret\n', 0o600));
  assert.equal(await readFile(path, 'utf8'), 'secret\n');
  assert.equal(await modeOf(path), 0o600);
  assert.deepEqual(await readdir(dir), ['key.pem']);
});

test('writeFileAtomic sets the mode exactly, whatever the umask filters out', async (t) => {
  const dir = await tempDir(t);
  await withUmask(0o077, () => writeFileAtomic(join(dir, 'a'), 'a', 0o644));
  assert.equal(await modeOf(join(dir, 'a')), 0o644);
  await withUmask(0o777, () => writeFileAtomic(join(dir, 'b'), 'b', 0o600));
  assert.equal(await modeOf(join(dir, 'b')), 0o600);
  assert.equal(await readFile(join(dir, 'b'), 'utf8'), 'b');
});

test('writeFileAtomic replaces an existing file (content and mode) without leaving a temporary file', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'kubeconfig');
  await writeFile(path, 'old content that is longer than the new one', { mode: 0o644 });
  await chmod(path, 0o644);
  await writeFileAtomic(path, 'new', 0o600);
  assert.equal(await readFile(path, 'utf8'), 'new');
  assert.equal(await modeOf(path), 0o600);
  assert.deepEqual(await readdir(dir), ['kubeconfig']);
});

test('writeFileAtomic writes bytes as given', async (t) => {
  const dir = await tempDir(t);
  const bytes = new Uint8Array([0, 1, 2, 255, 10, 13]);
  await writeFileAtomic(join(dir, 'bin'), bytes, 0o600);
  assert.deepEqual(new Uint8Array(await readFile(join(dir, 'bin'))), bytes);
});

test('writeFileAtomic replaces a symlink at the target instead of writing through it', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'elsewhere'), 'untouched');
  await symlink('elsewhere', join(dir, 'target'));
  await writeFileAtomic(join(dir, 'target'), 'new', 0o600);
  assert.equal(await readFile(join(dir, 'elsewhere'), 'utf8'), 'untouched');
  assert.ok((await lstat(join(dir, 'target'))).isFile());
  assert.equal(await readFile(join(dir, 'target'), 'utf8'), 'new');
});

test('writeFileAtomic: if the final rename fails, the target is untouched and no temporary file is left', async (t) => {
  const dir = await tempDir(t);
  // A non-empty directory at the target: the temporary file is written, the rename over it fails.
  const target = join(dir, 'target');
  await mkdir(target);
  await writeFile(join(target, 'inside'), 'keep');
  await assert.rejects(writeFileAtomic(target, 'data', 0o600), (err: NodeJS.ErrnoException) =>
    ['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes(err.code ?? ''),
  );
  assert.deepEqual(await leftovers(dir), []);
  assert.deepEqual(await readdir(dir), ['target']);
  assert.equal(await readFile(join(target, 'inside'), 'utf8'), 'keep');
});

test('writeFileAtomic: a missing parent directory fails with ENOENT and creates nothing', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(writeFileAtomic(join(dir, 'missing', 'file'), 'data', 0o600), { code: 'ENOENT' });
  assert.deepEqual(await readdir(dir), []);
});

test('writeFileAtomic: concurrent writers to one file leave one complete content and no temporary files', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'file');
  const contents = Array.from({ length: 20 }, (_, i) => `${i}`.repeat(1000 + i));
  await Promise.all(contents.map((c) => writeFileAtomic(path, c, 0o600)));
  assert.ok(contents.includes(await readFile(path, 'utf8')));
  assert.deepEqual(await readdir(dir), ['file']);
});

test('replaceSymlink creates a relative link, then re-points it, leaving nothing else behind', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a.pem'), 'A');
  await writeFile(join(dir, 'b.pem'), 'B');
  const link = join(dir, 'current.pem');
  await replaceSymlink('a.pem', link);
  assert.equal(await readlink(link), 'a.pem');
  assert.equal(await readFile(link, 'utf8'), 'A');
  await replaceSymlink('b.pem', link);
  assert.equal(await readlink(link), 'b.pem');
  assert.equal(await readFile(link, 'utf8'), 'B');
  assert.deepEqual((await readdir(dir)).sort(), ['a.pem', 'b.pem', 'current.pem']);
});

test('replaceSymlink replaces a regular file at the link path', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a.pem'), 'A');
  await writeFile(join(dir, 'current.pem'), 'plain file');
  await replaceSymlink('a.pem', join(dir, 'current.pem'));
  assert.ok((await lstat(join(dir, 'current.pem'))).isSymbolicLink());
  assert.equal(await readFile(join(dir, 'current.pem'), 'utf8'), 'A');
});

test('replaceSymlink swaps in one step: a reader never finds the link missing', async (t) => {
  const dir = await tempDir(t);
  const names = ['a.pem', 'b.pem'];
  for (const n of names) await writeFile(join(dir, n), n);
  const link = join(dir, 'current.pem');
  await replaceSymlink('a.pem', link);
  let swapping = true;
  const reader = (async () => {
    let reads = 0;
    // Reads interleave with the swaps on the thread pool; with remove-then-create a read would hit ENOENT.
    while (swapping || reads === 0) {
      assert.ok(names.includes(await readlink(link)));
      assert.ok(names.includes(await readFile(link, 'utf8')));
      reads += 1;
    }
    return reads;
  })();
  for (let i = 0; i < 200; i++) await replaceSymlink(names[i % 2]!, link);
  swapping = false;
  assert.ok((await reader) > 0);
  assert.deepEqual(await leftovers(dir), []);
});

test('replaceSymlink: when the rename fails, the temporary link is removed', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'current.pem'));
  await writeFile(join(dir, 'current.pem', 'x'), 'x');
  await assert.rejects(replaceSymlink('a.pem', join(dir, 'current.pem')));
  assert.deepEqual(await leftovers(dir), []);
});

test('ensurePrivateDir creates missing directories 0700, whatever the umask', async (t) => {
  const dir = await tempDir(t);
  const target = join(dir, 'var', 'lib', 'pki');
  const result = await withUmask(0o000, () => ensurePrivateDir(target));
  assert.deepEqual(result, { created: true });
  assert.ok((await stat(target)).isDirectory());
  assert.equal(await modeOf(target), 0o700);
});

test('ensurePrivateDir leaves a 0700 directory alone', async (t) => {
  const dir = await tempDir(t);
  await chmod(dir, 0o700);
  assert.deepEqual(await ensurePrivateDir(dir), { created: false });
  assert.equal(await modeOf(dir), 0o700);
});

test('ensurePrivateDir tightens a more open directory to exactly 0700 and says from what', async (t) => {
  for (const mode of [0o755, 0o750, 0o701, 0o777, 0o555]) {
    const dir = await tempDir(t);
    await chmod(dir, mode);
    assert.deepEqual(await ensurePrivateDir(dir), { created: false, tightenedFrom: mode }, mode.toString(8));
    assert.equal(await modeOf(dir), 0o700, mode.toString(8));
  }
});

test('ensurePrivateDir refuses a path that is not a directory', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'pki');
  await writeFile(file, 'x', { mode: 0o644 });
  await assert.rejects(
    ensurePrivateDir(file),
    (err: unknown) => err instanceof UserError && err.where === file && err.code === 'NOT_A_DIRECTORY',
  );
  assert.equal(await modeOf(file), 0o644, 'the file is not chmod-ed');
});

test('removeTemporaryFiles removes exactly the leftovers and names them', async (t) => {
  const dir = await tempDir(t);
  const temps = [
    `${TEMP_MARKER}kubelet-client-2025-01-01-00-00-00.pem-0a1b2c3d`,
    `${TEMP_MARKER}kubelet-client-current.pem-deadbeef`,
  ];
  const keep = ['kubelet-client-current.pem', 'nodecred-tmp-not-hidden', '.hidden'];
  for (const n of [...temps, ...keep]) await writeFile(join(dir, n), n);
  assert.deepEqual((await removeTemporaryFiles(dir)).sort(), [...temps].sort());
  assert.deepEqual((await readdir(dir)).sort(), [...keep].sort());
  assert.deepEqual(await removeTemporaryFiles(dir), []);
});

test('removeTemporaryFiles on a missing directory finds nothing', async (t) => {
  const dir = await tempDir(t);
  assert.deepEqual(await removeTemporaryFiles(join(dir, 'missing')), []);
});

test('fsyncDir syncs a directory and fails on a missing one', async (t) => {
  const dir = await tempDir(t);
  await fsyncDir(dir);
  await assert.rejects(fsyncDir(join(dir, 'missing')), { code: 'ENOENT' });
});
