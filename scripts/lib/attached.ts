// Node-side processes (kubelets: kubelet.ts) registered with a local control plane, so that
// `local-cluster down` stops them first and undoes their mounts, even after a crashed test.
import { execFile } from 'node:child_process';
import { mkdir, writeFile, readFile, readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ClusterError, stopPids } from './processes.ts';

const execFileP = promisify(execFile);

/** One registered entry, in DIR/attached/<name>.json. */
export interface Attached {
  name: string;
  pids: number[];
  /** Mount points to unmount once the processes are gone (a kubelet bind-mounts its --root-dir). */
  unmount: string[];
}

const attachedDir = (dir: string) => join(resolve(dir), 'attached');

export async function attach(dir: string, entry: Attached): Promise<void> {
  await mkdir(attachedDir(dir), { recursive: true });
  await writeFile(join(attachedDir(dir), `${entry.name}.json`), `${JSON.stringify(entry, null, 2)}\n`);
}

export async function readAttached(dir: string): Promise<Attached[]> {
  const names = await readdir(attachedDir(dir)).catch(() => [] as string[]);
  const entries = await Promise.all(
    names
      .filter((n) => n.endsWith('.json'))
      .map(async (n) => JSON.parse(await readFile(join(attachedDir(dir), n), 'utf8')) as Attached),
  );
  return entries;
}

/** Stops one attached entry's processes (SIGTERM, then SIGKILL), unmounts its mounts, forgets it. */
export async function detach(dir: string, name: string, graceMs = 15_000): Promise<number[]> {
  const file = join(attachedDir(dir), `${name}.json`);
  const entry = JSON.parse(await readFile(file, 'utf8').catch(() => 'null')) as Attached | null;
  if (!entry) return [];
  await stopPids(entry.pids, graceMs);
  for (const mount of entry.unmount) await unmount(mount);
  await rm(file, { force: true });
  return entry.pids;
}

/**
 * Unmounts `mount` and what is mounted below it. A multi-threaded process whose main thread has exited (a
 * zombie, which isAlive counts as gone) may still hold the mount through its last threads for a moment:
 * "busy" is retried until a deadline. Not mounted (the process never got that far) is fine; anything else
 * is a loud error.
 */
async function unmount(mount: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
    const stderr = await execFileP('umount', ['--recursive', mount]).then(
      () => null,
      (err: { stderr?: string }) => err.stderr ?? String(err),
    );
    if (stderr === null || /not mounted|no mount point|not found/.test(stderr)) return;
    if (!/busy/.test(stderr) || Date.now() > deadline) throw new ClusterError(`umount ${mount}: ${stderr.trim()}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}
