// What the client and the serving certificate keepers share: the seams, the installed certificates, the
// request runner, and holding back a request that was denied, across restarts (store/denial-record.ts).
import { UserError, errorLine } from '../errors.ts';
import type { ApiConnection } from '../kube/api.ts';
import type { CertKind } from '../store/cert-store.ts';
import { DENIAL_LABEL } from '../store/denial-record.ts';
import type { InstalledCertificates } from './installed.ts';
import { believableDenial, denialStands, recordDenial, requestIdentity, type Denial } from './policy.ts';
import { decidedCsr, type Issued, type RequestSpec } from './request.ts';
import type { Requests } from './requests.ts';
import type { ManagerDeps } from './state.ts';

export abstract class ManagedCertificate {
  protected readonly deps: ManagerDeps;
  protected readonly installed: InstalledCertificates;
  protected readonly requests: Requests;
  /** The certificate this keeper keeps: its state, its denial record. */
  protected abstract readonly kind: CertKind;
  /** The record on disk has been read (or superseded): once per process, at the first pass. */
  private denialLoaded = false;
  /** Counts reloads' forgetting: a read of the record that a reload overtook must not bring the denial back. */
  private denialsForgotten = 0;
  /** Writes of the record, in the order the denials happened (a reload's removal must not overtake a denial). */
  private denialWrites: Promise<void> = Promise.resolve();

  constructor(deps: ManagerDeps, installed: InstalledCertificates, requests: Requests) {
    this.deps = deps;
    this.installed = installed;
    this.requests = requests;
  }

  /**
   * Runs the request, unless the same request (from the same `requester`) was denied and its hold-back
   * (policy.ts Denial) still stands; a denial is remembered, on disk too. Nothing the node can change makes a
   * denied request succeed, and a fleet-wide denial must not become a CSR from every node at every backoff step
   * (nor at every restart of a crash-looping daemon).
   */
  protected async requestUnlessDenied(
    conn: ApiConnection,
    spec: RequestSpec,
    ca: string,
    deadline: number,
    requester = '',
  ): Promise<Issued> {
    const { clock, log, config, store } = this.deps;
    const state = this.installed.states[this.kind];
    const request = `${requestIdentity({ ...spec, keyAlgorithm: config.keyAlgorithm })}${requester}`;
    if (denialStands(state.denied, request, clock.now()))
      throw stillDenied(this.kind, state.denied, store.denialPath(this.kind));
    const issued = await this.requests.run(conn, spec, ca, deadline).catch(async (err: unknown) => {
      const decided = decidedCsr(err);
      if (decided) {
        state.denied = recordDenial(state.denied, {
          request,
          ...decided,
          message: (err as Error).message,
          now: clock.now(),
          random: () => clock.random(),
        });
        log.warn(
          { kind: this.kind, csr: decided.csr, retryAt: new Date(state.denied.retryAt).toISOString() },
          `${DENIAL_LABEL[this.kind]} CSR denied; the same request is not submitted again before retryAt`,
        );
        await this.persistDenial(state.denied);
      }
      throw err;
    });
    await this.settleDenial();
    return issued;
  }

  /**
   * After a restart, the denial recorded before it holds the same request back as if the daemon had kept
   * running; a record that cannot be read, or whose wait is longer than any we draw, is dropped with a warning.
   * Each keeper calls this first in every pass; it reads the disk once.
   */
  protected async loadDenial(): Promise<void> {
    if (this.denialLoaded) return;
    this.denialLoaded = true;
    const { store, log, clock } = this.deps;
    const label = DENIAL_LABEL[this.kind];
    const forgotten = this.denialsForgotten;
    try {
      const recorded = await store.readDenial(this.kind);
      if (!recorded || this.denialsForgotten !== forgotten) return;
      if (!believableDenial(recorded, clock.now())) {
        log.warn(
          { file: store.denialPath(this.kind), retryAt: new Date(recorded.retryAt).toISOString() },
          `ignoring the recorded ${label} denial: its retry time is further ahead than any nodecred draws`,
        );
        await this.persistDenial(undefined);
        return;
      }
      this.installed.states[this.kind].denied = recorded;
      log.info(
        { csr: recorded.csr, retryAt: new Date(recorded.retryAt).toISOString() },
        `a ${label} request was denied before the restart; the same request waits until retryAt`,
      );
    } catch (err) {
      log.warn({ err: errorLine(err) }, `ignoring the recorded ${label} denial`);
      await this.persistDenial(undefined);
    }
  }

  /**
   * The certificate wanted is installed (issued now, or the addresses went back, or an operator dropped one in):
   * no request is waiting, so a denial no longer holds anything back, and status must not say it does.
   */
  protected async settleDenial(): Promise<void> {
    if (this.installed.states[this.kind].denied) await this.forgetDenialNow();
  }

  /** A reloaded configuration may be what the approver (or the policy) wanted: a denied request may go at once. */
  forgetDenial(): void {
    this.denialLoaded = true;
    this.denialsForgotten++;
    void this.forgetDenialNow();
  }

  private forgetDenialNow(): Promise<void> {
    this.installed.states[this.kind].denied = undefined;
    return this.persistDenial(undefined);
  }

  /** Records (or, with undefined, removes) the denial on disk; a failed write is logged, never fatal. */
  private persistDenial(denial: Denial | undefined): Promise<void> {
    const { store, log } = this.deps;
    this.denialWrites = this.denialWrites.then(() =>
      store.writeDenial(this.kind, denial ?? null).catch((err: unknown) => {
        log.warn(
          { err: errorLine(err) },
          `could not update the ${DENIAL_LABEL[this.kind]} denial record; \`nodecred status\` may be stale`,
        );
      }),
    );
    return this.denialWrites;
  }
}

const DENIED_FIX: Record<RequestSpec['kind'], { where: string; fix: string }> = {
  client: {
    where: 'kube-apiserver-client-kubelet CSR',
    fix:
      'check who denied it and why (kubectl get csr: its Denied condition); new bootstrap credentials or a ' +
      'reload of the daemon (SIGHUP) submit a request at once (with no daemon running: remove {record})',
  },
  server: {
    where: 'kubelet-serving CSR',
    fix:
      'check why the approver denied it (kubectl get csr; the approver log); new Node addresses or a reload of ' +
      'the daemon (SIGHUP) submit a request at once (with no daemon running: remove {record})',
  },
};

/** The remembered denial, as the error of a pass that did not submit the same request again. */
function stillDenied(kind: RequestSpec['kind'], denied: Denial, record: string): UserError {
  return new UserError(
    `${denied.message}; the same request is not submitted again before ${new Date(denied.retryAt).toISOString()}`,
    { where: DENIED_FIX[kind].where, fix: DENIED_FIX[kind].fix.replace('{record}', record), code: 'CSR_DENIED' },
  );
}
