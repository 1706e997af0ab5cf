// First boot without a deadlock. The kubelet refuses to start while its tlsCertFile is missing; nodecred's
// serving CSR names the Node's addresses, and the approver checks them against the Node object — which only
// the running kubelet creates. So before the first real serving certificate exists, nodecred installs a
// self-signed placeholder at kubelet-server-current.pem (what the kubelet would make for itself), lets the
// kubelet start, and replaces the placeholder like any rotation once the real certificate is issued; the
// kubelet reloads it without a restart (CertStore.announce).
import { selfSignedServingPair, PLACEHOLDER_ORGANIZATION } from '../pki/self-signed.ts';
import type { StoredPair } from '../store/cert-store.ts';
import type { CredentialStore } from './state.ts';

export { PLACEHOLDER_ORGANIZATION };

/**
 * Installs the placeholder when no serving pair is installed at all; returns its path, or null when a
 * pair (real, placeholder, or one the manager will judge unreadable) is already there.
 */
export async function ensureServingPlaceholder(
  store: CredentialStore,
  nodeName: string,
  now: Date,
  make: typeof selfSignedServingPair = selfSignedServingPair,
): Promise<string | null> {
  const installed = await store.readCurrent('server').catch(() => 'unreadable' as const);
  if (installed !== null) return null;
  const { chainPem, key } = await make(nodeName, now);
  return store.install('server', chainPem, key, now);
}

/** The installed pair is nodecred's first-boot placeholder, not a certificate the cluster issued. */
export function isPlaceholder(pair: StoredPair): boolean {
  return pair.certificates[0]?.summary.subjectOrganizations.includes(PLACEHOLDER_ORGANIZATION) ?? false;
}
