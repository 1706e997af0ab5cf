// NodeApi (node-api.ts) over @kubernetes/client-node: the node side's API calls today. Each call builds a
// KubeConfig for the connection (exec credentials come from their cache) and maps client-node's results and
// errors to the contract's own types.
import type { V1CertificateSigningRequest } from '@kubernetes/client-node';
import { explainApiError, statusOf, TransientApiError, type ApiAction, type ApiConnection } from './api.ts';
import { clientsFor, idleGuardedWatch } from './client-node.ts';
import type { Csr, CsrDecision, CsrSubmission, NodeApi, UserInfo, WatchCsrOptions, WatchEnd } from './node-api.ts';

const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';

/** The 403 fixes for the calls a node's identity is expected to be allowed. */
const FORBIDDEN_FIX = {
  createCsr:
    'bind the ClusterRole system:node-bootstrapper to the bootstrap group (e.g. system:bootstrappers), ' +
    'as scripts/create-bootstrap-token does',
  readNode:
    'the Node authorizer only lets system:node:<name> read its own Node; check --node-name matches the certificate',
};

/** What a CSR object says right now; undefined while it is still pending. */
export function decisionOf(csr: V1CertificateSigningRequest): CsrDecision | undefined {
  for (const c of csr.status?.conditions ?? []) {
    if (c.status !== 'True') continue;
    if (c.type === 'Denied') return { kind: 'denied', reason: c.reason ?? '', message: c.message ?? '' };
    if (c.type === 'Failed') return { kind: 'failed', reason: c.reason ?? '', message: c.message ?? '' };
  }
  const cert = csr.status?.certificate as unknown;
  if (typeof cert === 'string' && cert.length > 0) {
    return { kind: 'issued', certificatePem: Buffer.from(cert, 'base64').toString('utf8') };
  }
  return undefined;
}

function toCsr(csr: V1CertificateSigningRequest): Csr {
  return {
    name: csr.metadata?.name ?? '',
    resourceVersion: csr.metadata?.resourceVersion ?? '',
    signerName: csr.spec.signerName,
    requestPem: Buffer.from(csr.spec.request as unknown as string, 'base64').toString('utf8'),
    decision: decisionOf(csr),
  };
}

function toUserInfo(u: { username?: string; groups?: string[]; uid?: string; extra?: Record<string, string[]> }) {
  const info: UserInfo = { username: u.username ?? '', groups: u.groups ?? [] };
  if (u.uid) info.uid = u.uid;
  if (u.extra) info.extra = u.extra;
  return info;
}

export function clientNodeApi(conn: ApiConnection): NodeApi {
  const fail = (err: unknown, action: ApiAction) => explainApiError(err, conn, action);
  return {
    async createCsr(s: CsrSubmission) {
      const { certificates } = await clientsFor(conn);
      try {
        const created = await certificates.createCertificateSigningRequest({
          body: {
            apiVersion: 'certificates.k8s.io/v1',
            kind: 'CertificateSigningRequest',
            metadata: { name: s.name, labels: { 'app.kubernetes.io/managed-by': 'nodecred' } },
            spec: {
              request: Buffer.from(s.requestPem).toString('base64'),
              signerName: s.signerName,
              usages: s.usages,
              ...(s.expirationSeconds ? { expirationSeconds: s.expirationSeconds } : {}),
            },
          },
        });
        return toCsr(created);
      } catch (err) {
        if (statusOf(err) === 409) return 'exists';
        throw fail(err, { what: `create CSR ${s.name}`, forbiddenFix: FORBIDDEN_FIX.createCsr });
      }
    },

    async getCsr(name) {
      const { certificates } = await clientsFor(conn);
      try {
        return toCsr(await certificates.readCertificateSigningRequest({ name }));
      } catch (err) {
        if (statusOf(err) === 404) return null;
        throw fail(err, { what: `read CSR ${name}` });
      }
    },

    watchCsr: (name, resourceVersion, options) => watchCsr(conn, name, resourceVersion, options),

    async deleteCsr(name) {
      const { certificates } = await clientsFor(conn);
      try {
        await certificates.deleteCertificateSigningRequest({ name });
        return true;
      } catch (err) {
        const status = statusOf(err);
        if (status === 404) return true;
        if (status === 403) return false;
        throw fail(err, { what: `delete CSR ${name}` });
      }
    },

    async nodeAddresses(nodeName) {
      const { core } = await clientsFor(conn);
      try {
        const node = await core.readNode({ name: nodeName });
        return (node.status?.addresses ?? []).map((a) => ({ type: a.type, address: a.address }));
      } catch (err) {
        if (statusOf(err) === 404) return null;
        throw fail(err, { what: `read Node ${nodeName}`, forbiddenFix: FORBIDDEN_FIX.readNode });
      }
    },

    async whoAmI() {
      const { authentication } = await clientsFor(conn);
      try {
        const review = await authentication.createSelfSubjectReview({
          body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
        });
        return toUserInfo(review.status?.userInfo ?? {});
      } catch (err) {
        throw fail(err, { what: 'SelfSubjectReview' });
      }
    },

    async reviewToken(token) {
      const { authentication } = await clientsFor(conn);
      try {
        const review = await authentication.createTokenReview({
          body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } },
        });
        const user = review.status?.user;
        return review.status?.authenticated && user?.username ? toUserInfo(user) : null;
      } catch (err) {
        throw fail(err, { what: 'TokenReview' });
      }
    },

    async reviewAccess({ user, path, verb }) {
      const { authorization } = await clientsFor(conn);
      try {
        const sar = await authorization.createSubjectAccessReview({
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SubjectAccessReview',
            spec: {
              user: user.username,
              groups: user.groups,
              ...(user.uid ? { uid: user.uid } : {}),
              ...(user.extra ? { extra: user.extra } : {}),
              nonResourceAttributes: { path, verb },
            },
          },
        });
        return {
          allowed: sar.status?.allowed === true,
          reason: sar.status?.reason ?? sar.status?.evaluationError ?? '',
        };
      } catch (err) {
        throw fail(err, { what: 'SubjectAccessReview' });
      }
    },
  };
}

/** One watch stream; see NodeApi.watchCsr for what ends it how. */
async function watchCsr(
  conn: ApiConnection,
  name: string,
  resourceVersion: string,
  { timeoutSeconds, idleTimeoutMs, signal }: WatchCsrOptions,
): Promise<WatchEnd> {
  if (signal.aborted) return { kind: 'closed', why: 'aborted' };
  const { kubeConfig } = await clientsFor(conn);
  const watch = idleGuardedWatch(kubeConfig, idleTimeoutMs);
  return new Promise((resolve, reject) => {
    let settled = false;
    let controller: AbortController | undefined;
    const onAbort = () => finish({ kind: 'closed', why: 'aborted' });
    signal.addEventListener('abort', onAbort, { once: true });
    function finish(end: WatchEnd | undefined, err?: unknown) {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      controller?.abort();
      if (err !== undefined) reject(err);
      else resolve(end!);
    }
    // client-node swallows exceptions thrown in this callback, so it must not throw.
    const onEvent = (type: string, obj: V1CertificateSigningRequest) => {
      if (type === 'DELETED') return finish({ kind: 'deleted' });
      if (type === 'ERROR') {
        const status = obj as { code?: number; message?: string };
        if (status.code === 410) return finish({ kind: 'closed', why: 'expired' });
        return finish(undefined, new TransientApiError(`watch CSR ${name}: ${status.message ?? 'watch error'}`, obj));
      }
      if (type === 'ADDED' || type === 'MODIFIED') {
        const decision = decisionOf(obj);
        if (decision) finish(decision);
      }
    };
    const onDone = (err: unknown) => {
      if (!err) return finish({ kind: 'closed', why: 'timeout' });
      // client-node's inactivity timer fired: nothing arrived for idleTimeoutMs.
      if ((err as { name?: string }).name === 'TimeoutError') return finish({ kind: 'closed', why: 'idle' });
      finish(undefined, explainApiError(err, conn, { what: `watch CSR ${name}` }));
    };
    watch
      .watch(
        CSR_PATH,
        { fieldSelector: `metadata.name=${name}`, resourceVersion, timeoutSeconds, allowWatchBookmarks: true },
        onEvent,
        onDone,
      )
      .then(
        (c) => {
          controller = c;
          if (settled) c.abort();
        },
        (err: unknown) => finish(undefined, explainApiError(err, conn, { what: `watch CSR ${name}` })),
      );
  });
}
