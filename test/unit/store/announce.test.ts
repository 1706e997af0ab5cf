// The kubelet watches its tlsCertFile with inotify, which resolves the -current.pem link once, when the
// watch is added; an install must raise an event on the file the kubelet watches, whichever pair that is.
// fs.watch is inotify on Linux and resolves the link the same way, so it stands in for the kubelet here
// (test/integration/kubelet.test.ts checks the real kubelet).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { watch, type FSWatcher } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKey } from '../../../src/pki/keys.ts';
import { CertStore } from '../../../src/store/cert-store.ts';
import { issueLeaf, makeCa, SERVER_AUTH } from '../pki/helpers.ts';

const ca = await makeCa('kubernetes-test-ca');
const at = (second: number) => new Date(Date.UTC(2025, 0, 2, 3, 4, second));

async function install(store: CertStore, second: number): Promise<string> {
  const { privateKey } = await generateKey('ecdsa-p256');
  const leaf = await issueLeaf(ca, { publicKey: privateKey, extendedKeyUsages: [SERVER_AUTH], dnsNames: ['node-1'] });
  return store.install('server', leaf + ca.certificatePem, privateKey, at(second));
}

async function tempStore(t: TestContext): Promise<CertStore> {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-announce-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return new CertStore(join(dir, 'pki'));
}

/** Watches `path` (resolving the link now, as the kubelet does); next() resolves on its next event. */
function watchLikeKubelet(t: TestContext, path: string): { next: () => Promise<void> } {
  let waiter: (() => void) | undefined;
  const watcher: FSWatcher = watch(path, () => waiter?.());
  t.after(() => watcher.close());
  return {
    next: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no event on ${path} within 5 s`)), 5_000);
        waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
  };
}

test('each install raises an event on the pair a reader watched through the link, without changing it', async (t) => {
  const store = await tempStore(t);
  const first = await install(store, 1);
  const watched = watchLikeKubelet(t, store.currentPath('server'));
  const before = await stat(first);
  for (const second of [2, 3, 4]) {
    const event = watched.next();
    await install(store, second);
    await event; // the reader learns of every install although it still watches the first pair's inode
  }
  const after = await stat(first);
  assert.equal(after.mode, before.mode, 'mode unchanged');
  assert.equal(after.mtimeMs, before.mtimeMs, 'content time unchanged');
  assert.equal(after.ino, before.ino, 'the same file');
});
