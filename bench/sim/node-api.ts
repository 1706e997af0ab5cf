// NodeApi (src/kube/node-api.ts) on the simulated cluster: what a nodecred node talks to in the simulator
// and in the manager's unit tests. Failures are turned into errors by the same explainApiError the real
// client uses, so the manager sees exactly what it would see from a real API server.
import { explainApiError, type ApiAction, type ApiConnection } from '../../src/kube/api.ts';
import { CLIENT_SIGNER } from '../../src/kube/csr-name.ts';
import type { ConnectApi, Csr, NodeApi, WatchEnd } from '../../src/kube/node-api.ts';
import { ApiUnavailable, type CsrRecord, type Identity, type SimCluster } from './cluster.ts';

/** The cluster's CA as a bootstrap kubeconfig would carry it, and the token every node bootstraps with. */
export const SIM_SERVER = 'https://api.sim.local:6443';
export const BOOTSTRAP_TOKEN = 'abcdef.0123456789abcdef';

function toCsr(csr: CsrRecord): Csr {
  const d = csr.decision;
  return {
    name: csr.name,
    resourceVersion: String(csr.resourceVersion),
    signerName: csr.signerName,
    requestPem: csr.requestPem,
    decision: d ? (d.kind === 'issued' ? { kind: 'issued', certificatePem: d.certificatePem } : { ...d }) : undefined,
  };
}

/** NodeApis for node number `node` of the simulated cluster, one per identity it presents. */
export function simConnect(cluster: SimCluster, node: number): ConnectApi {
  return (conn: ApiConnection) => simNodeApi(cluster, node, conn);
}

function simNodeApi(cluster: SimCluster, node: number, conn: ApiConnection): NodeApi {
  /** Admission and authentication, as every real request meets them; throws what the real client would. */
  const request = (what: string): Identity => {
    const action: ApiAction = { what };
    try {
      cluster.admit(node);
    } catch (err) {
      throw explainApiError(failure(err), conn, action);
    }
    const c = conn.credential;
    if (c.kind === 'token' && c.token === BOOTSTRAP_TOKEN) return { kind: 'bootstrap' };
    const identity = c.kind === 'clientCert' ? cluster.authenticate(c.certPem) : undefined;
    if (!identity) throw explainApiError({ statusCode: 401 }, conn, action);
    return identity;
  };
  const forbidden = (what: string) =>
    explainApiError({ statusCode: 403, body: { message: 'forbidden' } }, conn, { what });

  return {
    async createCsr(s) {
      const requester = request(`create CSR ${s.name}`);
      const kind = s.signerName === CLIENT_SIGNER ? 'client' : 'server';
      if (requester.kind === 'bootstrap' && kind === 'server') throw forbidden(`create CSR ${s.name}`);
      const created = cluster.create(requester, {
        name: s.name,
        node,
        kind,
        requestPem: s.requestPem,
        signerName: s.signerName,
        ...(s.expirationSeconds ? { expirationSeconds: s.expirationSeconds } : {}),
      });
      return created === 'exists' ? 'exists' : toCsr(created);
    },

    async getCsr(name) {
      request(`read CSR ${name}`);
      const csr = cluster.get(name);
      return csr ? toCsr(csr) : null;
    },

    watchCsr(name, resourceVersion, { timeoutSeconds, signal }) {
      try {
        request(`watch CSR ${name}`);
      } catch (err) {
        return Promise.reject(err);
      }
      return new Promise<WatchEnd>((resolve, reject) => {
        const onAbort = () => finish({ kind: 'closed', why: 'aborted' });
        const cancel = cluster.watch(name, Number(resourceVersion) || 0, timeoutSeconds * 1000, (end) => {
          if (end === 'timeout') return finish({ kind: 'closed', why: 'timeout' });
          if (end.type === 'deleted') return finish({ kind: 'deleted' });
          if (end.type === 'broken')
            return finish(
              undefined,
              explainApiError(failure(new ApiUnavailable()), conn, { what: `watch CSR ${name}` }),
            );
          finish(toCsr(end.csr).decision!);
        });
        function finish(end: WatchEnd | undefined, err?: unknown) {
          cancel();
          signal.removeEventListener('abort', onAbort);
          if (err) reject(err);
          else resolve(end!);
        }
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      });
    },

    async deleteCsr(name) {
      request(`delete CSR ${name}`);
      return false; // nodes may not delete CSRs (system:node has no delete)
    },

    async nodeAddresses(nodeName) {
      const who = request(`read Node ${nodeName}`);
      if (who.kind !== 'node' || cluster.nodeName(who.node) !== nodeName) throw forbidden(`read Node ${nodeName}`);
      return cluster.nodeAddresses(node);
    },

    async whoAmI() {
      const who = request('SelfSubjectReview');
      return who.kind === 'node'
        ? { username: `system:node:${cluster.nodeName(who.node)}`, groups: ['system:nodes', 'system:authenticated'] }
        : { username: 'system:bootstrap:abcdef', groups: ['system:bootstrappers', 'system:authenticated'] };
    },

    async reviewToken() {
      request('TokenReview');
      return null;
    },

    async reviewAccess() {
      request('SubjectAccessReview');
      return { allowed: false, reason: 'the simulated cluster grants nothing' };
    },
  };
}

/** What the real client would have seen: a refused connection, or an HTTP status. */
function failure(err: unknown): unknown {
  if (!(err instanceof ApiUnavailable)) return err;
  return err.status
    ? { statusCode: err.status }
    : Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
}
