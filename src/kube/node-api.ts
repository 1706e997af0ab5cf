// The node's API contract: every call the node side of nodecred (bootstrap, run, status, the health
// listeners) makes to the API server, in nodecred's own types. The manager, the CSR wait and the health
// checks take a NodeApi; src/kube/http-node-api.ts implements it over node:http2 / node:http, the fleet
// simulator (bench/sim/) and the unit tests implement it in memory. An implementation must honour the semantics
// written here, because the policy above relies on them; the conformance cases are the integration tests
// (node-http-client, bootstrap, faults, serving-rotation, operations).
//
// Errors. Every method resolves, or rejects with exactly one of:
//   - UserError (src/errors.ts) when the user must act; `code` says why:
//       UNAUTHORIZED  401 (token unknown/expired, certificate not trusted or expired, exec credential refused)
//       FORBIDDEN     403, except where a method below turns it into a result
//       TLS_UNTRUSTED the API server's certificate does not verify against the endpoint's CA / server name,
//                     or is expired / not yet valid by this node's clock
//     The message names the action and the identity (ApiConnection.description), never a token or key; `fix`
//     says what to do (explainApiError in api.ts builds these).
//   - TransientApiError (api.ts) when waiting may help: connection refused/reset, DNS, timeouts (including
//     the per-request deadline below), HTTP 5xx, and 429 (API Priority and Fairness). The caller backs off;
//     an implementation does not retry on its own (one call = one request, so request counts mean something).
//   - ApiStatusError (api.ts) for any other HTTP status (400, 422, …): neither transient nor fixable by the
//     node's operator in a way we can name; the caller reports it and backs off.
// 404 and 409 are not errors where a method says so.
//
// Deadlines and abort. Every request except a watch ends within REQUEST_TIMEOUT_MS (30 s) of being sent,
// headers and body, with a TransientApiError otherwise: a black-holed connection must never hang the
// manager. Those requests are not abortable; they end within that deadline. A watch is bounded by its own
// timeouts and its signal (watchCsr). Waiting for a decision across streams, re-reading between them and
// backing off after errors is the caller's (src/manager/csr-wait.ts), so every implementation shares it.
//
// Connections. One NodeApi serves one identity (ApiConnection: endpoint + credential); callers make a new one
// when the identity changes (bootstrap → node certificate → renewed certificate), so an implementation may
// keep connections open for its lifetime. Credentials held in files (client certificate and key, token file)
// are read when the ApiConnection is built (api.ts); an exec credential is fetched through its cache on each
// request, so an expired exec token is renewed, and a 401 invalidates that cache, so the next call runs the
// plugin again (client-go does the same; the failed call itself is not retried). Proxies: the endpoint's
// proxyUrl (kubeconfig proxy-url), else HTTPS_PROXY / NO_PROXY as Go reads them (never for loopback).
import type { NodeAddress } from '../manager/policy.ts';
import type { ApiConnection } from './api.ts';

/** What a node submits: one CSR under a name derived from the request (src/kube/csr-name.ts). */
export interface CsrSubmission {
  name: string;
  /** PKCS#10, PEM; sent base64-encoded in spec.request. */
  requestPem: string;
  signerName: string;
  usages: string[];
  /** spec.expirationSeconds; omitted lets the signer decide. */
  expirationSeconds?: number;
}

/** What the API server decided about a CSR; undefined while it is pending. */
export type CsrDecision =
  | { kind: 'issued'; certificatePem: string }
  | { kind: 'denied' | 'failed'; reason: string; message: string };

/** A CSR as the node needs to see it. */
export interface Csr {
  name: string;
  /** metadata.resourceVersion: where a watch starts. */
  resourceVersion: string;
  signerName: string;
  /** spec.request decoded to PEM. */
  requestPem: string;
  /**
   * A condition Denied or Failed with status True wins over an issued certificate (status.certificate
   * non-empty); both absent means pending. Approved without a certificate is still pending.
   */
  decision: CsrDecision | undefined;
}

/** How one watch stream ended. */
export type WatchEnd =
  | CsrDecision
  /** A DELETED event: someone (a person, kube-controller-manager's CSR cleaner) removed it. */
  | { kind: 'deleted' }
  /**
   * The stream ended without a decision: the server's timeoutSeconds elapsed, 410 Gone (resourceVersion
   * too old: re-read and watch again; the API server says so in an ERROR event, and may answer the watch
   * request itself with HTTP 410), no byte for idleTimeoutMs (a half-open connection), or the signal
   * aborted. The caller re-reads the CSR before watching again, so nothing that happened meanwhile is lost.
   */
  | { kind: 'closed'; why: 'timeout' | 'expired' | 'idle' | 'aborted' };

interface WatchCsrOptions {
  /** Sent as timeoutSeconds: the server ends the stream after this. */
  timeoutSeconds: number;
  /**
   * No byte (event, bookmark) for this long ends the stream as 'idle'. Bookmarks are requested
   * (allowWatchBookmarks), so a live stream is never silent much longer than timeoutSeconds.
   */
  idleTimeoutMs: number;
  /** Aborting resolves { kind: 'closed', why: 'aborted' } promptly and releases the connection. */
  signal: AbortSignal;
}

export interface UserInfo {
  username: string;
  groups: string[];
  uid?: string;
  extra?: Record<string, string[]>;
}

/** A SubjectAccessReview for a non-resource URL, as the secure listener asks it. */
interface NonResourceAccess {
  user: UserInfo;
  path: string;
  verb: string;
}

export interface NodeApi {
  /**
   * POST the CSR (with label app.kubernetes.io/managed-by=nodecred). Resolves with the created object, or
   * 'exists' on 409 AlreadyExists: the caller reads it (getCsr) and checks it is its own before waiting.
   */
  createCsr(submission: CsrSubmission): Promise<Csr | 'exists'>;
  /** GET one CSR; null on 404. A bootstrap identity may lack `get` in some clusters: that is FORBIDDEN. */
  getCsr(name: string): Promise<Csr | null>;
  /**
   * One WATCH stream on one CSR (fieldSelector metadata.name=<name>) from `resourceVersion`. Resolves at the
   * first event that settles it: ADDED/MODIFIED with a decision → that decision; DELETED → 'deleted'; or
   * 'closed' (see WatchEnd). ADDED/MODIFIED of a still-pending CSR and BOOKMARKs are consumed silently. A
   * watch ERROR event with code 410, or HTTP 410 to the watch request, is 'closed'/'expired'; other ERROR
   * events and transport failures reject (TransientApiError); 401/403 reject as UserError.
   */
  watchCsr(name: string, resourceVersion: string, options: WatchCsrOptions): Promise<WatchEnd>;
  /** DELETE; true when deleted or already gone (404), false when forbidden (403: nodes lack `delete`). */
  deleteCsr(name: string): Promise<boolean>;
  /** The Node's status.addresses (possibly empty); null on 404 (the kubelet has not registered it yet). */
  nodeAddresses(nodeName: string): Promise<NodeAddress[] | null>;
  /** SelfSubjectReview: who the API server takes this identity to be. */
  whoAmI(): Promise<UserInfo>;
  /** TokenReview; null when the token does not authenticate. */
  reviewToken(token: string): Promise<UserInfo | null>;
  /** SubjectAccessReview for a non-resource URL. */
  reviewAccess(access: NonResourceAccess): Promise<{ allowed: boolean; reason: string }>;
}

/** Connection construction: a NodeApi for one identity. */
export type ConnectApi = (connection: ApiConnection) => NodeApi;
