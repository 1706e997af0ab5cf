// A node's disk in the simulator: the certificate store and the node kubeconfig in memory, with the same
// checks and failures as the real ones (an install is parsed exactly as CertStore.install parses it; a full
// disk fails writes with the same ENOSPC error), and a hook that shows every install to the invariant checks.
import type { KeyObject } from 'node:crypto';
import { UserError } from '../../src/errors.ts';
import type { ApiEndpoint } from '../../src/kube/api.ts';
import { encodePrivateKeyPem } from '../../src/pki/keys.ts';
import { diskError, parsePairFile, type CertKind, type StoredPair } from '../../src/store/cert-store.ts';
import type { CredentialStore, Credentials } from '../../src/manager/state.ts';
import { BOOTSTRAP_TOKEN } from './node-api.ts';

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
    const content = (chainPem.endsWith('\n') ? chainPem : `${chainPem}\n`) + encodePrivateKeyPem(key);
    const pair = { file, ...parsePairFile(content, file) };
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
