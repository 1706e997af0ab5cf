// Crash-safe file primitives. A reader (kubelet, a restarted nodecred) must only ever see the old content or
// the new content, never a half-written file: write a temporary file beside the target, fsync it, rename it
// over the target, then fsync the directory so the rename itself survives a power cut.
import { open, rename, rm, symlink, mkdir, stat, chmod, readdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { UserError } from '../errors.ts';

/** Temporary files are hidden and recognisable, so `removeTemporaryFiles` can clean up after a crash. */
export const TEMP_MARKER = '.nodecred-tmp-';

function tempPathFor(path: string): string {
  return join(dirname(path), `${TEMP_MARKER}${basename(path)}-${randomBytes(4).toString('hex')}`);
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  const temp = tempPathFor(path);
  try {
    // 'wx': never follow or reuse something already at the temporary name.
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(data);
      // The mode given to open() is filtered by the umask; set it exactly.
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(path));
}

/** Points `linkPath` at `target` (relative to the link's directory) by renaming a new link over the old. */
export async function replaceSymlink(target: string, linkPath: string): Promise<void> {
  const temp = tempPathFor(linkPath);
  await symlink(target, temp);
  try {
    await rename(temp, linkPath);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(linkPath));
}

export interface PrivateDirResult {
  created: boolean;
  /** Set when an existing directory was more open than 0700 and was tightened. */
  tightenedFrom?: number;
}

/** Makes sure `dir` exists with mode 0700 (private keys live there). */
export async function ensurePrivateDir(dir: string): Promise<PrivateDirResult> {
  const existing = await stat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (!existing) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    return { created: true };
  }
  if (!existing.isDirectory()) {
    throw new UserError(`${dir} exists but is not a directory`, {
      where: dir,
      fix: 'move it away or point the setting at a directory',
      code: 'NOT_A_DIRECTORY',
    });
  }
  const mode = existing.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    // Exactly 0700, as reported: `mode & 0o700` would leave e.g. 0555 as an owner-unwritable 0500.
    await chmod(dir, 0o700);
    return { created: false, tightenedFrom: mode };
  }
  return { created: false };
}

/** Removes temporary files left by a crash between create and rename. Returns their names. */
export async function removeTemporaryFiles(dir: string): Promise<string[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith(TEMP_MARKER));
  await Promise.all(names.map((n) => rm(join(dir, n), { force: true })));
  return names;
}
