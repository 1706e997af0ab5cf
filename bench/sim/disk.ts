// A node's disk in the simulator: the certificate store and the node kubeconfig in memory, with the same
// checks and failures as the real ones (an install is parsed as CertStore.install parses it; a full disk
// fails writes with the same ENOSPC error), and a hook that shows every install to the invariant checks.
import type { KeyObject } from 'node:crypto';
import { UserError } from '../../src/errors.ts';
import type { ApiEndpoint } from '../../src/kube/api.ts';
import { encodePrivateKeyPem } from '../../src/pki/keys.ts';
import { loadCertificates } from '../../src/pki/cert.ts';
import { diskError, type CertKind, type StoredPair } from '../../src/store/cert-store.ts';
import { denialFile, parseDenial, serializeDenial, type DenialRecord } from '../../src/store/denial-record.ts';
import type { CredentialStore, Credentials } from '../../src/manager/state.ts';
import { BOOTSTRAP_TOKEN } from './node-api.ts';

/**
 * The pair as CertStore.install parses it before writing (parsePairFile: the chain with the store's
 * certificate loader, and the key must belong to the leaf), except that the key stays the object it was
 * given: written to a PEM and read back, it is the same key, at a cost the fleet would pay 300,000 times.
 */
function parsePair(chainPem: string, key: KeyObject, file: string): Omit<StoredPair, 'file'> {
  const certificates = loadCertificates(chainPem, 'certificate chain', file);
  if (!certificates[0]!.native.checkPrivateKey(key)) {
    throw new UserError('the private key does not belong to the certificate', {
      where: file,
      code: 'PAIR_MISMATCH',
      fix: 'remove the file; nodecred requests a new certificate',
    });
  }
  return { chainPem: certificates.map((c) => c.pem).join(''), certificates, key };
}

export class SimDisk {
  full = false;

  /** Throws what a write to a full filesystem throws, through the store's own translation. */
  write(path: string): void {
    if (!this.full) return;
    const enospc = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC', syscall: 'write' });
    throw diskError(enospc, path);
  }
}

export class SimStore implements CredentialStore {
  private readonly dir: string;
  private readonly disk: SimDisk;
  private readonly current: Partial<Record<CertKind, StoredPair>> = {};
  private readonly pending: Partial<Record<CertKind, KeyObject>> = {};
  /** Every install, before it becomes current (the invariant checks look at each). */
  onInstall: ((kind: CertKind, pair: StoredPair) => void) | undefined;

  constructor(disk: SimDisk, dir = '/var/lib/kubelet/pki') {
    this.disk = disk;
    this.dir = dir;
  }

  currentPath(kind: CertKind): string {
    return `${this.dir}/kubelet-${kind}-current.pem`;
  }

  pendingKeyPath(kind: CertKind): string {
    return `${this.dir}/nodecred-${kind}-pending.key`;
  }

  async readCurrent(kind: CertKind): Promise<StoredPair | null> {
    return this.current[kind] ?? null;
  }

  async install(kind: CertKind, chainPem: string, key: KeyObject, _now: Date): Promise<string> {
    const file = `${this.dir}/kubelet-${kind}-${this.serial++}.pem`;
    const pair = { file, ...parsePair(chainPem, key, file) };
    this.disk.write(file);
    this.onInstall?.(kind, pair);
    this.current[kind] = pair;
    return file;
  }
  private serial = 0;

  async readPendingKey(kind: CertKind): Promise<KeyObject | null> {
    return this.pending[kind] ?? null;
  }

  async writePendingKey(kind: CertKind, key: KeyObject): Promise<void> {
    this.disk.write(this.pendingKeyPath(kind));
    this.pending[kind] = key;
  }

  async removePendingKey(kind: CertKind): Promise<void> {
    delete this.pending[kind];
  }

  denialPath(kind: CertKind): string {
    return `${this.dir}/${denialFile(kind)}`;
  }

  /** Kept as the file's text, so what a restarted node reads back went through the real format. */
  private denials: Partial<Record<CertKind, string>> = {};

  async readDenial(kind: CertKind): Promise<DenialRecord | null> {
    const text = this.denials[kind];
    return text === undefined ? null : parseDenial(kind, text, this.denialPath(kind));
  }

  async writeDenial(kind: CertKind, denial: DenialRecord | null): Promise<void> {
    if (denial === null) delete this.denials[kind];
    else {
      this.disk.write(this.denialPath(kind));
      this.denials[kind] = serializeDenial(kind, denial);
    }
  }

  /** Test hook: the record was damaged (a full disk before atomic writes, an editor), or put there by hand. */
  damageDenial(kind: CertKind, text: string): void {
    this.denials[kind] = text;
  }

  /** Test hook: the file vanished (an operator, a bad script). */
  lose(kind: CertKind): void {
    delete this.current[kind];
  }

  /** Test hook: a crash between installing a pair and removing its pending key. */
  keepPendingAs(kind: CertKind, key: KeyObject): void {
    this.pending[kind] = key;
  }
}

/** Connection construction on the simulated node: the bootstrap token, and a node kubeconfig in memory. */
export class SimCredentials implements Credentials {
  private readonly store: SimStore;
  private readonly disk: SimDisk;
  private readonly bootstrapEndpoint: ApiEndpoint;
  private kubeconfig: { endpoint: ApiEndpoint; caPem: string } | undefined;
  /** The node's private key PEM, cached per installed pair (re-encoding it on every pass costs CPU). */
  private encoded: { pair: StoredPair; keyPem: string } | undefined;
  path = '/var/lib/kubelet/kubeconfig';

  constructor(store: SimStore, disk: SimDisk, endpoint: ApiEndpoint) {
    this.store = store;
    this.disk = disk;
    this.bootstrapEndpoint = endpoint;
  }

  async bootstrap() {
    return {
      endpoint: this.bootstrapEndpoint,
      credential: { kind: 'token' as const, token: BOOTSTRAP_TOKEN },
      description: 'bootstrap token from /etc/kubernetes/bootstrap-kubelet.conf',
    };
  }

  async nodeEndpoint() {
    return this.kubeconfig?.endpoint ?? null;
  }

  async node() {
    const pair = await this.store.readCurrent('client');
    if (!this.kubeconfig || !pair) {
      throw new UserError(`cannot read ${this.kubeconfig ? this.store.currentPath('client') : this.path}: ENOENT`, {
        where: this.path,
        fix: 'check the path and its permissions',
        code: 'FILE_UNREADABLE',
      });
    }
    if (this.encoded?.pair !== pair) this.encoded = { pair, keyPem: encodePrivateKeyPem(pair.key) };
    return {
      endpoint: { ...this.kubeconfig.endpoint, caPem: this.kubeconfig.caPem },
      credential: { kind: 'clientCert' as const, certPem: pair.chainPem, keyPem: this.encoded.keyPem },
      description: `node client certificate from ${this.path}`,
    };
  }

  async writeNodeKubeconfig(endpoint: ApiEndpoint, caPem: string) {
    const k = this.kubeconfig;
    if (k && k.endpoint.server === endpoint.server && k.caPem === caPem) return;
    this.disk.write(this.path);
    this.kubeconfig = { endpoint, caPem };
  }

  async nodeKubeconfigPresent() {
    return this.kubeconfig !== undefined;
  }

  async clusterCa(endpoint: ApiEndpoint) {
    if (!endpoint.caPem) throw new UserError('no cluster CA', { code: 'NO_CA' });
    return endpoint.caPem;
  }
}
