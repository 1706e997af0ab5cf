// One nodecred per cert dir. The lock is a file in a runtime directory, not beside the cert dir:
// - it must survive `rm -rf` of the cert dir (the daemon repairs that while holding the lock), and of the
//   cert dir's parent too, and its directory must exist before anything else does. /run is on every
//   systemd host (the unit's RuntimeDirectory=nodecred creates /run/nodecred, writable under
//   ProtectSystem=strict); nodecred creates it when started outside the unit. /run is a tmpfs, so locks
//   never outlive a boot. Non-root users (a developer's demo) use $XDG_RUNTIME_DIR/nodecred, else
//   $TMPDIR/nodecred-<uid>; a cert dir belongs to one user, so one user's instances always meet there.
// - it is keyed by the cert dir's resolved path (symlinks, `..` and trailing slashes resolved), so two
//   spellings of one directory share one lock and many daemons with different cert dirs never collide;
//   and by its absolute path as written, too. Both are taken: if /var/lib/kubelet is a symlink that gets
//   removed, the same --cert-dir resolves elsewhere for the next starter, but its written path still meets
//   the running owner's lock (and a starter naming the symlink's old target meets the resolved one).
//
// A lock file holds the owner's PID, its start time (PIDs are reused) and a random nonce, so no two lock
// files ever have the same content. It is created complete (written to a temporary name, then link()ed
// into place, which fails if a lock exists), so nobody reads an empty lock.
//
// Whether the owner lives: kill(pid, 0) (ESRCH: gone; EPERM: it exists), then, where /proc shows it, not a
// zombie and the recorded start time (a reused PID is another process). Nothing else is compared: /run is
// a tmpfs, so a lock never outlives the boot it was taken in; and inside the shipped unit
// (ProcSubset=pid, ProtectProc=invisible) /proc/sys is hidden and other users' processes may be, so a fact
// nodecred cannot read counts as "cannot tell", never as "dead". (The kernel's boot ID used to be compared
// here: unreadable in the unit, it made a nodecred outside the unit take over the unit's lock, and back.)
//
// Taking over a stale lock (its owner is gone) is where the old read → rm → link protocol raced: two
// starters both read the stale owner, A removes it and links its own lock, then B removes A's live lock
// (believing it still the stale one) and links its own: both run. Here a stale lock is never removed,
// it is replaced by rename(), and only by the one process that first claims the right to replace *that
// content*: a marker file `<lock>.takeover-<hash of the stale content>` created with link() (exclusive).
// The claimant re-reads the lock after winning the marker and renames only if the content is unchanged.
// That is safe because, while a process holds the marker for content X and the lock still holds X, the
// lock cannot change: fresh starters fail (the lock path always exists), other takers need the same
// marker, and X's owner is dead. A marker whose own holder died is stale in turn and is taken over the
// same way (a marker for the marker), so a crash at any point never wedges the lock.
import { link, mkdir, readFile, readdir, realpath, rename, rm, lstat, writeFile } from 'node:fs/promises';
import { readFileSync, rmSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { systemClock } from '../clock.ts';
import { UserError } from '../errors.ts';

/** Where lock files live for this process (see the top of this file for why). */
export function defaultLockDir(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  if (uid === 0) return '/run/nodecred';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'nodecred');
  return join(tmpdir(), `nodecred-${uid}`);
}

/** The cert dir's real path; for a directory not created yet, its deepest existing ancestor's real path. */
export async function resolveCertDir(certDir: string): Promise<string> {
  const absolute = resolve(certDir);
  const rest: string[] = [];
  for (let dir = absolute; ; dir = dirname(dir)) {
    try {
      return join(await realpath(dir), ...rest);
    } catch {
      if (dir === '/') return absolute;
      rest.unshift(basename(dir));
    }
  }
}

export function lockFileName(resolvedCertDir: string): string {
  return `certdir-${createHash('sha256').update(resolvedCertDir).digest('hex').slice(0, 16)}.lock`;
}

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot) and the state; null when unreadable. */
function processInfo(pid: number | 'self'): { state: string; startTime: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', startTime: fields[19] ?? '' };
  } catch {
    return null;
  }
}

interface Owner {
  pid: number;
  /** Clock ticks since boot, or '' when the owner could not read its own. */
  startTime: string;
}

/** "PID START NONCE"; a lock written by an older nodecred has the boot ID after the PID ("PID BOOT START NONCE"). */
function parseOwner(text: string): Owner {
  const fields = (text.split('\n')[0] ?? '').trim().split(/\s+/);
  const startTime = (fields.length >= 4 ? fields[2] : fields[1]) ?? '';
  return { pid: Number(fields[0]), startTime: /^[1-9]\d*$/.test(startTime) ? startTime : '' };
}

/** Whether the process that wrote the lock still runs; see the top of this file. */
export function ownerAlive(
  owner: Owner,
  probe: { kill(pid: number): void; info(pid: number): { state: string; startTime: string } | null } = {
    kill: (pid) => process.kill(pid, 0),
    info: processInfo,
  },
): boolean {
  // Our own PID in a lock is a previous incarnation (a container restarts us under the same PID).
  if (!Number.isInteger(owner.pid) || owner.pid <= 0 || owner.pid === process.pid) return false;
  try {
    probe.kill(owner.pid);
  } catch (err) {
    // ESRCH: no such process. EPERM: it exists, as another user. Anything else: cannot tell, so alive.
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const info = probe.info(owner.pid);
  if (info === null) return true; // hidden from us (hidepid, another user): kill() said it exists
  if (info.state === 'Z') return false; // exited, not yet reaped
  return owner.startTime === '' || info.startTime === owner.startTime;
}

export interface Lock {
  /** The lock file of the cert dir's resolved path. */
  path: string;
  /** Every lock file held: the resolved path's and, when it differs, the path as written. */
  paths: string[];
  release(): Promise<void>;
}

/** Markers for markers: each level needs a crash inside the previous takeover, so a few levels suffice. */
const MAX_TAKEOVER_DEPTH = 8;
/** Each wait for another taker is 10–50 ms: ≈ 20 s before giving up on a taker that never finishes. */
const MAX_ATTEMPTS = 600;

type Claim = { won: true } | { won: false; owner: Owner };

/** Writes `content` to a fresh temporary file beside `path` and hands it to `use`; always removes it. */
async function withTempFile<T>(path: string, content: string, use: (temp: string) => Promise<T>): Promise<T> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  await writeFile(temp, content, { mode: 0o600, flag: 'wx' });
  try {
    return await use(temp);
  } finally {
    await rm(temp, { force: true });
  }
}

async function readOrNull(path: string): Promise<string | null> {
  return readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
}

/** Removes `path` only while it still holds exactly `content` (ours): never a lock someone else took over. */
async function removeIfMine(path: string, content: string): Promise<void> {
  if ((await readOrNull(path)) === content) await rm(path, { force: true });
}

/** Makes `path` hold `content` unless a live owner holds it; see the top of this file for the protocol. */
async function claim(path: string, content: string, depth: number): Promise<Claim> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const created = await withTempFile(path, content, (temp) =>
      link(temp, path).then(
        () => true,
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'EEXIST') return false;
          throw err;
        },
      ),
    );
    if (created) return { won: true };
    const current = await readOrNull(path);
    if (current === null) continue; // released meanwhile: try to create it again
    const owner = parseOwner(current);
    if (ownerAlive(owner)) return { won: false, owner };
    if (depth >= MAX_TAKEOVER_DEPTH) break;
    const marker = `${path}.takeover-${createHash('sha256').update(current).digest('hex').slice(0, 16)}`;
    const right = await claim(marker, content, depth + 1);
    if (!right.won) {
      // A live process is replacing this stale content right now; look again once it is done.
      await systemClock.sleep(10 + Math.random() * 40);
      continue;
    }
    try {
      if ((await readOrNull(path)) === current) {
        await withTempFile(path, content, (temp) => rename(temp, path));
        return { won: true };
      }
      // Someone replaced it before we held the marker: look at the new owner.
    } finally {
      await removeIfMine(marker, content);
    }
  }
  throw new UserError('could not take over a stale lock', {
    where: path,
    fix: `make sure no other nodecred runs for this cert dir, then remove ${path} and ${path}.takeover-*`,
    code: 'LOCKED',
  });
}

/** Creates the lock directory 0700, and refuses one that another user could tamper with. */
async function ensureLockDir(dir: string): Promise<void> {
  await mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  const st = await lstat(dir);
  const uid = process.getuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new UserError(`the lock directory ${dir} is not a directory owned by uid ${uid} and writable only by it`, {
      where: dir,
      fix: `remove ${dir}; nodecred creates it again`,
      code: 'LOCKED',
    });
  }
}

/**
 * Takes the lock for `certDir` (both keys: see the top of this file), or throws a UserError naming the live
 * owner. `lockDir` is injected so tests can use their own; nodecred uses defaultLockDir().
 */
export async function acquireLock(certDir: string, lockDir = defaultLockDir()): Promise<Lock> {
  await ensureLockDir(lockDir);
  const resolved = await resolveCertDir(certDir);
  // Always in the same order, so two starters never each hold one key and wait on the other.
  const keys = [...new Set([resolved, resolve(certDir)])].sort();
  const nonce = randomBytes(8).toString('hex');
  const held: Array<{ path: string; content: string }> = [];
  try {
    for (const key of keys) held.push(await lockKey(key, certDir, lockDir, nonce));
  } catch (err) {
    for (const h of held) await removeIfMine(h.path, h.content);
    throw err;
  }
  // A command that fails after taking the lock (a port in use, a bad CA) exits without reaching its own
  // release: let the exit itself remove the lock, so no stale lock is left behind for the next start.
  const releaseAtExit = () => {
    for (const { path, content } of held) {
      try {
        if (readFileSync(path, 'utf8') === content) rmSync(path, { force: true });
      } catch {
        /* already gone */
      }
    }
  };
  process.once('exit', releaseAtExit);
  return {
    path: join(lockDir, lockFileName(resolved)),
    paths: held.map((h) => h.path),
    release: async () => {
      process.removeListener('exit', releaseAtExit);
      for (const h of held) await removeIfMine(h.path, h.content);
    },
  };
}

async function lockKey(
  key: string,
  certDir: string,
  lockDir: string,
  nonce: string,
): Promise<{ path: string; content: string }> {
  const name = lockFileName(key);
  const path = join(lockDir, name);
  const self = processInfo('self');
  const content = `${process.pid} ${self?.startTime ?? '0'} ${nonce}\n${key}\n`;
  const result = await claim(path, content, 0);
  if (!result.won) {
    throw new UserError(`another nodecred (pid ${result.owner.pid}) already manages ${certDir}`, {
      where: path,
      fix:
        'stop the other instance (two managers on one cert dir would race each other); ' +
        `if pid ${result.owner.pid} is not nodecred, remove ${path}`,
      code: 'LOCKED',
    });
  }
  // Markers from earlier takeovers refer to contents the lock no longer holds (ours is new): drop them.
  const markers = (await readdir(lockDir)).filter((n) => n.startsWith(`${name}.takeover-`));
  await Promise.all(markers.map((n) => removeIfStale(join(lockDir, n))));
  return { path, content };
}

/** A marker is removed only when its holder is gone; a live holder removes its own. */
async function removeIfStale(marker: string): Promise<void> {
  const text = await readOrNull(marker);
  if (text !== null && !ownerAlive(parseOwner(text))) await removeIfMine(marker, text);
}
