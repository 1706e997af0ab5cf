// `npm run build:image`: an OCI image archive of nodecred, built without a container engine. One layer: the
// single executable (`npm run build:sea` → dist/nodecred, built first if missing), the glibc libraries it is
// linked against (found with ldd, copied from this machine), and /etc/passwd and /etc/group naming the
// non-root user it runs as. No shell, no package manager, no CA bundle: nodecred trusts only the CAs it is
// given (kubeconfig, service-account CA), never the system store.
//   node scripts/build-image.ts [--executable dist/nodecred] [--output dist/nodecred-image.tar] [--reference R]
// Load it with docker/podman load -i, ctr -n k8s.io images import, or kind load image-archive (README).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildImage, type TarEntry } from './lib/oci.ts';
import { buildSingleExecutable } from './lib/sea.ts';
import { exitOnUncaught } from '../src/cli/exit.ts';

// One line and a documented exit code for any failure, never a stack trace (src/cli/exit.ts).
exitOnUncaught('build-image');

const REPO = resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  version: string;
  description: string;
  license: string;
};
/** The user the image runs as (distroless's "nonroot"); deploy/approver-deployment.yaml uses the same ids. */
export const IMAGE_UID = 65532;
export const DEFAULT_REFERENCE = `ghcr.io/nodecred/nodecred:${pkg.version}`;

const { values } = parseArgs({
  options: {
    executable: { type: 'string', default: join(REPO, 'dist/nodecred') },
    output: { type: 'string', default: join(REPO, 'dist/nodecred-image.tar') },
    reference: { type: 'string', default: DEFAULT_REFERENCE },
  },
});

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', ['-C', REPO, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** Every file the dynamic loader needs for `exe`, as ldd reports them: [path in the image, file on this host]. */
function sharedLibraries(exe: string): Array<[string, string]> {
  const out = execFileSync('ldd', [exe], { encoding: 'utf8' });
  const libs: Array<[string, string]> = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(?:\S+ => )?(\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (m) libs.push([m[1]!.slice(1), realpathSync(m[1]!)]);
    else if (line.includes('not found')) throw new Error(`ldd ${exe}: ${line.trim()}`);
  }
  if (!libs.some(([p]) => p.includes('ld-linux'))) throw new Error(`ldd ${exe} names no dynamic loader`);
  return libs;
}

const started = Date.now();
const exe = resolve(values.executable);
if (!existsSync(exe)) {
  process.stdout.write(`${exe} missing: building the single executable first\n`);
  await buildSingleExecutable(join(REPO, 'src/cli/main.ts'), exe);
}
const version = execFileSync(exe, ['--version'], { encoding: 'utf8' }).trim();
// Reproducible: the time is the last commit's (or SOURCE_DATE_EPOCH), never the clock.
const created = Number(process.env.SOURCE_DATE_EPOCH ?? git(['log', '-1', '--format=%ct']) ?? 0);
const revision = git(['rev-parse', 'HEAD']);

const dirs = new Set<string>(['etc', 'home/nonroot', 'tmp', 'usr/local/bin']);
const files: TarEntry[] = [
  { path: 'usr/local/bin/nodecred', type: 'file', mode: 0o755, data: readFileSync(exe) },
  {
    path: 'etc/passwd',
    type: 'file',
    mode: 0o644,
    data: Buffer.from(
      `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${IMAGE_UID}:${IMAGE_UID}:nonroot:/home/nonroot:/sbin/nologin\n`,
    ),
  },
  { path: 'etc/group', type: 'file', mode: 0o644, data: Buffer.from(`root:x:0:\nnonroot:x:${IMAGE_UID}:\n`) },
  // glibc resolves names through files then DNS (the Pod's /etc/hosts and resolv.conf).
  { path: 'etc/nsswitch.conf', type: 'file', mode: 0o644, data: Buffer.from('hosts: files dns\n') },
];
for (const [path, host] of sharedLibraries(exe)) {
  files.push({ path, type: 'file', mode: statSync(host).mode & 0o755, data: readFileSync(host) });
  dirs.add(dirname(path));
}
for (const d of [...dirs]) for (let p = d; p !== '.'; p = dirname(p)) dirs.add(p);
for (const d of dirs) files.push({ path: d, type: 'dir', mode: d === 'tmp' ? 0o1777 : 0o755 });
// The home directory belongs to the user, the rest to root (tar entries are root's; see scripts/lib/oci.ts).

const image = buildImage({
  reference: values.reference,
  files,
  created,
  user: `${IMAGE_UID}:${IMAGE_UID}`,
  entrypoint: ['/usr/local/bin/nodecred'],
  cmd: ['--help'],
  env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/home/nonroot'],
  architecture: process.arch === 'x64' ? 'amd64' : process.arch,
  labels: {
    'org.opencontainers.image.title': 'nodecred',
    'org.opencontainers.image.description': pkg.description,
    'org.opencontainers.image.version': pkg.version,
    'org.opencontainers.image.licenses': pkg.license,
    'org.opencontainers.image.created': new Date(created * 1000).toISOString().replace('.000Z', 'Z'),
    ...(revision ? { 'org.opencontainers.image.revision': revision } : {}),
    'org.opencontainers.image.ref.name': values.reference,
  },
});
const output = resolve(values.output);
writeFileSync(`${output}.tmp`, image.archive);
renameSync(`${output}.tmp`, output);
process.stdout.write(
  `built ${output} (${(image.archive.length / 1048576).toFixed(1)} MiB, ${values.reference}, ${version}) ` +
    `in ${Date.now() - started} ms\nmanifest ${image.manifestDigest}\nconfig   ${image.configDigest}\n` +
    `layer    ${image.layerDigest} (diff_id ${image.diffId})\n`,
);
