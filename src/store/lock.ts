// One daemon per cert dir: a lock file beside the directory (so `rm -rf` of the cert dir does not remove
// it) holding the owner's PID and the kernel's boot ID. It is created complete (written to a temporary
// name, then link()ed into place, which fails if a lock exists), so nobody ever reads an empty lock. A lock
// from another boot (PIDs repeat across reboots and the file is on persistent disk), or whose PID is gone,
// is stale and taken over.
import { link, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { UserError } from '../errors.ts';

export function lockPathFor(certDir: string): string {
  return `${certDir.replace(/\/+$/, '')}.nodecred.lock`;
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

interface Owner {
  pid: number;
  boot: string;
}

function parseOwner(text: string): Owner {
  const [pid, boot] = text.trim().split(/\s+/);
  return { pid: Number(pid), boot: boot ?? '' };
}

/** The owner still holds the lock: same boot, process alive and not a zombie. */
function ownerAlive(owner: Owner): boolean {
  if (!Number.isInteger(owner.pid) || owner.pid <= 0 || owner.pid === process.pid || owner.boot !== bootId())
    return false;
  try {
    const stat = readFileSync(`/proc/${owner.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export interface Lock {
  path: string;
  release(): Promise<void>;
}

export async function acquireLock(certDir: string): Promise<Lock> {
  const path = lockPathFor(certDir);
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(temp, `${process.pid} ${bootId()}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await link(temp, path);
        return {
          path,
          // Only our own lock is removed: never one a later owner took over.
          release: async () => {
            const owner = parseOwner(await readFile(path, 'utf8').catch(() => ''));
            if (owner.pid === process.pid) await rm(path, { force: true });
          },
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const owner = parseOwner(await readFile(path, 'utf8').catch(() => ''));
        if (ownerAlive(owner)) {
          throw new UserError(`another nodecred (pid ${owner.pid}) already manages ${certDir}`, {
            where: path,
            fix: 'stop the other instance; two managers on one cert dir would race each other',
            code: 'LOCKED',
          });
        }
        await rm(path, { force: true });
      }
    }
    throw new UserError(`could not take the lock for ${certDir}`, {
      where: path,
      fix: 'remove the stale lock file',
      code: 'LOCKED',
    });
  } finally {
    await rm(temp, { force: true });
  }
}
