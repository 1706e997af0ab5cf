// kubeadm-style token discovery, the pure parts: the bootstrap token, the detached JWS that the
// bootstrapsigner controller puts into kube-public/cluster-info, the CA inside that ConfigMap's kubeconfig,
// and CA pinning. Errors never contain the token secret.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { quote, UserError } from '../errors.ts';
import { parseKubeconfigCluster } from './kubeconfig.ts';

interface DiscoveryToken {
  tokenId: string;
  tokenSecret: string;
}

/** A bootstrap token: <token id>.<token secret> (the bootstrap.kubernetes.io/token Secret's two fields). */
export const BOOTSTRAP_TOKEN_RE = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;

/** "abcdef.0123456789abcdef" → id and secret. `where` names the flag or field it came from. */
export function parseDiscoveryToken(text: string, where = 'discovery token'): DiscoveryToken {
  const m = BOOTSTRAP_TOKEN_RE.exec(text.trim());
  if (!m) {
    throw new UserError('is not a bootstrap token of the form <6 chars [a-z0-9]>.<16 chars [a-z0-9]>', {
      where,
      fix: 'use a token from `kubeadm token create` or the bootstrap-token Secret, e.g. 07401b.f395accd246ae52d',
      code: 'DISCOVERY_TOKEN_INVALID',
    });
  }
  return { tokenId: m[1] as string, tokenSecret: m[2] as string };
}

/** The cluster-info ConfigMap key holding the signature for a token id. */
export function clusterInfoJwsKey(tokenId: string): string {
  return `jws-kubeconfig-${tokenId}`;
}

const CLUSTER_INFO = 'configmap kube-public/cluster-info';

const B64URL = /^[A-Za-z0-9_-]*$/;

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

/** Strict base64url: no padding, no foreign characters, and canonical (unused trailing bits are zero). */
function decodeB64url(s: string): Buffer | undefined {
  if (!B64URL.test(s) || s.length % 4 === 1) return undefined;
  const buf = Buffer.from(s, 'base64url');
  return buf.toString('base64url') === s ? buf : undefined;
}

function hs256(signingInput: string, secret: string): Buffer {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(signingInput, 'utf8').digest();
}

/**
 * The detached compact JWS (RFC 7515 appendix F) bootstrapsigner stores under jws-kubeconfig-<id>:
 * b64url({"alg":"HS256","kid":<id>}) + ".." + b64url(HMAC-SHA256(secret, header + "." + b64url(kubeconfig))).
 * The header bytes match go-jose's output, so the result equals what kubeadm computes.
 */
export function signClusterInfo(kubeconfigText: string, tokenId: string, tokenSecret: string): string {
  const header = b64url(JSON.stringify({ alg: 'HS256', kid: tokenId }));
  const signature = hs256(`${header}.${b64url(kubeconfigText)}`, tokenSecret);
  return `${header}..${b64url(signature)}`;
}

interface VerifyClusterInfoInput {
  /** The `kubeconfig` value of the cluster-info ConfigMap, exactly as fetched. */
  kubeconfigText: string;
  /** The value of jws-kubeconfig-<tokenId>, or undefined when the ConfigMap has no such key. */
  jwsDetached: string | undefined;
  tokenId: string;
  tokenSecret: string;
}

/** Throws a UserError unless jwsDetached is a valid HS256 signature of kubeconfigText by this token. */
export function verifyClusterInfoJws(input: VerifyClusterInfoInput): void {
  const { kubeconfigText, jwsDetached, tokenId, tokenSecret } = input;
  const where = `${CLUSTER_INFO}: data.${clusterInfoJwsKey(tokenId)}`;
  if (jwsDetached === undefined || jwsDetached === '') {
    throw new UserError(
      `no signature for token id ${tokenId} in cluster-info (token unknown, expired, or bootstrapsigner not running)`,
      {
        where,
        fix:
          `check \`kubeadm token list\` for ${tokenId}, create a new token if it expired, and make sure ` +
          `kube-controller-manager runs with --controllers including bootstrapsigner`,
        code: 'DISCOVERY_NO_SIGNATURE',
      },
    );
  }
  function malformed(why: string): never {
    throw new UserError(`is not a detached HS256 JWS (${why})`, {
      where,
      fix:
        'the value should look like <header>..<signature>; make sure cluster-info is maintained by the ' +
        'bootstrapsigner controller',
      code: 'DISCOVERY_SIGNATURE_MALFORMED',
    });
  }

  const parts = jwsDetached.split('.');
  if (parts.length !== 3) malformed(`${parts.length} dot-separated parts instead of 3`);
  const [headerB64, payloadPart, sigB64] = parts as [string, string, string];
  if (payloadPart !== '') malformed('the payload part is not empty');
  const headerBytes = decodeB64url(headerB64);
  if (!headerBytes) malformed('the header is not base64url');
  let header: unknown;
  try {
    header = JSON.parse(headerBytes.toString('utf8'));
  } catch {
    malformed('the header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    malformed('the header is not a JSON object');
  const h = header as Record<string, unknown>;
  if (h.alg !== 'HS256') malformed(`alg is ${JSON.stringify(h.alg ?? null).slice(0, 32)}, expected "HS256"`);
  if ('crit' in h) malformed('it has critical header parameters');
  if (h.kid !== tokenId) {
    throw new UserError(
      `the signature is for key id ${JSON.stringify(h.kid ?? null).slice(0, 32)}, not token id ${tokenId}`,
      {
        where,
        fix: 'cluster-info was modified or the controller that signs it is misbehaving; do not trust this API server',
        code: 'DISCOVERY_SIGNATURE_MISMATCH',
      },
    );
  }
  const sig = decodeB64url(sigB64);
  if (!sig) malformed('the signature is not base64url');
  const expected = hs256(`${headerB64}.${b64url(kubeconfigText)}`, tokenSecret);
  if (sig.length !== expected.length || !timingSafeEqual(sig, expected)) {
    throw new UserError('signature does not match (wrong token secret or tampered cluster-info)', {
      where,
      fix:
        'check the token secret (the part after the dot); if it is right, the API server you reached is not the ' +
        'cluster you expect',
      code: 'DISCOVERY_SIGNATURE_MISMATCH',
    });
  }
}

interface ClusterInfoCa {
  /** PEM of the CA certificate(s). */
  caPem: string;
  server: string;
  /** kubeadm leaves this empty. */
  clusterName: string;
}

/** The CA, server and cluster name from the cluster-info kubeconfig (which must embed the CA). */
export function extractClusterCa(kubeconfigText: string, label = `${CLUSTER_INFO}: data.kubeconfig`): ClusterInfoCa {
  const cluster = parseKubeconfigCluster(kubeconfigText, label);
  if (cluster.caData === undefined) {
    throw new UserError('has no certificate-authority-data', {
      where: label,
      fix:
        'cluster-info must embed the cluster CA; re-run `kubeadm init phase bootstrap-token` or recreate ' +
        'kube-public/cluster-info',
      code: 'DISCOVERY_NO_CA',
    });
  }
  return { caPem: cluster.caData, server: cluster.server, clusterName: cluster.name };
}

const PIN_RE = /^sha256:[0-9a-f]{64}$/;

/** Split a PEM bundle into its CERTIFICATE blocks. */
export function splitPemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * The CA certificates of the bundle that match a pin ("sha256:<hex of SHA-256 of the DER
 * SubjectPublicKeyInfo>", the format of kubeadm's --discovery-token-ca-cert-hash), and only those: they are
 * all the node will trust from now on. kubeadm checks that *any* certificate matches and then trusts the whole
 * bundle, so whoever can write cluster-info (or forge its JWS: every holder of the bootstrap token) could add
 * a CA of their own next to the real one and be trusted by every joining node. Throws a UserError when no
 * certificate matches. pinHash is injected (src/pki/cert.ts caPinHash).
 */
export function pinnedCaCertificates(
  caPems: string[],
  pins: string[],
  pinHash: (pem: string) => string,
  where = 'discovery CA pins',
): { pinned: string[]; unpinned: number } {
  const wanted = pins.map((p) => p.trim().toLowerCase());
  for (const p of wanted) {
    if (!PIN_RE.test(p)) {
      throw new UserError(`${quote(p)} is not a CA pin of the form sha256:<64 hex chars>`, {
        where,
        fix:
          'compute the pin with `openssl x509 -pubkey -in ca.crt | openssl pkey -pubin -outform der | sha256sum` ' +
          'and prefix it with sha256:',
        code: 'DISCOVERY_PIN_INVALID',
      });
    }
  }
  if (wanted.length === 0) {
    throw new UserError('no CA pin given', {
      where,
      fix: 'pass the sha256:<hex> hash of the cluster CA public key (kubeadm calls it --discovery-token-ca-cert-hash)',
      code: 'DISCOVERY_PIN_MISSING',
    });
  }
  const certificates = caPems.flatMap(splitPemCertificates);
  const found = certificates.map((pem, i) => {
    try {
      return pinHash(pem).toLowerCase();
    } catch (err) {
      throw new UserError(`CA certificate #${i + 1} cannot be parsed`, {
        where,
        fix: 'the CA served by the cluster is not a valid X.509 certificate; check the API server you reached',
        code: 'DISCOVERY_CA_INVALID',
        cause: err,
      });
    }
  });
  const pinned = certificates.filter((_, i) => wanted.includes(found[i]!));
  if (pinned.length > 0) return { pinned, unpinned: certificates.length - pinned.length };
  throw new UserError(
    `the cluster CA does not match any pin: found ${found.join(', ') || 'no CA certificate'}, expected ` +
      `${wanted.join(' or ')}`,
    {
      where,
      fix:
        'check the pin against the real cluster CA; if it is right, the API server you reached is not the cluster ' +
        'you expect',
      code: 'DISCOVERY_PIN_MISMATCH',
    },
  );
}
