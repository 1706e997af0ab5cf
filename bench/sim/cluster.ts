// The simulated control plane: the CSR API as kube-apiserver serves it, kube-controller-manager's client
// CSR approval, signing and CSR cleaner, the kubelet-serving approver, and the faults a fleet meets:
// API-server, approver and controller-manager outages, throttling (429), denials and wrongly issued
// certificates. It counts every request (the herd) and records every certificate it issued, so the
// invariants can be checked against what really happened. Signing is real (bench/sim/pki.ts) unless the
// requests are abstract (the kubelet model, which needs only the dates).
import type { CertKind } from '../../src/store/cert-store.ts';
import { generateKeyPairSync } from 'node:crypto';
import type { Scheduler } from './scheduler.ts';
import { Rng } from './rng.ts';
import { readSubmittedCsr, SimCa, type ReadCsr } from './pki.ts';
import { ClusterStats } from './stats.ts';
import { Timeline, type Interval } from './timeline.ts';

export type Kind = CertKind;
export type Identity = { kind: 'bootstrap' } | { kind: 'node'; node: number };
export type Component = 'api' | 'approver' | 'controllerManager';

export interface ClusterParams {
  /** Median and log-normal spread (σ) of the time from creation to approval, per kind, ms. */
  approvalDelay: Record<Kind, { medianMs: number; spread: number }>;
  /** Serving CSRs the approver decides per second (a backlog after an outage drains at this rate). */
  approverRate: number;
  /** Client CSRs kube-controller-manager approves and CSRs it signs, per second. */
  controllerRate: number;
  denyProbability: Record<Kind, number>;
  /** A certificate issued wrong: another key, another CA, or SANs not asked for. */
  badIssueProbability: number;
  /** Requests per second the API server admits; more in one second get 429 (API Priority and Fairness). */
  capacityPerSecond: number;
  /** Requests answered 429 at random, whatever the load. */
  random429Probability: number;
  /** --cluster-signing-duration: the longest lifetime the signer gives. */
  signingDurationMs: number;
  /** Nobody decides on their own: a test approves, denies or deletes (approve, deny, remove). */
  manualApproval?: boolean;
}

export const DEFAULT_CLUSTER: ClusterParams = {
  approvalDelay: { client: { medianMs: 500, spread: 0.5 }, server: { medianMs: 2_000, spread: 1.2 } },
  approverRate: 50,
  controllerRate: 20,
  denyProbability: { client: 0, server: 0.001 },
  badIssueProbability: 0.0005,
  capacityPerSecond: 400,
  random429Probability: 0.0005,
  signingDurationMs: 365 * 24 * 3600_000,
};

export interface IssuedRecord {
  node: number;
  kind: Kind;
  notBefore: number;
  notAfter: number;
  /** False for a deliberately wrong certificate: no node may ever install it. */
  good: boolean;
  why?: string;
}

export interface CsrRecord {
  name: string;
  node: number;
  kind: Kind;
  requester: Identity;
  created: number;
  resourceVersion: number;
  expirationSeconds: number | undefined;
  /** The request as read by the API server; undefined for abstract requests. */
  request: ReadCsr | undefined;
  requestPem: string;
  signerName: string;
  decision?:
    | { kind: 'issued'; certificatePem: string; issued: IssuedRecord }
    | { kind: 'denied' | 'failed'; reason: string; message: string };
  watchers: Set<(end: WatchEvent) => void>;
}

export type WatchEvent = { type: 'decided'; csr: CsrRecord } | { type: 'deleted' } | { type: 'broken' };

export class ApiUnavailable extends Error {
  readonly status: number | undefined;
  constructor(status?: number) {
    super(status ? `HTTP ${status}` : 'connect ECONNREFUSED');
    this.status = status;
  }
}

const MINUTE = 60_000;

export class SimCluster {
  readonly ca = new SimCa();
  /** Certificates of a CA nobody trusts, for wrongly issued ones. */
  private readonly rogue = new SimCa('rogue');
  readonly params: ClusterParams;
  readonly timeline: Timeline<Component>;
  private readonly scheduler: Scheduler;
  private readonly rng: Rng;
  private readonly csrs = new Map<string, CsrRecord>();
  /** Certificates issued, by their PEM: how the API server knows a client certificate. */
  private readonly certificates = new Map<string, IssuedRecord>();
  private readonly addresses = new Map<number, Array<{ type: string; address: string }>>();
  private readonly nodeNames: string[];
  private resourceVersion = 1;
  private serial = 2;
  private approverFreeAt = 0;
  private controllerFreeAt = 0;
  readonly stats = new ClusterStats();

  constructor(o: {
    scheduler: Scheduler;
    seed: number;
    params: ClusterParams;
    outages: Record<Component, Interval[]>;
    nodeNames: string[];
    start: number;
    days: number;
    /** Whether a node is powered on (a node off when an outage ends is not expected to come back). */
    isOn?: (node: number) => boolean;
  }) {
    this.scheduler = o.scheduler;
    this.params = o.params;
    this.rng = new Rng(o.seed, 0x5eed);
    this.nodeNames = o.nodeNames;
    this.timeline = new Timeline<Component>(o.outages);
    this.stats.init(o.start, o.days, this.timeline.intervals('api'), o.nodeNames.length);
    for (const outage of this.timeline.intervals('api')) {
      o.scheduler.at(outage.start, () => this.breakWatches());
      o.scheduler.at(outage.end, () => this.stats.outageEnded(outage.end, o.isOn ?? (() => true)));
    }
  }

  nodeName(node: number): string {
    return this.nodeNames[node]!;
  }

  setAddresses(node: number, addresses: Array<{ type: string; address: string }>): void {
    this.addresses.set(node, addresses);
  }

  // ── requests ─────────────────────────────────────────────────────────────────────────────────────

  /** Every request passes here: counted, then refused while the API server is down or throttling. */
  admit(node: number): void {
    const now = this.scheduler.now;
    const admitted = this.stats.request(now, node);
    if (this.timeline.down('api', now)) {
      this.stats.failedInOutage.add(node);
      throw new ApiUnavailable();
    }
    this.stats.reached(node, now);
    if (admitted > this.params.capacityPerSecond || this.rng.chance(this.params.random429Probability)) {
      this.stats.throttled++;
      throw new ApiUnavailable(429);
    }
  }

  /** The identity a client certificate authenticates as, or undefined (401): unknown, expired, not yet valid. */
  authenticate(certificatePem: string): Identity | undefined {
    const record = this.certificates.get(certificatePem);
    const now = this.scheduler.now;
    if (!record?.good || record.kind !== 'client' || this.revoked.has(record.node)) return undefined;
    if (this.distrusted.has(certificatePem)) return undefined;
    if (now > record.notAfter || now < record.notBefore) return undefined;
    return { kind: 'node', node: record.node };
  }

  create(
    requester: Identity,
    o: { name: string; node: number; kind: Kind; requestPem: string; signerName: string; expirationSeconds?: number },
  ): CsrRecord | 'exists' {
    if (this.csrs.has(o.name)) return 'exists';
    const request = o.requestPem ? readSubmittedCsr(o.requestPem) : undefined;
    if (request && !request.signatureValid) throw new Error(`simulated API: CSR ${o.name} has a bad signature`);
    const csr: CsrRecord = {
      ...o,
      requester,
      created: this.scheduler.now,
      resourceVersion: this.resourceVersion++,
      expirationSeconds: o.expirationSeconds,
      request,
      watchers: new Set(),
    };
    this.csrs.set(o.name, csr);
    this.stats.csrCreated(o.node, o.kind, this.scheduler.now);
    const delay = this.params.approvalDelay[o.kind];
    if (!this.params.manualApproval)
      this.scheduler.at(this.scheduler.now + this.rng.logNormal(delay.medianMs, delay.spread), () => this.decide(csr));
    // kube-controller-manager's cleaner: pending CSRs go after 24 h.
    this.scheduler.at(this.scheduler.now + 24 * 60 * MINUTE, () => this.collect(csr, true));
    return csr;
  }

  get(name: string): CsrRecord | undefined {
    return this.csrs.get(name);
  }

  /** Watches one CSR until it is decided or deleted, or the server ends the stream; returns a cancel. */
  watch(name: string, fromVersion: number, timeoutMs: number, onEnd: (end: WatchEvent | 'timeout') => void) {
    const csr = this.csrs.get(name);
    if (!csr) {
      // Deleted since the caller read it: a watch from that version delivers DELETED.
      onEnd(fromVersion > 0 ? { type: 'deleted' } : 'timeout');
      return () => {};
    }
    if (csr.decision && csr.resourceVersion > fromVersion) {
      onEnd({ type: 'decided', csr });
      return () => {};
    }
    const deliver = (end: WatchEvent | 'timeout') => {
      cancelTimeout();
      csr.watchers.delete(deliver);
      onEnd(end);
    };
    csr.watchers.add(deliver);
    const cancelTimeout = this.scheduler.at(this.scheduler.now + timeoutMs, () => deliver('timeout'));
    return () => {
      cancelTimeout();
      csr.watchers.delete(deliver);
    };
  }

  nodeAddresses(node: number): Array<{ type: string; address: string }> {
    return this.addresses.get(node) ?? [];
  }

  // ── what a test does by hand (ClusterParams.manualApproval) ───────────────────────────────────────

  /** CSRs of a node, oldest first. */
  csrsOf(node: number): CsrRecord[] {
    return [...this.csrs.values()].filter((c) => c.node === node);
  }

  approve(name: string): void {
    const csr = this.csrs.get(name);
    if (csr && !csr.decision) this.sign(csr);
  }

  deny(name: string, reason = 'DeniedByTest'): void {
    const csr = this.csrs.get(name);
    if (!csr || csr.decision) return;
    csr.decision = { kind: 'denied', reason, message: 'denied by the test' };
    this.decided(csr);
  }

  remove(name: string): void {
    const csr = this.csrs.get(name);
    if (csr) this.collect(csr, false);
  }

  /** The node's client certificates stop authenticating (the node was deleted, its certificate revoked). */
  revoke(node: number): void {
    this.revoked.add(node);
  }
  private readonly revoked = new Set<number>();

  /**
   * The API server's client CA was rotated (or it never trusted this signer): every client certificate issued
   * so far stops authenticating, though it still verifies against the CA the node knows; new ones work.
   */
  distrustIssuedClientCertificates(): void {
    for (const [pem, record] of this.certificates) if (record.kind === 'client') this.distrusted.add(pem);
  }
  private readonly distrusted = new Set<string>();

  // ── the control plane's side ─────────────────────────────────────────────────────────────────────

  private decide(csr: CsrRecord): void {
    if (!this.csrs.has(csr.name) || csr.decision) return;
    const now = this.scheduler.now;
    // Serving CSRs wait for the approver, client CSRs for kube-controller-manager; both queue.
    const decider: Component = csr.kind === 'server' ? 'approver' : 'controllerManager';
    const back = this.upAgain(decider, now);
    if (back > now) return void this.scheduler.at(back, () => this.decide(csr));
    const freeAt = csr.kind === 'server' ? this.approverFreeAt : this.controllerFreeAt;
    if (freeAt > now) return void this.scheduler.at(freeAt, () => this.decide(csr));
    const rate = csr.kind === 'server' ? this.params.approverRate : this.params.controllerRate;
    if (csr.kind === 'server') this.approverFreeAt = now + 1000 / rate;
    else this.controllerFreeAt = now + 1000 / rate;
    const refusal = this.refusal(csr);
    if (refusal) {
      csr.decision = { kind: 'denied', reason: refusal, message: `simulated ${decider} refused` };
      this.stats.denied++;
      this.decided(csr);
      return;
    }
    this.sign(csr);
  }

  /** Why an approver would refuse this CSR, if it would. */
  private refusal(csr: CsrRecord): string | undefined {
    if (this.rng.chance(this.params.denyProbability[csr.kind])) return 'SimulatedDenial';
    if (csr.kind !== 'server' || !csr.request) return undefined;
    // nodecred approve's rule: every SAN must be one of the Node's addresses.
    const known = new Set(this.nodeAddresses(csr.node).map((a) => a.address.toLowerCase()));
    const sans = [...csr.request.dnsNames, ...csr.request.ipAddresses];
    return sans.every((san) => known.has(san.toLowerCase())) ? undefined : 'SANNotInNodeAddresses';
  }

  private sign(csr: CsrRecord): void {
    const now = this.scheduler.now;
    const back = this.upAgain('controllerManager', now);
    if (back > now) return void this.scheduler.at(back, () => this.sign(csr));
    const lifetime = Math.min(this.params.signingDurationMs, (csr.expirationSeconds ?? Infinity) * 1000);
    const issued: IssuedRecord = {
      node: csr.node,
      kind: csr.kind,
      notBefore: now - 5 * MINUTE,
      notAfter: now + Math.max(10 * MINUTE, lifetime),
      good: true,
    };
    if (this.rng.chance(this.params.badIssueProbability)) {
      issued.good = false;
      issued.why = this.rng.pick(['another key', 'another CA', 'SANs not asked for']);
      this.stats.badIssued++;
    }
    let certificatePem = '';
    if (csr.request) {
      const r = csr.request;
      const sans = { dnsNames: r.dnsNames, ipAddresses: r.ipAddresses };
      if (issued.why === 'SANs not asked for') sans.dnsNames = [...sans.dnsNames, 'intruder.example'];
      certificatePem = (issued.why === 'another CA' ? this.rogue : this.ca).issue({
        serial: this.serial++,
        commonName: r.commonName ?? '',
        organizations: r.organizations,
        spki: issued.why === 'another key' ? otherSpki() : r.spki,
        keyType: issued.why === 'another key' ? 'ec' : r.keyType,
        ...sans,
        usage: csr.kind,
        notBefore: new Date(issued.notBefore),
        notAfter: new Date(issued.notAfter),
      });
      this.certificates.set(certificatePem, issued);
    }
    csr.decision = { kind: 'issued', certificatePem, issued };
    this.stats.issued++;
    this.decided(csr);
  }

  private decided(csr: CsrRecord): void {
    csr.resourceVersion = this.resourceVersion++;
    for (const watcher of [...csr.watchers]) watcher({ type: 'decided', csr });
    // The cleaner removes decided CSRs after an hour.
    this.scheduler.at(this.scheduler.now + 60 * MINUTE, () => this.collect(csr, false));
  }

  /** When `component` can act: it is up, and so is the API server it acts through. */
  private upAgain(component: Component, t: number): number {
    let at = t;
    for (let moved = true; moved; ) {
      const next = this.timeline.upAgain('api', this.timeline.upAgain(component, at));
      moved = next !== at;
      at = next;
    }
    return at;
  }

  private collect(csr: CsrRecord, onlyPending: boolean): void {
    if (this.csrs.get(csr.name) !== csr || (onlyPending && csr.decision)) return;
    const back = this.upAgain('controllerManager', this.scheduler.now);
    if (back > this.scheduler.now) return void this.scheduler.at(back, () => this.collect(csr, onlyPending));
    this.csrs.delete(csr.name);
    this.resourceVersion++;
    for (const watcher of [...csr.watchers]) watcher({ type: 'deleted' });
  }

  /** The API server went away: every open watch breaks. */
  private breakWatches(): void {
    for (const csr of this.csrs.values()) for (const watcher of [...csr.watchers]) watcher({ type: 'broken' });
  }

  /** What the cluster issued under this certificate PEM, if it issued it. */
  issuedRecord(certificatePem: string): IssuedRecord | undefined {
    return this.certificates.get(certificatePem);
  }

  /** Forgets expired certificates (the API server would refuse them anyway) to bound memory. */
  forgetExpired(): void {
    const now = this.scheduler.now;
    for (const [hash, record] of this.certificates) if (record.notAfter < now) this.certificates.delete(hash);
  }
}

let spare: Buffer | undefined;
function otherSpki(): Buffer {
  spare ??= generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
  return spare;
}
