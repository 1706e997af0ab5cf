// kube-apiserver's flags for the local control plane (scripts/lib/local-cluster.ts), shared with the tests
// that start a second API server on the same etcd and PKI (test/helpers/apiserver.ts).
import { join } from 'node:path';

/** kube-apiserver's flags on loopback, for this cluster's etcd and PKI. */
export function apiserverArgs(o: { etcd: string; port: number; pki: string; caFile: string }): string[] {
  return [
    `--etcd-servers=${o.etcd}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${o.port}`,
    '--advertise-address=127.0.0.1',
    `--tls-cert-file=${join(o.pki, 'apiserver.crt')}`,
    `--tls-private-key-file=${join(o.pki, 'apiserver.key')}`,
    `--client-ca-file=${o.caFile}`,
    '--enable-bootstrap-token-auth',
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    `--service-account-key-file=${join(o.pki, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(o.pki, 'sa.key')}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    '--service-cluster-ip-range=10.96.0.0/16',
    // No Service endpoints to reconcile for a loopback-only apiserver.
    '--endpoint-reconciler-type=none',
    // Talking to kubelets (logs, exec, node proxy): verify their serving certificates against the cluster
    // CA, as a hardened cluster does, and authenticate with a client certificate of its own.
    `--kubelet-certificate-authority=${o.caFile}`,
    `--kubelet-client-certificate=${join(o.pki, 'apiserver-kubelet-client.crt')}`,
    `--kubelet-client-key=${join(o.pki, 'apiserver-kubelet-client.key')}`,
    '--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname',
  ];
}
