// What the client and the serving certificate keepers share: the seams, the installed certificates, the
// request runner, and holding back a request that was denied.
import { UserError, isUserError } from '../errors.ts';
import type { ApiConnection } from '../kube/api.ts';
import type { InstalledCertificates } from './installed.ts';
import { denialStands, recordDenial, requestIdentity, type Denial } from './policy.ts';
import type { Issued, RequestSpec } from './request.ts';
import type { Requests } from './requests.ts';
import type { ManagerDeps } from './state.ts';

export abstract class ManagedCertificate {
  protected readonly deps: ManagerDeps;
  protected readonly installed: InstalledCertificates;
  protected readonly requests: Requests;

  constructor(deps: ManagerDeps, installed: InstalledCertificates, requests: Requests) {
    this.deps = deps;
    this.installed = installed;
    this.requests = requests;
  }

  /**
   * Runs the request, unless the same request (from the same `requester`) was denied and its hold-back
   * (policy.ts Denial) still stands; a denial is remembered. Nothing the node can change makes a denied request
   * succeed, and a fleet-wide denial must not become a CSR from every node at every backoff step.
   */
  protected async requestUnlessDenied(
    conn: ApiConnection,
    spec: RequestSpec,
    ca: string,
    deadline: number,
    requester = '',
  ): Promise<Issued> {
    const { clock, log, config } = this.deps;
    const state = this.installed.states[spec.kind];
    const request = `${requestIdentity({ ...spec, keyAlgorithm: config.keyAlgorithm })}${requester}`;
    if (denialStands(state.denied, request, clock.now())) throw stillDenied(spec.kind, state.denied);
    const issued = await this.requests.run(conn, spec, ca, deadline).catch((err: unknown) => {
      if (isUserError(err) && (err.code === 'CSR_DENIED' || err.code === 'CSR_FAILED')) {
        state.denied = recordDenial(state.denied, {
          request,
          message: err.message,
          now: clock.now(),
          random: () => clock.random(),
        });
        log.warn(
          { kind: spec.kind, retryAt: new Date(state.denied.retryAt).toISOString() },
          `${spec.kind === 'client' ? 'client' : 'serving'} CSR denied; ` +
            'the same request is not submitted again before retryAt',
        );
      }
      throw err;
    });
    state.denied = undefined;
    return issued;
  }
}

const DENIED_FIX: Record<RequestSpec['kind'], { where: string; fix: string }> = {
  client: {
    where: 'kube-apiserver-client-kubelet CSR',
    fix:
      'check who denied it and why (kubectl get csr: its Denied condition); a reload of the configuration ' +
      '(SIGHUP) or a restart submits a request at once',
  },
  server: {
    where: 'kubelet-serving CSR',
    fix:
      'check why the approver denied it (kubectl get csr; the approver log); a change of the Node addresses, ' +
      'a reload of the configuration (SIGHUP) or a restart submits a request at once',
  },
};

/** The remembered denial, as the error of a pass that did not submit the same request again. */
function stillDenied(kind: RequestSpec['kind'], denied: Denial): UserError {
  return new UserError(
    `${denied.message}; the same request is not submitted again before ${new Date(denied.retryAt).toISOString()}`,
    { ...DENIED_FIX[kind], code: 'CSR_DENIED' },
  );
}
