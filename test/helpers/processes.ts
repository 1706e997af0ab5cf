// Leftover-process checks shared by the tests that start daemons of their own (control plane, etcd).
import { readdir, readFile } from 'node:fs/promises';
import { isAlive } from '../../scripts/lib/local-cluster.ts';

/** Every live, non-zombie process whose command line mentions `needle`. */
export async function processesMentioning(needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || !isAlive(Number(entry))) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(needle)) found.push(`${entry}: ${cmdline.replaceAll('\0', ' ').slice(0, 120)}`);
  }
  return found;
}
