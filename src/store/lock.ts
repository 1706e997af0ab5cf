// One daemon per cert dir: a lock file beside the directory (so `rm -rf` of the cert dir does not remove
// it) holding the owner's PID. A lock whose PID is gone is stale and taken over.
import { open, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { UserError } from '../errors.ts';

export function lockPathFor(certDir: string): string {
  return `${certDir.replace(/\/+$/, '')}.nodecred.lock`;
}

function ownerAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

export interface Lock {
  path: string;
  release(): Promise<void>;
}

export async function acquireLock(certDir: string): Promise<Lock> {
  const path = lockPathFor(certDir);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return { path, release: () => rm(path, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (ownerAlive(owner)) {
        throw new UserError(`another nodecred (pid ${owner}) already manages ${certDir}`, { where: path, fix: 'stop the other instance; two managers on one cert dir would race each other', code: 'LOCKED' });
      }
      await rm(path, { force: true });
    }
  }
  throw new UserError(`could not take the lock for ${certDir}`, { where: path, fix: 'remove the stale lock file', code: 'LOCKED' });
}
