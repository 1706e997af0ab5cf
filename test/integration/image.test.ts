// `npm run build:image`: the OCI image archive, built without a container engine. The test builds the single
// executable, builds the image from it twice (same digest: reproducible), reads the archive as skopeo does
// for podman load (oci-archive:) and for docker load (docker-archive:), unpacks the root filesystem by
// following index.json → manifest → layers with every digest verified, and runs the executable from it
// under chroot as the image's user with an empty environment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { REPO } from '../helpers/node.ts';
import { buildSingleExecutable } from '../../scripts/lib/sea.ts';
import { readImage } from '../../scripts/lib/oci.ts';

const run = promisify(execFile);
const version = (JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const REFERENCE = `ghcr.io/nodecred/nodecred:${version}`;

test('build:image: a reproducible OCI archive skopeo reads, whose rootfs runs nodecred as the image user', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'nodecred-image-'));
  try {
    const exe = join(dir, 'nodecred');
    await buildSingleExecutable(join(REPO, 'src/cli/main.ts'), exe);
    const build = async (output: string) => {
      await run(process.execPath, [join(REPO, 'scripts/build-image.ts'), '--executable', exe, '--output', output], {
        maxBuffer: 1 << 20,
      });
      return readFile(output);
    };
    const first = await build(join(dir, 'a.tar'));
    const second = await build(join(dir, 'b.tar'));
    assert.ok(first.equals(second), 'two builds of the same executable give the same archive, byte for byte');

    // Our reader verifies every digest on the way to the root filesystem.
    const image = readImage(first);
    assert.equal(image.reference, REFERENCE);
    const cfg = image.config.config as { User: string; Entrypoint: string[]; Labels: Record<string, string> };
    assert.equal(cfg.User, '65532:65532');
    assert.deepEqual(cfg.Entrypoint, ['/usr/local/bin/nodecred']);
    assert.equal(cfg.Labels['org.opencontainers.image.version'], version);
    assert.equal(cfg.Labels['org.opencontainers.image.title'], 'nodecred');
    assert.ok(
      image.rootfs.every((e) => e.uid === 0),
      'every file is root-owned: the image user can change none',
    );

    // Outside readers: containers/image (what podman load uses) through both transports a loader may take.
    const oci = JSON.parse((await run('skopeo', ['inspect', `oci-archive:${join(dir, 'a.tar')}`])).stdout) as {
      Digest: string;
      Labels: Record<string, string>;
    };
    assert.equal(oci.Digest, image.manifestDigest);
    assert.equal(oci.Labels['org.opencontainers.image.ref.name'], REFERENCE);
    const docker = JSON.parse(
      (await run('skopeo', ['inspect', '--config', `docker-archive:${join(dir, 'a.tar')}`])).stdout,
    ) as { config: { User: string; Entrypoint: string[] } };
    assert.equal(docker.config.User, '65532:65532');
    await run('skopeo', ['copy', '--quiet', `oci-archive:${join(dir, 'a.tar')}`, `dir:${join(dir, 'copied')}`]);

    // The root filesystem, unpacked from the layer, run as the image user with nothing from the host.
    const root = join(dir, 'rootfs');
    for (const e of image.rootfs) {
      const path = join(root, e.path);
      if (e.type === 'dir') await mkdir(path, { recursive: true });
      else if (e.type === 'file') {
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, e.data);
      } else assert.fail(`unexpected entry type for ${e.path}`);
      await chmod(path, e.mode);
    }
    // chroot found on this PATH; the program in the image gets an empty environment.
    const chroot = (await run('sh', ['-c', 'command -v chroot || echo /usr/sbin/chroot'])).stdout.trim();
    const inImage = (args: string[]) =>
      run(chroot, ['--userspec=65532:65532', root, '/usr/local/bin/nodecred', ...args], { env: {} });
    assert.match((await inImage(['--version'])).stdout, new RegExp(`^nodecred ${version} \\(node v24\\.`));
    const help = await inImage(['approve', '--help']);
    assert.match(help.stdout, /^usage: nodecred approve/);
    assert.match(help.stdout, /--kubeconfig/);
    assert.match(await readFile(join(root, 'etc/passwd'), 'utf8'), /^nonroot:x:65532:65532:/m);

    // deploy/ runs this image, as this user.
    const deployment = parseAllDocuments(await readFile(join(REPO, 'deploy/approver-deployment.yaml'), 'utf8'))
      .map((d) => d.toJS() as { kind: string; spec: { template: { spec: unknown } } })
      .find((d) => d.kind === 'Deployment')!;
    const pod = deployment.spec.template.spec as {
      containers: Array<{ image: string }>;
      securityContext: { runAsUser: number };
    };
    assert.equal(pod.containers[0]!.image, REFERENCE);
    assert.equal(pod.securityContext.runAsUser, 65532);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
