// The certificate store on disk, in kubelet's layout so kubelet (and anything that reads kubelet's files)
// finds what nodecred installs:
//   <cert-dir>/kubelet-<kind>-<YYYY-MM-DD-HH-MM-SS>.pem   certificate chain then private key, 0600
//   <cert-dir>/kubelet-<kind>-current.pem                 symlink to the newest installed pair
//   <cert-dir>/nodecred-<kind>-pending.key               the key of a request not yet issued (0600)
//   <cert-dir>/nodecred-<kind>-denied.json               the request of that kind last denied (denial-record.ts)
// The store owns what is on disk; it checks form (PEM blocks present, key matches certificate), not policy.
import { readFile, readdir, readlink, rm, lstat, stat, chmod } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UserError, errnoError } from '../errors.ts';
import { parsePemBlocks, type PemBlock } from '../pki/pem.ts';
import { loadPrivateKeyPem, encodePrivateKeyPem } from '../pki/keys.ts';
import { loadCertificates, type LoadedCertificate } from '../pki/cert.ts';
import { writeFileAtomic, replaceSymlink, ensurePrivateDir, removeTemporaryFiles } from './atomic.ts';
import { denialFile, readDenialFile, writeDenialFile, type DenialRecord } from './denial-record.ts';
import type { KeyObject } from 'node:crypto';

export type CertKind = 'client' | 'server';

export interface StoredPair {
  /** The file the current symlink points at. */
  file: string;
  chainPem: string;
  certificates: LoadedCertificate[];
  key: KeyObject;
}

const TIMESTAMPED = /^kubelet-(client|server)-(\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})\.pem$/;
const DEFAULT_KEEP = 5;

/** kubelet's timestamp layout (Go's "2006-01-02-15-04-05"), in UTC. */
export function fileTimestamp(at: Date): string {
  return at.toISOString().slice(0, 19).replace('T', '-').replaceAll(':', '-');
}

/** Splits a kubelet pair file into its certificate chain and private key; errors name the file. */
export function parsePairFile(
  text: string,
  file: string,
): { chainPem: string; certificates: LoadedCertificate[]; key: KeyObject } {
  const blocks: PemBlock[] = parsePemBlocks(text, 'certificate/key pair', file);
  const keyBlocks = blocks.filter((b) => b.label.endsWith('PRIVATE KEY'));
  if (keyBlocks.length !== 1) {
    throw new UserError(`expected one private key block, found ${keyBlocks.length}`, {
      where: file,
      code: 'PAIR_MALFORMED',
      fix: 'remove the file; nodecred requests a new certificate',
    });
  }
  const certificates = loadCertificates(text, 'certificate chain', file);
  const key = loadPrivateKeyPem(keyBlocks[0]!.pem, file);
  if (!certificates[0]!.native.checkPrivateKey(key)) {
    throw new UserError('the private key does not belong to the certificate', {
      where: file,
      code: 'PAIR_MISMATCH',
      fix: 'remove the file; nodecred requests a new certificate',
    });
  }
  return { chainPem: certificates.map((c) => c.pem).join(''), certificates, key };
}

/** A write that failed for a reason the operator can fix (disk full, read-only, permissions) as one line. */
export function diskError(err: unknown, path: string): unknown {
  return errnoError(err, { action: 'write', path, consequence: 'the installed certificate was left in place' }) ?? err;
}

interface PrepareNote {
  severity: 'info' | 'warn';
  message: string;
}

/** Which file this is and whether it changed: inode, size, and change/modification times (ns). */
function fileIdentity(s: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint }): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

export class CertStore {
  /**
   * The pair last parsed per kind, with the identity of its file: the daemon re-checks the disk every few
   * seconds, and parsing certificates each time was most of its idle CPU (bench P3). Installs write new
   * files (a new inode), and any change in place changes the times, so a changed file is always read again.
   */
  private readonly lastRead = new Map<CertKind, { file: string; identity: string; pair: StoredPair }>();

  readonly dir: string;
  readonly keep: number;

  constructor(dir: string, keep = DEFAULT_KEEP) {
    this.dir = dir;
    this.keep = keep;
  }

  currentPath(kind: CertKind): string {
    return join(this.dir, `kubelet-${kind}-current.pem`);
  }

  pendingKeyPath(kind: CertKind): string {
    return join(this.dir, `nodecred-${kind}-pending.key`);
  }

  /**
   * Creates the directory 0700 (or tightens it) and removes what an interrupted install left behind. Each
   * note says what it did; `warn` when it repaired something (a first start only creates).
   */
  async prepare(): Promise<PrepareNote[]> {
    const notes: PrepareNote[] = [];
    const note = (severity: PrepareNote['severity'], message: string) => notes.push({ severity, message });
    const dir = await ensurePrivateDir(this.dir);
    if (dir.created) note('info', `created ${this.dir} (0700)`);
    if (dir.tightenedFrom !== undefined)
      note('warn', `tightened ${this.dir} from ${dir.tightenedFrom.toString(8)} to 0700 (it holds private keys)`);
    for (const name of await removeTemporaryFiles(this.dir))
      note('warn', `removed ${name} left by an interrupted install`);
    for (const kind of ['client', 'server'] as const) {
      const repaired = await this.repairCurrent(kind);
      if (repaired) note('warn', repaired);
    }
    return notes;
  }

  /**
   * The installed pair, or null when there is none (no link, or a link whose target is gone: prepare()
   * repairs that). A pair file that cannot be read as a pair is an error (UserError naming that file), so
   * callers can tell "missing" from "broken".
   */
  async readCurrent(kind: CertKind): Promise<StoredPair | null> {
    // Resolve the link first and read what it resolved to: reading through the link and asking readlink
    // afterwards could pair one install's content with the next install's file name.
    const file = await this.currentTarget(kind);
    if (file === null) return null;
    let text: string;
    let identity: string;
    try {
      identity = fileIdentity(await stat(file, { bigint: true }));
      const known = this.lastRead.get(kind);
      if (known?.file === file && known.identity === identity) return known.pair;
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null; // a dangling link: prepare() repairs it
      throw err;
    }
    const pair = { file, ...parsePairFile(text, file) };
    this.lastRead.set(kind, { file, identity, pair });
    return pair;
  }

  /**
   * The absolute path the current link points at, or the link itself when it is a regular file, or null
   * when there is none. kubelet writes absolute targets, nodecred relative ones; both resolve here.
   */
  private async currentTarget(kind: CertKind): Promise<string | null> {
    const link = this.currentPath(kind);
    try {
      return resolve(this.dir, await readlink(link));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      if (code === 'EINVAL') return link; // not a symlink
      throw err;
    }
  }

  /** Writes a new timestamped pair, swaps the current link to it, and garbage-collects old pairs. */
  async install(kind: CertKind, chainPem: string, key: KeyObject, now: Date): Promise<string> {
    await ensurePrivateDir(this.dir);
    const name = `kubelet-${kind}-${fileTimestamp(now)}.pem`;
    const content = (chainPem.endsWith('\n') ? chainPem : `${chainPem}\n`) + encodePrivateKeyPem(key);
    const file = join(this.dir, name);
    // Never install what readCurrent would refuse (and prepare() would then silently replace).
    const parsed = parsePairFile(content, file);
    try {
      await writeFileAtomic(file, content, 0o600);
      await replaceSymlink(name, this.currentPath(kind));
      // What was just parsed is what the next readCurrent would parse again (the manager reads it back).
      const identity = fileIdentity(await stat(file, { bigint: true }));
      this.lastRead.set(kind, { file, identity, pair: { file, ...parsed } });
    } catch (err) {
      throw diskError(err, file);
    }
    await this.announce(kind, name);
    await this.collectGarbage(kind);
    return file;
  }

  /**
   * Makes a new install visible to readers that watch the file the current link used to point at, as the
   * kubelet does. kubelet ≥ 1.31 (ReloadKubeletServerCertificateFile) serves tlsCertFile through
   * k8s.io/apiserver's DynamicCertKeyPairContent, which puts an fsnotify (inotify) watch on the path
   * tlsCertFile names. inotify resolves the symlink when the watch is added, so the kubelet watches the
   * inode of the pair that was current when it started (or when it last re-added the watch). Swapping the
   * link by rename never touches that inode: the kubelet would serve the old certificate until it expired.
   * Any event on the watched inode makes it re-read tlsCertFile through the link; it re-adds the watch (on
   * the new target) only after a Remove or Rename event. So after each swap we chmod every older pair of
   * this kind to the mode it already has: an IN_ATTRIB event on whichever of them the kubelet watches,
   * with nothing changed but ctime, and kubelet's layout (timestamped pairs + `-current.pem` link swapped by
   * rename, which other tools read) stays exactly as it was. A watched pair that garbage collection
   * deletes raises IN_DELETE_SELF, after which the kubelet watches the new target itself. Best effort: a
   * pair that vanished meanwhile (removed by hand) cannot be the one watched.
   */
  private async announce(kind: CertKind, installed: string): Promise<void> {
    const older = (await this.pairFiles(kind)).filter((n) => n !== installed);
    await Promise.all(
      older.map(async (n) => {
        const file = join(this.dir, n);
        const info = await lstat(file).catch(() => null);
        if (info?.isFile()) await chmod(file, info.mode & 0o7777).catch(() => {});
      }),
    );
  }

  async readPendingKey(kind: CertKind): Promise<KeyObject | null> {
    const path = this.pendingKeyPath(kind);
    try {
      return loadPrivateKeyPem(await readFile(path, 'utf8'), path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async writePendingKey(kind: CertKind, key: KeyObject): Promise<void> {
    await ensurePrivateDir(this.dir);
    await writeFileAtomic(this.pendingKeyPath(kind), encodePrivateKeyPem(key), 0o600).catch((err: unknown) => {
      throw diskError(err, this.pendingKeyPath(kind));
    });
  }

  async removePendingKey(kind: CertKind): Promise<void> {
    await rm(this.pendingKeyPath(kind), { force: true });
  }

  denialPath(kind: CertKind): string {
    return join(this.dir, denialFile(kind));
  }

  readDenial(kind: CertKind): Promise<DenialRecord | null> {
    return readDenialFile(kind, this.denialPath(kind));
  }

  async writeDenial(kind: CertKind, denial: DenialRecord | null): Promise<void> {
    await writeDenialFile(kind, this.denialPath(kind), denial).catch((err: unknown) => {
      throw diskError(err, this.denialPath(kind));
    });
  }

  /** Timestamped pair files of a kind, oldest first. */
  async pairFiles(kind: CertKind): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names.filter((n) => TIMESTAMPED.exec(n)?.[1] === kind).sort();
  }

  private async collectGarbage(kind: CertKind): Promise<void> {
    const current = await this.currentTarget(kind).catch(() => null);
    const files = (await this.pairFiles(kind)).filter((n) => resolve(this.dir, n) !== current);
    const surplus = files.slice(0, Math.max(0, files.length - (this.keep - 1)));
    await Promise.all(surplus.map((n) => rm(join(this.dir, n), { force: true })));
  }

  /**
   * After a crash the current link can dangle (its target removed by hand) or point at a pair that no
   * longer parses. Point it back at the newest pair that does, or remove it so the manager re-requests.
   */
  private async repairCurrent(kind: CertKind): Promise<string | null> {
    const link = this.currentPath(kind);
    const info = await lstat(link).catch(() => null);
    if (!info) return null;
    try {
      // null although the link exists means it dangles: repair that too.
      if ((await this.readCurrent(kind)) !== null) return null;
    } catch {
      /* unreadable: repair below */
    }
    for (const name of (await this.pairFiles(kind)).reverse()) {
      try {
        parsePairFile(await readFile(join(this.dir, name), 'utf8'), name);
        await replaceSymlink(name, link);
        return `re-pointed ${link} at ${name} (the previous target was missing or unreadable)`;
      } catch {
        /* try an older one */
      }
    }
    await rm(link, { force: true });
    return `removed ${link}: it pointed at a missing or unreadable pair and no intact pair was left`;
  }
}
