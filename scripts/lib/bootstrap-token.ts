// A kubeadm-style bootstrap token: a kube-system/bootstrap-token-<id> Secret that authenticates as
// system:bootstrap:<id> (group system:bootstrappers) and signs cluster-info. Shared by the test harness and
// the benchmarks so both make tokens exactly as kubeadm does.
import { randomBytes } from 'node:crypto';
import type { CoreV1Api } from '@kubernetes/client-node';

export interface BootstrapToken {
  id: string;
  secret: string;
  /** "<id>.<secret>" */
  token: string;
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const pick = (n: number) => Array.from(randomBytes(n), (b) => ALPHABET[b % ALPHABET.length]).join('');

export async function createBootstrapTokenSecret(
  core: CoreV1Api,
  opts: { expiration?: Date; extraGroups?: string[] } = {},
): Promise<BootstrapToken> {
  const id = pick(6);
  const secret = pick(16);
  await core.createNamespacedSecret({
    namespace: 'kube-system',
    body: {
      metadata: { name: `bootstrap-token-${id}`, namespace: 'kube-system' },
      type: 'bootstrap.kubernetes.io/token',
      stringData: {
        'token-id': id,
        'token-secret': secret,
        'usage-bootstrap-authentication': 'true',
        'usage-bootstrap-signing': 'true',
        ...(opts.expiration ? { expiration: opts.expiration.toISOString().replace(/\.\d{3}Z$/, 'Z') } : {}),
        ...(opts.extraGroups?.length ? { 'auth-extra-groups': opts.extraGroups.join(',') } : {}),
      },
    },
  });
  return { id, secret, token: `${id}.${secret}` };
}
