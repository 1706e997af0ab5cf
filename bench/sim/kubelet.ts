// The kubelet's own policy, as a model for the side-by-side: client-go's certificate manager
// (k8s.io/client-go/util/certificate/certificate_manager.go, v0.37) and the kubelet's bootstrap and exit
// rules (k8s.io/kubernetes pkg/kubelet/certificate). What it models, from that code:
//   - rotation deadline: NotBefore + (0.7 + 0.2·rand) × lifetime, drawn again on every rotate();
//   - rotateCerts: a new key and a CSR with a random name (generateName) per attempt, then a wait of up to
//     15 minutes (certificateWaitTimeout): list, list and watch, re-watch every 5–10 minutes;
//   - retries: wait.ExponentialBackoff {2 s, ×2, jitter 0.1, 5 steps}, then wait.PollInfinite every 32 s;
//     rotate() runs again 1 s after it returns (wait.Until);
//   - a certificate is installed once its key matches (tls.X509KeyPair); its CA and SANs are not checked;
//   - an expired client certificate makes the kubelet exit once the server answers (transport.go, checked
//     every 10 s); systemd restarts it after 10 s (kubeadm's unit) and it bootstraps: /healthz polled every
//     2 s for up to a minute, then one CSR under a name derived from a key kept on disk, waited on for up to
//     an hour; a failure exits and restarts.
// Not modelled: anything the kubelet does besides certificates. Requests are counted as the model makes them.
import type { CsrRecord, IssuedRecord, Kind, SimCluster } from './cluster.ts';
import type { Ledger } from './ledger.ts';
import type { SimClock } from './scheduler.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;

type Installed = Pick<IssuedRecord, 'notBefore' | 'notAfter'>;

export class KubeletNode {
  readonly index: number;
  private readonly cluster: SimCluster;
  private readonly clock: SimClock;
  private readonly ledger: Ledger;
  private readonly joinedAt: number;
  /** Survives restarts: the certificate files, and the bootstrap key (so the bootstrap CSR name). */
  private readonly disk: Partial<Record<Kind, Installed>> = {};
  private bootstrapKey = 0;
  /** Aborted when the Node's addresses change: the serving template no longer matches (templateChanged). */
  private templateChanged = new AbortController();
  private generation = 0;
  private attempts = 0;
  diskFull = false;

  constructor(o: { index: number; cluster: SimCluster; clock: SimClock; ledger: Ledger; joinedAt: number }) {
    this.index = o.index;
    this.cluster = o.cluster;
    this.clock = o.clock;
    this.ledger = o.ledger;
    this.joinedAt = o.joinedAt;
  }

  /** Power on: systemd starts the kubelet. */
  powerOn(): void {
    const generation = ++this.generation;
    void this.start(generation);
  }

  /** The Node's addresses changed: the serving certificate manager rotates at once. */
  addressesChanged(): void {
    this.disk.server &&= { ...this.disk.server, stale: true } as Installed;
    this.templateChanged.abort();
    this.templateChanged = new AbortController();
  }

  /** Power off (or exit): every loop of this process stops at its next step. */
  powerOff(): void {
    this.generation++;
  }

  private alive(generation: number): boolean {
    return generation === this.generation;
  }

  private async sleep(ms: number): Promise<void> {
    await this.clock.sleep(ms);
  }

  private now(): number {
    return this.clock.now();
  }

  /** One request; false when it did not reach a working API server (refused, 429). */
  private request(): boolean {
    try {
      this.cluster.admit(this.index);
      return true;
    } catch {
      return false;
    }
  }

  private async start(generation: number): Promise<void> {
    const client = this.disk.client;
    if (!client || client.notAfter <= this.now()) {
      if (!(await this.bootstrap(generation))) return this.restart(generation);
    }
    if (!this.alive(generation)) return;
    void this.watchExpiry(generation);
    void this.manage('client', generation);
    void this.manage('server', generation);
  }

  /** The process exits; systemd starts a new one 10 s later (Restart=always, RestartSec=10). */
  private async restart(generation: number): Promise<void> {
    if (!this.alive(generation)) return;
    const next = ++this.generation;
    await this.sleep(10 * SECOND);
    if (this.alive(next)) void this.start(next);
  }

  private async bootstrap(generation: number): Promise<boolean> {
    const until = this.now() + MINUTE;
    while (this.now() < until && this.alive(generation)) {
      if (this.request()) break; // GET /healthz
      await this.sleep(2 * SECOND * (1 + 0.2 * this.clock.random()));
    }
    if (!this.alive(generation)) return false;
    this.bootstrapKey ||= ++this.attempts;
    const name = `node-csr-${this.index}-${this.bootstrapKey}`;
    const csr = this.submit(name, 'client', { kind: 'bootstrap' });
    if (!csr) return false;
    const issued = await this.waitFor(csr, 3600 * SECOND, generation);
    if (!issued || !this.install('client', issued)) return false;
    this.bootstrapKey = 0;
    return true;
  }

  /** POST a CSR (and on 409 for the bootstrap name, GET it): undefined when that failed. */
  private submit(name: string, kind: Kind, requester: { kind: 'bootstrap' } | undefined): CsrRecord | undefined {
    if (!this.request()) return undefined;
    const identity = requester ?? this.identity();
    if (!identity) return undefined; // 401: the client certificate expired
    const created = this.cluster.create(identity, {
      name,
      node: this.index,
      kind,
      requestPem: '',
      signerName: kind,
    });
    if (created !== 'exists') return created;
    return this.request() ? this.cluster.get(name) : undefined;
  }

  private identity(): { kind: 'node'; node: number } | undefined {
    const c = this.disk.client;
    return c && c.notAfter > this.now() ? { kind: 'node', node: this.index } : undefined;
  }

  /** csr.WaitForCertificate: list, then an informer's list and watch, re-watching every 5–10 minutes. */
  private async waitFor(csr: CsrRecord, timeoutMs: number, generation: number): Promise<IssuedRecord | undefined> {
    const until = this.now() + timeoutMs;
    let failures = 0;
    let listed = false;
    while (this.now() < until && this.alive(generation)) {
      if (!listed && !(this.request() && this.request())) {
        await this.sleep(Math.min(30 * SECOND, 800 * 2 ** failures++) * (1 + this.clock.random()));
        continue;
      }
      listed = true;
      if (csr.decision) return csr.decision.kind === 'issued' ? csr.decision.issued : undefined;
      if (!this.request()) {
        listed = false;
        continue;
      }
      const watchFor = Math.min(until - this.now(), (5 + 5 * this.clock.random()) * MINUTE);
      const end = await new Promise<'decided' | 'deleted' | 'broken' | 'timeout'>((resolve) => {
        this.cluster.watch(csr.name, csr.resourceVersion - 1, watchFor, (e) => resolve(e === 'timeout' ? e : e.type));
      });
      if (end === 'decided') continue;
      if (end === 'deleted') return undefined;
      if (end === 'broken') listed = false;
    }
    return undefined;
  }

  /** The certificate store's Update: refused only when the key does not match. */
  private install(kind: Kind, issued: IssuedRecord): boolean {
    if (issued.why === 'another key' || this.diskFull) return false;
    this.ledger.installed(this.index, kind, this.now() - this.clock.skewMs, issued, issued, this.joinedAt);
    this.disk[kind] = { notBefore: issued.notBefore, notAfter: issued.notAfter };
    return true;
  }

  /** transport.go: an expired client certificate and a server that answers make the kubelet exit. */
  private async watchExpiry(generation: number): Promise<void> {
    while (this.alive(generation)) {
      const client = this.disk.client;
      if (!client) return;
      const left = client.notAfter - this.now();
      if (left > 0) {
        await this.sleep(left + 10 * SECOND);
        continue;
      }
      if (!this.cluster.timeline.down('api', this.clock.now() - this.clock.skewMs)) return this.restart(generation);
      await this.sleep(10 * SECOND);
    }
  }

  /** The certificate manager's run loop for one certificate. */
  private async manage(kind: Kind, generation: number): Promise<void> {
    while (this.alive(generation)) {
      await this.rotate(kind, generation);
      await this.sleep(SECOND);
    }
  }

  private async rotate(kind: Kind, generation: number): Promise<void> {
    const cert = this.disk[kind];
    const satisfies = cert && !(cert as { stale?: boolean }).stale;
    const deadline = satisfies
      ? cert.notBefore + (0.7 + 0.2 * this.clock.random()) * (cert.notAfter - cert.notBefore)
      : this.now();
    if (deadline > this.now()) {
      await this.clock.sleep(deadline - this.now(), kind === 'server' ? this.templateChanged.signal : undefined);
    }
    let delay = 2 * SECOND;
    for (let step = 0; step < 5; step++) {
      if (!this.alive(generation)) return;
      if (await this.rotateCerts(kind, generation)) return;
      if (step < 4) await this.sleep(delay * (1 + 0.1 * this.clock.random()));
      delay *= 2;
    }
    for (;;) {
      await this.sleep(32 * SECOND);
      if (!this.alive(generation) || (await this.rotateCerts(kind, generation))) return;
    }
  }

  private async rotateCerts(kind: Kind, generation: number): Promise<boolean> {
    const csr = this.submit(`csr-${this.index}-${++this.attempts}`, kind, undefined);
    if (!csr) return false;
    const issued = await this.waitFor(csr, 15 * MINUTE, generation);
    return issued !== undefined && this.alive(generation) && this.install(kind, issued);
  }
}
