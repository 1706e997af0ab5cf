// A small writer (and reader) of OCI image archives: the image layout (oci-layout, index.json,
// blobs/sha256/…) in one tar, plus docker's manifest.json so `docker load` of any age takes it too. Enough for
// an image of one layer built from files we name, deterministically: entries sorted, fixed owners and mtimes,
// gzip from node:zlib with no timestamp, JSON with a fixed key order; the same inputs give the same digests.
// Readable by docker/podman load, `ctr import`, `kind load image-archive` and skopeo (oci-archive:,
// docker-archive:).
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';

export interface TarEntry {
  /** Relative path without a leading "./"; directories end without "/". */
  path: string;
  type: 'file' | 'dir';
  mode: number;
  data?: Buffer;
}

const BLOCK = 512;

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** One ustar header; long names go into the ustar prefix field (our paths are short). */
function header(entry: TarEntry, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  let name = entry.type === 'dir' ? `${entry.path}/` : entry.path;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', name.length - 2);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
    if (Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155)
      throw new Error(`tar: path too long: ${entry.path}`);
  }
  h.write(name, 0, 100, 'utf8');
  h.write(octal(entry.mode & 0o7777, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid: root owns every file; the image runs as another user
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(entry.type === 'file' ? (entry.data?.length ?? 0) : 0, 12), 124, 'ascii');
  h.write(octal(mtime, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(entry.type === 'dir' ? '5' : '0', 156, 'ascii');
  h.write('ustar\0' + '00', 257, 'binary');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** A tar of `entries` in path order, every mtime `mtime` (seconds since the epoch). */
export function tar(entries: TarEntry[], mtime: number): Buffer {
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const parts: Buffer[] = [];
  for (const e of sorted) {
    parts.push(header(e, mtime));
    if (e.type === 'file' && e.data && e.data.length > 0) {
      parts.push(e.data);
      const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

export interface ReadEntry {
  path: string;
  type: 'file' | 'dir' | 'other';
  mode: number;
  uid: number;
  data: Buffer;
}

/** Reads a ustar archive (what `tar` above writes, and what the image layers hold). */
export function untar(archive: Buffer): ReadEntry[] {
  const out: ReadEntry[] = [];
  for (let off = 0; off + BLOCK <= archive.length; ) {
    const h = archive.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) break;
    const str = (start: number, len: number) => h.toString('utf8', start, start + len).replace(/\0.*$/s, '');
    const num = (start: number, len: number) => Number.parseInt(str(start, len).trim() || '0', 8);
    const prefix = str(345, 155);
    const path = (prefix ? `${prefix}/${str(0, 100)}` : str(0, 100)).replace(/^\.\//, '').replace(/\/$/, '');
    const size = num(124, 12);
    const flag = str(156, 1);
    const data = archive.subarray(off + BLOCK, off + BLOCK + size);
    out.push({
      path,
      type: flag === '5' ? 'dir' : flag === '0' || flag === '' ? 'file' : 'other',
      mode: num(100, 8),
      uid: num(108, 8),
      data,
    });
    off += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  }
  return out;
}

export const sha256 = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export interface ImageSpec {
  /** Full reference the image loads as, e.g. ghcr.io/nodecred/nodecred:0.1.0. */
  reference: string;
  /** The root filesystem. */
  files: TarEntry[];
  /** Seconds since the epoch: every mtime and the created time (SOURCE_DATE_EPOCH). */
  created: number;
  user: string;
  entrypoint: string[];
  cmd?: string[];
  env: string[];
  labels: Record<string, string>;
  architecture: string;
}

export interface BuiltImage {
  archive: Buffer;
  manifestDigest: string;
  configDigest: string;
  layerDigest: string;
  diffId: string;
}

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const CONFIG = 'application/vnd.oci.image.config.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** The image as an OCI archive (the layout in a tar, with docker's manifest.json beside it). */
export function buildImage(spec: ImageSpec): BuiltImage {
  const layerTar = tar(spec.files, spec.created);
  const diffId = sha256(layerTar);
  // a fixed level and no header timestamp (node:zlib writes mtime 0): the same bytes every time.
  const layer = gzipSync(layerTar, { level: 6 });
  const layerDigest = sha256(layer);
  const created = new Date(spec.created * 1000).toISOString().replace('.000Z', 'Z');
  const config = Buffer.from(
    JSON.stringify({
      created,
      architecture: spec.architecture,
      os: 'linux',
      config: {
        User: spec.user,
        Env: spec.env,
        Entrypoint: spec.entrypoint,
        ...(spec.cmd ? { Cmd: spec.cmd } : {}),
        WorkingDir: '/',
        Labels: spec.labels,
      },
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created, created_by: 'npm run build:image (scripts/build-image.ts)' }],
    }),
  );
  const configDigest = sha256(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: CONFIG, digest: configDigest, size: config.length },
      layers: [{ mediaType: LAYER, digest: layerDigest, size: layer.length }],
      annotations: { 'org.opencontainers.image.created': created },
    }),
  );
  const manifestDigest = sha256(manifest);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: MANIFEST,
          digest: manifestDigest,
          size: manifest.length,
          platform: { architecture: spec.architecture, os: 'linux' },
          annotations: {
            // containerd (ctr import, kind load) names the image from the first; the spec's own is the second.
            'io.containerd.image.name': spec.reference,
            'org.opencontainers.image.ref.name': spec.reference,
          },
        },
      ],
    }),
  );
  const blob = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`;
  // docker load before Docker 25 reads only this.
  const dockerManifest = Buffer.from(
    JSON.stringify([{ Config: blob(configDigest), RepoTags: [spec.reference], Layers: [blob(layerDigest)] }]),
  );
  const archive = tar(
    [
      { path: 'oci-layout', type: 'file', mode: 0o644, data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
      { path: 'index.json', type: 'file', mode: 0o644, data: index },
      { path: 'manifest.json', type: 'file', mode: 0o644, data: dockerManifest },
      { path: 'blobs', type: 'dir', mode: 0o755 },
      { path: 'blobs/sha256', type: 'dir', mode: 0o755 },
      { path: blob(manifestDigest), type: 'file', mode: 0o644, data: manifest },
      { path: blob(configDigest), type: 'file', mode: 0o644, data: config },
      { path: blob(layerDigest), type: 'file', mode: 0o644, data: layer },
    ],
    spec.created,
  );
  return { archive, manifestDigest, configDigest, layerDigest, diffId };
}

export interface UnpackedImage {
  reference: string;
  manifestDigest: string;
  config: { config: Record<string, unknown>; rootfs: { diff_ids: string[] } };
  rootfs: ReadEntry[];
}

/** Follows index.json → manifest → config and layers, verifying every digest (and each layer's diff_id). */
export function readImage(archive: Buffer): UnpackedImage {
  const entries = new Map(untar(archive).map((e) => [e.path, e]));
  const blob = (digest: string): Buffer => {
    const e = entries.get(`blobs/sha256/${digest.replace(/^sha256:/, '')}`);
    if (!e) throw new Error(`image archive: blob ${digest} missing`);
    if (sha256(e.data) !== digest) throw new Error(`image archive: blob ${digest} does not match its digest`);
    return e.data;
  };
  const layout = JSON.parse(entries.get('oci-layout')?.data.toString() ?? '{}') as { imageLayoutVersion?: string };
  if (layout.imageLayoutVersion !== '1.0.0') throw new Error('image archive: no oci-layout 1.0.0');
  const index = JSON.parse(entries.get('index.json')!.data.toString()) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  const [desc] = index.manifests;
  if (!desc) throw new Error('image archive: index.json lists no manifest');
  const manifest = JSON.parse(blob(desc.digest).toString()) as {
    config: { digest: string };
    layers: Array<{ digest: string; mediaType: string }>;
  };
  const config = JSON.parse(blob(manifest.config.digest).toString()) as UnpackedImage['config'];
  const rootfs: ReadEntry[] = [];
  manifest.layers.forEach((l, i) => {
    const data = l.mediaType.endsWith('+gzip') ? gunzipSync(blob(l.digest)) : blob(l.digest);
    if (sha256(data) !== config.rootfs.diff_ids[i])
      throw new Error(`image archive: layer ${i} does not match its diff_id`);
    rootfs.push(...untar(data));
  });
  return {
    reference: desc.annotations?.['org.opencontainers.image.ref.name'] ?? '',
    manifestDigest: desc.digest,
    config,
    rootfs,
  };
}
