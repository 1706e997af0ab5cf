// The credential watcher on node:fs watch: what the daemon must hear about (the cert dir's entries, the
// watched files, a cert dir deleted and re-created) and what it must not (its own scratch files).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEMP_MARKER } from '../../../src/store/atomic.ts';
import { watchCredentials } from '../../../src/watch/watcher.ts';

/** Calls to onChange, and a way to wait (with a deadline) for one naming `path`. */
function recorder() {
  const seen: string[] = [];
  const waiters: Array<() => void> = [];
  return {
    seen,
    onChange: (path: string) => {
      seen.push(path);
      for (const w of waiters.splice(0)) w();
    },
    async waitFor(path: string, deadlineMs = 10_000): Promise<void> {
      const until = Date.now() + deadlineMs;
      while (!seen.includes(path)) {
        const left = until - Date.now();
        if (left <= 0) throw new Error(`no change reported for ${path}; saw ${JSON.stringify(seen)}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
  };
}

test('changes in the cert dir and to watched files are reported; nodecred scratch files are not', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'nodecred-watch-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const certDir = join(root, 'pki');
  const kubeconfig = join(root, 'etc', 'kubeconfig');
  await mkdir(certDir);
  await mkdir(join(root, 'etc'));
  const r = recorder();
  const watcher = watchCredentials({ certDir, files: [kubeconfig] }, r.onChange, 20);
  t.after(() => watcher.close());

  await writeFile(join(certDir, `${TEMP_MARKER}x`), 'scratch');
  await writeFile(join(certDir, 'nodecred-client-pending.key'), 'scratch');
  await writeFile(join(certDir, 'kubelet-client-current.pem'), 'pem');
  await r.waitFor(join(certDir, 'kubelet-client-current.pem'));

  await writeFile(join(root, 'etc', 'kubeconfig.new'), 'kubeconfig');
  await rename(join(root, 'etc', 'kubeconfig.new'), kubeconfig);
  await r.waitFor(kubeconfig);
  assert.ok(!r.seen.some((p) => p.includes(TEMP_MARKER) || p.endsWith('pending.key')), JSON.stringify(r.seen));
  assert.ok(!r.seen.includes(join(root, 'etc', 'kubeconfig.new')), 'other files beside a watched one are not news');
});

test('a cert dir deleted and re-created is watched again', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'nodecred-watch-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const certDir = join(root, 'pki');
  await mkdir(certDir);
  const r = recorder();
  const watcher = watchCredentials({ certDir, files: [] }, r.onChange, 20);
  t.after(() => watcher.close());

  await rm(certDir, { recursive: true });
  await r.waitFor(certDir);
  await mkdir(certDir);
  await writeFile(join(certDir, 'kubelet-server-current.pem'), 'pem');
  await r.waitFor(join(certDir, 'kubelet-server-current.pem'));
});
