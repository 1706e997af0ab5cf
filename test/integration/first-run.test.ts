// A node's first boot: nothing of the directory tree exists yet (no /var/lib/kubelet, or an EKS-style
// custom parent). bootstrap and run create what is missing, 0700, and leave existing directories' modes
// alone; nothing is created before the config and the bootstrap kubeconfig were read and validated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, stat, writeFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { testCluster, createBootstrapToken, ensureBootstrapRbac, whoAmI } from '../helpers/cluster.ts';
import { newNodeDir, runNodecred, writeKubeconfig, startDaemon } from '../helpers/node.ts';
import { freePort } from '../../scripts/lib/local-cluster.ts';

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

test('bootstrap into a missing tree: parents made 0700, existing modes kept, files 0600, it works', async () => {
  const c = testCluster();
  const node = await newNodeDir('first');
  try {
    await ensureBootstrapRbac(c);
    const token = await createBootstrapToken(c);
    const bootstrap = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
    // An existing, more open directory above the new tree (as /var/lib is 0755) must stay as it is.
    const existing = join(node.dir, 'var');
    await mkdir(existing);
    await chmod(existing, 0o755);
    const certDir = join(existing, 'lib', 'kubelet', 'pki');
    const kubeconfig = join(node.dir, 'etc', 'kubernetes', 'kubelet', 'kubeconfig');
    const r = await runNodecred([
      'bootstrap',
      '--bootstrap-kubeconfig',
      bootstrap,
      '--node-name',
      node.name,
      '--cert-dir',
      certDir,
      '--kubeconfig',
      kubeconfig,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await modeOf(existing), 0o755, 'an existing directory keeps its mode');
    for (const dir of [
      join(existing, 'lib'),
      join(existing, 'lib', 'kubelet'),
      certDir,
      join(node.dir, 'etc'),
      join(node.dir, 'etc', 'kubernetes'),
      join(node.dir, 'etc', 'kubernetes', 'kubelet'),
    ])
      assert.equal(await modeOf(dir), 0o700, `${dir} created 0700`);
    assert.equal(await modeOf(kubeconfig), 0o600);
    const pair = join(certDir, 'kubelet-client-current.pem');
    assert.ok((await lstat(pair)).isSymbolicLink());
    assert.equal(await modeOf(pair), 0o600);
    assert.match(r.stdout, /"msg":"created [^"]+\/var\/lib \(0700\)"/, 'what it created is logged');
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    assert.equal((await whoAmI(kc)).username, `system:node:${node.name}`);
  } finally {
    await node.cleanup();
  }
});

test('the daemon on a first boot: creates the tree, gets ready, and survives rm -rf of the whole tree', async () => {
  const c = testCluster();
  const node = await newNodeDir('first');
  const port = await freePort();
  try {
    await ensureBootstrapRbac(c);
    const token = await createBootstrapToken(c);
    const bootstrap = await writeKubeconfig(join(node.dir, 'bootstrap.conf'), c, { token: token.token });
    const tree = join(node.dir, 'var-lib-kubelet');
    const flags = ['--node-name', node.name, '--cert-dir', join(tree, 'pki'), '--kubeconfig', join(tree, 'kubeconfig')];
    const daemon = startDaemon(['--bootstrap-kubeconfig', bootstrap, '--health-listen', `127.0.0.1:${port}`, ...flags]);
    try {
      await daemon.waitForLog(/credentials in place; ready/);
      assert.equal(await modeOf(tree), 0o700);
      // The lock does not live in the tree, so removing the whole tree does not let a second daemon in.
      const { rm } = await import('node:fs/promises');
      await rm(tree, { recursive: true, force: true });
      const second = await runNodecred(['run', '--bootstrap-kubeconfig', bootstrap, '--health-listen', '', ...flags], {
        timeoutMs: 30_000,
      });
      assert.equal(second.code, 1);
      assert.match(
        second.stderr,
        new RegExp(
          `^nodecred: /run/nodecred/certdir-[0-9a-f]{16}\\.lock: another nodecred \\(pid ${daemon.child.pid}\\) `,
        ),
      );
    } finally {
      assert.equal(await daemon.stop(), 0);
    }
  } finally {
    await node.cleanup();
  }
});

test('nothing is created before the config and the bootstrap kubeconfig are valid', async () => {
  const node = await newNodeDir('first');
  try {
    await writeFile(join(node.dir, 'empty.conf'), '');
    await writeFile(join(node.dir, 'garbage.conf'), '{{{ not yaml');
    await writeFile(join(node.dir, 'no-users.conf'), 'apiVersion: v1\nkind: Config\nclusters: []\n');
    await writeFile(join(node.dir, 'bad-config.yaml'), 'apiVersion: nodecred.io/v1alpha1\nkind: Nope\n');
    const tree = join(node.dir, 'tree');
    const flags = ['--node-name', node.name, '--cert-dir', join(tree, 'pki'), '--kubeconfig', join(tree, 'kc')];
    const cases: Array<[string, string[], RegExp]> = [
      ['missing bootstrap kubeconfig', ['--bootstrap-kubeconfig', join(node.dir, 'missing.conf')], /ENOENT/],
      ['empty bootstrap kubeconfig', ['--bootstrap-kubeconfig', join(node.dir, 'empty.conf')], /is empty/],
      ['garbage bootstrap kubeconfig', ['--bootstrap-kubeconfig', join(node.dir, 'garbage.conf')], /garbage\.conf/],
      ['incomplete bootstrap kubeconfig', ['--bootstrap-kubeconfig', join(node.dir, 'no-users.conf')], /no-users/],
      ['no bootstrap credentials at all', [], /no node kubeconfig and no bootstrap credentials/],
      ['a bad config file', ['--config', join(node.dir, 'bad-config.yaml')], /bad-config\.yaml/],
    ];
    for (const [what, extra, message] of cases) {
      const r = await runNodecred(['bootstrap', ...extra, ...flags]);
      assert.equal(r.code, 1, `${what}: ${r.stderr}`);
      assert.match(r.stderr, message, what);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line: ${r.stderr}`);
      assert.deepEqual((await readdir(node.dir)).includes('tree'), false, `${what}: nothing created`);
    }
    // The daemon too refuses a garbled bootstrap kubeconfig before creating anything (a missing one it
    // waits for: cloud-init may write it after the unit started).
    const r = await runNodecred(['run', '--bootstrap-kubeconfig', join(node.dir, 'garbage.conf'), ...flags]);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual((await readdir(node.dir)).includes('tree'), false, 'run: nothing created');
  } finally {
    await node.cleanup();
  }
});
