// The serving certificate: keep one installed whose SANs are the node's current addresses (the Node's
// status.addresses, or the configured ones until the Node exists), renewed before it expires.
import { UserError, errorLine, isUserError } from '../errors.ts';
import type { ApiConnection } from '../kube/api.ts';
import { lifetimeOf } from './installed.ts';
import { ManagedCertificate } from './managed.ts';
import { isPlaceholder } from './placeholder.ts';
import {
  believableDenial,
  denialStands,
  recordDenial,
  requestIdentity,
  sameSans,
  servingSansFromAddresses,
  type Denial,
  type SubjectAltNames,
} from './policy.ts';
import { decidedCsr } from './request.ts';
import { requestSpec } from './requests.ts';
import type { EnsureOptions, EnsureResult } from './state.ts';

export class ServingCertificate extends ManagedCertificate {
  async ensure(opts: EnsureOptions): Promise<EnsureResult> {
    // The node's own identity speaks in this pass: what the API server says to it counts (client.ts).
    const fingerprint = this.installed.states.client.fingerprint;
    try {
      await this.loadDenial();
      const conn = await this.deps.credentials.node();
      const ca = await this.deps.credentials.clusterCa(conn.endpoint);
      const sans = await this.wantedSans(conn);
      this.installed.noteNodeAuthentication(fingerprint, true);
      const current = await this.installed.current('server', ca, sans);
      const state = this.installed.states.server;
      const installedSans = { dnsNames: state.dnsNames ?? [], ipAddresses: state.ipAddresses ?? [] };
      // nodecred's first-boot placeholder (placeholder.ts) is replaced like an expired certificate.
      const placeholder = current.pair !== null && isPlaceholder(current.pair);
      const addressesChanged = current.pair !== null && !placeholder && !sameSans(sans, installedSans);
      if (!addressesChanged && (current.standing === 'valid' || (current.standing === 'due' && !opts.rotate))) {
        state.lastError = undefined;
        // The certificate we want is installed (the addresses went back, an operator dropped one in): no
        // request is waiting, so a denial no longer holds anything back, and status must not say it does.
        if (current.standing === 'valid' && state.denied) await this.forgetDenialOnDisk();
        return 'valid';
      }
      if (addressesChanged)
        this.deps.log.info(
          { installed: { dns: state.dnsNames, ip: state.ipAddresses }, wanted: sans },
          'node addresses changed; requesting a new serving certificate',
        );
      else if (placeholder)
        this.deps.log.info(
          { sans },
          'the Node is registered: requesting the serving certificate to replace the placeholder',
        );
      else if (current.pair)
        this.deps.log.info(
          { problems: current.problems, deadline: state.rotationDeadline },
          'serving certificate due; requesting a new one',
        );
      const spec = requestSpec(this.deps.config, 'server', sans);
      const { store, clock, log, config } = this.deps;
      const request = requestIdentity({ ...spec, keyAlgorithm: config.keyAlgorithm });
      if (denialStands(state.denied, request, clock.now())) throw stillDenied(state.denied, store.denialPath());
      const issued = await this.requests.run(conn, spec, ca, opts.deadline).catch(async (err: unknown) => {
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
            { csr: decided.csr, retryAt: new Date(state.denied.retryAt).toISOString() },
            'serving CSR denied; the same request is not submitted again before retryAt',
          );
          await this.persistDenial(state.denied);
        }
        throw err;
      });
      if (state.denied) await this.forgetDenialOnDisk();
      await store.install('server', issued.chainPem, issued.key, new Date(clock.now()));
      await store.removePendingKey('server');
      this.installed.assessInstalled('server', await this.installed.read('server'), ca, sans, issued.verdict);
      this.installed.recordInstalled('server', lifetimeOf(current.pair));
      log.info(
        { csr: issued.csrName, ...sans, notAfter: state.notAfter, path: state.path },
        'installed serving certificate',
      );
      return 'installed';
    } catch (err) {
      if (isUserError(err) && err.code === 'UNAUTHORIZED') this.installed.noteNodeAuthentication(fingerprint, false);
      this.installed.recordError('server', err);
      throw err;
    }
  }

  /** A reloaded configuration may be what the approver wanted: a denied request may go again at once. */
  forgetDenial(): void {
    this.denialLoaded = true;
    void this.forgetDenialOnDisk();
  }

  private forgetDenialOnDisk(): Promise<void> {
    this.installed.states.server.denied = undefined;
    return this.persistDenial(undefined);
  }

  /** The record on disk has been read (or superseded): once per process, at the first serving pass. */
  private denialLoaded = false;
  /** Writes of the record, in the order the denials happened (a reload's removal must not overtake a denial). */
  private denialWrites: Promise<void> = Promise.resolve();

  /**
   * After a restart, the denial recorded before it holds the same request back as if the daemon had kept
   * running; a record that cannot be read, or whose wait is longer than any we draw, is dropped with a warning.
   */
  private async loadDenial(): Promise<void> {
    if (this.denialLoaded) return;
    this.denialLoaded = true;
    const { store, log, clock } = this.deps;
    const state = this.installed.states.server;
    try {
      const recorded = await store.readDenial();
      if (!recorded) return;
      if (!believableDenial(recorded, clock.now())) {
        log.warn(
          { file: store.denialPath(), retryAt: new Date(recorded.retryAt).toISOString() },
          'ignoring the recorded serving denial: its retry time is further ahead than any nodecred draws',
        );
        await this.persistDenial(undefined);
        return;
      }
      state.denied = recorded;
      log.info(
        { csr: recorded.csr, retryAt: new Date(recorded.retryAt).toISOString() },
        'a serving request was denied before the restart; the same request waits until retryAt',
      );
    } catch (err) {
      log.warn({ err: errorLine(err) }, 'ignoring the recorded serving denial');
      await this.persistDenial(undefined);
    }
  }

  /** Records (or, with undefined, removes) the denial on disk; a failed write is logged, never fatal. */
  private persistDenial(denial: Denial | undefined): Promise<void> {
    const { store, log } = this.deps;
    this.denialWrites = this.denialWrites.then(() =>
      store.writeDenial(denial ?? null).catch((err: unknown) => {
        log.warn({ err: errorLine(err) }, 'could not update the serving denial record; `nodecred status` may be stale');
      }),
    );
    return this.denialWrites;
  }

  /** The serving certificate's SANs: the Node's status.addresses, or the configured ones before it exists. */
  async wantedSans(conn: ApiConnection): Promise<SubjectAltNames> {
    const { config } = this.deps;
    const fromNode = await this.deps.connect(conn).nodeAddresses(config.nodeName);
    const addresses = fromNode?.length ? fromNode : config.servingAddresses;
    const sans = servingSansFromAddresses(addresses);
    if (sans.dnsNames.length + sans.ipAddresses.length === 0) {
      throw new UserError(`Node ${config.nodeName} has no addresses yet and none are configured`, {
        where: 'serving.addresses',
        fix: 'wait for kubelet to register the Node, or list the node addresses under serving.addresses (or --node-ip)',
        code: 'NO_SERVING_ADDRESSES',
      });
    }
    return sans;
  }
}

/** The remembered denial, as the error of a pass that did not submit the same request again. */
function stillDenied(denied: { message: string; retryAt: number }, record: string): UserError {
  return new UserError(
    `${denied.message}; the same request is not submitted again before ${new Date(denied.retryAt).toISOString()}`,
    {
      where: 'kubelet-serving CSR',
      fix:
        'check why the approver denied it (kubectl get csr; the approver log); a change of the Node addresses, ' +
        `a reload of the configuration (SIGHUP) or removing ${record} submits a request at once`,
      code: 'CSR_DENIED',
    },
  );
}
