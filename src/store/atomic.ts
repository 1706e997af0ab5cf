// Crash-safe file primitives. A reader (kubelet, a restarted nodecred) must only ever see the old content or
// the new content, never a half-written file: write a temporary file beside the target, fsync it, rename it
// over the target, then fsync the directory so the rename itself survives a power cut.
import { open, rename, rm, symlink, mkdir, stat, chmod, readdir, readlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError, errnoError } from '../errors.ts';

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

/** A directory that is missing because it is a dangling symbolic link gets a message that says so. */
async function danglingLinkError(path: string): Promise<UserError | undefined> {
  const target = await readlink(path).catch(() => undefined);
  if (target === undefined) return undefined;
  return new UserError(`${path} is a symbolic link to ${target}, which does not exist`, {
    where: path,
    fix: `create ${target}, or remove the link so nodecred can create ${path}`,
    code: 'DANGLING_SYMLINK',
  });
}

function notADirectory(path: string): UserError {
  return new UserError(`${path} exists but is not a directory`, {
    where: path,
    fix: 'move it away or point the setting at a directory',
    code: 'NOT_A_DIRECTORY',
  });
}

/** stat() that returns null for a missing path, and explains a dangling link instead of calling it missing. */
async function statDir(path: string): Promise<Stats | null> {
  const st = await stat(path).catch(async (err: NodeJS.ErrnoException) => {
    // ENOTDIR: a file further up is in the way; the caller's walk upwards reaches it and names it.
    if (err.code === 'ENOTDIR') return null;
    if (err.code !== 'ENOENT') throw errnoError(err, { path }) ?? err;
    const dangling = await danglingLinkError(path);
    if (dangling) throw dangling;
    return null;
  });
  if (st && !st.isDirectory()) throw notADirectory(path);
  return st;
}

/** The directories among `dirs` and their ancestors that do not exist yet, outermost first. */
async function missingDirs(dirs: string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const start of dirs) {
    const mine: string[] = [];
    for (let dir = resolve(start); (await statDir(dir)) === null; dir = dirname(dir)) mine.unshift(dir);
    missing.push(...mine.filter((d) => !missing.includes(d)));
  }
  return missing;
}

/**
 * Creates `dirs` (outermost first) one mkdir(2) at a time, each with exactly `mode`. Not Node's
 * mkdir({ recursive: true }): under /proc, or below a dangling symbolic link, it spins forever at 100 %
 * CPU (mkdir of the child says ENOENT, of the parent EEXIST, and it retries the child).
 */
async function createDirs(dirs: string[], mode: number): Promise<void> {
  for (const dir of dirs) {
    try {
      await mkdir(dir, { mode });
    } catch (err) {
      // Another starter created it first: fine, as long as it is a directory.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && (await statDir(dir)) !== null) continue;
      throw errnoError(err, { action: 'create directory', path: dir }) ?? err;
    }
    // The umask may have taken bits away (a umask of 0277 would leave 0500 of 0700): set the mode exactly.
    await chmod(dir, mode);
  }
}

/**
 * Creates the missing directories above each of `paths` (not the paths themselves), each with mode 0700
 * exactly: they may lead to private keys, and what nodecred creates is nobody else's. Existing directories
 * are never touched (/var/lib/kubelet keeps whatever mode its owner gave it). Every path is checked (a
 * file or a dangling link in the way) before the first directory is created, so a bad second path leaves
 * nothing behind for the first. Returns the directories it created.
 */
export async function ensureParentDirs(...paths: string[]): Promise<string[]> {
  const missing = await missingDirs(paths.map((p) => dirname(resolve(p))));
  await createDirs(missing, 0o700);
  return missing;
}

/** `mkdir -p DIR` with `mode` for what it creates, safe on /proc paths and dangling links (see createDirs). */
export async function makeDirs(dir: string, mode = 0o755): Promise<string[]> {
  const missing = await missingDirs([dir]);
  await createDirs(missing, mode);
  return missing;
}

interface PrivateDirResult {
  created: boolean;
  /** Set when an existing directory was more open than 0700 and was tightened. */
  tightenedFrom?: number;
}

/** Makes sure `dir` exists with mode 0700 (private keys live there); missing parents are created 0700 too. */
export async function ensurePrivateDir(dir: string): Promise<PrivateDirResult> {
  const existing = await statDir(dir);
  if (!existing) {
    await makeDirs(dir, 0o700);
    return { created: true };
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
